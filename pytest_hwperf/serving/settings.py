"""The settings an MLServer is started with: the model folder's own files read (they may
be hostile), and the server's settings.json written for one run.

`mlserver start <folder>` reads `<folder>/settings.json` (server settings; a value in
the file wins over the `MLSERVER_*` environment) and loads every `model-settings.json`
found under `<folder>`, following symlinks. So the server is started on a folder of our
own: our settings.json, which is the user's (`settings.json` beside the model's
`model-settings.json`, if any) merged with the test's extra settings and ours, and a
symlink to the user's model folder. Nothing is ever written into the user's folder.

Ours win: the host and the ports (free ones picked at start), `parallel_workers` (the
test's config) and the Prometheus folder (`metrics_dir`: MLServer clears it at start,
so two servers sharing one would clash). Extra settings given in the test may not set
those; the user's file may, and is overridden.

Every problem is a :class:`ServerError` with a one-line message starting "mlserver: ".
Nothing here starts a process or imports MLServer; the parsing is pure and fuzzed.
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

__all__ = [
    "MAX_SETTINGS_BYTES",
    "MODEL_SETTINGS_FILE",
    "OWNED_SETTINGS",
    "SETTINGS_FILE",
    "ModelInfo",
    "ServerError",
    "merged_settings",
    "parse_json_object",
    "parse_model_settings",
    "read_json_object",
    "read_model",
]

SETTINGS_FILE = "settings.json"
MODEL_SETTINGS_FILE = "model-settings.json"
# Settings files are a few hundred bytes; a megabyte leaves room and refuses a huge one.
MAX_SETTINGS_BYTES = 1 << 20
# The server settings the fixture sets itself.
OWNED_SETTINGS = (
    "host",
    "http_port",
    "grpc_port",
    "metrics_port",
    "parallel_workers",
    "metrics_dir",
)
# MLServer imports "module.Class" (pydantic's import string: dotted identifiers).
_IMPORT_PATH = re.compile(r"^[A-Za-z_]\w*(\.[A-Za-z_]\w*)+$")
_MAX_SHOWN = 80  # characters of a user's value quoted in a message


class ServerError(RuntimeError):
    """The server could not be set up, started or kept running. The message is one
    line starting "mlserver: ", and may end with " | server log: <what it said>"."""


@dataclass(frozen=True)
class ModelInfo:
    """What the model folder's model-settings.json says: the model's name (the folder's
    name when the file gives none, as MLServer does) and its runtime's import path."""

    name: str
    implementation: str | None


def _shown(value: object) -> str:
    text = repr(value)
    return text if len(text) <= _MAX_SHOWN else text[: _MAX_SHOWN - 3] + "..."


def _kind(value: object) -> str:
    names = {dict: "an object", list: "a list", str: "a string", bool: "a boolean"}
    if value is None:
        return "null"
    if isinstance(value, int | float) and not isinstance(value, bool):
        return "a number"
    return names.get(type(value), type(value).__name__)


def parse_json_object(data: bytes, source: str) -> dict[str, object]:
    """The JSON object in `data`; ServerError naming `source` for anything else (not
    UTF-8, not JSON, nested too deep, not an object)."""
    try:
        text = data.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        raise ServerError(f"mlserver: {source} is not UTF-8 text ({exc.reason})") from None
    try:
        value = json.loads(text)
    except json.JSONDecodeError as exc:
        where = f"line {exc.lineno} column {exc.colno}"
        raise ServerError(f"mlserver: {source} is not valid JSON ({exc.msg}, {where})") from None
    except (ValueError, RecursionError) as exc:  # a 5,000-digit number, 10^5 brackets
        reason = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
        raise ServerError(f"mlserver: {source} is not valid JSON ({reason})") from None
    if not isinstance(value, dict):
        raise ServerError(f"mlserver: {source} must hold a JSON object, not {_kind(value)}")
    return value


