"""The plugin and `hwperf compare` reach the same verdict, by construction.

A corpus of baselines and reports is made here: for each case, saved runs go into a
real baseline file, the plugin's judging layer (`judge.verdict.judge_test`, exactly what
the makereport wrapper calls) judges a measurement against them, the judged record is
written into a JSON report as the session writes it, and `hwperf compare` judges that
report against the baseline file. Outcome and reason line must be identical.
"""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path

import pytest

from pytest_hwperf.judge.drift import DRIFT_SHARE
from pytest_hwperf.judge.gate import SavedRun
from pytest_hwperf.judge.verdict import Policy, judge_test
from pytest_hwperf.records.codec import measurement_from_json, to_json
from pytest_hwperf.records.types import FingerprintRecord, MeasurementRecord
from pytest_hwperf.store import BaselineStore, RunSummary, gate_runs, measurement_key

DIGEST = "0123456789ab"
FINGERPRINT = FingerprintRecord(digest=DIGEST, label="Test CPU, 2 cores", hashed={"cpu": "test"})
TEST_ID = "tests/test_model.py::test_infer"


def _record(
    name: str, fastest_ns: int, *, reference_ms: float | None, rounds: int
) -> MeasurementRecord:
    samples = [fastest_ns + 1000 * j for j in range(50)]
    raw = {
        "test_id": TEST_ID,
        "name": name,
        "device": "cpu",
        "mode": "measured",
        "outcome": None,
        "stats": {
            "n": len(samples),
            "n_calls": len(samples),
            "mean_ms": sum(samples) / len(samples) / 1e6,
            "stdev_ms": 0.01,
            "min_ms": min(samples) / 1e6,
            "max_ms": max(samples) / 1e6,
            "p50_ms": samples[25] / 1e6,
            "p95_ms": samples[47] / 1e6,
            "p99_ms": samples[49] / 1e6,
            "throughput_per_s": 100.0,
        },
        "timing": {
            "clock": "perf_counter_ns",
            "sync": "none",
            "block_size": 1,
            "warmup_calls": 5,
            "warmup_ms": 5.0,
            "per_call_estimate_ms": 1.0,
            "gc": "collect-then-enabled",
            "stop_reason": "target-samples",
            "alpha": 0.01,
            "looks": 1,
        },
        "reference_ms": reference_ms,
        "reference_kind": None if reference_ms is None else "numpy-dot/1",
        "rounds": [
            {"n": 50, "min_ms": (fastest_ns + 5000 * r) / 1e6, "p50_ms": None}
            for r in range(rounds if rounds > 1 else 0)
        ],
        "samples_ns": samples,
    }
    return measurement_from_json(raw)


# name: (saved runs' fastest calls in ms, this run's fastest in ns, references
# (saved, current) in ms or None, rounds, the test's own regression= threshold or None)
CASES: dict[str, tuple[list[float], int, tuple[float, float] | None, int, float | None]] = {
    "regression": ([1.00, 1.01, 0.99, 1.00, 1.02], 1_500_000, None, 3, None),
    "improvement": ([1.00, 1.01, 0.99, 1.00, 1.02], 600_000, None, 1, None),
    "unchanged": ([1.00, 1.01, 0.99, 1.00, 1.02], 1_005_000, None, 1, None),
    "one-save": ([1.00], 1_400_000, None, 2, None),
    "drift": ([1.00, 1.01, 0.99], 1_300_000, (2.0, 2.6), 1, None),
    "marker-threshold": ([1.00, 1.01, 0.99, 1.00, 1.02], 1_100_000, None, 1, 5.0),
}
SESSION = Policy(alpha=0.01, regression_pct=10.0, perf_items=3)


@pytest.fixture(scope="module")
def corpus(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path, dict[str, object]]:
    root = tmp_path_factory.mktemp("corpus")
    store = BaselineStore(root / ".hwperf")
    for run in range(5):
        runs = {}
        for name, (saved, _, refs, _, _) in CASES.items():
            if run >= len(saved):
                continue
            fastest_ns = int(saved[run] * 1e6)
            runs[measurement_key(TEST_ID, name, "cpu")] = RunSummary.from_samples(
                f"run-{run}",
                f"2026-11-0{run + 1}T12:00:00+00:00",
                None,
                [fastest_ns + 1000 * j for j in range(50)],
                1,
                reference_ms=None if refs is None else refs[0],
                reference_kind=None if refs is None else "numpy-dot/1",
            )
        store.save(FINGERPRINT, runs)
    baseline = store.load(DIGEST)
    assert baseline is not None

    def runs_for(key: str) -> list[SavedRun]:
        found = gate_runs(baseline.runs_for(key))
        return [SavedRun(value, run.reference_ms, run.reference_kind) for run, value in found]

    judged: dict[str, object] = {}
    records = []
    for name, (_, current_ns, refs, rounds, marker_pct) in CASES.items():
        record = _record(
            name, current_ns, reference_ms=None if refs is None else refs[1], rounds=rounds
        )
        verdict = judge_test(
            [record],
            SESSION,
            runs_for=runs_for,
            marker_regression_pct=marker_pct,
            fingerprint=DIGEST,
        )
        (done,) = verdict.records
        done = dataclasses.replace(done, fingerprint=FINGERPRINT)
        judged[name] = done
        records.append(to_json(done))
    report = root / "report.json"
    report.write_text(
        json.dumps(
            {
                "schema_version": 1,
                "measurements": records,
                "settings": {"alpha": 0.01, "regression_pct": 10.0, "perf_items": 3},
                "environment": {"fingerprint": to_json(FINGERPRINT)},
            }
        )
    )
    return store.path_for(DIGEST), report, judged


