"""The `hwperf` console script: `report` renders a saved report, `info` shows the
machine as the plugin sees it, `compare` gives the regression gate's verdict offline,
`baseline list|show|accept` manages the baselines and `history` shows a measurement's
trend from the run history.

Nothing here ends in a traceback: a file that cannot be used (StoreError, ReportError,
OSError) is one line on stderr naming it, and exit status 2."""

from __future__ import annotations

import argparse
import contextlib
import json
import math
import sqlite3
import sys
import tempfile
import uuid
import warnings
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import TYPE_CHECKING, Any

from pytest_hwperf import __version__
from pytest_hwperf.report import ReportError, load_document, summary_lines
from pytest_hwperf.report.terminal import ms_text
from pytest_hwperf.store import (
    BaselineStore,
    History,
    RunSummary,
    StoreError,
    gate_runs,
    measurement_key,
)

if TYPE_CHECKING:
    from pytest_hwperf.hardware.fingerprint import Fingerprint
    from pytest_hwperf.hardware.machine import Machine

__all__ = [
    "build_parser",
    "compare_files",
    "info_document",
    "info_lines",
    "main",
    "serving_recommendations",
]


def _report(args: argparse.Namespace) -> int:
    try:
        document = load_document(Path(args.path))
    except ReportError as exc:
        print(f"hwperf report: error: {exc}", file=sys.stderr)
        return 2
    records = document.get("measurements", [])
    if not records:
        print(f"{args.path}: no measurements")
    for line in summary_lines(records) if records else []:
        print(line)
    if args.html is not None:
        return _report_html(document, Path(args.html), None if args.dir is None else Path(args.dir))
    return 0


def _report_html(document: dict[str, Any], path: Path, baseline_dir: Path | None) -> int:
    """Write the HTML report of `document`, with the trends of the run history in
    `baseline_dir` (default: the folder the report records); a history that cannot be
    read is a warning, the page is written without its trends."""
    from pytest_hwperf.report.html import read_history, render_html, write_html

    history, history_error = read_history(document, baseline_dir)
    if history_error:
        print(f"hwperf report: warning: {history_error}", file=sys.stderr)
    try:
        write_html(path, render_html(document, history=history, history_error=history_error))
    except ReportError as exc:
        print(f"hwperf report: error: {exc}", file=sys.stderr)
        return 2
    print(f"hwperf report: HTML report written to {path}")
    return 0


# -- info -------------------------------------------------------------------------------

_SMALL_REQUESTS_WHY = (
    "small requests gain little from intra-op threads; one single-threaded worker per "
    "core serves that many requests at once without contention"
)
_LARGE_MODEL_WHY = (
    "one request at a time, its operators split over every usable core (intra-op "
    "threads), gives the lowest latency per request"
)


def _layouts(cores: int) -> list[tuple[str, str, int, int, str]]:
    """(key, title, workers, threads per worker, why) for each recommended layout."""
    return [
        ("many_small_requests", "many small requests", cores, 1, _SMALL_REQUESTS_WHY),
        ("large_model_latency", "latency of large models", 1, cores, _LARGE_MODEL_WHY),
    ]


def serving_recommendations(usable_cores: int) -> dict[str, object]:
    """Workers x threads for serving on ``usable_cores`` cores (a simple rule for now).

    Both layouts use every usable core exactly once; more workers x threads than cores
    oversubscribes them and latency becomes a queue for the CPU.
    """
    cores = max(1, usable_cores)
    advice: dict[str, object] = {"usable_cores": cores}
    for key, _, workers, threads, why in _layouts(cores):
        advice[key] = {"workers": workers, "threads_per_worker": threads, "why": why}
    return advice


def info_document(
    machine: Machine,
    fingerprint: Fingerprint,
    libraries: dict[str, str] | None = None,
    notes: Sequence[str] = (),
) -> dict[str, object]:
    """What `hwperf info --json` prints: the machine, its fingerprint and the advice."""
    document = machine.to_record()
    document["fingerprint"] = fingerprint.to_record()
    document["recommendations"] = serving_recommendations(machine.cpu.usable_cores)
    document["libraries_loaded"] = dict(libraries or {})
    document["warnings"] = list(notes)
    return document


def _count(count: int, noun: str) -> str:
    return f"{count} {noun}" if count == 1 else f"{count} {noun}s"


def _gib(nbytes: int | None) -> str:
    return "unknown" if nbytes is None else f"{nbytes / (1 << 30):.1f} GiB"


