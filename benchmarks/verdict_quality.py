"""How often each regression gate cries wolf, and how often it catches a slowdown.

A CPU torch model (a stack of Linear(256, 256) + ReLU layers, batch 64) is measured in
separate pytest processes, as separate CI runs would be, under one or more conditions
(`--conditions quiet,noisy`: without and with a co-tenant, busy processes spinning in
seeded random bursts, see `_cotenant.py`; `--cotenant` alone is `--conditions noisy`).
Under each condition, interleaved in a seeded random order per round so that machine
drift hits everything alike:

- **Stored baseline** (`--baseline-runs 1,3`): for each K, a series starts with K fresh
  saves (hwperf `--hwperf-save`; pytest-benchmark's save is the last of them), then
  `--runs` judged runs per level of `--changes` (the unchanged model, +10%, +20%: more
  layers), and of the *tail* level in the series of the largest K (`--no-tail` drops
  it): the unchanged model whose every 10th call does 4 calls' work (fastest call and
  median unchanged), judged against the saves made without the tail. `--series S`
  splits the runs into S series, each with fresh saves.
- **Budgets**: one process per round with two tests, the unchanged model under a p95
  budget 3x its p95 (must pass) and under half its p95 (twice the budget: must fail).
- **A/B** (`--ab`): a git repository in a temp dir, the unchanged model committed as the
  base and each level of `--ab-changes` committed on top of it as the head;
  `pytest --hwperf --hwperf-against=HEAD~1` judges each head. Its cost is the wall time
  of an A/B run over that of a plain `--hwperf` run of the same head (`--cost-runs`
  pairs per level). Without `--hwperf-against` in this install, one line says so.

A judged test *fails* whatever made it fail (a budget or a regression: the JUnit XML and
the hwperf JSON report say which). The model test carries a p95 budget of
`--model-budget-factor` x its p95 measured at the start (the tail level's is 4x wider,
as its p95 is, so that the gate, not the budget, has to catch the tail).
pytest-benchmark's verdicts are its documented `--benchmark-compare-fail=min:10%` and
`median:10%` rules applied to what it recorded, against the series' last save
(`PercentageRegressionCheck`: fail when current / saved - 1 exceeds 10%).

With `--rolling`, each round also starts with one more save in each stored series, as
a main branch that saves after each merge would add.

Usage: python benchmarks/verdict_quality.py [--runs 20] [--baseline-runs 1,3]
       [--conditions quiet,noisy] [--ab] [--changes 0,10,20] [--seed N] ...
"""

from __future__ import annotations

import argparse
import json
import os
import random
import shlex
import signal
import sys
import tempfile
import time
from collections.abc import Callable
from contextlib import nullcontext
from dataclasses import asdict, dataclass
from importlib import metadata
from pathlib import Path
from types import FrameType

sys.path.insert(0, str(Path(__file__).resolve().parent))

from _cotenant import CoTenant
from _vq_ab import ABRepo
from _vq_runs import (
    BUDGET_TEST,
    Series,
    TestResult,
    no_result,
    run_tests,
    test_source,
    write_model,
)
from _vq_tables import Row, Tables, estimate_line

from pytest_hwperf.files import atomic_write

TAIL = "tail"


@dataclass(frozen=True)
class Level:
    label: str  # "unchanged", "+10%", "tail"
    layers: int
    tail: bool


def parse_levels(text: str, base_layers: int) -> list[Level]:
    levels: list[Level] = []
    for item in (part.strip().rstrip("%") for part in text.split(",") if part.strip()):
        if item == TAIL:
            levels.append(Level(TAIL, base_layers, True))
            continue
        pct = float(item)
        if pct < 0:
            raise argparse.ArgumentTypeError(f"a change must be 0 or more, not {item}")
        label = "unchanged" if pct == 0 else f"+{pct:g}%"
        levels.append(Level(label, round(base_layers * (1 + pct / 100)), False))
    return levels


def parse_ints(text: str) -> list[int]:
    values = [int(part) for part in text.split(",") if part.strip()]
    if not values or min(values) < 1:
        raise argparse.ArgumentTypeError(f"expected positive whole numbers, not {text!r}")
    return sorted(set(values))


