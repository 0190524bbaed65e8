"""Workers and threads: the oversubscription gates and the worker process pool.

- :mod:`pytest_hwperf.workers.config`: a workers x threads config, and applying its
  thread limit to this process for a test.
- :mod:`pytest_hwperf.workers.placement`: disjoint CPU sets and one GPU per
  pytest-xdist worker.
- :mod:`pytest_hwperf.workers.gate`: declared and observed oversubscription gates.
- :mod:`pytest_hwperf.measure.observe`: which threads were busy during a measurement.
- :mod:`pytest_hwperf.workers.pool`: N spawned worker processes, each building its
  model from a picklable factory under its own thread limit (and, when asked, CPU
  affinity), driven by a closed-loop load with every request timed in the parent.
  Its parts: :mod:`~pytest_hwperf.workers.worker` (the child process),
  :mod:`~pytest_hwperf.workers.processes` (starting and stopping the processes),
  :mod:`~pytest_hwperf.workers.wire` (their messages) and
  :mod:`~pytest_hwperf.workers.results` (a run's samples, judged as a measurement).

Importing this package imports none of them; import the submodule you need.
"""
