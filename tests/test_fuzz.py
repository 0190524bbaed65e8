"""Property-based fuzzing of what users hand the plugin (issue 13, "Also").

Whatever the input, marker arguments and baseline, report and history content give a
result or the documented error type with a one-line message (naming the file when one
is involved), never a traceback, and no file of the user's is changed by reading it.

Bounded in time and deterministic: every test runs under the `hwperf-fuzz` profile
(derandomized, no example database, no deadline) with a fixed number of examples.
"""

from __future__ import annotations

import contextlib
import copy
import fractions
import hashlib
import io
import json
import math
import sqlite3
import tempfile
import warnings
from collections.abc import Callable, Iterator
from decimal import Decimal
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from _typed_records import typed
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from pytest_hwperf import cli
from pytest_hwperf.plugin.markers import MARKERS, MarkerError, TestSpec, read_spec
from pytest_hwperf.records.codec import to_json
from pytest_hwperf.records.types import FingerprintRecord
from pytest_hwperf.report import build_document, write_document
from pytest_hwperf.report.json_report import Document, ReportError, load_document
from pytest_hwperf.store import StoreError, measurement_key
from pytest_hwperf.store.baselines import BaselineStore, RunSummary
from pytest_hwperf.store.history import History, HistoryRow

settings.register_profile(
    "hwperf-fuzz",
    derandomize=True,  # the same examples on every run: CI is deterministic
    database=None,  # nothing remembered between runs, nothing written to .hypothesis/
    deadline=None,  # a shared 2-core runner has slow moments; the count bounds the time
    print_blob=False,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)
FUZZ = settings.get_profile("hwperf-fuzz")


def fuzz(max_examples: int) -> settings:
    return settings(FUZZ, max_examples=max_examples)


# -- invariants ---------------------------------------------------------------------------


def assert_one_line(message: str, *, names: Path | None = None) -> None:
    assert message, "an empty error message"
    assert "\n" not in message, f"not one line: {message!r}"
    assert "\r" not in message, f"not one line: {message!r}"
    if names is not None:
        assert str(names) in message, f"does not name {names}: {message!r}"


@contextlib.contextmanager
def unchanged(*roots: Path, besides: tuple[Path, ...] = ()) -> Iterator[None]:
    """Every file under `roots` (but `besides`, the command's own outputs) has the same
    bytes afterwards, and none is gone."""

    def snapshot() -> dict[Path, str]:
        found = {}
        for root in roots:
            for path in sorted(root.rglob("*")) if root.is_dir() else [root]:
                if path.is_file() and not path.is_symlink() and path not in besides:
                    found[path] = hashlib.sha256(path.read_bytes()).hexdigest()
        return found

    before = snapshot()
    yield
    after = snapshot()
    for path, digest in before.items():
        assert path in after, f"{path} was removed"
        assert after[path] == digest, f"{path} was changed"


def run_cli(*argv: str | Path) -> tuple[int, str, str]:
    """`hwperf ARGV` in this process: exit status, stdout, stderr. Warnings the command
    emits are recorded (the suite turns pytest-hwperf's into errors) and must be one line."""
    out, err = io.StringIO(), io.StringIO()
    with (
        contextlib.redirect_stdout(out),
        contextlib.redirect_stderr(err),
        warnings.catch_warnings(record=True) as caught,
    ):
        warnings.simplefilter("always")
        code = cli.main([str(a) for a in argv])
    for warning in caught:
        assert_one_line(str(warning.message))
    return code, out.getvalue(), err.getvalue()


def assert_cli_error(code: int, err: str, *, names: tuple[Path, ...]) -> None:
    """Whatever the exit status, stderr holds only the command's own one-line messages
    ("hwperf report: warning: ..."), no traceback; exit status 2 comes with exactly one
    error line, naming one of `names`."""
    lines = err.splitlines()
    assert all(line.startswith("hwperf ") for line in lines), f"stray stderr: {err!r}"
    if code != 2:
        return
    errors = [line for line in lines if ": error: " in line]
    assert len(errors) == 1, f"not one error line: {err!r}"
    assert err.endswith("\n"), f"not one error line: {err!r}"
    assert any(str(p) in errors[0] for p in names), f"names none of {names}: {errors[0]!r}"


@contextlib.contextmanager
def no_warning_errors() -> Iterator[list[warnings.WarningMessage]]:
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        yield caught
    for warning in caught:
        assert_one_line(str(warning.message))


# -- JSON values --------------------------------------------------------------------------

