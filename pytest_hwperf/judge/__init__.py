"""Judging: declared budgets, their statistical verdicts, and the regression gate.

Pure: no pytest. The pytest layer and the `hwperf` CLI both call these functions.
"""
