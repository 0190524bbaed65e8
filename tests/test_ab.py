"""Same-run A/B (`--hwperf-against=REF`, issue 12 item 5): the paired judgement on
synthetic rounds, the protocol on a fake pair (threads, no timing), REF resolution in a
git repository made here, and whole runs against a commit made in the test."""

from __future__ import annotations

import math
import re
import subprocess
import threading
from pathlib import Path

import pytest
from _output import FAST_RUN, assert_clean, load_json, output_of

from pytest_hwperf.ab.client import PeerClient
from pytest_hwperf.ab.coordinator import NEW_AT_HEAD, Coordinator, Unpaired
from pytest_hwperf.ab.protocol import Key
from pytest_hwperf.ab.refs import RefError, remove_base, resolve_base
from pytest_hwperf.judge.paired import (
    AB_TAIL_PROCESS_SIGMA_PCT,
    NOT_COMPARED,
    ab_comparison,
    compare_paired,
    deciding,
    not_compared,
)
from pytest_hwperf.records.codec import from_json, to_json
from pytest_hwperf.records.types import ComparisonRecord, RoundRecord

# Round-to-round wobble of a quiet machine, as multipliers of a figure (fixed, so the
# verdicts below are exact; the values spread by about 1%).
WOBBLE = (1.000, 1.012, 0.991, 1.006, 0.995, 1.009)


def _rounds(fastest_ms: float, p95_ms: float, wobble=WOBBLE, shift=1.0) -> list[RoundRecord]:
    return [
        RoundRecord(n=100, min_ms=fastest_ms * w * shift, p95_ms=p95_ms * w * shift) for w in wobble
    ]


# --- the paired judgement --------------------------------------------------------------


def test_a_clear_slowdown_is_a_regression_naming_the_ref():
    base = _rounds(1.0, 1.3)
    head = _rounds(1.2, 1.56, wobble=tuple(reversed(WOBBLE)))
    found = ab_comparison(
        head, base, ref="HEAD~1 (abc1234)", key="t.py::t::w@cpu", threshold_pct=10, alpha=0.01
    )
    assert found.outcome == "regression"
    assert found.mode == "ab"
    assert found.ref == "HEAD~1 (abc1234)"
    assert found.reason.startswith("min 1.20 ms vs 1.00 ms at REF HEAD~1 (abc1234): +20.")
    assert "(6 rounds each, interleaved)" in found.reason
    assert found.baseline_runs == 6
    assert found.tail is not None
    assert found.tail.statistic == "p95"
    assert len(found.head_rounds) == len(found.base_rounds) == 6
    # Half the level each: the fastest call and the tail are two comparisons.
    assert found.alpha == pytest.approx(0.005)


def test_the_same_code_is_unchanged_and_a_change_within_the_threshold_is_tolerated():
    base = _rounds(1.0, 1.3)
    same = ab_comparison(
        _rounds(1.0, 1.3, wobble=WOBBLE[::-1]), base, ref="r", key="k", threshold_pct=10, alpha=0.01
    )
    assert same.outcome == "unchanged"
    slightly = ab_comparison(
        _rounds(1.0, 1.3, shift=1.03), base, ref="r", key="k", threshold_pct=10, alpha=0.01
    )
    assert slightly.outcome == "unchanged"  # shown within 10%
    assert "slower, but shown within the 10% threshold" in slightly.reason


def test_a_tail_regression_with_the_fastest_call_unchanged_fails_on_the_tail():
    # Every 10th call 4x slower: p95 moves, the fastest call does not.
    found = ab_comparison(
        _rounds(1.0, 4.0, wobble=WOBBLE[::-1]),
        _rounds(1.0, 1.0),
        ref="r",
        key="k",
        threshold_pct=10,
        alpha=0.01,
    )
    assert found.outcome == "regression"
    assert re.match(r"p95 4\.0\d ms vs 1\.00 ms at REF r: \+300", found.reason)
    assert deciding(found) is found.tail
    assert found.tail is not None
    assert found.tail.outcome == "regression"


