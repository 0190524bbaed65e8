"""The pytest layer: hooks, fixtures, the --hwperf session, options and markers.

The only package that imports pytest; everything it calls lives in the pure packages
beside it (hardware, measure, judge, store, report, profiling, workers).
"""