HUGE_INTS = st.sampled_from([10**400, -(10**400), 2**53 + 1, 2**63, -(2**63) - 1, 2**64, 10**1000])
FLOATS = st.floats(allow_nan=True, allow_infinity=True) | st.sampled_from(
    [1e308, -1e308, 5e-324, -0.0, math.nan, math.inf, -math.inf]
)
JSON_LEAVES = (
    st.none()
    | st.booleans()
    | st.integers()
    | HUGE_INTS
    | FLOATS
    | st.text(max_size=12)
    | st.sampled_from(["", "\x1b[2J\n", "5%", "cpu", "pass", "1.5", "measured", "nan"])
)
JSON_VALUES = st.recursive(
    JSON_LEAVES,
    lambda children: (
        st.lists(children, max_size=4) | st.dictionaries(st.text(max_size=8), children, max_size=4)
    ),
    max_leaves=16,
)


def _nested(depth: int, inner: str = "1") -> str:
    return "[" * depth + inner + "]" * depth


# Raw JSON text no Python value serializes to: deep nesting, numbers past a float or
# past Python's limit on integer digits, the non-standard literals json.loads accepts.
RAW_JSON = st.sampled_from(
    [
        _nested(500),
        _nested(990),
        _nested(3000),
        _nested(100_000),
        '{"a":' * 100_000 + "1" + "}" * 100_000,
        '[{"samples_ns":' * 2000 + "[1]" + "}]" * 2000,
        "1" * 5000,
        "-" + "9" * 5000,
        "[" + "1" * 5000 + "]",
        "1e999",
        "-1e999",
        "1e-999",
        "NaN",
        "Infinity",
        "-Infinity",
        "[NaN, Infinity]",
    ]
)

_HOLE = "__hwperf_fuzz_hole_{}__"


def _paths(value: Any, prefix: tuple[Any, ...] = ()) -> Iterator[tuple[Any, ...]]:
    yield prefix
    if isinstance(value, dict):
        for key, child in value.items():
            yield from _paths(child, (*prefix, key))
    elif isinstance(value, list):
        for index, child in enumerate(value):
            yield from _paths(child, (*prefix, index))


def _set(document: Any, path: tuple[Any, ...], value: Any) -> Any:
    if not path:
        return value
    parent = document
    for step in path[:-1]:
        parent = parent[step]
    parent[path[-1]] = value
    return document


def _like(value: Any) -> st.SearchStrategy[Any]:
    """Values of the same JSON type as `value` (so that the document still reads and the
    commands get past the schema to what they compute and print), with extremes."""
    if isinstance(value, bool) or value is None:
        return st.sampled_from([True, False, None])
    if isinstance(value, int | float):
        return HUGE_INTS | FLOATS | st.integers() | st.sampled_from([0, -1, 1, 2**53])
    if isinstance(value, str):
        return st.text(max_size=30) | st.sampled_from(
            ["", "\x1b[2J\x1b]0;PWNED\x07", "a`<img src=x>`b", "x" * 5000, "\u202e\n\r"]
        )
    if isinstance(value, list):
        return st.lists(st.sampled_from(value) if value else JSON_VALUES, max_size=6)
    return st.just(value)


@st.composite
def mutated(draw: st.DrawFn, valid: dict[str, Any]) -> bytes:
    """The JSON text of `valid` with one to three fields replaced by a value of the same
    type, a random JSON value or raw JSON text (deep nesting, huge numbers), or removed."""
    document: Any = copy.deepcopy(valid)
    raw: dict[str, str] = {}
    for _ in range(draw(st.integers(1, 3))):
        paths = [p for p in _paths(document) if not any(str(s).startswith("__hwperf") for s in p)]
        path = draw(st.sampled_from(paths))
        how = draw(st.sampled_from(["like", "like", "like", "value", "raw", "remove"]))
        if how == "like":
            found = document
            for step in path:
                found = found[step]
            document = _set(document, path, draw(_like(found)))
        elif how == "remove" and path:
            parent = document
            for step in path[:-1]:
                parent = parent[step]
            del parent[path[-1]]
        elif how == "raw":
            hole = _HOLE.format(len(raw))
            raw[hole] = draw(RAW_JSON)
            document = _set(document, path, hole)
        else:
            document = _set(document, path, draw(JSON_VALUES))
    text = json.dumps(document, indent=draw(st.sampled_from([None, 1])))
    for hole, fill in raw.items():
        text = text.replace(json.dumps(hole), fill)
    return text.encode()