def test_the_tail_percentile_is_read_from_the_round_budgets():
    from pytest_hwperf.records.types import RoundBudgetRecord

    def rounds(p99: float) -> list[RoundRecord]:
        return [
            RoundRecord(
                n=500,
                min_ms=1.0 * w,
                budgets=(RoundBudgetRecord("latency", None, percentile=99.0, measured_ms=p99 * w),),
            )
            for w in WOBBLE
        ]

    found = ab_comparison(
        rounds(3.0), rounds(1.5), ref="r", key="k", threshold_pct=10, alpha=0.01, percentile=99
    )
    assert found.tail is not None
    assert found.tail.statistic == "p99"
    assert found.outcome == "regression"


def test_noisy_pairs_are_not_significant_and_a_disturbed_pair_is_left_out():
    noisy = compare_paired(
        [1.0, 1.3, 0.8, 1.25, 0.85, 1.2], [1.0] * 6, threshold_pct=10, alpha=0.005
    )
    assert noisy.outcome == "not significant"
    # One base round caught a co-tenant's burst (+60%): its pair is left out, and the
    # five left show +20% clearly.
    base = _rounds(1.0, 1.3)
    base[3] = RoundRecord(n=100, min_ms=1.6, p95_ms=2.1)
    found = ab_comparison(
        _rounds(1.2, 1.56, wobble=WOBBLE[::-1]),
        base,
        ref="r",
        key="k",
        threshold_pct=10,
        alpha=0.01,
    )
    assert found.outcome == "regression"
    assert "1 of 6 pairs left out as disturbed" in found.sigma_source


def _offset_pairs(offset: float, rounds: int = 18) -> tuple[list[float], list[float]]:
    """`rounds` pairs, the head `offset` times the base, the pairs 3.5% apart (standard deviation):
    two processes whose p95s differ by a constant the pairs agree on."""
    wobble = [1.0 + 0.05 * ((i * 7) % 5 - 2) / 2 for i in range(rounds)]
    base = [1.10 * (1.0 + 0.01 * ((i * 3) % 4 - 1.5)) for i in range(rounds)]
    return [b * offset * w for b, w in zip(base, wobble, strict=True)], base


def test_an_offset_between_the_two_processes_is_not_a_regression():
    # Measured: the same code on both sides, the head's p95 +2.9% and +4.0% above the
    # base's with pairs that agreed closely; without the spread between the processes
    # both were "significantly slower, not shown within the 5% threshold".
    head, base = _offset_pairs(1.03)
    bare = compare_paired(head, base, threshold_pct=5, alpha=0.005, process_sigma_pct=0)
    assert bare.outcome == "regression", bare.reason
    found = compare_paired(
        head, base, threshold_pct=5, alpha=0.005, process_sigma_pct=AB_TAIL_PROCESS_SIGMA_PCT
    )
    assert found.outcome == "not significant", found.reason
    assert "plus 2% between the two processes" in found.sigma_source
    # A real +5% of the fastest call is still caught through the 1% between processes.
    slower = compare_paired(*_offset_pairs(1.05), threshold_pct=5, alpha=0.005)
    assert slower.outcome == "regression", slower.reason
    assert "plus 1% between the two processes" in slower.sigma_source
    # And identical code is shown within 10%.
    same = compare_paired(*_offset_pairs(1.0), threshold_pct=10, alpha=0.005)
    assert same.outcome == "unchanged", same.reason


def test_the_spread_between_processes_takes_the_t_quantile_toward_the_normal():
    from statistics import NormalDist

    # Six pairs: alone, their spread has 5 degrees of freedom (t quantile 4.0 at 0.005);
    # a known spread between the processes that dwarfs it leaves the normal's 2.58.
    head, base = _offset_pairs(1.0, rounds=6)
    found = compare_paired(head, base, threshold_pct=10, alpha=0.005, process_sigma_pct=6.0)
    se = math.sqrt((found.sigma_pct / 100) ** 2 / 6 + 0.06**2)
    half = (math.log1p(found.ci_high_pct / 100) - math.log1p(found.ci_low_pct / 100)) / 2
    assert half / se == pytest.approx(NormalDist().inv_cdf(0.995), rel=0.02)
    bare = compare_paired(head, base, threshold_pct=10, alpha=0.005, process_sigma_pct=0)
    bare_se = (bare.sigma_pct / 100) / math.sqrt(6)
    bare_half = (math.log1p(bare.ci_high_pct / 100) - math.log1p(bare.ci_low_pct / 100)) / 2
    assert bare_half / bare_se == pytest.approx(4.032, rel=0.01)


