"""The messages between the head session (the working tree) and the base session (the
REF) of a same-run A/B run.

One `multiprocessing.connection` on 127.0.0.1, authenticated with a key made for the
run (handed to the base in its environment, never on its command line). Messages are
small JSON objects sent with `send_bytes`, never pickles: a round's figures, not its
samples. Every message has a type `t`:

base -> head
    hello       {pid}                          connected
    collected   {ids}                          the wanted tests found at REF
    error       {path, reason}                 a file could not be collected at REF
    ready       {test, name, device}           at a measurement, warmed up; waits
    round       {i, figures}                   the base's round i (a RoundRecord)
    done        {test, outcome, reason}        a test finished at REF (passed, failed,
                                               skipped; its one line)
head -> base
    plan        {ids}                          the tests to run, in the head's order
    go          {test, name, device, rounds, policy}   pair this measurement
    turn        {i}                            measure round i now
    end         {test, name, device}           the pairing is over
    release     {test, name, device}           not paired: go on alone
    finish      {}                             the head session is ending

Both sides run the tests in the same order, and every message that waits for the other
side names the measurement it is about, so a stale one is recognised and ignored.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import NamedTuple

from pytest_hwperf.records.types import JSONValue

__all__ = [
    "AUTHKEY_ENV",
    "Key",
    "Message",
    "ProtocolError",
    "decode",
    "encode",
    "key_of",
    "parse_address",
]

# The environment variable that hands the base session the connection's key (hex).
AUTHKEY_ENV = "HWPERF_AB_AUTHKEY"
# Messages are small; anything larger is not ours.
MAX_MESSAGE_BYTES = 1 << 20


class ProtocolError(ValueError):
    """A message that is not one of ours."""


class Key(NamedTuple):
    """A measurement: the test's node id, the measurement's name, its device."""

    test: str
    name: str
    device: str

    def describe(self) -> str:
        return f"{self.test}::{self.name}@{self.device}"


@dataclass(frozen=True)
class Message:
    kind: str
    fields: dict[str, JSONValue]

    def text(self, name: str) -> str:
        value = self.fields.get(name)
        if not isinstance(value, str):
            raise ProtocolError(f"{self.kind}: {name!r} is not a string")
        return value

    def number(self, name: str) -> int:
        value = self.fields.get(name)
        if isinstance(value, bool) or not isinstance(value, int):
            raise ProtocolError(f"{self.kind}: {name!r} is not an integer")
        return value

    def texts(self, name: str) -> list[str]:
        value = self.fields.get(name)
        if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
            raise ProtocolError(f"{self.kind}: {name!r} is not a list of strings")
        return [str(v) for v in value]


def encode(kind: str, **fields: JSONValue) -> bytes:
    return json.dumps({"t": kind, **fields}, separators=(",", ":")).encode()


def decode(data: bytes) -> Message:
    if len(data) > MAX_MESSAGE_BYTES:
        raise ProtocolError(f"a message of {len(data)} bytes")
    try:
        value = json.loads(data)
    except ValueError as exc:
        raise ProtocolError(f"not JSON: {exc}") from None
    if not isinstance(value, dict) or not isinstance(value.get("t"), str):
        raise ProtocolError("not a message object")
    kind = value.pop("t")
    return Message(kind, value)


def key_of(message: Message) -> Key:
    return Key(message.text("test"), message.text("name"), message.text("device"))


def key_fields(key: Key) -> dict[str, JSONValue]:
    return {"test": key.test, "name": key.name, "device": key.device}


def parse_address(raw: str) -> tuple[str, int]:
    """`127.0.0.1:40123` -> ("127.0.0.1", 40123); ValueError otherwise."""
    host, _, port = raw.rpartition(":")
    if not host or not port.isdigit() or not 0 < int(port) < 65536:
        raise ValueError(f"expected HOST:PORT, got {raw!r}")
    return host, int(port)