def whole_files() -> st.SearchStrategy[bytes]:
    """A file of any JSON value, raw JSON text, or bytes."""
    return (
        JSON_VALUES.map(lambda v: json.dumps(v).encode())
        | RAW_JSON.map(str.encode)
        | st.binary(max_size=64)
        | st.sampled_from([b"", b"\xff\xfe{}", b'{"schema_version": 1', b"\x00" * 16])
    )


# -- valid inputs -------------------------------------------------------------------------

DIGEST = "fuzz0fingerprint"
FINGERPRINT = FingerprintRecord(DIGEST, "Fuzz CPU, 2 cores", {"cpu": "fuzz", "cores": 2})
FINGERPRINT_JSON = {"digest": DIGEST, "label": FINGERPRINT.label, "hashed": FINGERPRINT.hashed}
TEST_ID = "tests/test_model.py::test_infer"
SAMPLES = [1_000_000, 1_200_000, 900_000, 1_100_000, 950_000]


def _record(name: str, outcome: str | None, budgets: list[dict[str, Any]]) -> dict[str, Any]:
    return to_json(  # type: ignore[return-value]
        typed(
            {
                "test_id": TEST_ID,
                "name": name,
                "device": "cpu",
                "outcome": outcome,
                "stats": {"n": 5, "mean_ms": 1.03, "min_ms": 0.9, "max_ms": 1.2},
                "samples_ns": SAMPLES,
                "fingerprint": FINGERPRINT_JSON,
                "reference_ms": 2.0,
                "reference_kind": "python-loop/1",
                "budgets": budgets,
                "comparison": {"outcome": "unchanged", "baseline_ms": 0.9, "threshold_pct": 10.0},
            }
        )
    )


def valid_report(baseline_dir: Path | None = None) -> dict[str, Any]:
    """A report as --hwperf-json writes it: two measured records with samples, budgets
    and a comparison, on the fingerprint of `valid_baseline`."""
    records = [
        _record("latency", "pass", [{"kind": "latency", "percentile": 95.0, "budget_ms": 5.0}]),
        _record("forward", "fail", [{"kind": "latency", "percentile": 99.0, "budget_ms": 0.5}]),
    ]
    environment = {"fingerprint": FINGERPRINT_JSON}
    report_settings: dict[str, Any] = {"regression_pct": 10.0, "alpha": 0.05, "perf_items": 1}
    if baseline_dir is not None:
        report_settings["baseline_dir"] = str(baseline_dir)
    document = build_document(
        [typed(r) for r in records],
        environment=environment,
        settings=report_settings,
        plugin_version="0",
    )
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "report.json"
        write_document(path, document)
        return json.loads(path.read_text())  # type: ignore[no-any-return]


def valid_baseline() -> dict[str, Any]:
    """A baseline file as BaselineStore.save writes it: two keys, two runs each."""
    with tempfile.TemporaryDirectory() as tmp:
        store = BaselineStore(Path(tmp))
        for i, created in enumerate(["2024-06-01T08:00:00+00:00", "2024-06-02T08:00:00+00:00"]):
            runs = {
                measurement_key(TEST_ID, name, "cpu"): RunSummary.from_samples(
                    f"run-{i}",
                    created,
                    "f" * 40,
                    [s + 1000 * i for s in SAMPLES],
                    1,
                    2.0,
                    "python-loop/1",
                )
                for name in ("latency", "forward")
            }
            path = store.save(FINGERPRINT, runs)
        return json.loads(path.read_text())  # type: ignore[no-any-return]


REPORT = valid_report()
BASELINE = valid_baseline()


# -- 1. marker arguments ------------------------------------------------------------------


class TooManyDigits:
    """Stands for 10**5000 in the examples Hypothesis draws and prints: an int past
    Python's digit limit for str() cannot be printed; `materialize` puts the int in."""

    def __repr__(self) -> str:
        return "10**5000"


def materialize(value: Any) -> Any:
    if isinstance(value, TooManyDigits):
        return 10**5000
    if isinstance(value, list):
        return [materialize(v) for v in value]
    if isinstance(value, tuple):
        return tuple(materialize(v) for v in value)
    if isinstance(value, dict):
        return {k: materialize(v) for k, v in value.items()}
    return value


class MultilineRepr:
    def __repr__(self) -> str:
        return "MultilineRepr(\n  spread over\n  lines)"