@pytest.mark.parametrize("bad", [-1.0, math.nan, math.inf])
def test_a_bad_spread_between_processes_is_refused(bad):
    from pytest_hwperf.judge.paired import compare_fastest

    with pytest.raises(ValueError, match="process_sigma_pct"):
        compare_paired([1.0] * 3, [1.0] * 3, threshold_pct=5, alpha=0.01, process_sigma_pct=bad)
    with pytest.raises(ValueError, match="process_sigma_pct"):
        compare_fastest([1.0] * 3, [1.0] * 3, threshold_pct=5, alpha=0.01, process_sigma_pct=bad)


def test_too_few_pairs_are_not_compared():
    with pytest.raises(ValueError, match="fewer than the 3 needed"):
        compare_paired([1.0, 1.1], [1.0, 1.0], threshold_pct=10, alpha=0.01)
    found = ab_comparison(
        _rounds(1.0, 1.3)[:2], _rounds(1.0, 1.3)[:2], ref="r", key="k", threshold_pct=10, alpha=0.01
    )
    assert found.outcome == NOT_COMPARED
    assert "fewer than the 3 needed" in found.reason


def test_an_ab_comparison_round_trips_through_json_and_a_stored_one_keeps_its_keys():
    found = ab_comparison(
        _rounds(1.2, 1.5), _rounds(1.0, 1.3), ref="r", key="k", threshold_pct=10, alpha=0.01
    )
    data = to_json(found)
    assert {"mode", "ref", "tail", "head_rounds", "base_rounds"} <= set(data)
    assert from_json(ComparisonRecord, data) == found
    stored = to_json(
        ComparisonRecord(outcome="no baseline", statistic="min", current_ms=1.0, reason="")
    )
    assert "mode" not in stored
    assert "tail" not in stored
    line = not_compared(1.5, NEW_AT_HEAD, ref="main (abc)", key="k", threshold_pct=10, alpha=0.01)
    assert line.reason == "min 1.50 ms: new at head, not compared (REF main (abc))"


def test_the_terminal_table_shows_base_and_head_side_by_side():
    from _typed_records import typed

    from pytest_hwperf.report.terminal import summary_lines

    found = ab_comparison(
        _rounds(1.0, 4.0), _rounds(1.0, 1.0), ref="r", key="k", threshold_pct=10, alpha=0.01
    )
    record = typed({"comparison": to_json(found), "breach": True})
    header, row = summary_lines([record])
    assert header.split()[-3:] == ["min", "base", "change"]
    assert row.split()[-5:] == ["1.00ms", "1.00ms", "p95", "+300.0%", "REGRESSION"]
    assert row.endswith("REGRESSION")
    assert "p95 +300.0%" in row


# --- the protocol, on a fake pair -----------------------------------------------------


class FakeBase:
    """A base session in a thread: connects, reads the plan, then runs `script`."""

    def __init__(self, coordinator: Coordinator, script) -> None:
        self.client = PeerClient(coordinator.address, coordinator.authkey, wait_s=5.0)
        self.log: list[str] = []
        self.paired: list[bool] = []
        self.error: BaseException | None = None
        self._script = script
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()

    def _run(self) -> None:
        try:
            plan = self.client.plan()
            self._script(self, plan)
        except BaseException as exc:  # surfaced by join()
            self.error = exc
        finally:
            self.client.close()

    def measure(self, test: str, name: str) -> None:
        def base_round(number, policy):
            self.log.append(f"base {number}")
            return RoundRecord(n=10, min_ms=1.0, p95_ms=1.2)

        self.paired.append(self.client.measure(Key(test, name, "cpu"), base_round))

    def join(self) -> None:
        self._thread.join(10)
        assert not self._thread.is_alive()
        if self.error is not None:
            raise self.error


def _coordinator(order: list[str], wait_s: float = 5.0) -> Coordinator:
    coordinator = Coordinator(wait_s=wait_s)
    coordinator.start()
    coordinator.set_plan(order)
    return coordinator