def _cpu_lines(machine: Machine) -> list[str]:
    cpu = machine.cpu
    smt = {True: "on", False: "off", None: "unknown"}[cpu.smt]
    physical = "unknown (psutil could not tell)" if cpu.physical is None else str(cpu.physical)
    return [
        "CPU",
        f"  model:     {cpu.model} ({cpu.isa_level or 'ISA level unknown'}), SMT {smt}",
        f"  logical:   {cpu.logical} (os.cpu_count(): the host's count)",
        f"  physical:  {physical} (psutil)",
        f"  usable:    {cpu.usable_cores} ({cpu.usable_source})",
    ]


def _memory_lines(machine: Machine) -> list[str]:
    memory = machine.memory
    limit = "none" if memory.cgroup_limit_bytes is None else _gib(memory.cgroup_limit_bytes)
    return [
        "Memory",
        f"  total:        {_gib(memory.total_bytes)}",
        f"  effective:    {_gib(memory.effective_bytes)}",
        f"  cgroup limit: {limit} ({memory.cgroup_source})",
        f"  available:    {_gib(memory.available_bytes)}",
    ]


def _gpu_lines(machine: Machine) -> list[str]:
    report = machine.gpus
    lines = ["GPU"]
    visible = report.visible
    if not visible:
        lines.append(f"  no GPU: {report.reason or 'none found'}")
    for device in visible:
        cc = device.compute_capability
        facts = [_gib(device.memory_total_bytes)]
        if cc is not None:
            facts.append(f"compute {cc[0]}.{cc[1]}")
        if device.multiprocessors is not None:
            facts.append(f"{device.multiprocessors} SMs")
        if device.mig_mode is not None:
            facts.append(f"MIG {'on' if device.mig_mode else 'off'}")
        facts.append(device.uuid or "no UUID")
        lines.append(f"  cuda:{device.cuda_index}  {device.name}, {', '.join(facts)}")
    hidden = sum(
        1
        for gpu in report.gpus
        if all(device.cuda_index is None for device in (gpu, *gpu.mig_devices))
    )
    if visible and hidden > 0:
        lines.append(
            f"  ({hidden} more hidden by CUDA_VISIBLE_DEVICES={report.cuda_visible_devices})"
        )
    lines.append(f"  detected by: {report.source}")
    if report.driver_version or report.cuda_driver_version:
        lines.append(
            f"  driver: {report.driver_version or 'unknown'}, "
            f"CUDA {report.cuda_driver_version or 'unknown'}"
        )
    return lines


def _pool_text(pool: dict[str, object]) -> str:
    name = str(pool.get("internal_api"))
    if pool.get("version"):
        name += f" {pool['version']}"
    if pool.get("user_api") != pool.get("internal_api"):
        name += f" ({pool.get('user_api')})"
    return f"{name}: {pool.get('num_threads')} threads"


def _thread_lines(machine: Machine, libraries: dict[str, str]) -> list[str]:
    threads = machine.threads
    lines = ["Threads"]
    if "torch_intra_op" in threads:
        lines.append(
            f"  torch:        {threads['torch_intra_op']} intra-op, "
            f"{threads['torch_inter_op']} inter-op"
        )
    else:
        lines.append(f"  torch:        not loaded ({libraries.get('torch', 'not imported')})")
    pools = threads.get("native_pools")
    described = [
        _pool_text(pool)
        for pool in (pools if isinstance(pools, list) else [])
        if isinstance(pool, dict)
    ]
    lines.append(f"  native pools: {'; '.join(described) or 'none loaded'}")
    env = threads.get("env")
    settings = [f"{k}={v}" for k, v in env.items()] if isinstance(env, dict) else []
    lines.append(
        f"  environment:  {' '.join(settings) or 'no OMP_/MKL_/OPENBLAS_/KMP_/GOMP_ variables'}"
    )
    return lines


def _software_line(machine: Machine) -> str:
    software = machine.software
    parts = [
        f"Python {software.get('python')} ({software.get('python_implementation')}, "
        f"{software.get('platform')} {software.get('machine')})"
    ]
    for name in ("pytest", "numpy", "torch"):
        parts.append(f"{name} {software.get(name) or 'not installed'}")
    return "Software: " + ", ".join(parts)


def info_lines(
    machine: Machine,
    fingerprint: Fingerprint,
    libraries: dict[str, str] | None = None,
    notes: Sequence[str] = (),
) -> list[str]:
    """The readable report `hwperf info` prints."""
    libraries = libraries or {}
    cores = max(1, machine.cpu.usable_cores)
    lines = [f"pytest-hwperf {__version__} on {machine.hostname}"]
    lines += _cpu_lines(machine)
    lines += _memory_lines(machine)
    lines += _gpu_lines(machine)
    lines += _thread_lines(machine, libraries)
    lines.append(_software_line(machine))
    lines += [
        "Fingerprint",
        f"  digest: {fingerprint.digest}",
        f"  label:  {fingerprint.label}",
        f"Serving on {cores} usable core{'s' if cores != 1 else ''} (workers x threads)",
    ]
    for _, title, workers, threads, why in _layouts(cores):
        lines.append(
            f"  {title}: {_count(workers, 'worker')} x {_count(threads, 'thread')} -- {why}"
        )
    lines += [f"warning: {note}" for note in notes]
    return lines


