"""The profiler runners of --hwperf-profile on plain callables (issue 6, part 2).

Real profilers on real targets: the hot spot is made to dominate (a pure-Python loop
next to a trivial call), so which function comes first does not depend on the
machine's speed; no test asserts a duration.
"""

from __future__ import annotations

import json
import os
import pstats
import shutil
import sys
import types
from datetime import datetime, timezone
from pathlib import Path

import pytest

from pytest_hwperf.profiling.profile import (
    SCALENE_HINT,
    SCALENE_WHOLE_RUN,
    Profile,
    TopFunction,
    artifact_base,
    parse_collapsed,
    profile_lines,
    ptrace_blocker,
    resolve_tool,
    take_profile,
)
from pytest_hwperf.records.codec import to_json

SHORT = 0.3  # seconds of profiling: enough samples, little test time


def hot_spot() -> int:
    total = 0
    for i in range(20_000):
        total += i * i
    return total


def cold_spot() -> int:
    return 1


def target() -> None:
    hot_spot()
    cold_spot()


def base_in(tmp_path: Path) -> Path:
    when = datetime(2026, 1, 2, 3, 4, 5, 6, tzinfo=timezone.utc)
    return artifact_base(tmp_path / "profiles", "tests/test_m.py::test_x[cpu]", "embed", when)


# -- cProfile ---------------------------------------------------------------------------


def test_cprofile_puts_the_hot_function_first_and_writes_a_pstats_file(tmp_path):
    profile = take_profile("cprofile", target, synchronize=None, base=base_in(tmp_path))
    assert profile.error is None
    assert profile.tool == "cprofile"
    assert profile.calls >= 1
    assert profile.path is not None
    assert profile.path.suffix == ".prof"
    assert profile.path.parent == tmp_path / "profiles"  # created
    first = profile.top[0]
    assert first.function.endswith("(hot_spot)"), profile.top
    assert "test_profile.py:" in first.function
    assert first.share > 0.5
    assert first.own_ms > 0
    assert 1 <= len(profile.top) <= 5
    assert sum(t.share for t in profile.top) <= 1.0 + 1e-9
    assert [t.own_ms for t in profile.top] == sorted((t.own_ms for t in profile.top), reverse=True)
    # The harness (the loop, its timer) is not among the functions.
    assert not any("_hwperf_profile_loop" in t.function for t in profile.top)
    assert not any("threading" in t.function for t in profile.top)

    # The artifact is a pstats file: python -m pstats and snakeviz read it.
    stats = pstats.Stats(str(profile.path))
    names = {name for (_file, _line, name) in stats.stats}
    assert {"hot_spot", "cold_spot"} <= names
    hot = next(v for k, v in stats.stats.items() if k[2] == "hot_spot")
    assert hot[1] == profile.calls  # one hot_spot call per target call


def test_a_target_slower_than_the_time_allowed_is_still_called_once(tmp_path):
    profile = take_profile(
        "cprofile", target, synchronize=None, base=base_in(tmp_path), seconds=1e-9
    )
    assert profile.error is None
    assert profile.calls >= 1
    assert profile.top[0].function.endswith("(hot_spot)")


def test_the_device_sync_runs_after_each_call_inside_the_profile(tmp_path):
    synced: list[int] = []
    calls: list[int] = []

    def counted() -> None:
        calls.append(1)
        hot_spot()

    def synchronize() -> None:
        synced.append(len(calls))

    profile = take_profile(
        "cprofile", counted, synchronize=synchronize, base=base_in(tmp_path), seconds=0.05
    )
    assert profile.error is None
    assert synced == list(range(1, len(calls) + 1))  # once after every call, in order
    assert profile.calls == len(calls)
    stats = pstats.Stats(str(profile.path))
    assert any(k[2] == "synchronize" for k in stats.stats)


def test_a_target_that_raises_is_noted_not_raised(tmp_path):
    state = {"n": 0}

    def flaky() -> None:
        state["n"] += 1
        hot_spot()
        if state["n"] == 3:
            raise ValueError("model went away\nsecond line")

    profile = take_profile("cprofile", flaky, synchronize=None, base=base_in(tmp_path))
    assert profile.calls == 2
    assert profile.error == (
        "the target raised ValueError: model went away after 2 calls under the profiler"
    )
    assert profile.path is not None
    assert profile.path.exists()  # what ran is still kept