def _head_round(log: list[str]):
    def head_round(number: int) -> RoundRecord:
        log.append(f"head {number}")
        return RoundRecord(n=10, min_ms=1.1, p95_ms=1.3)

    return head_round


def test_the_two_sides_take_turns_head_base_base_head():
    coordinator = _coordinator(["t::a"])

    def script(base: FakeBase, plan):
        assert plan == ["t::a"]
        base.client.collected(plan)
        base.measure("t::a", "work")

    base = FakeBase(coordinator, script)
    try:
        meeting = coordinator.meet(Key("t::a", "work", "cpu"))
        head, got = meeting.rounds(4, _head_round(base.log), {"percentile": 95})
        base.join()
    finally:
        coordinator.close()
    assert base.log == [
        "head 0", "base 0", "base 1", "head 1", "head 2", "base 2", "base 3", "head 3",
    ]  # fmt: skip
    assert [r.min_ms for r in head] == [1.1] * 4
    assert [r.min_ms for r in got] == [1.0] * 4
    assert base.paired == [True]


def test_a_burst_through_the_planned_pairs_brings_more_pairs_after_waits_for_quiet():
    from pytest_hwperf.plugin.ab_measure import PAUSES_S, MorePairs

    coordinator = _coordinator(["t::a"])

    def script(base: FakeBase, plan):
        base.client.collected(plan)
        base.measure("t::a", "work")

    base = FakeBase(coordinator, script)

    # The head's rounds wait for a CPU (a co-tenant's burst) until its round 6: of the 4
    # planned pairs none is quiet, so more are measured until MIN_PAIRS (3) are.
    def head_round(number: int) -> RoundRecord:
        base.log.append(f"head {number}")
        busy = number < 6
        return RoundRecord(n=10, min_ms=1.1, p95_ms=1.3, cpu_wait=0.9 if busy else 0.0,
                           disturbed=busy)  # fmt: skip

    asked: list[float] = []

    def wait(longest_s: float) -> float:  # the machine stays busy: each wait lasts
        asked.append(longest_s)
        return longest_s

    extra = MorePairs(4, longest_pause_s=0.8, wait=wait)
    try:
        meeting = coordinator.meet(Key("t::a", "work", "cpu"))
        head, got = meeting.rounds(
            4, head_round, {"percentile": 95}, more=extra.more, most=extra.most, pause=extra.pause
        )
        base.join()
    finally:
        coordinator.close()
    assert len(head) == len(got) == 8 == extra.most  # 4 planned, then up to as many again
    assert base.log[8:] == [
        "head 4", "base 4", "base 5", "head 5", "head 6", "base 6", "base 7", "head 7",
    ]  # fmt: skip
    # A wait before each pair that follows a disturbed one, planned or extra, none longer
    # than --hwperf-confirm-pause, all of them together no longer than PAUSES_S (3.1 s);
    # none after the quiet pair 6.
    assert asked == pytest.approx([0.8, 0.8, 0.8, PAUSES_S - 2.4])
    assert extra.waited_s == pytest.approx(PAUSES_S)
    assert base.paired == [True]
    # Quiet planned pairs: nothing more, and no wait.
    quiet = [RoundRecord(n=10, min_ms=1.0, p95_ms=1.2)] * 6
    calm = MorePairs(6, 0.4, wait)
    assert not calm.more(quiet, quiet)
    asked.clear()
    calm.pause(quiet, quiet)
    assert asked == []
    assert MorePairs(6, 0.4, wait).more(quiet[:2], quiet[:2])  # 2 < MIN_PAIRS


def test_a_wait_that_ends_early_leaves_the_rest_for_later_pairs():
    from pytest_hwperf.plugin.ab_measure import MorePairs

    busy = [RoundRecord(n=10, min_ms=1.0, p95_ms=9.0, cpu_wait=0.9, disturbed=True)]
    extra = MorePairs(6, 1.6, wait=lambda longest_s: 0.05)  # quiet after one step
    for _ in range(10):
        extra.pause(busy, busy)
    assert extra.waited_s == pytest.approx(0.5)
    extra.pause((), ())  # before the first pair: a disturbed head measurement
    assert extra.waited_s == pytest.approx(0.55)
    asked: list[float] = []
    off = MorePairs(6, 0.0, wait=lambda longest_s: asked.append(longest_s) or longest_s)
    off.pause(busy, busy)  # --hwperf-confirm-pause=0: back to back
    assert asked == []
    assert off.waited_s == 0.0