def _info(args: argparse.Namespace) -> int:
    # Nothing here may end in a traceback: a machine that cannot be read is a one-line
    # error, a degraded reading (a malformed cgroup file) a warning line.
    try:
        from pytest_hwperf.hardware.cpu import read_affinity
        from pytest_hwperf.hardware.fingerprint import fingerprint
        from pytest_hwperf.hardware.machine import detect_machine, load_measured_libraries

        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            # Before torch loads: its OpenMP runtime may pin this thread to one CPU.
            affinity = read_affinity()
            libraries = load_measured_libraries()
            machine = detect_machine(affinity=affinity)
            found = fingerprint(machine)
        notes = [str(w.message) for w in caught]
        if args.json:
            document = info_document(machine, found, libraries, notes)
            text = json.dumps(document, indent=2, sort_keys=False, default=str)
        else:
            text = "\n".join(info_lines(machine, found, libraries, notes))
    except Exception as exc:
        print(f"hwperf info: error: {type(exc).__name__}: {exc}", file=sys.stderr)
        return 1
    print(text)
    return 0


# -- shared by compare, baseline and history ----------------------------------------------

DEFAULT_DIR = ".hwperf"
DEFAULT_REGRESSION_PCT = 10.0
DEFAULT_ALPHA = 0.01


class _InputError(ValueError):
    """An input that cannot be used; the one-line message names it."""


_INPUT_ERRORS = (StoreError, ReportError, OSError, sqlite3.Error, ValueError)


def _fail(command: str, exc: BaseException) -> int:
    """One line on stderr, exit status 2: what every unusable input gets."""
    message = " ".join(str(exc).split()) or type(exc).__name__
    print(f"hwperf {command}: error: {message}", file=sys.stderr)
    return 2


def _table(rows: Sequence[Sequence[str]]) -> list[str]:
    widths = [max(len(row[i]) for row in rows) for i in range(len(rows[0]))]
    return [
        "  ".join(cell.ljust(w) for cell, w in zip(row, widths, strict=True)).rstrip()
        for row in rows
    ]


def _number(value: object) -> float | None:
    """A positive finite number from a JSON document, else None."""
    if isinstance(value, bool) or not isinstance(value, int | float):
        return None
    number = float(value)
    return number if number > 0.0 and math.isfinite(number) else None


def _gate_ms(record: Mapping[str, Any]) -> float:
    """The figure the plugin's gate compares for a record (the very function it uses):
    the fastest call over every round; 0.0 when there is none."""
    from pytest_hwperf.judge.regression import gate_ms

    try:
        value = gate_ms(record)
    except (TypeError, ValueError, KeyError):
        return 0.0
    return value if value is not None and math.isfinite(value) and value > 0 else 0.0


def _load_report(path: Path) -> dict[str, Any]:
    """A JSON report written by --hwperf-json, with its measurements list."""
    try:
        document = load_document(path)
    except UnicodeDecodeError:
        raise _InputError(f"{path} is not UTF-8 text, so not a pytest-hwperf report") from None
    if not isinstance(document.get("measurements"), list):
        raise _InputError(
            f"{path} is not a JSON report written by --hwperf-json (no 'measurements' list)"
        )
    return document


def _measured(document: Mapping[str, Any], path: Path) -> list[dict[str, Any]]:
    """The measured records of a report (mode "measured", with samples), checked."""
    found = []
    for index, record in enumerate(document["measurements"]):
        where = f"{path}: measurement {index}"
        if not isinstance(record, dict):
            raise _InputError(f"{where} is not an object")
        if record.get("mode") != "measured" or not record.get("samples_ns"):
            continue
        for name in ("test_id", "name", "device"):
            if not isinstance(record.get(name), str):
                raise _InputError(f"{where} has no {name!r} string")
        samples = record["samples_ns"]
        if not isinstance(samples, list) or not all(
            isinstance(v, int) and not isinstance(v, bool) and v >= 0 for v in samples
        ):
            raise _InputError(f"{where} has malformed samples_ns (integers >= 0 expected)")
        found.append(record)
    return found


def _key(record: Mapping[str, Any]) -> str:
    return measurement_key(record["test_id"], record["name"], record["device"])


def _fingerprint_of(record: Mapping[str, Any], document: Mapping[str, Any]) -> dict[str, Any]:
    """The fingerprint a record was measured on: its own `fingerprint` (set when the
    plugin compared it), else the report's `environment.fingerprint`; {} when neither."""
    environment = document.get("environment")
    for found in (
        record.get("fingerprint"),
        environment.get("fingerprint") if isinstance(environment, dict) else None,
    ):
        if isinstance(found, dict) and isinstance(found.get("digest"), str):
            return found
    return {}


