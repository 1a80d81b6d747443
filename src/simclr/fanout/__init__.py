"""Beyond one machine: ``simclr fanout`` runs the pipeline's independent stages, or the
experiments of a sweep, as jobs on SLURM or on this machine's GPUs and cores, each in a workspace
of its own through DVC itself, and brings every result back through DVC's run-cache.

* :mod:`simclr.fanout.plan`       which stages fan out (read from DVC's DAG), the sweep, the snapshot commit
* :mod:`simclr.fanout.job`        what one job does in its workspace
* :mod:`simclr.fanout.executors`  local processes or a SLURM job array
* :mod:`simclr.fanout.run`        the command: upstream, jobs with progress, restore and the rest
"""
