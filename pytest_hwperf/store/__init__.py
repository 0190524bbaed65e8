"""The store: baselines (JSON per hardware fingerprint, committed) and the run history
(SQLite), under ``--hwperf-baseline-dir`` (``.hwperf/`` by default).

Plain Python below the pytest layer: the plugin's controller process and the ``hwperf``
CLI both use it. Nothing here imports pytest or, until samples are summarised, numpy.
"""

from __future__ import annotations

from pytest_hwperf.store.baselines import (
    KEEP_RUNS,
    SAMPLE_CAP,
    SCHEMA_VERSION,
    Baseline,
    BaselineInfo,
    BaselineStore,
    RunSummary,
    StoreError,
    gate_runs,
    measurement_key,
    run_of_record,
    thin_samples,
)
from pytest_hwperf.store.git import commit_label, current_commit
from pytest_hwperf.store.history import (
    HISTORY_SCHEMA_VERSION,
    History,
    HistoryRow,
    RecordedTest,
    TrendRow,
)

__all__ = [
    "HISTORY_SCHEMA_VERSION",
    "KEEP_RUNS",
    "SAMPLE_CAP",
    "SCHEMA_VERSION",
    "Baseline",
    "BaselineInfo",
    "BaselineStore",
    "History",
    "HistoryRow",
    "RecordedTest",
    "RunSummary",
    "StoreError",
    "TrendRow",
    "commit_label",
    "current_commit",
    "gate_runs",
    "measurement_key",
    "run_of_record",
    "thin_samples",
]
