"""The stored-baseline verdicts of a `verdict_quality.py` run, recomputed with other
machine-speed shares: was the share (judge/drift.py `DRIFT_SHARE`) what decided them?

`verdict_quality.py --dump D --workdir W` keeps every judged run (its fastest call over
its rounds, its gauge) in D and each series' saved runs in W. This script takes both and
judges every stored run again with `regression.compare`, the saved runs rescaled by
each `--shares` value, and prints the failures per series and level beside what the
run itself decided ("as run": by the code that ran, which may be older than this
checkout's `compare`). The current run's rounds are not in the dump, so its own rounds
do not enter the spread here (the saved runs' do); where the code is the same, the
"as run" column checks that this leaves the verdicts as they were. The tail level is
failed by its p95 (judge/tail.py) and is not replayed.

Usage: python benchmarks/vq_replay.py DUMP WORKDIR [--shares 0.6,0.7,0.8]
"""

from __future__ import annotations

import argparse
import json
import sys
from collections import Counter
from pathlib import Path
from typing import Any

from pytest_hwperf.judge import drift
from pytest_hwperf.judge import regression as regression_module
from pytest_hwperf.judge.regression import REGRESSION, compare


def saved_runs(workdir: Path, table: str) -> list[dict[str, Any]]:
    """The saved runs of the first series of `table` ("stored-3": K=3)."""
    k = table.rsplit("-", 1)[-1]
    for folder in sorted(workdir.glob(f"*-k{k}-s0")):
        for path in (folder / ".hwperf" / "baselines").glob("*.json"):
            measurements = json.loads(path.read_text())["measurements"]
            return list(next(iter(measurements.values())))
    raise SystemExit(f"no saved runs for {table} under {workdir}")


def replay(row: dict[str, Any], runs: list[dict[str, Any]], share: float) -> bool:
    result = row["result"]
    # The plugin's own rescaling and its error, at this share: both read the module
    # constants when called (judge/drift.py, judge/regression.py).
    drift.DRIFT_SHARE = share
    regression_module.DRIFT_UNCERTAINTY = drift.DRIFT_SE / share
    values, factor = drift.drift_adjusted(
        [run["min_ms"] for run in runs],
        [run["reference_ms"] for run in runs],
        result["reference_ms"],
    )
    found = compare(
        result["gate_ms"],
        values,
        alpha=0.01,
        drift_factor=factor,
        baseline_rounds=[run.get("round_min_ms") or () for run in runs],
    )
    return found.outcome == REGRESSION


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("dump", type=Path)
    parser.add_argument("workdir", type=Path)
    parser.add_argument("--shares", default="0.6,0.7,0.8")
    args = parser.parse_args()
    try:
        shares = [float(s) for s in args.shares.split(",")]
    except ValueError:
        parser.error(f"--shares: comma-separated numbers, got {args.shares!r}")
    if not all(0 < s <= 2 for s in shares):
        parser.error("--shares: each within (0, 2]")
    rows = [json.loads(line) for line in args.dump.read_text().splitlines() if line.strip()]
    rows = [
        r
        for r in rows
        if r["table"].startswith("stored-")
        and r["level"] != "tail"  # failed by its p95 (judge/tail.py), not replayed here
        and r["result"].get("gate_ms")
        and r["result"].get("reference_ms")
    ]
    saved = {table: saved_runs(args.workdir, table) for table in {r["table"] for r in rows}}
    counts: Counter[tuple[str, str]] = Counter((r["table"], r["level"]) for r in rows)
    print(f"$ python benchmarks/vq_replay.py {' '.join(sys.argv[1:])}")
    print(" table      level      as run  " + "  ".join(f"share {s:g}" for s in shares))
    for key in sorted(counts):
        mine = [r for r in rows if (r["table"], r["level"]) == key]
        ran = sum(r["result"]["outcome"] == REGRESSION for r in mine)
        again = [sum(replay(r, saved[key[0]], s) for r in mine) for s in shares]
        cells = "  ".join(f"{n:>5}/{len(mine)}" for n in again)
        print(f" {key[0]:10} {key[1]:9} {ran:>3}/{len(mine)}  {cells}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