# -- compare ----------------------------------------------------------------------------


_Entry = tuple[str | None, list[float], list[float | None], list[str | None]]


@dataclass(frozen=True)
class _Base:
    """What BASE gives each measurement key: (fingerprint digest, the gate's figure of
    each saved run)."""

    path: Path
    kind: str  # "baseline file" or "report"
    digest: str | None
    label: str | None
    # key -> (fingerprint digest, run figures, run reference times, reference kinds)
    entries: dict[str, _Entry] = field(default_factory=dict)

    def lookup(self, key: str) -> _Entry:
        return self.entries.get(key, (self.digest, [], [], []))


def _base_from_baseline(path: Path, document: object, data: bytes) -> _Base:
    """A baseline file, read through the store (its checks and messages)."""
    if path.parent.name == "baselines":
        try:
            baseline = BaselineStore(path.parent.parent).load(path.stem)
        except ValueError:  # the file name is no digest
            raise _InputError(
                f"baseline file {path} is not named after a fingerprint digest"
                " (<digest>.json under baselines/)"
            ) from None
    else:
        # A baseline copied elsewhere under another name: the store only loads
        # <root>/baselines/<digest>.json, so it reads a copy named as it expects.
        fingerprint = document.get("fingerprint") if isinstance(document, dict) else None
        claimed = fingerprint.get("digest") if isinstance(fingerprint, dict) else None
        if not isinstance(claimed, str):
            raise _InputError(
                f"baseline file {path} has no fingerprint digest; restore it from git"
            )
        with tempfile.TemporaryDirectory() as tmp:
            store = BaselineStore(Path(tmp))
            try:
                copy = store.path_for(claimed)
            except ValueError as exc:
                raise _InputError(
                    f"baseline file {path} has a malformed fingerprint ({exc})"
                ) from None
            copy.parent.mkdir(parents=True)
            copy.write_bytes(data)
            try:
                baseline = store.load(claimed)
            except StoreError as exc:
                raise StoreError(str(exc).replace(str(copy), str(path))) from None
    if baseline is None:
        raise _InputError(f"cannot read {path}: it is gone")
    digest = str(baseline.fingerprint["digest"])
    entries: dict[str, _Entry] = {}
    for key, runs in baseline.measurements.items():
        usable = gate_runs(runs)  # as the plugin compares them
        entries[key] = (
            digest,
            [value for _, value in usable],
            [run.reference_ms for run, _ in usable],
            [run.reference_kind for run, _ in usable],
        )
    return _Base(path, "baseline file", digest, baseline.fingerprint.get("label"), entries)


def _base_from_report(path: Path) -> _Base:
    """A JSON report as a baseline: each measurement's one run, its fastest call."""
    document = _load_report(path)
    entries: dict[str, _Entry] = {}
    for record in _measured(document, path):
        median = _gate_ms(record)
        digest = _fingerprint_of(record, document).get("digest")
        reference = _number(record.get("reference_ms"))
        kind = record.get("reference_kind")
        entries[_key(record)] = (
            digest,
            [median] if median > 0 else [],
            [reference],
            [kind if isinstance(kind, str) else None],
        )
    environment = document.get("environment")
    fingerprint = environment.get("fingerprint") if isinstance(environment, dict) else None
    fingerprint = fingerprint if isinstance(fingerprint, dict) else {}
    digest, label = fingerprint.get("digest"), fingerprint.get("label")
    return _Base(
        path,
        "report",
        digest if isinstance(digest, str) else None,
        label if isinstance(label, str) else None,
        entries,
    )


def _load_base(path: Path) -> _Base:
    """BASE: a baseline file (store format) or a JSON report, told apart by content."""
    try:
        data = path.read_bytes()
    except OSError as exc:
        raise _InputError(f"cannot read {path}: {exc.strerror or exc}") from None
    document: object = None
    # Unparseable: the loaders below say what is wrong, in their words.
    with contextlib.suppress(UnicodeDecodeError, json.JSONDecodeError):
        document = json.loads(data.decode("utf-8"))
    if isinstance(document, dict) and isinstance(document.get("measurements"), list):
        return _base_from_report(path)
    if path.parent.name == "baselines" or (
        isinstance(document, dict) and isinstance(document.get("measurements"), dict)
    ):
        return _base_from_baseline(path, document, data)
    _load_report(path)  # raises, naming what is wrong
    raise _InputError(f"{path} is neither a JSON report nor a baseline file")  # pragma: no cover