class Bench:
    """Everything one invocation runs: its settings, folders, progress and dump."""

    def __init__(self, args: argparse.Namespace, tmp: Path) -> None:
        self.args = args
        self.tmp = tmp
        self.out = tmp / "reports"
        self.out.mkdir()
        self.options = ["--hwperf"]
        if args.max_time is not None:
            self.options.append(f"--hwperf-max-time={args.max_time:g}")
        self.options += shlex.split(args.pytest_args)
        self.levels = parse_levels(args.changes, args.layers)
        self.ab_levels = parse_levels(args.ab_changes, args.layers)
        self.p95_ms = 0.0
        self.calibration_p95s: list[float] = []
        self.calibration_min_ms = float("inf")
        self.run_s = 0.0
        self.model_budget_ms = 0.0
        self.ab: ABRepo | None = None
        self.dump: list[str] = []
        self.started = time.monotonic()
        self.runs_started = self.started  # reset once calibrated
        self.done_weight = 0.0
        self.total_weight = 0.0
        self.count = 0
        self.total = 0
        self.condition = ""

    # --- progress ---------------------------------------------------------------

    def progress(self, what: str, weight: float, result: TestResult | None) -> None:
        self.count += 1
        self.done_weight += weight * (NOISY_FACTOR if self.condition == "noisy" else 1.0)
        elapsed = time.monotonic() - self.started
        spent = time.monotonic() - self.runs_started  # calibration left out
        left = spent / self.done_weight * max(0.0, self.total_weight - self.done_weight)
        verdict = "-" if result is None else "FAIL" if result.failed else "pass"
        if result is not None and result.reasons:
            verdict += f" ({'+'.join(result.reasons)})"
        print(
            f"[{self.count:>4}/{self.total}] {self.condition} {what}: {verdict};"
            f" {elapsed / 60:.1f} min, ~{left / 60:.0f} min left",
            file=sys.stderr,
            flush=True,
        )

    def record(self, table: str, level: str, row: Row) -> None:
        if self.args.dump is None:
            return
        entry = {"condition": self.condition, "table": table, "level": level, **asdict(row)}
        self.dump.append(json.dumps(entry))
        atomic_write(self.args.dump, "\n".join(self.dump) + "\n")

    # --- the runs ---------------------------------------------------------------

    def calibrate(self) -> None:
        """Two plain runs of the unchanged model without a budget: its p95 (the budgets
        are set from it) and what one run costs (the estimate)."""
        folder = self.tmp / "calibrate"
        folder.mkdir()
        atomic_write(folder / "pytest.ini", "[pytest]\n")
        atomic_write(folder / "test_model.py", test_source(benchmark=True))
        write_model(folder, self.args.layers, tail=False, budget_ms=0.0)
        p95s, walls = [], []
        for i in range(2):
            process, results = run_tests(
                folder, self.out, f"calibrate{i}", ["test_model.py"], self.options, bench=True
            )
            result = results.get("test_model") or no_result(process)
            if result.failed or result.p95_ms is None:
                sys.exit(f"verdict_quality: the calibration run failed: {result.error}")
            p95s.append(result.p95_ms)
            walls.append(process.wall_s)
            if result.min_ms is not None:
                self.calibration_min_ms = min(self.calibration_min_ms, result.min_ms)
        self.p95_ms = self.args.p95_ms or min(p95s)
        self.calibration_p95s = p95s
        self.run_s = min(walls)
        self.model_budget_ms = self.args.model_budget_factor * self.p95_ms

    def save(self, series: Series, tag: str) -> None:
        write_model(series.folder, self.args.layers, tail=False, budget_ms=self.model_budget_ms)
        options = [*self.options, f"--hwperf-baseline-dir={series.folder / '.hwperf'}"]
        process, results = run_tests(
            series.folder, self.out, tag, ["test_model.py"], [*options, "--hwperf-save"], bench=True
        )
        result = results.get("test_model") or no_result(process)
        series.saves_tried += 1
        if not result.failed:  # hwperf saves only a test that passed
            series.saves_ok += 1
            if result.p95_ms is not None:
                series.p95s.append(result.p95_ms)
        if result.bench_min is not None and result.bench_median is not None:
            # pytest-benchmark's --benchmark-save keeps whatever it measured, pass or fail
            series.bench_min, series.bench_median = result.bench_min, result.bench_median
        self.progress(f"save {series.saves_tried} (K={series.k})", WEIGHTS["save"], result)

    def judge(self, series: Series, level: Level, tag: str) -> Row:
        budget = self.model_budget_ms * (4 if level.tail else 1)
        write_model(series.folder, level.layers, tail=level.tail, budget_ms=budget)
        options = [*self.options, f"--hwperf-baseline-dir={series.folder / '.hwperf'}"]
        process, results = run_tests(
            series.folder, self.out, tag, ["test_model.py"], options, bench=True
        )
        result = results.get("test_model") or no_result(process)
        row = Row(result=result)
        base_p95 = series.base_p95()
        if base_p95 and result.p95_ms is not None:
            row.p95_change_pct = (result.p95_ms / base_p95 - 1) * 100
        pct = self.args.bench_threshold
        if series.bench_min and result.bench_min is not None:
            row.bench_min_fail = (result.bench_min / series.bench_min * 100 - 100) > pct
        if series.bench_median and result.bench_median is not None:
            row.bench_median_fail = (result.bench_median / series.bench_median * 100 - 100) > pct
        self.progress(f"K={series.k} {level.label}", WEIGHTS["judge"], result)
        return row

    def budgets(self, folder: Path, tag: str) -> dict[str, Row]:
        process, results = run_tests(
            folder, self.out, tag, ["test_budget.py"], self.options, bench=False
        )
        rows = {}
        for name in ("test_third_of_budget", "test_twice_the_budget"):
            rows[name] = Row(result=results.get(name) or no_result(process))
        failed = [n for n, r in rows.items() if r.result.failed]
        self.progress(f"budgets (failed: {', '.join(failed) or 'none'})", WEIGHTS["budget"], None)
        return rows

    def ab_run(self, level: Level, tag: str, *, against: bool) -> Row:
        assert self.ab is not None
        process, result = self.ab.run(level.label, tag, against=against)
        row = Row(result=result or no_result(process))
        kind = "A/B" if against else "plain (cost)"
        self.progress(f"{kind} {level.label}", WEIGHTS["ab" if against else "plain"], row.result)
        return row