def test_a_test_absent_at_ref_failing_there_or_measured_in_another_order_never_waits():
    order = ["t::new", "t::fails", "t::other_order", "t::ok"]
    coordinator = _coordinator(order)

    def script(base: FakeBase, plan):
        base.client.collected(["t::fails", "t::other_order", "t::ok"])
        base.client.done("t::fails", "failed", "assert 0")
        base.measure("t::other_order", "second")  # the head measures "first" first
        base.measure("t::other_order", "first")
        base.client.done("t::other_order", "passed", "")
        base.measure("t::ok", "work")

    base = FakeBase(coordinator, script)
    try:
        with pytest.raises(Unpaired, match=r"^new at head, not compared$"):
            coordinator.meet(Key("t::new", "work", "cpu"))
        with pytest.raises(Unpaired, match=r"^failed at REF: assert 0$"):
            coordinator.meet(Key("t::fails", "work", "cpu"))
        coordinator.meet(Key("t::other_order", "first", "cpu")).rounds(3, _head_round([]), {})
        with pytest.raises(Unpaired, match="another order at REF"):
            coordinator.meet(Key("t::other_order", "second", "cpu"))
        coordinator.meet(Key("t::ok", "work", "cpu")).rounds(3, _head_round([]), {})
        base.join()
    finally:
        coordinator.close()
    assert base.paired == [False, True, True]


def test_a_base_that_dies_or_never_comes_is_one_line_not_a_hang():
    coordinator = _coordinator(["t::a", "t::b"])
    coordinator.watching_process()
    coordinator.process_ended("its session ended (exit code 2): ImportError: no module x")
    try:
        with pytest.raises(Unpaired, match=r"^REF run failed: .*ImportError: no module x$"):
            coordinator.meet(Key("t::a", "work", "cpu"))
    finally:
        coordinator.close()

    given_up: list[bool] = []
    silent = _coordinator(["t::a", "t::b"], wait_s=0.3)
    silent.on_give_up = lambda: given_up.append(True)
    try:
        with pytest.raises(Unpaired, match=r"did not reach t::a::work@cpu within 0.3 s"):
            silent.meet(Key("t::a", "work", "cpu"))
        # Given up for the rest of the session: the next test does not wait again.
        with pytest.raises(Unpaired, match="REF run failed"):
            silent.meet(Key("t::b", "work", "cpu"))
    finally:
        silent.close()
    assert given_up == [True]


def test_a_base_released_by_the_head_goes_on_and_a_finished_head_ends_every_wait():
    coordinator = _coordinator(["t::a", "t::b"])

    def script(base: FakeBase, plan):
        base.client.collected(plan)
        base.measure("t::a", "work")  # the head skipped t::a: released when it moves on
        base.measure("t::b", "work")  # the head has finished: not paired, not waiting

    base = FakeBase(coordinator, script)
    try:
        coordinator.test_over("t::a")
        # test_over only releases what has arrived; wait for the base's "ready".
        for _ in range(100):
            if base.paired:
                break
            threading.Event().wait(0.05)
            coordinator.test_over("t::a")
        coordinator.finish()
        base.join()
    finally:
        coordinator.close()
    assert base.paired == [False, False]


# --- REF resolution ---------------------------------------------------------------------


def _git(cwd: Path, *args: str) -> str:
    return subprocess.run(
        ["git", *args], cwd=cwd, check=True, capture_output=True, text=True
    ).stdout.strip()


def _repo(path: Path, files: dict[str, str]) -> None:
    _git(path, "init", "-q")
    _git(path, "config", "user.email", "ab@example.com")
    _git(path, "config", "user.name", "ab")
    _git(path, "config", "commit.gpgsign", "false")
    for name, text in files.items():
        (path / name).write_text(text)
    _git(path, "add", ".")
    _git(path, "commit", "-q", "-m", "base")