ARG_NAMES = [
    "ms", "percentile", "regression", "min_per_s", "batch_size", "rss_mb", "gpu_mb",
    "gpu", "min_gpus", "min_cores", "min_memory_gb", "gpu_name", "min_gpu_memory_gb",
    "min_compute_capability", "n", "threads",
]  # fmt: skip
EXOTIC = st.sampled_from(
    [
        TooManyDigits(),  # 10**5000, beyond Python's digit limit for str()
        fractions.Fraction(10**400, 3),
        fractions.Fraction(1, 10**400),
        Decimal("1e999"),
        Decimal("NaN"),
        complex(1, 1),
        b"50",
        np.float64("nan"),
        np.float32(1e38),
        np.int64(2**62),
        np.uint64(2**64 - 1),
        np.bool_(True),
        np.array([[1.0, 2.0], [3.0, 4.0]]),
        np.array(5.0),
        MultilineRepr(),
        object(),
        (8, 6),
        (8, 6, 1),
        (10**400, 0),
        (8.0, 6),
        "8.6",
        " 9.0 ",
        "1" * 7,
        frozenset({1}),
    ]
)
# A third of the leaves plain JSON-like values, a third the exotic ones, a third extreme
# numbers (`.map` keeps the JSON leaves from being flattened into one uniform choice).
MARKER_LEAVES = st.one_of(
    JSON_LEAVES.map(lambda v: v), EXOTIC, (HUGE_INTS | FLOATS).map(lambda v: v)
)

MARKER_VALUES = st.recursive(
    MARKER_LEAVES,
    lambda children: (
        st.lists(children, max_size=3)
        | st.lists(children, max_size=3).map(tuple)
        | st.dictionaries(st.text(max_size=6), children, max_size=3)
    ),
    max_leaves=8,
)
PLAUSIBLE = st.sampled_from([1, 2, 5, 50.0, 95, 99.9, 0.5, "5%", True, False, None, "A100"])
MARKER_NAMES = {marker.NAME: list(marker.SIGNATURE.parameters) for marker in MARKERS}
REQUIRED = {
    name
    for marker in MARKERS
    for name, parameter in marker.SIGNATURE.parameters.items()
    if parameter.default is parameter.empty
}


@st.composite
def marks(draw: st.DrawFn) -> tuple[str, list[Any], dict[str, Any]]:
    """A marker's name, positional and keyword arguments. Mostly well-formed calls (the
    required argument positional, the others by their own names) so that the values get
    checked; sometimes any arguments at all (unknown names, too many, missing ones)."""
    name = draw(st.sampled_from(sorted(MARKER_NAMES)))
    values = st.one_of(PLAUSIBLE, MARKER_LEAVES, MARKER_VALUES)
    own = MARKER_NAMES[name]
    required = [p for p in own if p in REQUIRED]
    if draw(st.integers(0, 9)) < 8:
        args = [draw(values) for _ in required]
        chosen = draw(st.lists(st.sampled_from(own), unique=True, max_size=len(own)))
        kwargs = {key: draw(values) for key in chosen if key not in required}
        return name, args, kwargs
    keys = st.one_of(st.sampled_from(own), st.sampled_from(ARG_NAMES), st.text(max_size=8))
    return name, draw(st.lists(values, max_size=2)), draw(st.dictionaries(keys, values, max_size=4))


MARKS = marks()


def _finite_positive(value: float | None) -> bool:
    return value is None or (isinstance(value, float) and math.isfinite(value) and value > 0)


@fuzz(max_examples=1500)
@given(st.lists(MARKS, min_size=1, max_size=3))
def test_marker_arguments(drawn: list[tuple[str, list[Any], dict[str, Any]]]) -> None:
    """`read_spec` over `pytest.mark.NAME(*args, **kwargs)` for each drawn mark."""
    marks = [
        getattr(pytest.mark, name).with_args(*materialize(args), **materialize(kwargs)).mark
        for name, args, kwargs in drawn
    ]
    message: str | None = None
    try:
        spec = read_spec(marks)
    except MarkerError as exc:
        message = str(exc)
    if message is not None:
        assert_one_line(message)
        assert message.startswith("@pytest.mark."), message
        assert len(message) < 1000, f"{len(message)} characters"
        return
    # A valid spec holds only numbers the measuring can use.
    assert isinstance(spec, TestSpec)
    for latency in spec.latency:
        assert _finite_positive(latency.ms)
        assert 0 < latency.percentile < 100
        assert _finite_positive(latency.regression)
    if spec.throughput is not None:
        assert _finite_positive(spec.throughput.min_per_s)
        assert 1 <= spec.throughput.batch_size <= 2**53
    if spec.workers is not None:
        assert 1 <= spec.workers.n <= 2**53
        assert 1 <= spec.workers.threads <= 2**53
    if spec.memory is not None:
        assert _finite_positive(spec.memory.rss_mb)
        assert _finite_positive(spec.memory.gpu_mb)
    for need in spec.hardware:
        assert _finite_positive(need.min_memory_gb)
        assert _finite_positive(need.min_gpu_memory_gb)


