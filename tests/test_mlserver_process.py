"""The MLServer process lifecycle (pytest_hwperf.serving: settings, process, reaper).

The settings are pure and tested (and fuzzed) without a server; the reaper is tested on
a plain process group; a few tests start a real MLServer (2-3 s each) and are skipped
when MLServer is not installed. Every test that starts a process checks by PID that
nothing of it is left.
"""

from __future__ import annotations

import http.client
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import psutil
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from pytest_hwperf.serving import process as process_module
from pytest_hwperf.serving.process import (
    MLServerProcess,
    ServerError,
    ServerSpec,
    free_ports,
    log_digest,
    mlserver_available,
)
from pytest_hwperf.serving.settings import (
    MAX_SETTINGS_BYTES,
    OWNED_SETTINGS,
    ModelInfo,
    merged_settings,
    parse_json_object,
    parse_model_settings,
    read_json_object,
    read_model,
)
from pytest_hwperf.workers.placement import split_cpus

MODELS = Path(__file__).parent / "mlserver_models"
MISSING = "mlserver: MLServer is not installed (pip install 'pytest-hwperf[mlserver]')"


@pytest.fixture
def needs_mlserver() -> None:
    # Found, not imported: the plugin runs MLServer only as a subprocess.
    if not mlserver_available():
        pytest.skip(MISSING)


def alive(pid: int) -> bool:
    try:
        return psutil.Process(pid).status() != psutil.STATUS_ZOMBIE
    except psutil.NoSuchProcess:
        return False


def left_running(pids: list[int] | tuple[int, ...], timeout_s: float = 10.0) -> list[int]:
    """The pids still running (zombies count as gone) after up to `timeout_s`."""
    deadline = time.monotonic() + timeout_s
    left = [pid for pid in pids if alive(pid)]
    while left and time.monotonic() < deadline:
        time.sleep(0.1)
        left = [pid for pid in left if alive(pid)]
    return left


def one_line(message: str) -> str:
    assert "\n" not in message, message
    assert message.startswith("mlserver: "), message
    return message


# -- settings: pure ----------------------------------------------------------------------


def test_model_settings_give_name_and_implementation() -> None:
    info = parse_model_settings(b'{"name": "tiny", "implementation": "runtime.Tiny"}', "m", "d")
    assert info == ModelInfo("tiny", "runtime.Tiny")
    # MLServer names a nameless model after its folder.
    assert parse_model_settings(b"{}", "m", "folder").name == "folder"


@pytest.mark.parametrize(
    ("data", "expected"),
    [
        (b'{"name": ', "is not valid JSON (Expecting value, line 1 column 10)"),
        (b"[1, 2]", "must hold a JSON object, not a list"),
        (b'"tiny"', "must hold a JSON object, not a string"),
        (b"\xff\xfe{}", "is not UTF-8 text"),
        (b"[" * 100_000, "is not valid JSON"),
        (b"1" * 5000, "is not valid JSON"),
        (b'{"name": 3}', '"name" must be a string, not a number'),
        (b'{"name": "a/b"}', "cannot be used in a URL path"),
        (b'{"name": "t", "implementation": 1}', '"implementation" must be a string'),
        (b'{"name": "t", "implementation": "Tiny"}', "is not an import path"),
        (b'{"name": "t", "implementation": "runtime.Ti ny"}', "is not an import path"),
    ],
)
def test_bad_model_settings_are_one_line(data: bytes, expected: str) -> None:
    with pytest.raises(ServerError) as info:
        parse_model_settings(data, "x/model-settings.json", "x")
    message = one_line(str(info.value))
    assert "x/model-settings.json" in message
    assert expected in message


def test_read_model_refuses_missing_fifo_and_huge_files(tmp_path: Path) -> None:
    model = tmp_path / "model"
    with pytest.raises(ServerError, match="no such folder"):
        read_model(model)
    model.mkdir()
    with pytest.raises(ServerError, match=r"has no model-settings\.json"):
        read_model(model)
    (model / "model-settings.json").write_text('{"name": "m", "implementation": "r.M"}')
    assert read_model(model) == (ModelInfo("m", "r.M"), {})
    # The server settings beside it: a FIFO would block a reader, a huge file fill memory.
    os.mkfifo(model / "settings.json")
    with pytest.raises(ServerError, match="is not a regular file") as fifo:
        read_model(model)
    one_line(str(fifo.value))
    (model / "settings.json").unlink()
    with open(model / "settings.json", "wb") as handle:
        handle.truncate(MAX_SETTINGS_BYTES + 1)
    with pytest.raises(ServerError, match=r"over the .* limit") as huge:
        read_model(model)
    one_line(str(huge.value))
    (model / "settings.json").write_text("not json")
    with pytest.raises(ServerError, match=r"settings\.json is not valid JSON"):
        read_model(model)
    (model / "settings.json").write_text('{"debug": false}')
    assert read_model(model)[1] == {"debug": False}
    with pytest.raises(ServerError, match="no such file"):
        read_json_object(tmp_path / "absent.json")