def test_an_unwritable_profiles_folder_is_an_error_not_an_exception(tmp_path):
    blocker = tmp_path / "file"
    blocker.write_text("not a folder")
    profile = take_profile("cprofile", target, synchronize=None, base=blocker / "sub" / "x")
    assert profile.path is None
    assert profile.error is not None
    assert profile.error.startswith(f"cannot create {blocker / 'sub'}")


def test_an_unknown_tool_is_an_error(tmp_path):
    profile = take_profile("yappi", target, synchronize=None, base=base_in(tmp_path))
    assert profile.error is not None
    assert "unknown profiler 'yappi'" in profile.error


# -- torch.profiler -----------------------------------------------------------------------


def test_torch_profiler_on_cpu_writes_a_chrome_trace_and_ranks_operators(tmp_path):
    torch = pytest.importorskip("torch", reason="the torch profiler needs torch")
    a = torch.randn(256, 256)

    def matmuls() -> None:
        for _ in range(4):
            a @ a
        torch.relu(a[:1])

    profile = take_profile(
        "torch", matmuls, synchronize=None, base=base_in(tmp_path), seconds=SHORT
    )
    assert profile.error is None, profile.error
    assert profile.path is not None
    assert profile.path.suffix == ".json"
    trace = json.loads(profile.path.read_text(encoding="utf-8"))
    assert trace["traceEvents"]  # a Chrome trace (chrome://tracing, Perfetto)
    assert any(e.get("name") == "aten::mm" for e in trace["traceEvents"])
    assert profile.top[0].function == "aten::mm", profile.top
    # Most of the own time, but not a fixed share: a busy shared runner adds to the
    # profiler's own bookkeeping (0.46 was seen under load).
    assert profile.top[0].share > 0.25
    assert profile.calls >= 1


def test_torch_missing_is_a_note(tmp_path, monkeypatch):
    # A None entry in sys.modules makes the import fail as if torch were not installed.
    monkeypatch.setitem(sys.modules, "torch.profiler", None)
    profile = take_profile("torch", target, synchronize=None, base=base_in(tmp_path))
    assert profile == Profile("torch", error="torch is not installed: pip install torch")


# -- py-spy -------------------------------------------------------------------------------

VENV_BIN = str(Path(sys.executable).parent)


def venv_which(name: str) -> str | None:
    """py-spy from the dev extra lives next to this interpreter, on PATH or not."""
    return shutil.which(name, path=os.pathsep.join([VENV_BIN, os.environ.get("PATH", "")]))


def test_py_spy_records_this_process_and_finds_the_hot_function(tmp_path):
    if venv_which("py-spy") is None:
        pytest.skip("py-spy is not installed (pip install -e '.[dev]' installs it)")
    reason = ptrace_blocker()
    if reason is not None:
        pytest.skip(f"py-spy may not attach here: {reason}")
    profile = take_profile(
        "py-spy", target, synchronize=None, base=base_in(tmp_path), which=venv_which
    )
    if profile.error is not None and "ptrace" in profile.error:
        pytest.skip(f"py-spy may not attach here: {profile.error}")
    assert profile.error is None, profile.error
    assert profile.path is not None
    assert profile.path.suffix == ".txt"
    collapsed = profile.path.read_text(encoding="utf-8")
    assert "_hwperf_profile_loop" in collapsed
    assert "hot_spot (" in collapsed
    assert profile.top[0].function.endswith("(hot_spot)"), profile.top
    assert "test_profile.py:" in profile.top[0].function
    # Most of the own time, but not a fixed share: a busy shared runner adds to the
    # profiler's own bookkeeping (0.46 was seen under load).
    assert profile.top[0].share > 0.25
    assert profile.calls >= 1


