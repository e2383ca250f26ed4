"""Benchmarks of retrograd against PyTorch eager (``make bench`` runs ``benchmarks.run``).

Each workload module (``mlp``, ``cnn``, ``gpt``, ``tiny``, ``deep``) builds the same model in
both frameworks from one set of NumPy-generated weights and one fixed batch
(spec: ``/work/shared/bench/workloads.md``, summarised in ``docs/performance.md``).
"""

WORKLOADS = ("mlp", "cnn", "gpt", "tiny", "deep")