def test_a_ref_becomes_a_worktree_that_is_removed_and_a_bad_ref_is_one_line(tmp_path):
    repo = tmp_path / "repo"
    (repo / "sub").mkdir(parents=True)
    _repo(repo, {"sub/f.txt": "base\n"})
    base = resolve_base("HEAD", repo / "sub")
    try:
        assert base.root == base.checkout / "sub"
        assert (base.root / "f.txt").read_text() == "base\n"
        assert base.label.startswith("HEAD (")
        assert base.commit
        assert str(base.checkout) in _git(repo, "worktree", "list")
    finally:
        assert remove_base(base) is None
    assert str(base.checkout) not in _git(repo, "worktree", "list")
    assert base.temp is not None
    assert not base.temp.exists()

    with pytest.raises(RefError, match="'nope' is neither a commit of the git repository"):
        resolve_base("nope", repo)
    with pytest.raises(RefError, match="is not in a git repository"):
        resolve_base("HEAD", tmp_path / "repo" / ".." / "..")
    other = resolve_base(str(repo), tmp_path)  # a directory: another checkout
    assert other.checkout == repo.resolve()
    assert other.label.endswith("(directory)")
    remove_base(other)
    assert repo.exists()


# --- whole runs against a commit made in the test ----------------------------------------

WORK = """
import pytest

WORK = {work}


def loop(n):
    total = 0
    for i in range(n):
        total += i * i
    return total


def test_slower(hwperf):
    hwperf(loop, WORK)


def test_same(hwperf):
    hwperf(loop, 20_000, name="same")


def test_fails_at_ref(hwperf):
    assert {passes}, "broken at REF"
    hwperf(loop, 20_000)
"""

NEW = """

def test_new(hwperf):
    hwperf(loop, 20_000)
"""

# A threshold so wide that only the 3x slowdown can cross it on a busy machine.
AB_RUN = (*FAST_RUN, "--hwperf", "--hwperf-regression=50", "-p", "no:randomly")


def test_against_a_commit_a_slower_test_fails_the_same_passes_new_is_not_compared(pytester):
    _repo(pytester.path, {"test_ab_work.py": WORK.format(work=20_000, passes=False)})
    (pytester.path / "test_ab_work.py").write_text(WORK.format(work=60_000, passes=True) + NEW)
    result = pytester.runpytest_subprocess(
        *AB_RUN, "--hwperf-against=HEAD", "--hwperf-json=ab.json", "-rA"
    )
    text = output_of(result)
    assert_clean(result)
    assert result.ret == pytest.ExitCode.TESTS_FAILED, text
    result.assert_outcomes(passed=3, failed=1)
    short = _git(pytester.path, "rev-parse", "--short", "HEAD")
    result.stdout.fnmatch_lines(
        [
            "hwperf: 'loop' on cpu: regression: min * at REF HEAD (*): +*",
            "PERF test_ab_work.py::test_slower - hwperf: *",
        ]
    )
    assert re.search(rf"regression: min .* at REF HEAD \({short}\): \+\d", text), text

    report = load_json(pytester.path / "ab.json")
    comparisons = {m["test_id"].split("::")[1]: m["comparison"] for m in report["measurements"]}
    assert comparisons["test_slower"]["outcome"] == "regression"
    assert comparisons["test_slower"]["mode"] == "ab"
    assert comparisons["test_same"]["outcome"] != "regression"
    assert comparisons["test_same"]["baseline_ms"] > 0  # the REF's figure
    # --hwperf-max-time=1: the rounds of both sides take 1 s at most, 16 a side of 0.03 s.
    assert len(comparisons["test_same"]["base_rounds"]) == 16
    assert len(comparisons["test_same"]["head_rounds"]) == 16
    # Both sides share the machine's minutes: no reference workload is timed for them.
    assert all(m["reference_ms"] is None for m in report["measurements"])
    assert comparisons["test_new"]["outcome"] == NOT_COMPARED
    assert "new at head, not compared" in comparisons["test_new"]["reason"]
    assert comparisons["test_fails_at_ref"]["outcome"] == NOT_COMPARED
    assert (
        "failed at REF: AssertionError: broken at REF" in comparisons["test_fails_at_ref"]["reason"]
    )

    # Nothing is left behind: no worktree, no temporary directory, no base process.
    (where,) = re.findall(r"hwperf: A/B against REF .*, measured from (\S+)", text)
    assert not Path(where).exists()
    assert _git(pytester.path, "worktree", "list").count("\n") == 0  # the main tree only
    assert (
        str(Path(where).parent.name)
        not in subprocess.run(
            ["ps", "-eo", "args"], capture_output=True, text=True, check=False
        ).stdout
    )