def parse_model_settings(data: bytes, source: str, folder_name: str) -> ModelInfo:
    """The model's name and implementation from a model-settings.json's bytes."""
    document = parse_json_object(data, source)
    name = document.get("name", "")
    if name is None or name == "":
        name = folder_name  # MLServer names a nameless model after its folder
    if not isinstance(name, str):
        raise ServerError(f'mlserver: {source}: "name" must be a string, not {_kind(name)}')
    if not name.strip() or any(c in name for c in "/?#%\\") or not name.isprintable():
        raise ServerError(f'mlserver: {source}: "name" {_shown(name)} cannot be used in a URL path')
    implementation = document.get("implementation")
    if implementation is not None:
        if not isinstance(implementation, str):
            raise ServerError(
                f'mlserver: {source}: "implementation" must be a string such as'
                f' "runtime.MyModel", not {_kind(implementation)}'
            )
        if not _IMPORT_PATH.match(implementation):
            raise ServerError(
                f'mlserver: {source}: "implementation" {_shown(implementation)} is not an'
                ' import path such as "runtime.MyModel"'
            )
    return ModelInfo(name=name, implementation=implementation)


def read_json_object(path: Path, *, limit: int = MAX_SETTINGS_BYTES) -> dict[str, object]:
    """The JSON object in the file at `path`, read only when it is a regular file of at
    most `limit` bytes (a FIFO would block, a huge file exhaust memory); ServerError."""
    from pytest_hwperf.files import UnreadableFile, read_regular

    try:
        data = read_regular(path, limit=limit)
    except FileNotFoundError:
        raise ServerError(f"mlserver: {path}: no such file") from None
    except UnreadableFile as exc:
        raise ServerError(f"mlserver: {exc}") from None
    except OSError as exc:
        raise ServerError(f"mlserver: cannot read {path}: {exc.strerror or exc}") from None
    return parse_json_object(data, str(path))


def read_model(model_dir: Path) -> tuple[ModelInfo, dict[str, object]]:
    """The model folder's model-settings.json (required) and settings.json (optional,
    empty when absent), checked; ServerError with one line otherwise."""
    from pytest_hwperf.files import UnreadableFile, read_regular

    if not model_dir.is_dir():
        what = "no such folder" if not model_dir.exists() else "not a folder"
        raise ServerError(f"mlserver: {model_dir}: {what} (the model folder)")
    model_file = model_dir / MODEL_SETTINGS_FILE
    if not model_file.exists():
        raise ServerError(
            f"mlserver: {model_dir} has no {MODEL_SETTINGS_FILE} (the model folder must hold one)"
        )
    try:
        data = read_regular(model_file, limit=MAX_SETTINGS_BYTES)
    except UnreadableFile as exc:
        raise ServerError(f"mlserver: {exc}") from None
    except OSError as exc:
        raise ServerError(f"mlserver: cannot read {model_file}: {exc.strerror or exc}") from None
    info = parse_model_settings(data, str(model_file), model_dir.resolve().name)
    server_file = model_dir / SETTINGS_FILE
    user = read_json_object(server_file) if server_file.exists() else {}
    return info, user


def merged_settings(
    user: Mapping[str, object], extra: Mapping[str, object], ours: Mapping[str, object]
) -> dict[str, object]:
    """The server's settings: the user's file, then the test's `extra`, then ours.
    `extra` may not set what the fixture owns (ServerError)."""
    for key in extra:
        if not isinstance(key, str):
            raise ServerError(f"mlserver: settings keys must be strings, got {_shown(key)}")
    clash = sorted(key for key in extra if key in OWNED_SETTINGS)
    if clash:
        raise ServerError(
            f"mlserver: settings may not set {', '.join(clash)}: the fixture sets"
            f" {', '.join(OWNED_SETTINGS)}"
        )
    merged = {**user, **extra, **ours}
    try:
        json.dumps(merged)
    except (TypeError, ValueError) as exc:
        raise ServerError(f"mlserver: settings are not JSON-serialisable: {exc}") from None
    return merged
