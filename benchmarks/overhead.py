"""What pytest-hwperf costs.

1. Per sample: the time the hwperf sampling loop adds to each sample, against
   pytest-benchmark's `benchmark` fixture, on the same no-op and ~1 us targets, in one
   run. Added time = wall time of the measuring phase / samples - the target's own cost
   (timed in a bare loop). hwperf runs per-call (one sample per call, as for any target
   over 10 us) and in its block mode (what it uses below 10 us); pytest-benchmark runs
   pedantic(iterations=1) (one call per round, the nearest to per-call samples) and its
   default calibrated mode.
2. Plain suite: the cost of the installed plugin on a generated 2,000-test suite run
   without --hwperf, against the same run with `-p no:hwperf` (alternating runs, median).
3. Fixed cost of --hwperf: one test measuring `time.sleep(0.001)` (a target that imports
   nothing heavy, with torch installed), `pytest --hwperf` against plain `pytest`
   (alternating runs, median wall time), the peak RSS of each, and whether torch ended
   up imported (it must not: nothing the test did not use is imported).

Usage: python benchmarks/overhead.py [--samples N] [--suite-runs N] [--fixed-runs N]
       [--only fixed]
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import textwrap
import time
from pathlib import Path

PER_SAMPLE_TEST = textwrap.dedent(
    """
    import json, os, time
    import pytest
    from pytest_hwperf.measure import SamplingPolicy, measure

    N = int(os.environ["HWPERF_BENCH_SAMPLES"])
    OUT = os.environ["HWPERF_BENCH_OUT"]

    def noop():
        return None

    def one_us():
        # ~1 us of pure-Python work
        s = 0
        for i in range(30):
            s += i
        return s

    TARGETS = {"no-op": noop, "~1 us": one_us}

    def bare_cost_ns(fn, n=200_000):
        best = float("inf")
        for _ in range(5):
            t0 = time.perf_counter_ns()
            for _ in range(n):
                fn()
            best = min(best, (time.perf_counter_ns() - t0) / n)
        return best

    def hwperf_added_ns(fn, bare, block_mode):
        policy = SamplingPolicy(
            max_time_s=60.0,
            warmup_s=0.01,
            target_samples=N,
            min_time_s=0.0,
            block_threshold_ns=10_000 if block_mode else 0,
        )
        best = float("inf")
        for _ in range(5):
            _, m = measure(fn, name="x", policy=policy)
            # sampling_ns: the wall time of the sampling phase, looks included.
            best = min(best, (m.sampling_ns / m.n) - bare * m.block_size)
        return best, m.n, m.block_size

    results = {}

    @pytest.mark.parametrize("target", list(TARGETS))
    def test_hwperf(target):
        fn = TARGETS[target]
        bare = bare_cost_ns(fn)
        per_call, n, _ = hwperf_added_ns(fn, bare, block_mode=False)
        block, nb, block_size = hwperf_added_ns(fn, bare, block_mode=True)
        results[f"hwperf per-call|{target}"] = {
            "added_ns_per_sample": per_call, "samples": n, "bare_ns": bare,
        }
        results[f"hwperf block mode|{target}"] = {
            "added_ns_per_sample": block, "samples": nb, "block_size": block_size,
            "added_ns_per_call": block / block_size, "bare_ns": bare,
        }
        with open(OUT + ".hwperf." + target.replace(" ", "").replace("~", ""), "w") as fh:
            json.dump(results, fh)

    @pytest.mark.parametrize("target", list(TARGETS))
    @pytest.mark.parametrize("mode", ["pedantic", "auto"])
    def test_benchmark(benchmark, target, mode):
        fn = TARGETS[target]
        bare = bare_cost_ns(fn)
        t0 = time.perf_counter_ns()
        if mode == "pedantic":
            benchmark.pedantic(fn, rounds=N, iterations=1, warmup_rounds=0)
        else:
            benchmark(fn)
        wall = time.perf_counter_ns() - t0
        stats = benchmark.stats
        rounds = stats.stats.rounds
        iterations = stats.iterations
        calls = rounds * iterations
        out = {
            "samples": rounds,
            "iterations_per_sample": iterations,
            "bare_ns": bare,
            "wall_ns": wall,
        }
        # pedantic: the wall covers exactly the rounds; per sample = wall / rounds - bare.
        # auto: the wall also covers calibration, so report what its samples cost from
        # the fixture's own timing loop: the mean per-call time minus the bare cost.
        if mode == "pedantic":
            out["added_ns_per_sample"] = wall / rounds - bare
        else:
            out["added_ns_per_call"] = stats.stats.mean * 1e9 - bare
            out["added_ns_per_sample"] = (stats.stats.mean * 1e9 - bare) * iterations
        with open(OUT + f".bench.{mode}." + target.replace(" ", "").replace("~", ""), "w") as fh:
            json.dump({f"pytest-benchmark {mode}|{target}": out}, fh)
    """
)


def per_sample(samples: int) -> dict[str, dict[str, float]]:
    with tempfile.TemporaryDirectory() as tmp:
        test = Path(tmp, "test_overhead.py")
        test.write_text(PER_SAMPLE_TEST)
        out = str(Path(tmp, "out"))
        env = dict(os.environ, HWPERF_BENCH_SAMPLES=str(samples), HWPERF_BENCH_OUT=out)
        subprocess.run(
            [
                sys.executable,
                "-m",
                "pytest",
                "-q",
                "-p",
                "no:cacheprovider",
                "--benchmark-disable-gc",
                "--benchmark-min-rounds=1000",
                str(test),
            ],
            check=True,
            cwd=tmp,
            env=env,
            stdout=subprocess.DEVNULL,
        )
        merged: dict[str, dict[str, float]] = {}
        for path in Path(tmp).glob("out.*"):
            merged.update(json.loads(path.read_text()))
        return merged


SUITE_TEST = textwrap.dedent(
    """
    import pytest

    @pytest.mark.parametrize("i", range({n}))
    def test_plain(i):
        assert i >= 0

    @pytest.mark.latency(ms=50)
    @pytest.mark.parametrize("i", range({n_marked}))
    def test_marked(i):
        assert i >= 0
    """
)


def suite_cost(runs: int, tests: int = 2000) -> dict[str, float]:
    n_marked = tests // 10
    with tempfile.TemporaryDirectory() as tmp:
        Path(tmp, "test_suite.py").write_text(
            SUITE_TEST.format(n=tests - n_marked, n_marked=n_marked)
        )
        Path(tmp, "pytest.ini").write_text("[pytest]\n")
        base = [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider"]
        variants = {"with pytest-hwperf": base, "-p no:hwperf": [*base, "-p", "no:hwperf"]}
        times: dict[str, list[float]] = {k: [] for k in variants}
        for _ in range(runs):
            for name, cmd in variants.items():
                t0 = time.perf_counter()
                subprocess.run(cmd, check=True, cwd=tmp, stdout=subprocess.DEVNULL)
                times[name].append(time.perf_counter() - t0)
    result = {f"{k} median s": statistics.median(v) for k, v in times.items()}
    result.update({f"{k} min s": min(v) for k, v in times.items()})
    with_, without = result["with pytest-hwperf median s"], result["-p no:hwperf median s"]
    result["overhead %"] = 100.0 * (with_ - without) / without
    return result


FIXED_TEST = textwrap.dedent(
    """
    import time

    def test_sleep(hwperf):
        hwperf(time.sleep, 0.001)
    """
)
FIXED_CONFTEST = textwrap.dedent(
    """
    import json, resource, sys

    def pytest_unconfigure(config):
        peak_mb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
        with open("facts.json", "w") as f:
            json.dump({"torch": "torch" in sys.modules, "peak_rss_mb": peak_mb}, f)
    """
)


def fixed_cost(runs: int) -> dict[str, float | bool]:
    """Wall time and peak RSS of one trivial perf test, with and without --hwperf."""
    with tempfile.TemporaryDirectory() as tmp:
        Path(tmp, "test_fixed.py").write_text(FIXED_TEST)
        Path(tmp, "conftest.py").write_text(FIXED_CONFTEST)
        Path(tmp, "pytest.ini").write_text("[pytest]\n")
        base = [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider"]
        variants = {"plain": base, "--hwperf": [*base, "--hwperf", "--hwperf-max-time=0.5"]}
        times: dict[str, list[float]] = {k: [] for k in variants}
        rss: dict[str, list[float]] = {k: [] for k in variants}
        torch_loaded = False
        for _ in range(runs):
            for name, cmd in variants.items():
                t0 = time.perf_counter()
                subprocess.run(cmd, check=True, cwd=tmp, stdout=subprocess.DEVNULL)
                times[name].append(time.perf_counter() - t0)
                facts = json.loads(Path(tmp, "facts.json").read_text())
                rss[name].append(facts["peak_rss_mb"])
                torch_loaded = torch_loaded or bool(facts["torch"])
    result: dict[str, float | bool] = {}
    for name in variants:
        result[f"{name} median s"] = statistics.median(times[name])
        result[f"{name} peak RSS MB"] = statistics.median(rss[name])
    result["added s (median)"] = result["--hwperf median s"] - result["plain median s"]
    result["torch imported"] = torch_loaded
    return result


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--samples", type=int, default=20_000)
    parser.add_argument("--suite-runs", type=int, default=7)
    parser.add_argument("--fixed-runs", type=int, default=7)
    parser.add_argument("--only", choices=("fixed",), default=None)
    args = parser.parse_args()

    print(f"# --hwperf's fixed cost: one test of time.sleep(0.001) ({args.fixed_runs} runs)")
    for key, value in fixed_cost(args.fixed_runs).items():
        print(f"{key:32} {value!s:>8}" if isinstance(value, bool) else f"{key:32} {value:8.3f}")
    if args.only == "fixed":
        return 0

    print(f"# per-sample overhead ({args.samples} samples, best of 5 for hwperf)")
    print(f"{'runner':38} {'added ns/sample':>16} {'calls/sample':>13} {'added ns/call':>14}")
    results = per_sample(args.samples)
    for key in sorted(results):
        r = results[key]
        per_sample_ns = r["added_ns_per_sample"]
        calls = r.get("block_size", r.get("iterations_per_sample", 1))
        per_call = per_sample_ns / calls
        print(f"{key:38} {per_sample_ns:16.0f} {calls:13.0f} {per_call:14.1f}")

    print(f"\n# plain 2,000-test suite without --hwperf ({args.suite_runs} alternating runs)")
    for key, value in suite_cost(args.suite_runs).items():
        print(f"{key:32} {value:8.3f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