# Cost of each kind of pytest process, in plain runs (measured on the 2-core runner:
# a save measures 6 rounds; a judged run sometimes 6; the A/B bound is 3x).
WEIGHTS = {"save": 2.2, "judge": 1.3, "budget": 1.2, "ab": 2.5, "plain": 1.0}
NOISY_FACTOR = 1.5


def chunks(runs: int, series: int) -> list[int]:
    return [runs // series + (1 if i < runs % series else 0) for i in range(series)]


def plan(bench: Bench) -> tuple[int, float]:
    """The number of pytest processes and their weight (in plain runs), all conditions."""
    args = bench.args
    count, weight = 0, 0.0
    for condition in args.conditions:
        factor = NOISY_FACTOR if condition == "noisy" else 1.0
        kinds: dict[str, int] = {"save": 0, "judge": 0, "budget": 0, "ab": 0, "plain": 0}
        if "stored" in args.modes:
            for k in args.baseline_runs:
                levels = len(stored_levels(bench, k))
                kinds["save"] += k * args.series + (args.runs if args.rolling else 0)
                kinds["judge"] += levels * args.runs
        if "budget" in args.modes:
            kinds["budget"] += args.runs
        if bench.ab is not None:
            kinds["ab"] += len(bench.ab_levels) * args.runs
            kinds["plain"] += len(bench.ab_levels) * min(args.cost_runs, args.runs)
        count += sum(kinds.values())
        weight += factor * sum(WEIGHTS[k] * n for k, n in kinds.items())
    return count, weight


def stored_levels(bench: Bench, k: int) -> list[Level]:
    levels = list(bench.levels)
    has_tail = any(level.tail for level in levels)
    if not (bench.args.no_tail or has_tail) and k == max(bench.args.baseline_runs):
        levels.append(Level(TAIL, bench.args.layers, True))
    return levels


def run_condition(bench: Bench, condition: str, tables: Tables) -> None:
    args = bench.args
    bench.condition = condition
    rng = random.Random(f"{args.seed}-order-{condition}")
    budget_folder = bench.tmp / f"{condition}-budget"
    budget_folder.mkdir()
    atomic_write(budget_folder / "pytest.ini", "[pytest]\n")
    write_model(budget_folder, args.layers, tail=False, budget_ms=0.0)
    third, twice = 3 * bench.p95_ms, bench.p95_ms / 2
    atomic_write(
        budget_folder / "test_budget.py",
        BUDGET_TEST.format(third_ms=round(third, 4), twice_ms=round(twice, 4)),
    )
    tables.budget_ms = (third, twice)
    for k in args.baseline_runs if "stored" in args.modes else []:
        tables.order(tables.stored_key(k), [lv.label for lv in stored_levels(bench, k)])
    if "budget" in args.modes:
        tables.order("budgets", ["test_third_of_budget", "test_twice_the_budget"])
    if bench.ab is not None:
        tables.order("ab", [lv.label for lv in bench.ab_levels])
    round_no = 0
    for chunk, n_runs in enumerate(chunks(args.runs, args.series)):
        series: list[Series] = []
        if "stored" in args.modes:
            for k in args.baseline_runs:
                folder = bench.tmp / f"{condition}-k{k}-s{chunk}"
                folder.mkdir()
                atomic_write(folder / "pytest.ini", "[pytest]\n")
                atomic_write(folder / "test_model.py", test_source(benchmark=True))
                series.append(Series(k=k, folder=folder))
                tables.series.append(series[-1])
            for i in range(max(args.baseline_runs)):
                for s in series:
                    if i < s.k:
                        bench.save(s, f"save-{condition}-{s.k}-{chunk}-{i}")
        for _ in range(n_runs):
            round_no += 1
            if args.rolling:
                for s in series:
                    bench.save(s, f"rolling-{condition}-{s.k}-{round_no}")
            tasks: list[Callable[[], None]] = []
            for s in series:
                for level in stored_levels(bench, s.k):
                    tasks.append(_stored_task(bench, tables, s, level, round_no))
            if "budget" in args.modes:
                tasks.append(_budget_task(bench, tables, budget_folder, round_no))
            if bench.ab is not None:
                for level in bench.ab_levels:
                    tasks.append(_ab_task(bench, tables, level, round_no, args.cost_runs))
            rng.shuffle(tasks)
            for task in tasks:
                task()


def _stored_task(
    bench: Bench, tables: Tables, s: Series, level: Level, round_no: int
) -> Callable[[], None]:
    def task() -> None:
        row = bench.judge(s, level, f"{bench.condition}-k{s.k}-{level.label}-{round_no}")
        table = tables.stored_key(s.k)
        tables.add(table, level.label, row)
        bench.record(table, level.label, row)

    return task


def _budget_task(bench: Bench, tables: Tables, folder: Path, round_no: int) -> Callable[[], None]:
    def task() -> None:
        for name, row in bench.budgets(folder, f"{bench.condition}-budget-{round_no}").items():
            tables.add("budgets", name, row)
            bench.record("budgets", name, row)

    return task


def _ab_task(
    bench: Bench, tables: Tables, level: Level, round_no: int, cost_runs: int
) -> Callable[[], None]:
    def task() -> None:
        tag = f"{bench.condition}-ab-{level.label}-{round_no}"
        row = bench.ab_run(level, tag, against=True)
        tables.add("ab", level.label, row)
        bench.record("ab", level.label, row)
        if round_no <= cost_runs:  # the cost ratio's pair: the same head, plainly
            plain = bench.ab_run(level, tag + "-plain", against=False)
            tables.cost(row.result, plain.result)

    return task


def _on_signal(signum: int, frame: FrameType | None) -> None:
    raise SystemExit(128 + signum)  # unwinds through the finally blocks: no orphans


def versions() -> str:
    names = ("pytest", "pytest-hwperf", "pytest-benchmark", "torch", "numpy")
    found = []
    for name in names:
        try:
            found.append(f"{name} {metadata.version(name)}")
        except metadata.PackageNotFoundError:
            found.append(f"{name} -")
    cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()
    return f"Python {sys.version.split()[0]}, {', '.join(found)}; {cores} usable cores"


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    doc = __doc__ or ""
    parser = argparse.ArgumentParser(description=doc.splitlines()[0])
    add = parser.add_argument
    add("--runs", type=int, default=20, help="judged runs per level and condition (20)")
    add("--baseline-runs", type=parse_ints, default=[1, 3], help="saves per series: K, or K1,K2")
    add("--series", type=int, default=1, help="split the runs into S series, each with fresh saves")
    add("--changes", default="0,10,20", help="stored-mode levels in percent (0,10,20; 5 optional)")
    add("--no-tail", action="store_true", help="no tail level in the stored series")
    add("--ab", action="store_true", help="also the A/B mode (--hwperf-against=HEAD~1)")
    add("--ab-changes", default="0,5,10,tail", help="A/B levels (0,5,10,tail)")
    add(
        "--ab-args",
        default="",
        help="more options for the A/B runs only (e.g. --hwperf-regression=5: at the"
        " default 10%% threshold a +5%% change is 'shown within the threshold')",
    )
    add("--cost-runs", type=int, default=2, help="plain runs per A/B level for the cost ratio (2)")
    add("--modes", default="stored,budget", help="of stored,budget (and --ab)")
    add("--conditions", help="quiet,noisy: without and with the co-tenant (default quiet)")
    add("--cotenant", action="store_true", help="the co-tenant on: --conditions noisy")
    add("--cotenant-procs", type=int, default=2, help="co-tenant processes (2)")
    add("--cotenant-busy", type=float, default=1.5, help="mean busy burst, seconds (1.5)")
    add("--cotenant-idle", type=float, default=1.5, help="mean idle stretch, seconds (1.5)")
    add("--seed", type=int, help="the co-tenant's and the run order's seed (default: drawn)")
    add("--layers", type=int, default=20, help="layers of the unchanged model (20)")
    add("--max-time", type=float, help="--hwperf-max-time of every run (the plugin's default)")
    add(
        "--model-budget-factor",
        type=float,
        default=3.0,
        help="budget / p95 of the model (3; 0: none)",
    )
    add("--p95-ms", type=float, help="the unchanged model's p95 (default: measured at start)")
    add("--bench-threshold", type=float, default=10.0, help="pytest-benchmark's P of min:P%% (10)")
    add("--pytest-args", default="", help="more options for every hwperf run (one string)")
    add("--rolling", action="store_true", help="save one more unchanged run before each round")
    add("--dump", type=Path, help="write every judged run's figures here (JSON lines)")
    add("--estimate", action="store_true", help="calibrate, print the estimate and stop")
    add("--workdir", type=Path, help="a new folder to work in and keep (default: a temp dir)")
    args = parser.parse_args(argv)
    if args.conditions is None:
        args.conditions = "noisy" if args.cotenant else "quiet"
    args.conditions = [c.strip() for c in args.conditions.split(",") if c.strip()]
    if not set(args.conditions) <= {"quiet", "noisy"} or not args.conditions:
        parser.error("--conditions: a list of quiet and noisy")
    if args.cotenant and "noisy" not in args.conditions:
        parser.error("--cotenant asks for the noisy condition, which --conditions leaves out")
    args.modes = {m.strip() for m in args.modes.split(",") if m.strip()}
    if not args.modes <= {"stored", "budget"}:
        parser.error("--modes: a list of stored and budget (the A/B mode is --ab)")
    if min(args.runs, args.series, args.layers, args.cotenant_procs) < 1 or args.series > args.runs:
        parser.error("--runs, --series, --layers, --cotenant-procs: 1 or more, series <= runs")
    if args.seed is None:
        args.seed = random.SystemRandom().randrange(1, 10**6)
    try:
        parse_levels(args.changes, args.layers)
        parse_levels(args.ab_changes, args.layers)
    except (ValueError, argparse.ArgumentTypeError) as exc:
        parser.error(f"--changes/--ab-changes: {exc}")
    return args


def main() -> int:
    args = parse_args()
    sys.stdout.reconfigure(line_buffering=True)  # type: ignore[union-attr]
    for signum in (signal.SIGTERM, signal.SIGHUP):
        signal.signal(signum, _on_signal)
    print(f"$ {shlex.join(getattr(sys, 'orig_argv', [sys.executable, *sys.argv]))}")
    print(f"# {time.strftime('%Y-%m-%d %H:%M')}; {versions()}; seed {args.seed}")
    if args.workdir is not None:
        args.workdir.mkdir(parents=True)  # a new folder: it is kept, reports and all
        work: tempfile.TemporaryDirectory[str] | nullcontext[str] = nullcontext(str(args.workdir))
    else:
        work = tempfile.TemporaryDirectory(prefix="verdict-quality-")
    with work as tmp_name:
        tmp = Path(tmp_name).resolve()
        bench = Bench(args, tmp)
        bench.condition = "calibrate"
        bench.calibrate()
        print(
            f"# model: {args.layers} x Linear(256, 256) + ReLU, batch 64; p95 {bench.p95_ms:.3f} ms"
            f" ({'given' if args.p95_ms else 'measured, --p95-ms to reuse'});"
            f" model test budget p95 <= {bench.model_budget_ms:.3f} ms; a plain run"
            f" {bench.run_s:.1f} s; every run: {shlex.join(bench.options)}"
        )
        low, high = min(bench.calibration_p95s), max(bench.calibration_p95s)
        fastest = bench.calibration_min_ms
        if not args.p95_ms and (high > 1.5 * low or low > 3 * fastest):
            print(
                f"# warning: the machine was not quiet while calibrating (p95 {low:.3f} and"
                f" {high:.3f} ms, fastest call {fastest:.3f} ms): the budgets rest on the"
                " lower p95; --p95-ms sets it"
            )
        if args.ab:
            repo = ABRepo(tmp / "ab-repo", tmp / "ab-out", bench.options)
            repo.ab_options = shlex.split(args.ab_args)
            repo.create(
                args.layers,
                bench.model_budget_ms,
                {lv.label: (lv.layers, lv.tail) for lv in bench.ab_levels},
            )
            why_not = repo.probe()
            if why_not is None:
                bench.ab = repo
            else:
                print(f"# {why_not}")
        bench.total, bench.total_weight = plan(bench)
        minutes = bench.total_weight * bench.run_s / 60
        print(
            f"# estimate: ~{minutes:.{0 if minutes >= 10 else 1}f} min for {bench.total}"
            f" pytest processes ({estimate_line(WEIGHTS, NOISY_FACTOR)})"
        )
        if args.estimate:
            return 0
        bench.runs_started = time.monotonic()
        for condition in args.conditions:
            tables = Tables(args, bench.p95_ms, bench.model_budget_ms, bench.ab is not None)
            cotenant: CoTenant | nullcontext[None] = nullcontext()
            if condition == "noisy":
                cotenant = CoTenant(
                    procs=args.cotenant_procs,
                    seed=args.seed,
                    busy_mean_s=args.cotenant_busy,
                    idle_mean_s=args.cotenant_idle,
                    stats_dir=tmp / "cotenant",
                )
                tables.cotenant = cotenant
            started = time.monotonic()
            try:
                with cotenant:
                    run_condition(bench, condition, tables)
            except BaseException:
                tables.print(condition, time.monotonic() - started, interrupted=True)
                raise
            tables.print(condition, time.monotonic() - started)
    print(f"# elapsed {(time.monotonic() - bench.started) / 60:.1f} min")
    return 0


if __name__ == "__main__":
    sys.exit(main())