def _threshold(recorded: float | None, session: float | None, given: float | None) -> float:
    """The threshold the plugin used (carried by the record) unless --regression is
    given; then it replaces the session's threshold, and a test's own `regression=`
    marker argument (a recorded threshold other than the session's) still wins."""
    if given is None:
        return DEFAULT_REGRESSION_PCT if recorded is None else recorded
    if recorded is not None and session is not None and recorded != session:
        return recorded
    return given


def _alpha(
    recorded: float | None, session: float | None, given: float | None, family: int
) -> float:
    """The per-comparison level the plugin used (carried by the record) unless --alpha
    is given; then it replaces the session's level with the same Bonferroni family."""
    from pytest_hwperf.judge.regression import bonferroni_alpha

    if recorded is not None and recorded <= 0.5:
        if given is None:
            return recorded
        if session is not None:
            return min(0.5, given * recorded / session)
    return bonferroni_alpha(DEFAULT_ALPHA if given is None else given, family)


def _ratio_pct(value: object) -> str:
    return f"{value:+.1f}%" if isinstance(value, int | float) else "-"


def compare_files(
    base_path: Path,
    new_path: Path,
    *,
    regression_pct: float | None = None,
    alpha: float | None = None,
) -> dict[str, Any]:
    """The regression verdict of every measured result of NEW against BASE, as the
    plugin gives it: JSON-ready, with one entry per measurement under "comparisons".

    When an input cannot be used it raises StoreError, ReportError, OSError or
    ValueError, with a one-line message naming the file; BASE is never written to.
    """
    from pytest_hwperf.judge.regression import NO_BASELINE, REGRESSION, compare, drift_adjusted

    base = _load_base(base_path)
    document = _load_report(new_path)
    measured = _measured(document, new_path)
    settings = document.get("settings")
    settings = settings if isinstance(settings, dict) else {}
    perf_items = settings.get("perf_items")
    per_test: dict[str, int] = {}
    for record in measured:
        per_test[record["test_id"]] = per_test.get(record["test_id"], 0) + 1
    comparisons = []
    for record in measured:
        key = _key(record)
        fingerprint = _fingerprint_of(record, document)
        digest = fingerprint.get("digest")
        base_digest, base_medians, references, kinds = base.lookup(key)
        kind = record.get("reference_kind")
        medians, drift = drift_adjusted(
            base_medians,
            references,
            _number(record.get("reference_ms")),
            baseline_kinds=kinds,
            current_kind=kind if isinstance(kind, str) else None,
        )
        recorded = record.get("comparison")
        recorded = recorded if isinstance(recorded, dict) else {}
        family = (
            perf_items * per_test[record["test_id"]]
            if isinstance(perf_items, int) and perf_items >= 1
            else len(measured)
        )
        threshold = _threshold(
            _number(recorded.get("threshold_pct")),
            _number(settings.get("regression_pct")),
            regression_pct,
        )
        level = _alpha(
            _number(recorded.get("alpha")), _number(settings.get("alpha")), alpha, family
        )
        entry: dict[str, Any] = {
            "test_id": record["test_id"],
            "name": record["name"],
            "device": record["device"],
            "key": key,
            "fingerprint": digest,
            "base_fingerprint": base_digest,
            "plugin_outcome": recorded.get("outcome"),
        }
        median = _gate_ms(record)
        if median <= 0:
            entry.update(outcome="not compared", verdict="not compared (min 0 ns)")
            entry["comparison"] = None
            comparisons.append(entry)
            continue
        same = digest is not None and digest == base_digest
        try:
            found = compare(
                median,
                medians if same else [],
                threshold_pct=threshold,
                alpha=level,
                drift_factor=drift,
            )
        except ValueError as exc:
            raise _InputError(f"{base.path}: cannot compare {key}: {exc}") from None
        comparison = found.to_record(digest)
        comparison["key"] = key
        comparison["drift_factor"] = drift
        rounds = record.get("rounds")
        count = len(rounds) if isinstance(rounds, list) else 0
        comparison["rounds"] = max(1, count)
        if count > 1:
            comparison["reason"] = f"{comparison['reason']} (the fastest of {count} rounds)"
        entry["outcome"] = found.outcome
        entry["verdict"] = found.outcome
        if not same:
            entry["verdict"] = f"{NO_BASELINE} (other fingerprint)"
            comparison["reason"] = (
                f"{found.reason()}: {base.path} holds fingerprint {base_digest or 'unknown'},"
                f" this was measured on {digest or 'an unknown fingerprint'}"
            )
        entry["comparison"] = comparison
        comparisons.append(entry)
    outcomes = [entry["outcome"] for entry in comparisons]
    return {
        "base": {
            "path": str(base.path),
            "kind": base.kind,
            "fingerprint": base.digest,
            "label": base.label,
        },
        "new": {"path": str(new_path)},
        "summary": {
            "measurements": len(comparisons),
            "regression": outcomes.count(REGRESSION),
            "improvement": outcomes.count("improvement"),
            "unchanged": outcomes.count("unchanged"),
            "no_baseline": outcomes.count(NO_BASELINE),
            "not_compared": outcomes.count("not compared"),
        },
        "comparisons": comparisons,
    }