def test_merged_settings_ours_win_and_extra_may_not_set_them() -> None:
    user = {"http_port": 1, "server_name": "theirs", "debug": True}
    merged = merged_settings(user, {"debug": False}, {"http_port": 8080})
    assert merged == {"http_port": 8080, "server_name": "theirs", "debug": False}
    with pytest.raises(ServerError) as info:
        merged_settings({}, {"grpc_port": 1, "http_port": 2}, {})
    message = one_line(str(info.value))
    assert message.startswith("mlserver: settings may not set grpc_port, http_port")
    with pytest.raises(ServerError, match="not JSON-serialisable"):
        merged_settings({}, {"x": object()}, {})


JSON_VALUES = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats() | st.text(max_size=20),
    lambda inner: (
        st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=8), inner, max_size=4)
    ),
    max_leaves=20,
)


@settings(
    derandomize=True,
    database=None,
    deadline=None,
    max_examples=300,
    suppress_health_check=[HealthCheck.too_slow],
)
@given(
    data=st.one_of(
        st.binary(max_size=200),
        JSON_VALUES.map(lambda v: json.dumps(v).encode()),
        st.dictionaries(st.sampled_from(["name", "implementation", "x"]), JSON_VALUES).map(
            lambda v: json.dumps(v).encode()
        ),
    ),
    folder=st.text(min_size=1, max_size=10),
)
def test_fuzz_settings_parse_or_give_one_line(data: bytes, folder: str) -> None:
    """Whatever the bytes, a parse gives a result or a one-line ServerError."""
    for parse in (
        lambda: parse_json_object(data, "settings.json"),
        lambda: parse_model_settings(data, "model-settings.json", folder),
    ):
        try:
            result = parse()
        except ServerError as exc:
            one_line(str(exc))
            continue
        if isinstance(result, ModelInfo):
            assert result.name.strip()
            assert "/" not in result.name
        else:
            assert isinstance(result, dict)
            merged = merged_settings(result, {}, {key: 1 for key in OWNED_SETTINGS})
            assert all(merged[key] == 1 for key in OWNED_SETTINGS)


def test_log_digest_picks_what_went_wrong() -> None:
    log = "\n".join(
        [
            "2026-01-01 10:00:00,000 [mlserver.rest] INFO - HTTP server running",
            "2026-01-01 10:00:00,001 [mlserver] ERROR - Some of the models failed to load",
            "Traceback (most recent call last):",
            '  File "runtime.py", line 1, in <module>',
            "ModuleNotFoundError: No module named 'nope'",
            "INFO:     Shutting down",
        ]
    )
    assert log_digest(log) == (
        "[mlserver] ERROR - Some of the models failed to load"
        " / ModuleNotFoundError: No module named 'nope'"
    )
    assert log_digest("a\nb\nc\nd") == "b / c / d"
    assert log_digest("") == ""
    assert len(log_digest("ValueError: " + "x" * 5000)) <= 600


def test_free_ports_are_distinct_and_bindable() -> None:
    ports = free_ports(3)
    assert len(set(ports)) == 3
    for port in ports:
        with socket.socket() as sock:
            sock.bind(("127.0.0.1", port))


# -- the reaper, on a plain process group -------------------------------------------------


def _group_and_reaper(folder: Path) -> tuple[subprocess.Popen[bytes], subprocess.Popen[bytes]]:
    sleeper = subprocess.Popen(
        [sys.executable, "-c", "import time; time.sleep(120)"], start_new_session=True
    )
    reaper = subprocess.Popen(
        [sys.executable, "-m", "pytest_hwperf.serving.reaper", str(sleeper.pid), str(folder)],
        stdin=subprocess.PIPE,
        start_new_session=True,
    )
    return sleeper, reaper


def test_reaper_kills_the_group_on_end_of_file(tmp_path: Path) -> None:
    folder = tmp_path / "server-folder"
    folder.mkdir()
    sleeper, reaper = _group_and_reaper(folder)
    try:
        assert reaper.stdin is not None
        reaper.stdin.close()  # what the kernel does when the test process dies
        assert reaper.wait(timeout=20) == 0
        assert sleeper.wait(timeout=10) == -signal.SIGTERM
        assert not folder.exists()
    finally:
        sleeper.kill()
        reaper.kill()
        sleeper.wait()
        reaper.wait()


def test_reaper_disarmed_leaves_the_group(tmp_path: Path) -> None:
    folder = tmp_path / "server-folder"
    folder.mkdir()
    sleeper, reaper = _group_and_reaper(folder)
    try:
        assert reaper.stdin is not None
        reaper.stdin.write(b"disarm\n")
        reaper.stdin.close()
        assert reaper.wait(timeout=20) == 0
        assert sleeper.poll() is None
        assert folder.exists()
    finally:
        sleeper.kill()
        reaper.kill()
        sleeper.wait()
        reaper.wait()
    assert left_running([sleeper.pid, reaper.pid]) == []