def test_a_broken_ref_is_one_line_and_no_run(pytester):
    pytester.makepyfile(test_x="def test_x(hwperf):\n    hwperf(sum, [1])\n")
    result = pytester.runpytest(*AB_RUN, "--hwperf-against=no-such-ref")
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    assert_clean(result)
    errors = [line for line in result.errlines if line.startswith("ERROR")]
    assert errors == [
        "ERROR: --hwperf-against=no-such-ref: 'no-such-ref' is not a directory, and"
        f" {pytester.path} is not in a git repository"
    ]


def test_ab_refuses_xdist_and_saving(pytester):
    pytest.importorskip("xdist")
    pytester.makepyfile(test_x="def test_x(hwperf):\n    hwperf(sum, [1])\n")
    for extra, message in (
        (("-n", "2"), "does not run under pytest-xdist (-n)"),
        (("--hwperf-save",), "and --hwperf-save do not go together"),
    ):
        result = pytester.runpytest(*AB_RUN, "--hwperf-against=HEAD", *extra)
        assert result.ret == pytest.ExitCode.USAGE_ERROR
        assert message in "\n".join(result.errlines)
        assert_clean(result)


def test_without_hwperf_the_option_only_warns(pytester):
    pytester.makepyfile(test_x="def test_x(hwperf):\n    hwperf(sum, [1])\n")
    result = pytester.runpytest("--hwperf-against=HEAD")
    assert result.ret == pytest.ExitCode.OK
    result.stdout.fnmatch_lines(["*--hwperf-against=HEAD is ignored without --hwperf*"])


# --- the pieces around the base session -------------------------------------------------


def test_the_rounds_take_about_twice_the_heads_measurement_in_many_short_pairs():
    from pytest_hwperf.plugin.ab_measure import round_plan
    from pytest_hwperf.settings import Settings

    settings = Settings(max_time_s=5.0, confirm=5)
    # A measurement of 0.3 s: the rounds take the 1.2 s floor, 18 a side.
    rounds, policy = round_plan(settings, 95.0, per_call_s=0.001, measured_s=0.3)
    assert rounds == 18  # 3 x (1 + --hwperf-confirm)
    assert 2 * rounds * policy["max_time_s"] == pytest.approx(1.2)
    assert policy["target_samples"] == 100  # five calls above p95
    # A measurement of 2 s: twice that; one of 5 s: --hwperf-max-time at most.
    rounds, policy = round_plan(settings, 95.0, per_call_s=0.001, measured_s=2.0)
    assert 2 * rounds * policy["max_time_s"] == pytest.approx(4.0)
    rounds, policy = round_plan(settings, 95.0, per_call_s=0.001, measured_s=5.0)
    assert 2 * rounds * policy["max_time_s"] == pytest.approx(5.0)
    assert round_plan(settings, 99.0)[1]["target_samples"] == 500
    assert round_plan(Settings(confirm=0), 95.0)[0] == 3
    # A round holds 10 calls of a slow target; 3 rounds at least.
    assert round_plan(settings, 95.0, per_call_s=0.05, measured_s=5.0)[0] == 5
    assert round_plan(Settings(max_time_s=0.6, confirm=5), 95.0)[0] == 10  # 0.03 s at least
    assert round_plan(Settings(max_time_s=0.1, confirm=5), 95.0)[0] == 3


def _first(samples_ns: list[float], estimate_ns: float, block_size: int = 1):
    """A head's first measurement, as the round plan reads it."""
    import numpy as np

    from pytest_hwperf.measure import Measurement

    return Measurement.from_samples(
        name="m",
        device="cpu",
        samples_ns=np.array(samples_ns),
        timing_method="perf_counter_ns",
        gc_policy="collect-then-enabled",
        stop_reason="max-time",
        alpha=0.01,
        block_size=block_size,
        per_call_estimate_ns=estimate_ns,
    )


