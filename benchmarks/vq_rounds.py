"""Read a verdict_quality.py work folder's stored-mode reports four ways.

For each judged run of the model test, its change against the median of its series'
saves, with the fastest call taken over the quiet rounds only or over all rounds, and
without or with the baseline rescaled by the reference workload's fastest call over the
same rounds (the runs must have been made with `--hwperf-reference=on` for the latter).
Reports are those `verdict_quality.py --workdir DIR` keeps in `DIR/reports`.

Usage: python benchmarks/vq_rounds.py DIR/reports [--condition noisy]
"""

from __future__ import annotations

import argparse
import json
import math
import re
import statistics
import sys
from pathlib import Path
from typing import Any

LEVELS = ("unchanged", "+10%", "+20%")


def _model(path: Path) -> dict[str, Any] | None:
    try:
        report = json.loads(path.read_text())
    except (OSError, ValueError):
        return None
    for record in report.get("measurements") or []:
        if "test_model" in str(record.get("test_id", "")):
            return dict(record)
    return None


def figures(record: dict[str, Any], *, every_round: bool) -> tuple[float, float | None]:
    """The fastest call and the reference's fastest call over the rounds chosen."""
    rounds = record.get("rounds") or [
        {"min_ms": record["stats"]["min_ms"], "reference_ms": record.get("reference_ms")}
    ]
    pool = rounds if every_round else ([r for r in rounds if not r.get("disturbed")] or rounds)
    fastest = min(float(r["min_ms"]) for r in pool)
    refs = [float(r["reference_ms"]) for r in pool if r.get("reference_ms")]
    return fastest, (min(refs) if refs else None)


def main() -> int:
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("reports", type=Path)
    parser.add_argument("--condition", default="noisy")
    args = parser.parse_args()
    saves: dict[int, list[dict[str, Any]]] = {}
    for path in sorted(args.reports.glob(f"save-{args.condition}-*.hwperf.json")):
        record = _model(path)
        if record is not None:
            saves.setdefault(int(path.name.split("-")[2]), []).append(record)
    pattern = re.compile(rf"{args.condition}-k(\d+)-(.+)-\d+\.hwperf\.json$")
    runs: list[tuple[int, str, dict[str, Any]]] = []
    for path in sorted(args.reports.glob(f"{args.condition}-k*.hwperf.json")):
        found = pattern.search(path.name)
        record = _model(path)
        if found and record is not None:
            runs.append((int(found.group(1)), found.group(2), record))
    if not saves or not runs:
        print(f"no saves or judged runs of {args.condition!r} in {args.reports}")
        return 1
    for every_round in (False, True):
        for rescale in (False, True):
            print(f"== rounds={'all' if every_round else 'quiet'} gauge={rescale}")
            for k in sorted(saves):
                base = [figures(r, every_round=every_round) for r in saves[k]]
                for level in LEVELS:
                    changes = []
                    for kk, label, record in runs:
                        if kk != k or label != level:
                            continue
                        value, ref = figures(record, every_round=every_round)
                        scaled = [
                            b * (ref / b_ref) if rescale and ref and b_ref else b
                            for b, b_ref in base
                        ]
                        changes.append(100 * (value / statistics.median(scaled) - 1))
                    if changes:
                        print(
                            f"  k={k} {level:9s} n={len(changes):2d}"
                            f" mean={statistics.mean(changes):6.1f}"
                            f" sd={statistics.pstdev(changes):5.1f} min={min(changes):6.1f}"
                            f" max={max(changes):6.1f}  >5%: {sum(c > 5 for c in changes)}"
                            f"  >0: {sum(c > 0 for c in changes)}"
                        )
    moved = []
    for k, _, record in runs:
        _, ref = figures(record, every_round=True)
        refs = [figures(r, every_round=True)[1] for r in saves[k]]
        if ref and all(refs):
            centre = math.exp(statistics.mean(math.log(r) for r in refs if r))
            moved.append(abs(100 * (ref / centre - 1)))
    if moved:
        largest = ", ".join(f"{m:.1f}%" for m in sorted(moved)[-4:])
        print(
            f"reference moved against the saves': under 1% in {sum(m < 1 for m in moved)}"
            f" of {len(moved)} runs; the largest {largest}"
        )
    return 0


if __name__ == "__main__":
    sys.exit(main())