# -- a real server ------------------------------------------------------------------------


def _get_json(server: MLServerProcess, path: str) -> dict[str, object]:
    connection = http.client.HTTPConnection(server.host, server.http_port, timeout=10)
    try:
        connection.request("GET", path)
        document: dict[str, object] = json.loads(connection.getresponse().read())
        return document
    finally:
        connection.close()


@pytest.mark.usefixtures("needs_mlserver")
def test_server_threads_pin_settings_worker_death_and_stop(tmp_path: Path) -> None:
    cpus = tuple(sorted(os.sched_getaffinity(0)))
    if len(cpus) < 2:
        pytest.skip(f"pinning 2 workers needs 2 CPUs; this process may use {len(cpus)}")
    model = tmp_path / "tiny"
    shutil.copytree(MODELS / "tiny", model)
    # The user's server settings: merged, ours overriding the ports and the workers.
    (model / "settings.json").write_text(
        json.dumps({"http_port": 1, "parallel_workers": 7, "server_name": "hwperf-user-name"})
    )
    server = MLServerProcess(ServerSpec(model, workers=2, threads=2, pin=True, cpus=cpus))
    try:
        server.start()
        from pytest_hwperf.serving.v2 import V2Client

        with V2Client(server.host, server.http_port, server.model, timeout_s=30) as client:
            x = np.array([[0.5], [-1.0]], dtype=np.float32)
            np.testing.assert_allclose(client.infer(x), 2 * np.tanh(x), rtol=1e-6)
        assert _get_json(server, "/v2")["name"] == "hwperf-user-name"
        assert server.http_port != 1
        assert len(server.worker_pids) == 2
        assert set(server.worker_pids) < set(server.pids())
        shares = split_cpus(cpus, 2)
        for pid, share in zip(server.worker_pids, shares, strict=True):
            worker = psutil.Process(pid)
            environ = worker.environ()
            for name in ("OMP_NUM_THREADS", "MKL_NUM_THREADS", "OPENBLAS_NUM_THREADS"):
                assert environ[name] == "2", (pid, name, environ.get(name))
            for thread in worker.threads():
                assert tuple(sorted(os.sched_getaffinity(thread.id))) == share
        server.check()
        # A worker killed from outside: check() names it.
        victim = server.worker_pids[0]
        os.kill(victim, signal.SIGKILL)
        deadline = time.monotonic() + 10
        while alive(victim) and time.monotonic() < deadline:
            time.sleep(0.05)
        with pytest.raises(ServerError) as died:
            server.check()
        assert one_line(str(died.value)).startswith(f"mlserver: worker pid {victim} died")
        pids = server.pids()
        folder = server.log_path.parent if server.log_path else None
    finally:
        server.stop()
    assert left_running(pids) == []
    assert folder is not None
    assert not folder.exists()
    server.stop()  # idempotent


@pytest.mark.usefixtures("needs_mlserver")
@pytest.mark.parametrize(
    ("model", "timeout_s", "expected"),
    [
        (
            "badimpl",
            60.0,
            "the server exited with code * before model 'badimpl' was ready*NoSuchClass*",
        ),
        ("slowload", 2.0, "model 'slowload' not ready after 2 s (start_timeout_s) | server log:*"),
    ],
)
def test_server_that_cannot_serve_fails_with_one_line(
    model: str, timeout_s: float, expected: str
) -> None:
    import fnmatch

    server = MLServerProcess(ServerSpec(MODELS / model, start_timeout_s=timeout_s))
    with pytest.raises(ServerError) as info:
        server.start()
    message = one_line(str(info.value))
    assert fnmatch.fnmatch(message, f"mlserver: {expected}"), message
    assert server.pids()
    assert left_running(server.pids()) == []


@pytest.mark.usefixtures("needs_mlserver")
def test_a_port_taken_meanwhile_is_retried_on_new_ports(monkeypatch: pytest.MonkeyPatch) -> None:
    taken = socket.socket()
    taken.bind(("127.0.0.1", 0))
    taken.listen()
    busy = int(taken.getsockname()[1])
    picks: list[tuple[int, ...]] = []
    real = process_module.free_ports

    def first_one_taken(count: int, host: str = "127.0.0.1") -> tuple[int, ...]:
        ports = real(count, host)
        if not picks:
            ports = (busy, *ports[1:])
        picks.append(ports)
        return ports

    monkeypatch.setattr(process_module, "free_ports", first_one_taken)
    server = MLServerProcess(ServerSpec(MODELS / "tiny", stop_grace_s=1.0))
    try:
        server.start()
        assert len(picks) == 2
        assert server.http_port == picks[1][0] != busy
        server.check()
    finally:
        server.stop()
        taken.close()
    assert left_running(server.pids()) == []
