"""The tables `verdict_quality.py` prints: one block per condition, a table per mode."""

from __future__ import annotations

import argparse
import statistics
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING

from _vq_runs import Series, TestResult

if TYPE_CHECKING:
    from _cotenant import CoTenant

REASONS = ("budget", "regression", "other")


@dataclass
class Row:
    """One judged test of one run, with pytest-benchmark's verdicts on the same run."""

    result: TestResult
    bench_min_fail: bool | None = None  # --benchmark-compare-fail=min:P%
    bench_median_fail: bool | None = None  # --benchmark-compare-fail=median:P%
    p95_change_pct: float | None = None  # against the geometric mean of the saves' p95


def estimate_line(weights: dict[str, float], noisy: float) -> str:
    return (
        f"a save costs ~{weights['save']:g} plain runs, a judged run ~{weights['judge']:g},"
        f" an A/B run ~{weights['ab']:g}, runs under the co-tenant ~{noisy:g}x"
    )


def _mean(values: list[float | None], fmt: str, unit: str = "") -> str:
    present = [v for v in values if v is not None]
    return format(statistics.fmean(present), fmt) + unit if present else "-"


def _count(flags: list[bool | None]) -> str:
    present = [f for f in flags if f is not None]
    return f"{sum(present)}/{len(present)}" if present else "-"


def _reasons(rows: list[Row]) -> str:
    return "/".join(
        str(sum(1 for r in rows if r.result.failed and reason in _kinds(r.result)))
        for reason in REASONS
    )


Column = tuple[str, Callable[[list[Row]], str]]


def _verdict_columns() -> list[Column]:
    return [
        ("hwperf", lambda rows: _count([r.result.failed for r in rows])),
        ("budget/regr/other", _reasons),
    ]


def _figure_columns() -> list[Column]:
    return [
        ("mean change", lambda rows: _mean([r.result.change_pct for r in rows], "+.1f", "%")),
        ("tail change", lambda rows: _mean([r.result.tail_change_pct for r in rows], "+.1f", "%")),
        ("spread used", lambda rows: _mean([r.result.sigma_pct for r in rows], ".1f", "%")),
        ("rounds", lambda rows: _mean([r.result.rounds for r in rows], ".1f")),
    ]


def _table(first: str, rows_by_level: dict[str, list[Row]], columns: list[Column]) -> None:
    """One line per level, each column right-aligned under its header."""
    cells = {level: [cell(rows) for _, cell in columns] for level, rows in rows_by_level.items()}
    widths = [len(first), *(len(name) for name, _ in columns)]
    for level, line in cells.items():
        widths = [max(w, len(c)) for w, c in zip(widths, [level, *line], strict=True)]
    for line in [[first, *(name for name, _ in columns)], *([lv, *c] for lv, c in cells.items())]:
        print(" ".join(c.rjust(w) for c, w in zip(line, widths, strict=True)))


def _kinds(result: TestResult) -> set[str]:
    return {"other" if reason == "error" else reason for reason in result.reasons}