# -- 2. report content --------------------------------------------------------------------


def check_report(data: bytes) -> None:
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        path = root / "report.json"
        path.write_bytes(data)
        html = root / "out" / "report.html"
        accepted = root / "accepted"
        with unchanged(path):
            try:
                with no_warning_errors():
                    document = load_document(path)
            except ReportError as exc:
                assert_one_line(str(exc), names=path)
            else:
                assert isinstance(document, Document)

            code, _, err = run_cli("report", path)
            assert code in (0, 1, 2)
            assert_cli_error(code, err, names=(path,))

            code, _, err = run_cli("report", path, "--html", html)
            assert code in (0, 1, 2)
            assert_cli_error(code, err, names=(path, html))

            # A report as NEW and as BASE of the offline gate.
            code, _, err = run_cli("compare", path, path)
            assert code in (0, 1, 2)
            assert_cli_error(code, err, names=(path,))

            code, _, err = run_cli("baseline", "accept", path, "--dir", accepted)
            assert code in (0, 2)
            assert_cli_error(code, err, names=(path,))


@fuzz(max_examples=100)
@given(whole_files())
def test_report_any_content(data: bytes) -> None:
    check_report(data)


@fuzz(max_examples=300)
@given(mutated(REPORT))
def test_report_mutated(data: bytes) -> None:
    check_report(data)


def test_valid_report_is_read() -> None:
    """The fuzzed reports start from one every command accepts."""
    check_report(json.dumps(REPORT).encode())
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "report.json"
        path.write_text(json.dumps(REPORT))
        assert len(load_document(path).measurements) == 2
        assert run_cli("report", path, "--html", Path(tmp) / "r.html")[0] == 0


# -- 3. baseline content ------------------------------------------------------------------


def check_baseline(data: bytes) -> None:
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp) / ".hwperf"
        path = root / "baselines" / f"{DIGEST}.json"
        path.parent.mkdir(parents=True)
        path.write_bytes(data)
        # Another, valid baseline beside it: listing must not stop at the bad one.
        other = root / "baselines" / "zz0other.json"
        other_fingerprint = {**BASELINE["fingerprint"], "digest": "zz0other"}
        other.write_text(json.dumps({**BASELINE, "fingerprint": other_fingerprint}))
        report = Path(tmp) / "report.json"
        report.write_text(json.dumps(REPORT))
        copied = Path(tmp) / "elsewhere" / "base.json"
        copied.parent.mkdir()
        copied.write_bytes(data)
        store = BaselineStore(root)
        with unchanged(Path(tmp)):
            try:
                with no_warning_errors():
                    store.load(DIGEST)
            except StoreError as exc:
                assert_one_line(str(exc), names=path)

            with no_warning_errors():
                infos = store.list()
            assert {info.digest for info in infos} == {DIGEST, "zz0other"}
            for info in infos:
                if info.error is not None:
                    assert_one_line(info.error, names=path)
                else:
                    assert info.label is not None

            code, out, err = run_cli("baseline", "list", "--dir", root)
            assert code in (0, 2)
            assert "zz0other" in out  # the other files are still listed
            assert all(line.startswith("hwperf ") for line in err.splitlines()), err

            code, _, err = run_cli("baseline", "show", DIGEST, "--dir", root)
            assert code in (0, 2)
            assert_cli_error(code, err, names=(path,))

            for base in (path, copied):
                code, _, err = run_cli("compare", base, report)
                assert code in (0, 1, 2)
                assert_cli_error(code, err, names=(base,))

        # Accepting into a baseline file that cannot be used leaves it as it was.
        code, _, err = run_cli("baseline", "accept", report, "--dir", root)
        assert code in (0, 2)
        assert_cli_error(code, err, names=(path, report))
        if code != 0:
            assert path.read_bytes() == data, f"{path} was changed by a failed accept"


@fuzz(max_examples=100)
@given(whole_files())
def test_baseline_any_content(data: bytes) -> None:
    check_baseline(data)


