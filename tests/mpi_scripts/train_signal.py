"""Run under ``mpiexec -n 2``: the Trainer (as ``retrograd train`` runs it) where only rank 1
receives SIGINT at step 5. Every rank must stop after the same step, rank 0 writes the
checkpoint, and nobody waits for a collective the other will never join."""

import os
import signal
import sys

import retrograd.distributed as dist
from retrograd.train import Trainer, get_preset

dist.init_process_group("mpi", timeout=30)
R = dist.get_rank()
cfg = get_preset("moons-mlp")
cfg["train"]["steps"] = 100000


class SignalAtStep5:
    def on_step(self, trainer, step, loss):
        if R == 1 and step == 5:
            os.kill(os.getpid(), signal.SIGINT)


summary = Trainer(cfg, sys.argv[1], progress=False, quiet=True, callbacks=[SignalAtStep5()]).fit()
steps = [None] * dist.get_world_size()
dist.all_gather_object(steps, (summary["step"], summary["interrupted"], summary["signal"]))
if R == 0:
    print("STOPPED", steps, flush=True)
dist.destroy_process_group()
