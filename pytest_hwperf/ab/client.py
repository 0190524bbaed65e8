"""The base's side of a same-run A/B run: the session rooted at the REF.

It connects to the head (the address on its command line, the key in its environment),
reads the plan (the head's tests, in the head's order), says which of them exist at REF,
and then, at each measurement, warms up, says it is ready and waits, blocked, for the
head: `go` (then it measures a round at each `turn` and sends its figures), or `release`
(not paired: it goes on). Every wait has a limit, and a head that goes away ends every
wait at once (the connection closes): the base never holds anything up.
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Mapping
from multiprocessing.connection import Client, Connection

from pytest_hwperf.ab.protocol import (
    MAX_MESSAGE_BYTES,
    Key,
    Message,
    ProtocolError,
    decode,
    encode,
    key_fields,
    key_of,
    parse_address,
)
from pytest_hwperf.records.codec import to_json
from pytest_hwperf.records.types import JSONValue, RoundRecord

__all__ = ["BaseRound", "PeerClient"]

# Measure round i with the head's round policy; the round's figures.
BaseRound = Callable[[int, Mapping[str, JSONValue]], RoundRecord]


class PeerClient:
    """The base session's connection to the head."""

    def __init__(self, address: str, authkey: bytes, *, wait_s: float) -> None:
        host, port = parse_address(address)
        self._conn: Connection = Client((host, port), authkey=authkey)
        self.wait_s = wait_s
        self.finished = False  # the head is gone, or ending: nothing more is paired

    def _send(self, kind: str, **fields: JSONValue) -> None:
        if self.finished:
            return
        try:
            self._conn.send_bytes(encode(kind, **fields))
        except (OSError, ValueError):
            self.finished = True

    def _receive(self, timeout_s: float) -> Message | None:
        """The next message; None at the time limit or when the head is gone."""
        if self.finished:
            return None
        try:
            if not self._conn.poll(timeout_s):
                return None
            message = decode(self._conn.recv_bytes(MAX_MESSAGE_BYTES))
        except (EOFError, OSError, ProtocolError):
            self.finished = True
            return None
        if message.kind == "finish":
            self.finished = True
            return None
        return message

    def plan(self) -> list[str] | None:
        """The head's tests, in its order; None when it did not say."""
        message = self._receive(self.wait_s)
        if message is None or message.kind != "plan":
            return None
        try:
            return message.texts("ids")
        except ProtocolError:
            return None

    def collected(self, ids: list[str]) -> None:
        self._send("collected", ids=list(ids))

    def error(self, path: str, reason: str) -> None:
        """A file that could not be collected at REF, and why (one line)."""
        self._send("error", path=path, reason=reason)

    def done(self, test: str, outcome: str, reason: str) -> None:
        self._send("done", test=test, outcome=outcome, reason=reason)

    def measure(self, key: Key, base_round: BaseRound) -> bool:
        """At measurement `key`, warmed up: wait for the head and measure the rounds it
        asks for. True when paired; False when released, given up or the head is gone."""
        if self.finished:
            return False
        self._send("ready", **key_fields(key))
        while True:
            message = self._receive(self.wait_s)
            if message is None:
                return False
            if message.kind in ("release", "end") and _about(message, key):
                return False
            if message.kind == "go" and _about(message, key):
                policy = message.fields.get("policy")
                return self._rounds(key, base_round, policy if isinstance(policy, dict) else {})
            # Anything else is stale (a release of a measurement already left): ignored.

    def _rounds(self, key: Key, base_round: BaseRound, policy: Mapping[str, JSONValue]) -> bool:
        while True:
            message = self._receive(self.wait_s)
            if message is None:
                return False
            if message.kind == "end" and _about(message, key):
                return True
            if message.kind == "turn":
                number = message.fields.get("i")
                if isinstance(number, int) and not isinstance(number, bool):
                    figures = base_round(number, policy)
                    self._send("round", i=number, figures=to_json(figures))

    def close(self) -> None:
        self.finished = True
        with contextlib.suppress(Exception):
            self._conn.close()


def _about(message: Message, key: Key) -> bool:
    try:
        return key_of(message) == key
    except ProtocolError:
        return False