@fuzz(max_examples=300)
@given(mutated(BASELINE))
def test_baseline_mutated(data: bytes) -> None:
    check_baseline(data)


def test_valid_baseline_is_read() -> None:
    """The fuzzed baselines start from one every command accepts."""
    check_baseline(json.dumps(BASELINE).encode())
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        path = root / "baselines" / f"{DIGEST}.json"
        path.parent.mkdir()
        path.write_text(json.dumps(BASELINE))
        assert BaselineStore(root).load(DIGEST) is not None
        report = root / "report.json"
        report.write_text(json.dumps(REPORT))
        assert run_cli("compare", path, report)[0] in (0, 1)


# -- 4. history content -------------------------------------------------------------------

MEASUREMENT_COLUMNS = [
    "run_id", "key", "test_id", "name", "device", "n",
    "median_ms", "mean_ms", "p95_ms", "outcome", "samples",
]  # fmt: skip
RUN_COLUMNS = ["id", "created", "fingerprint", "label", "commit_sha"]
SQL_VALUES = (
    st.none()
    | st.text(max_size=16)
    | st.integers(-(2**63), 2**63 - 1)
    | FLOATS
    | st.binary(max_size=16)
    | st.sampled_from(["abc", "", "1e999", "-1", "NaN", str(10**400), "\x1b]0;PWNED\x07"])
    | JSON_VALUES.map(json.dumps)
    | RAW_JSON
)
UPDATES = st.lists(
    st.tuples(
        st.sampled_from(
            [("measurements", c) for c in MEASUREMENT_COLUMNS] * 2
            + [("runs", c) for c in RUN_COLUMNS]
        ),
        SQL_VALUES,
        st.sampled_from([None, 1, 2]),  # every row, or one by rowid
    ),
    min_size=1,
    max_size=3,
)


def _history(root: Path) -> Path:
    path = root / "history.sqlite"
    history = History(path)
    for day in (1, 2, 3):
        history.record_run(
            f"run-{day}",
            f"2024-06-0{day}T08:00:00+00:00",
            DIGEST,
            FINGERPRINT.label,
            "f" * 40,
            [
                HistoryRow(
                    key=measurement_key(TEST_ID, name, "cpu"),
                    test_id=TEST_ID,
                    name=name,
                    device="cpu",
                    n=5,
                    median_ms=1.0 + day / 10,
                    mean_ms=1.1,
                    p95_ms=1.5,
                    outcome="pass",
                    samples_ns=tuple(SAMPLES),
                )
                for name in ("latency", "forward")
            ],
        )
    return path


@fuzz(max_examples=200)
@given(UPDATES)
def test_history_rows(updates: list[tuple[tuple[str, str], object, int | None]]) -> None:
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp) / ".hwperf"
        path = _history(root)
        with contextlib.closing(sqlite3.connect(path)) as conn:
            for (table, column), value, rowid in updates:
                where = "" if rowid is None else f" WHERE rowid = {rowid}"
                with contextlib.suppress(sqlite3.IntegrityError):  # NOT NULL, primary key
                    conn.execute(f"UPDATE {table} SET {column} = ?{where}", (value,))
            conn.commit()
        report = Path(tmp) / "report.json"
        report.write_text(json.dumps(valid_report(root)))
        html = Path(tmp) / "out.html"
        key = measurement_key(TEST_ID, "latency", "cpu")
        with unchanged(root):
            reads: list[Callable[[History], object]] = [
                lambda h: h.trend(TEST_ID),
                lambda h: h.trend(key, fingerprint=DIGEST, limit=2),
                lambda h: h.medians(key, DIGEST),
            ]
            for read in reads:
                try:
                    with no_warning_errors():
                        read(History(path))
                except StoreError as exc:
                    assert_one_line(str(exc), names=path)

            for argv in (
                (TEST_ID,),
                (key, "--fingerprint", DIGEST),
                (TEST_ID, "--limit", "1"),
            ):
                code, _, err = run_cli("history", *argv, "--dir", root)
                assert code in (0, 2)
                assert_cli_error(code, err, names=(path,))

            # The report's HTML draws the history's trends; an unreadable history costs
            # the trends (a warning), never the page.
            code, _, err = run_cli("report", report, "--html", html, "--dir", root)
            assert code == 0, err
            assert html.is_file()


def test_valid_history_is_read() -> None:
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        _history(root)
        code, out, _ = run_cli("history", TEST_ID, "--dir", root)
        assert code == 0
        assert "trend: median" in out
