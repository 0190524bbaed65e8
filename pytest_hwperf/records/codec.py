"""The JSON edge: typed records to JSON values and back.

One generic codec driven by the dataclasses' type hints, so that a field added to a
record is written and read with no second declaration. Reading is strict about types
and lenient about age: a field missing from a file written by an older release takes
its default; a field of the wrong type, a non-finite number where a float is expected,
or a value nested too deep is a `RecordError` naming where in the document it was.
Unknown keys (written by a newer release of the same schema version) are ignored.
"""

from __future__ import annotations

import dataclasses
import math
import types
import typing
from collections.abc import Mapping
from functools import cache
from typing import Any, TypeVar, Union, get_args, get_origin

from pytest_hwperf.records.types import JSONValue, MeasurementRecord

__all__ = [
    "RecordError",
    "as_facts",
    "from_json",
    "measurement_from_json",
    "path_key",
    "to_json",
    "to_json_object",
]

T = TypeVar("T")

# Descriptive facts are JSON values, but not unbounded ones.
MAX_DEPTH = 64


class RecordError(ValueError):
    """A JSON value that is not the record it should be; the message says where."""


def to_json(value: object) -> JSONValue:
    """A record (or a tuple, mapping or scalar of them) as plain JSON values. A record
    may leave keys out (`json_omitted()`: "object or absent" in docs/json-schema.md)."""
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        out: dict[str, JSONValue] = {}
        omitted = getattr(value, "json_omitted", None)
        left_out = omitted() if callable(omitted) else frozenset()
        for f in dataclasses.fields(value):
            item = getattr(value, f.name)
            if f.name in left_out:
                continue
            out[f.name] = to_json(item)
        return out
    if isinstance(value, Mapping):
        return {str(k): to_json(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [to_json(v) for v in value]
    if isinstance(value, float) and not math.isfinite(value):
        return None
    if value is None or isinstance(value, bool | int | float | str):
        return value
    raise TypeError(f"not a JSON value: {type(value).__name__}")


@cache
def _hints(cls: type) -> dict[str, object]:
    return typing.get_type_hints(cls)


def from_json(cls: type[T], data: object, where: str = "$") -> T:
    """Read a record of type `cls` from a parsed JSON value."""
    return typing.cast("T", _read(cls, data, where, 0))


def measurement_from_json(data: object, where: str = "$") -> MeasurementRecord:
    return from_json(MeasurementRecord, data, where)


def _fail(where: str, what: str, data: object) -> RecordError:
    shown = type(data).__name__ if isinstance(data, dict | list) else repr(data)[:60]
    return RecordError(f"{where}: expected {what}, got {shown}")


def _read(tp: Any, data: object, where: str, depth: int) -> object:
    if depth > MAX_DEPTH:
        raise RecordError(f"{where}: nested more than {MAX_DEPTH} levels deep")
    origin = get_origin(tp)
    if origin is Union or origin is types.UnionType:
        options = get_args(tp)
        if data is None and type(None) in options:
            return None
        errors = []
        for option in options:
            if option is type(None):
                continue
            try:
                return _read(option, data, where, depth)
            except RecordError as exc:
                errors.append(exc)
        raise errors[0] if len(errors) == 1 else _fail(where, str(tp), data)
    if tp is Any or tp == "JSONValue" or _is_json_alias(tp):
        return _json_value(data, where, depth)
    if dataclasses.is_dataclass(tp) and isinstance(tp, type):
        if not isinstance(data, dict):
            raise _fail(where, f"an object ({tp.__name__})", data)
        hints = _hints(tp)
        kwargs: dict[str, object] = {}
        for f in dataclasses.fields(tp):
            if f.name in data:
                kwargs[f.name] = _read(hints[f.name], data[f.name], f"{where}.{f.name}", depth + 1)
            elif f.default is dataclasses.MISSING and f.default_factory is dataclasses.MISSING:
                raise RecordError(f"{where}: missing {f.name!r}")
        return tp(**kwargs)
    if origin is tuple:
        args = get_args(tp)
        if not isinstance(data, list):
            raise _fail(where, "an array", data)
        item_type = args[0]
        return tuple(_read(item_type, v, f"{where}[{i}]", depth + 1) for i, v in enumerate(data))
    if origin is Mapping or origin is dict or tp is Mapping:
        if not isinstance(data, dict):
            raise _fail(where, "an object", data)
        return {
            str(k): _json_value(v, f"{where}.{path_key(k)}", depth + 1) for k, v in data.items()
        }
    if tp is bool:
        if not isinstance(data, bool):
            raise _fail(where, "true or false", data)
        return data
    if tp is int:
        if isinstance(data, bool) or not isinstance(data, int):
            raise _fail(where, "an integer", data)
        return data
    if tp is float:
        if isinstance(data, bool) or not isinstance(data, int | float):
            raise _fail(where, "a number", data)
        try:
            number = float(data)
        except OverflowError:
            raise _fail(where, "a number within range", data) from None
        if not math.isfinite(number):
            raise _fail(where, "a finite number", data)
        return number
    if tp is str:
        if not isinstance(data, str):
            raise _fail(where, "a string", data)
        return data
    raise TypeError(f"{where}: no reader for {tp!r}")


def path_key(key: object) -> str:
    """A key as the error path shows it: itself when plain, else its repr (one line)."""
    text = str(key)
    return text if text.isidentifier() else repr(text)[:60]


def _is_json_alias(tp: object) -> bool:
    # `JSONValue` is a string alias; get_type_hints leaves forward references of it.
    return isinstance(tp, typing.ForwardRef) and tp.__forward_arg__ == "JSONValue"


def _json_value(data: object, where: str, depth: int) -> JSONValue:
    if depth > MAX_DEPTH:
        raise RecordError(f"{where}: nested more than {MAX_DEPTH} levels deep")
    if isinstance(data, dict):
        return {
            str(k): _json_value(v, f"{where}.{path_key(k)}", depth + 1) for k, v in data.items()
        }
    if isinstance(data, list):
        return [_json_value(v, f"{where}[{i}]", depth + 1) for i, v in enumerate(data)]
    if data is None or isinstance(data, bool | int | str):
        return data
    if isinstance(data, float):
        return data if math.isfinite(data) else None
    raise _fail(where, "a JSON value", data)


def as_facts(data: Mapping[str, object], where: str = "$") -> dict[str, JSONValue]:
    """A mapping of descriptive facts, checked to be JSON values (tuples become lists)."""
    return {str(k): _json_value(_listed(v), f"{where}.{k}", 1) for k, v in data.items()}


def _listed(value: object) -> object:
    if isinstance(value, tuple):
        return [_listed(v) for v in value]
    if isinstance(value, Mapping):
        return {k: _listed(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_listed(v) for v in value]
    return value


def to_json_object(value: object) -> dict[str, JSONValue]:
    """A record as a JSON object (`to_json` of a dataclass always is one)."""
    found = to_json(value)
    if not isinstance(found, dict):
        raise TypeError(f"not a record: {type(value).__name__}")
    return found