def _compare_lines(result: Mapping[str, Any]) -> list[str]:
    base = result["base"]
    where = f"fingerprint {base['fingerprint'] or 'unknown'}"
    if base["label"]:
        where += f": {base['label']}"
    lines = [f"base: {base['path']} ({base['kind']}, {where})", f"new:  {result['new']['path']}"]
    entries = result["comparisons"]
    if not entries:
        return [*lines, "no measured results in the new report"]
    rows = [("test", "name", "device", "baseline", "current", "change", "verdict")]
    for entry in entries:
        comparison = entry["comparison"] or {}
        verdict = entry["verdict"]
        rows.append(
            (
                entry["test_id"],
                entry["name"],
                entry["device"],
                ms_text(comparison.get("baseline_ms")),
                ms_text(comparison.get("current_ms")),
                _ratio_pct(comparison.get("change_pct")),
                "REGRESSION" if verdict == "regression" else verdict,
            )
        )
    lines += _table(rows)
    for entry in entries:
        if entry["outcome"] == "regression":
            lines.append(
                f"regression: {entry['test_id']} {entry['name']!r} on {entry['device']}:"
                f" {entry['comparison']['reason']}"
            )
    for entry in entries:
        plugin = entry["plugin_outcome"]
        if plugin is not None and plugin != entry["outcome"]:
            lines.append(
                f"note: {entry['key']}: the plugin recorded {plugin!r}, here it is"
                f" {entry['outcome']!r} (another baseline than the plugin had when it ran,"
                " another fingerprint, or --regression/--alpha)"
            )
    s = result["summary"]
    lines.append(
        f"{s['measurements']} measured: {s['regression']} regressed, {s['improvement']} improved,"
        f" {s['unchanged']} unchanged, {s['no_baseline']} without a baseline"
        + (f", {s['not_compared']} not compared" if s["not_compared"] else "")
    )
    return lines


def _compare(args: argparse.Namespace) -> int:
    try:
        result = compare_files(
            Path(args.base), Path(args.new), regression_pct=args.regression, alpha=args.alpha
        )
    except _INPUT_ERRORS as exc:
        return _fail("compare", exc)
    if args.json:
        print(json.dumps(result, indent=1, allow_nan=False))
    else:
        print("\n".join(_compare_lines(result)))
    return 1 if result["summary"]["regression"] else 0


# -- baseline ---------------------------------------------------------------------------


def _baseline_list(args: argparse.Namespace) -> int:
    store = BaselineStore(Path(args.dir))
    infos = store.list()
    if not infos:
        print(f"no baselines in {store.folder}")
        return 0
    rows = [("fingerprint", "measurements", "updated", "label")]
    errors = []
    for info in infos:
        if info.error is not None:
            errors.append(f"{info.digest}: error: {info.error}")
            continue
        rows.append((info.digest, str(info.measurements), info.updated or "-", info.label or "-"))
    lines = _table(rows) if len(rows) > 1 else []
    print("\n".join([*lines, *errors]))
    return 2 if errors else 0


def _spread_text(medians: Sequence[float]) -> str:
    positive = [m for m in medians if m > 0]
    if len(positive) < 2:
        return "-"
    logs = [math.log(m) for m in positive]
    mean = math.fsum(logs) / len(logs)
    sd = math.sqrt(math.fsum((x - mean) ** 2 for x in logs) / (len(logs) - 1))
    return f"{100.0 * sd:.1f}%"


def _baseline_show(args: argparse.Namespace) -> int:
    try:
        store = BaselineStore(Path(args.dir))
        try:
            baseline = store.load(args.digest)
        except ValueError as exc:
            raise _InputError(str(exc)) from None
        if baseline is None:
            raise _InputError(f"no baseline for fingerprint {args.digest} in {store.folder}")
    except _INPUT_ERRORS as exc:
        return _fail("baseline show", exc)
    label = baseline.fingerprint.get("label") or "no label"
    lines = [f"fingerprint {args.digest} ({label})", f"file: {baseline.path}"]
    rows = [
        (
            "measurement",
            "runs",
            "latest median",
            "latest min",
            "latest run",
            "mins",
            "run-to-run sd",
        )
    ]
    for key, runs in sorted(baseline.measurements.items()):
        if not runs:
            rows.append((key, "0", "-", "-", "-", "-", "-"))
            continue
        mins = [value for _, value in gate_runs(runs)]  # the figures the gate compares
        latest = runs[-1]
        rows.append(
            (
                key,
                str(len(runs)),
                ms_text(latest.median_ms),
                "-" if latest.min_ms is None else ms_text(latest.min_ms),
                f"{latest.created} {latest.commit or '-'}",
                f"{ms_text(min(mins))} to {ms_text(max(mins))}" if mins else "-",
                _spread_text(mins),
            )
        )
    if len(rows) > 1:
        lines += _table(rows)
    else:
        lines.append("no measurements")
    print("\n".join(lines))
    return 0


