"""The MLServer fixture's parts: a V2 REST client (:mod:`~pytest_hwperf.serving.v2`), the
closed and open load loops and their measurement (:mod:`~pytest_hwperf.serving.load`),
and the server process's lifecycle.

MLServer is never imported in the test process: it runs as a subprocess.
"""