def test_a_warm_up_inside_a_burst_does_not_shrink_the_round_plan():

    from pytest_hwperf.plugin.ab_measure import round_plan, typical_call_s
    from pytest_hwperf.settings import Settings

    # The warm-up's calls read 100 ms inside a co-tenant's burst; the samples of record,
    # 1 ms. Planned from the warm-up, a round could not hold 10 calls in the 1.2 s: 3.
    first = _first([1_000_000.0] * 50 + [80_000_000.0] * 5, 100_000_000.0)
    assert typical_call_s(first) == 0.001
    # The samples of record inside the burst too (their CPU wait said so): the fastest.
    inside = _first([115_000_000.0] * 40 + [900_000.0], 100_000_000.0)
    assert typical_call_s(inside) == 0.1  # not known to be disturbed: the warm-up's
    inside.disturbed = True
    assert typical_call_s(inside) == 0.0009
    # Every call of the first round inside the burst, the confirmation rounds after it
    # quiet enough for a 1.1 ms call: the plan takes that.
    whole = _first([137_000_000.0] * 8, 140_000_000.0)
    whole.disturbed = True
    whole.rounds.append(whole.round_record())
    assert typical_call_s(whole) == pytest.approx(0.137)
    whole.rounds += [RoundRecord(n=8, min_ms=1.1, disturbed=True), RoundRecord(n=8, min_ms=None)]
    assert typical_call_s(whole) == pytest.approx(0.0011)
    whole.disturbed = False  # a quiet first round: its median call, whatever the rounds
    assert typical_call_s(whole) == pytest.approx(0.137)
    settings = Settings(max_time_s=5.0, confirm=5)
    assert round_plan(settings, 95.0, per_call_s=0.1, measured_s=0.3)[0] == 3
    assert round_plan(settings, 95.0, per_call_s=typical_call_s(first), measured_s=0.3)[0] == 18
    # Blocks of 10 calls: a sample is their mean; a shorter warm-up estimate is kept.
    blocked = _first([50_000.0] * 20, 4_000.0, block_size=10)
    assert typical_call_s(blocked) == 4e-6


def test_the_base_session_imports_the_refs_code_and_says_why_it_ended(tmp_path):
    from pytest_hwperf.ab.base_process import base_environment, exit_reason

    (tmp_path / "src").mkdir()
    env = base_environment(
        {"PYTHONPATH": "/elsewhere", "GITHUB_STEP_SUMMARY": "/summary", "HOME": "/h"},
        tmp_path,
        b"\x01\x02",
    )
    assert env["PYTHONPATH"].split(":") == [str(tmp_path), str(tmp_path / "src"), "/elsewhere"]
    assert "GITHUB_STEP_SUMMARY" not in env
    assert env["HWPERF_AB_AUTHKEY"] == "0102"
    assert env["HOME"] == "/h"
    log = (
        "____ ERROR collecting test_m.py ____\n"
        "E   ModuleNotFoundError: No module named 'model'\n"
        "=== 1 error in 0.1s ===\n"
    )
    assert exit_reason(2, log) == (
        "its session ended (exit code 2): ModuleNotFoundError: No module named 'model'"
    )
    usage = "ERROR: usage: -c [options]\n-c: error: unrecognized arguments: --x\n"
    assert exit_reason(4, usage).endswith("-c: error: unrecognized arguments: --x")
    assert exit_reason(-9, "") == "its session ended (killed by signal 9, no output)"


def test_the_ini_key_names_the_ref_too(pytester):
    pytester.makepyfile(test_x="def test_x(hwperf):\n    hwperf(sum, [1])\n")
    pytester.makepyprojecttoml('[tool.pytest.ini_options]\nhwperf_against = "no-such-ref"\n')
    result = pytester.runpytest("--hwperf")
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    result.stderr.fnmatch_lines(["ERROR: --hwperf-against=no-such-ref: 'no-such-ref' is not a *"])