def _baseline_accept(args: argparse.Namespace) -> int:
    path = Path(args.report)
    try:
        document = _load_report(path)
        measured = _measured(document, path)
        if not measured:
            raise _InputError(f"{path} holds no measured results to accept")
        created = document.get("created_at")
        if not isinstance(created, str):
            created = datetime.now(timezone.utc).isoformat(timespec="seconds")
        run_id = f"accepted-{uuid.uuid4().hex[:12]}"
        by_fingerprint: dict[str, tuple[dict[str, Any], dict[str, RunSummary]]] = {}
        for record in measured:
            fingerprint = _fingerprint_of(record, document)
            if not fingerprint:
                raise _InputError(f"{path}: {_key(record)} carries no fingerprint")
            timing = record.get("timing")
            block = timing.get("block_size", 1) if isinstance(timing, dict) else 1
            try:
                run = RunSummary.from_samples(
                    run_id, created, None, record["samples_ns"], block, min_ms=_gate_ms(record)
                )
            except (ValueError, TypeError) as exc:
                raise _InputError(f"{path}: {_key(record)}: {exc}") from None
            by_fingerprint.setdefault(fingerprint["digest"], (fingerprint, {}))[1][_key(record)] = (
                run
            )
        store = BaselineStore(Path(args.dir))
        written = []
        for fingerprint, runs in by_fingerprint.values():
            try:
                written.append((store.accept(fingerprint, runs), len(runs)))
            except ValueError as exc:
                raise _InputError(
                    f"{path}: cannot accept fingerprint {fingerprint['digest']!r}: {exc}"
                ) from None
    except _INPUT_ERRORS as exc:
        return _fail("baseline accept", exc)
    for target, count in written:
        print(
            f"baseline accepted: {target} ({_count(count, 'measurement')} from {path}, each"
            " now this run only)"
        )
    return 0


# -- history ----------------------------------------------------------------------------


def _history(args: argparse.Namespace) -> int:
    path = Path(args.dir) / "history.sqlite"
    try:
        rows = History(path).trend(args.test_id, fingerprint=args.fingerprint, limit=args.limit)
    except _INPUT_ERRORS as exc:
        return _fail("history", exc)
    if not rows:
        where = f" on fingerprint {args.fingerprint}" if args.fingerprint else ""
        print(f"no recorded runs of {args.test_id}{where} in {path}")
        return 0
    keys = list(dict.fromkeys(row.key for row in rows))
    lines: list[str] = []
    for key in keys:
        runs = [row for row in rows if row.key == key]
        table = [("created", "commit", "fingerprint", "n", "median", "p95", "outcome")]
        table += [
            (
                row.created,
                row.commit or "-",
                row.fingerprint,
                "-" if row.n is None else str(row.n),
                ms_text(row.median_ms),
                ms_text(row.p95_ms),
                row.outcome or "no budget",
            )
            for row in runs
        ]
        lines += [key, *(f"  {line}" for line in _table(table))]
        lines.append(f"  trend: {_trend_text(runs)}")
    print("\n".join(lines))
    return 0


def _trend_text(runs: Sequence[Any]) -> str:
    medians = [row.median_ms for row in runs if row.median_ms]
    count = _count(len(runs), "run")
    if len(medians) < 2:
        return f"{count}, too few medians for a trend"
    first, last = medians[0], medians[-1]
    change = 100.0 * (last / first - 1.0)
    text = f"median {ms_text(first)} -> {ms_text(last)} ({change:+.1f}%) over {count}"
    fingerprints = {row.fingerprint for row in runs}
    if len(fingerprints) > 1:
        text += f", across {len(fingerprints)} fingerprints (--fingerprint picks one)"
    return text


# -- the parser -------------------------------------------------------------------------


def _percent_arg(raw: str) -> float:
    from pytest_hwperf.judge.regression import parse_threshold

    try:
        return parse_threshold(raw)
    except ValueError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None


def _alpha_arg(raw: str) -> float:
    try:
        value = float(raw)
    except ValueError:
        value = math.nan
    if not 0.0 < value <= 0.5:
        raise argparse.ArgumentTypeError(f"expected a significance level in (0, 0.5], got {raw!r}")
    return value