class Tables:
    """What one condition measured, by table and level, and how to print it."""

    def __init__(
        self, args: argparse.Namespace, p95_ms: float, model_budget_ms: float, ab: bool
    ) -> None:
        self.args = args
        self.p95_ms = p95_ms
        self.p95_source = "given" if args.p95_ms else "measured at the start"
        self.model_budget_ms = model_budget_ms
        self.ab = ab
        self.rows: dict[str, dict[str, list[Row]]] = {}
        self.series: list[Series] = []  # every stored series, as it goes
        self.cost_pairs: list[tuple[TestResult, TestResult]] = []
        self.budget_ms = (0.0, 0.0)
        self.cotenant: CoTenant | None = None

    @staticmethod
    def stored_key(k: int) -> str:
        return f"stored-{k}"

    def order(self, table: str, levels: list[str]) -> None:
        """Print `table`'s levels in this order (the runs come in a shuffled one)."""
        for level in levels:
            self.rows.setdefault(table, {}).setdefault(level, [])

    def add(self, table: str, level: str, row: Row) -> None:
        self.rows.setdefault(table, {}).setdefault(level, []).append(row)

    def cost(self, ab: TestResult, plain: TestResult) -> None:
        self.cost_pairs.append((ab, plain))

    # --- printing ---------------------------------------------------------------

    def print(self, condition: str, elapsed_s: float, *, interrupted: bool = False) -> None:
        args = self.args
        if condition == "noisy" and self.cotenant is not None:
            what = self.cotenant.describe()
            stats = self.cotenant.stats
            if stats is not None:
                what += (
                    f" (busy {stats.busy_fraction:.0%} of the time, {stats.bursts} bursts;"
                    f" processes left after the stop: {len(self.cotenant.leftover())})"
                )
        else:
            what = "no co-tenant"
        cut = " INTERRUPTED, partial figures" if interrupted else ""
        print(f"\n## {condition}: {what}; {elapsed_s / 60:.1f} min{cut}")
        for k in args.baseline_runs:
            if self.stored_key(k) in self.rows:
                self._stored(k)
        if "budgets" in self.rows:
            self._budgets()
        if self.ab and "ab" in self.rows:
            self._ab()
        print(flush=True)

    def _stored(self, k: int) -> None:
        args = self.args
        done = [s for s in self.series if s.k == k]
        ok, tried = sum(s.saves_ok for s in done), sum(s.saves_tried for s in done)
        series = f"{len(done)} series"
        rolling = ", plus one before each round (--rolling)" if args.rolling else ""
        print(
            f"\n### stored baseline from {k} fresh save{'s' if k > 1 else ''}{rolling}"
            f" ({series}; saves recorded {ok}/{tried}); model p95 budget"
            f" {self.model_budget_ms:.3f} ms"
        )
        p = f"{args.bench_threshold:g}%"
        columns = [
            *_verdict_columns(),
            ("bench min:" + p, lambda rows: _count([r.bench_min_fail for r in rows])),
            ("bench median:" + p, lambda rows: _count([r.bench_median_fail for r in rows])),
            *_figure_columns(),
            ("p95 change", lambda rows: _mean([r.p95_change_pct for r in rows], "+.1f", "%")),
        ]
        rows_by_level = self.rows[self.stored_key(k)]
        _table("level", rows_by_level, columns)
        print(
            "(hwperf: tests failed, for any reason (budget/regression/other); at unchanged"
            " false alarms, elsewhere slowdowns caught; bench: --benchmark-compare-fail on"
            " what pytest-benchmark recorded, against the series' last save; mean change:"
            " hwperf's, of the statistic it compared; tail change: hwperf's comparison of"
            " the budget percentile, where it made one; p95 change: this run's p95 against"
            " the saves'; tail: every 10th call 4x slower, its budget 4x wider)"
        )
        self._footnotes(rows_by_level)

    def _budgets(self) -> None:
        third, twice = self.budget_ms
        print(
            f"\n### budgets: the model (p95 {self.p95_ms:.3f} ms, {self.p95_source}) under a p95"
            f" budget of {third:.3f} ms (a third) and of {twice:.3f} ms (twice)"
        )
        labels = {
            "test_third_of_budget": "p95 at 1/3 of budget",
            "test_twice_the_budget": "p95 at 2x budget",
        }
        rows = {labels.get(name, name): r for name, r in self.rows["budgets"].items()}
        columns = [
            *_verdict_columns(),
            ("rounds", lambda rows: _mean([r.result.rounds for r in rows], ".1f")),
            ("mean p95", lambda rows: _mean([r.result.p95_ms for r in rows], ".3f", " ms")),
        ]
        _table("target", rows, columns)
        print("(at a third: failures are false; at twice: failures are the breach caught)")
        self._footnotes(self.rows["budgets"], outcomes=False)

    def _ab(self) -> None:
        print("\n### A/B against the previous commit (--hwperf-against=HEAD~1)")
        columns = [
            *_verdict_columns(),
            *_figure_columns(),
            ("wall s", lambda rows: _mean([r.result.wall_s for r in rows], ".1f")),
        ]
        _table("level", self.rows["ab"], columns)
        if self.cost_pairs:
            walls = [a.wall_s / p.wall_s for a, p in self.cost_pairs if p.wall_s > 0]
            tests = [a.test_s / p.test_s for a, p in self.cost_pairs if a.test_s and p.test_s]
            test_part = f", the test itself x{statistics.median(tests):.2f}" if tests else ""
            paired = [(a, p) for a, p in self.cost_pairs if p.wall_s > 0]
            in_all = sum(a.wall_s for a, _ in paired) / sum(p.wall_s for _, p in paired)
            print(
                f"cost: an A/B run / a plain --hwperf run of the same head: pytest process"
                f" x{statistics.median(walls):.2f} (median of {len(walls)} pairs, max"
                f" x{max(walls):.2f}; x{in_all:.2f} in all){test_part}"
            )
        print(
            "(mean change: of the fastest call, head against base; tail change: of the"
            " budget percentile; tail: every 10th call 4x slower, its budget 4x wider;"
            " pytest-benchmark has no same-run A/B: its single-save comparison is in the"
            " stored tables)"
        )
        self._footnotes(self.rows["ab"])

    @staticmethod
    def _footnotes(rows_by_level: dict[str, list[Row]], *, outcomes: bool = True) -> None:
        rows = [r for level in rows_by_level.values() for r in level]
        errors = [r.result.error for r in rows if r.result.error]
        if errors:
            print(f"errors: {len(errors)} run(s) gave no verdict; first: {errors[0]}")
        if outcomes:  # what the comparisons said, "no baseline" and "not compared" included
            parts = []
            for level, level_rows in rows_by_level.items():
                counts = Counter(str(r.result.outcome) for r in level_rows if not r.result.error)
                said = ", ".join(f"{n} {outcome}" for outcome, n in sorted(counts.items()))
                parts.append(f"{level}: {said or '-'}")
            print(f"comparison outcomes: {'; '.join(parts)}")