@pytest.mark.skipif(
    not hasattr(os, "geteuid") or os.geteuid() != 0 or shutil.which("setpriv") is None,
    reason="needs root and setpriv to run py-spy as another user",
)
def test_py_spy_without_ptrace_permission_says_why(tmp_path):
    """py-spy run as user nobody may not read this root process: a real refusal."""
    real = venv_which("py-spy")
    if real is None:
        pytest.skip("py-spy is not installed (pip install -e '.[dev]' installs it)")
    wrapper = tmp_path / "bin" / "py-spy"
    wrapper.parent.mkdir()
    wrapper.write_text(
        f'#!/bin/sh\nexec setpriv --reuid=65534 --regid=65534 --clear-groups {real} "$@"\n'
    )
    wrapper.chmod(0o755)
    profile = take_profile(
        "py-spy",
        target,
        synchronize=None,
        base=base_in(tmp_path),
        which=lambda name: str(wrapper),
    )
    assert profile.path is None
    assert profile.calls == 0  # the target never ran: py-spy gave up before sampling
    assert profile.error is not None
    assert profile.error.startswith("py-spy may not read this process (")
    assert "ptrace permission" in profile.error


def test_py_spy_not_on_path_is_a_note(tmp_path):
    profile = take_profile(
        "py-spy", target, synchronize=None, base=base_in(tmp_path), which=lambda name: None
    )
    assert profile == Profile("py-spy", error="py-spy is not on PATH: pip install py-spy")


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="Yama is Linux's")
@pytest.mark.parametrize(
    ("scope", "cap_eff", "blocked"),
    [
        pytest.param(None, "0000000000000000", None, id="no-yama"),
        pytest.param("0", "0000000000000000", None, id="scope-0"),
        pytest.param("1", "00000000a80425fb", "ptrace_scope=1", id="scope-1-no-cap"),
        pytest.param("1", "00000000a80c25fb", None, id="scope-1-cap-sys-ptrace"),
        pytest.param("2", "000001ffffffffff", None, id="scope-2-all-caps"),
        pytest.param("3", "000001ffffffffff", "ptrace_scope=3", id="scope-3"),
    ],
)
def test_ptrace_blocker_reads_yama_and_the_capabilities(tmp_path, scope, cap_eff, blocked):
    scope_file = tmp_path / "ptrace_scope"
    if scope is not None:
        scope_file.write_text(f"{scope}\n")
    status = tmp_path / "status"
    status.write_text(f"Name:\tpython\nCapPrm:\t0\nCapEff:\t{cap_eff}\nCapBnd:\t0\n")
    reason = ptrace_blocker(scope_file, status)
    if blocked is None:
        assert reason is None
    else:
        assert reason is not None
        assert blocked in reason


def test_collapsed_stacks_count_only_the_target_below_the_loop():
    text = "\n".join(
        [
            "<module> (run.py:1);_hwperf_profile_loop (pytest_hwperf/profiling/profile.py:9);"
            "target (t.py:3);hot_spot (t.py:10) 60",
            "<module> (run.py:1);_hwperf_profile_loop (pytest_hwperf/profiling/profile.py:9);"
            "target (t.py:3) 20",
            "<module> (run.py:1);_hwperf_profile_loop (pytest_hwperf/profiling/profile.py:9);"
            "target (t.py:3);{built-in} 20",
            # the loop itself between two calls, and another thread: not the target
            "<module> (run.py:1);_hwperf_profile_loop (pytest_hwperf/profiling/profile.py:9) 50",
            "_bootstrap (threading.py:1);run (threading.py:2) 500",
            "",
            "garbage",
        ]
    )
    top = parse_collapsed(text, seconds=2.0)
    assert top == (
        TopFunction("t.py:10(hot_spot)", 1200.0, 0.6),
        TopFunction("t.py:3(target)", 400.0, 0.2),
        TopFunction("{built-in}", 400.0, 0.2),
    )
    assert parse_collapsed("_bootstrap (threading.py:1) 5\n", seconds=1.0) == ()


# -- scalene ------------------------------------------------------------------------------


def test_scalene_outside_scalene_says_how_to_run_it(tmp_path, monkeypatch):
    monkeypatch.delitem(sys.modules, "scalene.scalene_profiler", raising=False)
    profile = take_profile("scalene", target, synchronize=None, base=base_in(tmp_path))
    assert profile == Profile("scalene", error=SCALENE_HINT)
    assert "scalene run --off --profile-all -m pytest ---" in SCALENE_HINT
    assert not (tmp_path / "profiles").exists()  # scalene writes its own file, not ours