def _positive_int_arg(raw: str) -> int:
    try:
        value = int(raw)
    except ValueError:
        value = 0
    if value < 1:
        raise argparse.ArgumentTypeError(f"expected a positive integer, got {raw!r}")
    return value


def _help_of(parser: argparse.ArgumentParser) -> Callable[[argparse.Namespace], int]:
    def show(_: argparse.Namespace) -> int:
        parser.print_help()
        return 2

    return show


def _add_dir(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--dir",
        default=DEFAULT_DIR,
        metavar="DIR",
        help=f"The baseline folder, as --hwperf-baseline-dir (default {DEFAULT_DIR})",
    )


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="hwperf", description="pytest-hwperf: hardware-aware performance testing"
    )
    parser.add_argument("--version", action="version", version=f"pytest-hwperf {__version__}")
    commands = parser.add_subparsers(dest="command", metavar="COMMAND")
    report = commands.add_parser("report", help="Render a saved JSON report as a table")
    report.add_argument("path", help="A JSON report written by --hwperf-json")
    report.add_argument(
        "--html",
        default=None,
        metavar="OUT",
        help="Also write the report as one self-contained HTML page with charts to OUT",
    )
    report.add_argument(
        "--dir",
        default=None,
        metavar="DIR",
        help="The baseline folder whose run history gives the HTML trends (default: the"
        " --hwperf-baseline-dir the report records)",
    )
    report.set_defaults(run=_report)
    info = commands.add_parser(
        "info", help="Show cores, memory, GPUs, threads and the fingerprint, as measured here"
    )
    info.add_argument("--json", action="store_true", help="Print the same as one JSON object")
    info.set_defaults(run=_info)

    compare = commands.add_parser(
        "compare",
        help="The regression verdict of a JSON report against a baseline, offline",
        description="Compare every measured result of NEW (a JSON report written by"
        " --hwperf-json) with BASE, as the plugin does: exit 1 on a regression, 0 otherwise,"
        " 2 when a file cannot be used.",
    )
    compare.add_argument(
        "base",
        metavar="BASE",
        help="A baseline file (.hwperf/baselines/<digest>.json) or another JSON report"
        " (each measurement's baseline is then that report's one run)",
    )
    compare.add_argument("new", metavar="NEW", help="A JSON report written by --hwperf-json")
    compare.add_argument(
        "--regression",
        type=_percent_arg,
        default=None,
        metavar="PCT",
        help="Tolerated slowdown in percent, replacing the session's (default: the threshold"
        f" the plugin recorded, else {DEFAULT_REGRESSION_PCT:g}); a test's own regression="
        " marker argument still wins",
    )
    compare.add_argument(
        "--alpha",
        type=_alpha_arg,
        default=None,
        metavar="A",
        help="Session false-alarm level, split over the comparisons as the plugin does"
        f" (default: the level the plugin recorded, else {DEFAULT_ALPHA:g})",
    )
    compare.add_argument("--json", action="store_true", help="Print the comparisons as JSON")
    compare.set_defaults(run=_compare)

    baseline = commands.add_parser("baseline", help="List, show or accept baselines")
    baseline.set_defaults(run=_help_of(baseline))
    actions = baseline.add_subparsers(dest="baseline_command", metavar="ACTION")
    listing = actions.add_parser("list", help="One line per baseline file")
    _add_dir(listing)
    listing.set_defaults(run=_baseline_list)
    show = actions.add_parser("show", help="Each measurement of one baseline with its runs")
    show.add_argument("digest", metavar="DIGEST", help="The fingerprint digest (its file name)")
    _add_dir(show)
    show.set_defaults(run=_baseline_show)
    accept = actions.add_parser(
        "accept",
        help="Make a JSON report's measured results the baseline of its fingerprint",
        description="Replace the baseline runs of every measured result of REPORT with that"
        " result alone; other measurements of the baseline stay as they were.",
    )
    accept.add_argument("report", metavar="REPORT", help="A JSON report written by --hwperf-json")
    _add_dir(accept)
    accept.set_defaults(run=_baseline_accept)

    history = commands.add_parser(
        "history", help="A test's measurements over past runs, from the SQLite history"
    )
    history.add_argument(
        "test_id", metavar="TEST_ID", help="A pytest node id, or one measurement's full key"
    )
    _add_dir(history)
    history.add_argument(
        "--fingerprint", default=None, metavar="DIGEST", help="Only runs on this fingerprint"
    )
    history.add_argument(
        "--limit",
        type=_positive_int_arg,
        default=50,
        metavar="N",
        help="The last N recorded values (default 50)",
    )
    history.set_defaults(run=_history)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    if getattr(args, "run", None) is None:
        parser.print_help()
        return 2
    code: int = args.run(args)
    return code


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