@pytest.mark.parametrize("case", list(CASES))
def test_compare_reaches_the_plugins_verdict_and_line(
    corpus: tuple[Path, Path, dict[str, object]], case: str
) -> None:
    from pytest_hwperf.cli.compare import compare_files

    baseline_path, report, judged = corpus
    plugin = judged[case]
    assert isinstance(plugin, MeasurementRecord)
    assert plugin.comparison is not None
    result = compare_files(baseline_path, report)
    (entry,) = [e for e in result.comparisons if e.name == case]
    assert entry.comparison is not None
    assert entry.outcome == plugin.comparison.outcome
    assert entry.comparison.reason == plugin.comparison.reason
    assert entry.comparison.alpha == pytest.approx(plugin.comparison.alpha)
    assert entry.comparison.threshold_pct == plugin.comparison.threshold_pct


def test_the_corpus_covers_every_outcome(corpus: tuple[Path, Path, dict[str, object]]) -> None:
    """The cases above are what they are named for, so the test above covers them."""
    _, _, judged = corpus
    outcome = {name: r.comparison.outcome for name, r in judged.items()}  # type: ignore[attr-defined]
    assert outcome["regression"] == "regression"
    assert outcome["improvement"] == "improvement"
    assert outcome["unchanged"] == "unchanged"
    assert outcome["one-save"] == "regression"
    assert outcome["marker-threshold"] == "regression"  # the test's own 5% threshold
    drift = judged["drift"].comparison  # type: ignore[attr-defined]
    assert drift.drift_factor == pytest.approx(1.3**DRIFT_SHARE)  # the share a model follows
    assert "for machine speed" in drift.reason


def test_no_baseline_is_the_same_line(tmp_path: Path) -> None:
    record = _record("new", 1_000_000, reference_ms=None, rounds=1)
    verdict = judge_test([record], SESSION, runs_for=lambda key: [], fingerprint=DIGEST)
    (done,) = verdict.records
    assert done.comparison is not None
    assert done.comparison.outcome == "no baseline"
    assert done.comparison.reason == f"min 1.00 ms: no baseline; fingerprint {DIGEST}"
    assert not verdict.breaches


def test_the_json_result_writes_every_field_null_included(
    corpus: tuple[Path, Path, dict[str, object]], tmp_path: Path
) -> None:
    """`--json` keeps a None fingerprint and comparison as null, not left out."""
    from pytest_hwperf.cli.compare import compare_files, result_json

    baseline_path, _, _ = corpus
    zero = _record("zero", 0, reference_ms=None, rounds=1)  # its fastest call: 0 ns
    unknown = _record("regression", 1_000_000, reference_ms=None, rounds=1)
    report = tmp_path / "report.json"
    report.write_text(
        json.dumps({"schema_version": 1, "measurements": [to_json(zero), to_json(unknown)]})
    )
    result = compare_files(baseline_path, report)
    document = json.loads(json.dumps(result_json(result), allow_nan=False))
    assert list(document) == ["base", "new", "summary", "comparisons"]
    not_compared, other = document["comparisons"]
    assert not_compared["comparison"] is None
    assert (not_compared["outcome"], not_compared["verdict"]) == (
        "not compared",
        "not compared (min 0 ns)",
    )
    assert other["fingerprint"] is None
    assert other["verdict"] == "no baseline (other fingerprint)"
    assert other["comparison"]["outcome"] == "no baseline"
    assert document["summary"] == {
        "measurements": 2,
        "regression": 0,
        "improvement": 0,
        "unchanged": 0,
        "not_significant": 0,
        "no_baseline": 1,
        "not_compared": 1,
    }
    assert document["base"]["fingerprint"] == DIGEST