def test_scalene_under_scalene_is_switched_on_around_the_target(tmp_path, monkeypatch):
    """scalene's programmatic start/stop, as scalene 2.x exposes them (stand-ins here:
    the real ones exist only in a process that scalene started)."""
    events: list[str] = []

    class Scalene:
        _Scalene__initialized = True
        _Scalene__args = types.SimpleNamespace(off=True)  # scalene run --off ...

    module = types.ModuleType("scalene.scalene_profiler")
    module.Scalene = Scalene
    module.start = lambda: events.append("start")
    module.stop = lambda: events.append("stop")
    monkeypatch.setitem(sys.modules, "scalene.scalene_profiler", module)

    def traced() -> None:
        events.append("call")

    profile = take_profile(
        "scalene", traced, synchronize=None, base=base_in(tmp_path), seconds=0.01
    )
    assert profile.error is None
    assert profile.path is None
    assert events[0] == "start"
    assert events[-1] == "stop"
    assert events.count("call") == profile.calls >= 1
    assert profile_lines("m", profile.as_record()) == [
        f"m: profile (scalene): {profile.calls} calls profiled; scalene writes its profile"
        " (scalene-profile.json, or its --outfile) when pytest exits"
    ]

    # Started without --off, scalene already profiles everything: it is left alone.
    events.clear()
    Scalene._Scalene__args = types.SimpleNamespace(off=False)
    profile = take_profile("scalene", traced, synchronize=None, base=base_in(tmp_path))
    assert profile == Profile("scalene", error=SCALENE_WHOLE_RUN)
    assert events == []


# -- choosing, naming, showing ------------------------------------------------------------


def test_auto_is_torch_for_cuda_when_torch_is_imported_else_cprofile(monkeypatch):
    assert resolve_tool("off", "cpu") is None
    assert resolve_tool("auto", "cpu") == "cprofile"
    assert resolve_tool("auto", "mps") == "cprofile"
    assert resolve_tool("py-spy", "cuda:0") == "py-spy"
    monkeypatch.setitem(sys.modules, "torch", types.ModuleType("torch"))
    assert resolve_tool("auto", "cuda:0") == "torch"
    monkeypatch.delitem(sys.modules, "torch")
    assert resolve_tool("auto", "cuda:0") == "cprofile"


def test_artifact_names_are_safe_and_timestamped(tmp_path):
    when = datetime(2026, 1, 2, 3, 4, 5, 6, tzinfo=timezone.utc)
    base = artifact_base(tmp_path, "tests/test_m.py::test_x[cuda:0-a b]", "embed/v2", when)
    assert base == tmp_path / "tests_test_m.py_test_x_cuda_0-a_b-embed_v2-20260102T030405000006"
    assert artifact_base(tmp_path, "::", "", when).name == "_-_-20260102T030405000006"


def test_profile_lines_name_the_path_and_the_top_functions():
    record = Profile(
        "cprofile",
        Path("/x/p.prof"),
        (TopFunction("m.py:3(f)", 12.345, 0.41), TopFunction("{built-in}", 1.0, 0.033)),
        None,
        7,
    ).as_record()
    assert to_json(record) == {
        "tool": "cprofile",
        "path": "/x/p.prof",
        "top": [
            {"function": "m.py:3(f)", "own_ms": 12.345, "share": 0.41},
            {"function": "{built-in}", "own_ms": 1.0, "share": 0.033},
        ],
        "error": None,
        "calls": 7,
    }
    assert profile_lines("embed", record) == [
        "embed: profile (cprofile): /x/p.prof",
        "embed: profile:   m.py:3(f)  own 12.3 ms (41%)",
        "embed: profile:   {built-in}  own 1.0 ms (3%)",
    ]
    failed = Profile("py-spy", error="py-spy is not on PATH: pip install py-spy").as_record()
    assert profile_lines("embed", failed) == [
        "embed: profile (py-spy): not taken: py-spy is not on PATH: pip install py-spy"
    ]
