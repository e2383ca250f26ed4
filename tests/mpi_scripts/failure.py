"""Run under ``mpiexec -n 2``: rank 1 fails mid-run in the way given by argv[1] (raise, exit,
kill, hang) while rank 0 keeps calling all_reduce. Rank 0 must stop with an error naming
rank 1 instead of hanging. argv[2] is the group timeout in seconds."""

import os
import signal
import sys
import time

import retrograd as rg
import retrograd.distributed as dist

mode, timeout = sys.argv[1], float(sys.argv[2])
dist.init_process_group("mpi", timeout=timeout)
R = dist.get_rank()
t = rg.ones(1000)
for step in range(1000):
    if R == 1 and step == 3:
        print(f"rank 1 failing by {mode} at step {step}", flush=True)
        if mode == "raise":
            raise ValueError("boom at step 3")
        if mode == "exit":
            os._exit(3)
        if mode == "kill":
            os.kill(os.getpid(), signal.SIGKILL)
        if mode == "hang":
            time.sleep(3600)
    dist.all_reduce(t)
    t.fill_(1.0)
    time.sleep(0.01)
print(f"rank {R} finished without noticing", flush=True)
