"""How often each regression gate cries wolf, and how often it catches a slowdown.

A CPU torch model (a stack of Linear(256, 256) + ReLU layers, batch 64) is measured in
separate processes, as separate CI runs would be: first `--baseline-runs` runs that save
the baseline (hwperf: `--hwperf-save`, its baseline keeps them all; pytest-benchmark:
`--benchmark-save`, which compares with one saved run), then, interleaved so that
machine drift hits every condition alike, `--runs` runs each of the unchanged model and
of the model with +5%, +10% and +20% work (more layers). Every run measures with both
tools in one test, at their defaults.

- hwperf's verdict is its own: the `comparison.outcome` in its JSON report.
- pytest-benchmark's is its documented `--benchmark-compare-fail=median:P%` rule applied
  to the medians it recorded: fail when (median - baseline median) / baseline median
  exceeds P% (its `PercentageRegressionCheck`).

With `--rolling`, each round of the four conditions also starts with one more saved
run of the unchanged model, as a CI job on the main branch that saves after each merge
would add: hwperf's baseline keeps the latest 20 saved runs, pytest-benchmark compares
with the latest one. The saved runs then span the same hours as the runs judged, and a
change of the machine's noise level between saving and judging hits both tools alike.

Usage: python benchmarks/verdict_quality.py [--runs 20] [--baseline-runs 10] [--layers 20]
       [--rolling]
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import textwrap
import time
from pathlib import Path

TEST = textwrap.dedent(
    """
    import os

    import torch

    LAYERS = int(os.environ["VQ_LAYERS"])
    torch.manual_seed(0)
    MODEL = torch.nn.Sequential(
        *[m for _ in range(LAYERS) for m in (torch.nn.Linear(256, 256), torch.nn.ReLU())]
    ).eval()
    X = torch.randn(64, 256)


    def infer():
        with torch.inference_mode():
            return MODEL(X)


    def test_model(hwperf, benchmark):
        hwperf(infer, name="model")
        benchmark(infer)
    """
)

CONDITIONS = {"unchanged": 0.0, "+5%": 0.05, "+10%": 0.10, "+20%": 0.20}


def run_once(folder: Path, layers: int, *, save: bool, bench_json: Path) -> dict[str, float | str]:
    env = dict(os.environ, VQ_LAYERS=str(layers))
    env.pop("PYTEST_XDIST_WORKER", None)
    report = folder / "hwperf.json"
    cmd = [
        sys.executable,
        "-m",
        "pytest",
        "-q",
        "-p",
        "no:cacheprovider",
        "-p",
        "no:randomly",
        "--hwperf",
        f"--hwperf-json={report}",
        f"--benchmark-json={bench_json}",
        "test_model.py",
    ]
    if save:
        cmd.append("--hwperf-save")
    subprocess.run(cmd, cwd=folder, env=env, stdout=subprocess.DEVNULL, check=False)
    record = json.loads(report.read_text())["measurements"][0]
    bench = json.loads(bench_json.read_text())["benchmarks"][0]["stats"]
    comparison = record.get("comparison") or {}
    return {
        "hwperf": str(comparison.get("outcome")),
        "hwperf_change_pct": float(comparison.get("change_pct") or 0.0),
        "hwperf_sigma_pct": float(comparison.get("sigma_pct") or 0.0),
        "hwperf_rounds": float(comparison.get("rounds") or 1),
        "hwperf_current_ms": float(comparison.get("current_ms") or 0.0),
        "hwperf_baseline_ms": float(comparison.get("baseline_ms") or 0.0),
        "hwperf_baseline_runs": float(comparison.get("baseline_runs") or 0),
        "p50_ms": float(record["stats"]["p50_ms"] or 0.0),
        "bench_median": float(bench["median"]),
    }


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=20)
    parser.add_argument("--baseline-runs", type=int, default=10)
    parser.add_argument("--layers", type=int, default=20)
    parser.add_argument(
        "--rolling", action="store_true", help="save one more unchanged run before each round"
    )
    parser.add_argument("--dump", type=Path, help="write every run's figures here (JSON lines)")
    args = parser.parse_args()

    started = time.monotonic()
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)
        (folder / "test_model.py").write_text(TEST)
        (folder / "pytest.ini").write_text("[pytest]\n")
        base_medians = []
        for i in range(args.baseline_runs):
            out = run_once(folder, args.layers, save=True, bench_json=folder / f"base{i}.json")
            base_medians.append(float(out["bench_median"]))
        # pytest-benchmark compares with one saved run: the last one, as a CI job on main
        # that saves each merge would leave it.
        bench_base = base_medians[-1]
        results: dict[str, list[dict[str, float | str]]] = {c: [] for c in CONDITIONS}
        bench_bases: dict[str, list[float]] = {c: [] for c in CONDITIONS}
        for _ in range(args.runs):
            if args.rolling:
                out = run_once(folder, args.layers, save=True, bench_json=folder / "save.json")
                bench_base = float(out["bench_median"])
            for name, extra in CONDITIONS.items():
                layers = round(args.layers * (1 + extra))
                out = run_once(folder, layers, save=False, bench_json=folder / "run.json")
                results[name].append(out)
                if args.dump is not None:
                    with args.dump.open("a") as dump:
                        dump.write(json.dumps({"condition": name, **out}) + "\n")
                bench_bases[name].append(bench_base)
        elapsed = time.monotonic() - started

    def bench_flags(name: str, pct: float) -> int:
        pairs = zip(results[name], bench_bases[name], strict=True)
        return sum(1 for r, base in pairs if (float(r["bench_median"]) - base) / base * 100 > pct)

    rolling = ", plus one saved before each round (--rolling)" if args.rolling else ""
    print(
        f"# {args.runs} runs per condition, baseline from {args.baseline_runs} saved runs"
        f"{rolling}, {args.layers} layers unchanged; {elapsed / 60:.1f} min"
    )
    header = f"{'condition':>10} {'hwperf (defaults)':>18} {'bench median:5%':>16}"
    print(
        f"{header} {'bench median:10%':>17} {'mean change':>12} {'spread used':>12} {'rounds':>7}"
    )
    for name, rows in results.items():
        hw = sum(1 for r in rows if r["hwperf"] == "regression")
        change = sum(float(r["hwperf_change_pct"]) for r in rows) / len(rows)
        sigma = sum(float(r["hwperf_sigma_pct"]) for r in rows) / len(rows)
        rounds = sum(float(r["hwperf_rounds"]) for r in rows) / len(rows)
        print(
            f"{name:>10} {hw:>15}/{len(rows)} {bench_flags(name, 5):>13}/{len(rows)}"
            f" {bench_flags(name, 10):>14}/{len(rows)} {change:>+11.1f}% {sigma:>11.1f}%"
            f" {rounds:>7.1f}"
        )
    print(
        "(unchanged: false alarms; +5/+10/+20%: slowdowns caught; rounds: mean rounds"
        " measured per run, more than 1 when a suspected regression was measured again)"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
