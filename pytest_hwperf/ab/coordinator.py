"""The head's side of a same-run A/B run: where the two sessions meet, and the rounds.

The head session serves one connection on 127.0.0.1 (`multiprocessing.connection`,
authenticated with a key made for the run). A reader thread turns what the base sends
into events on a queue; the head's main thread waits on that queue, blocked (never
spinning), and always with a time limit, so nothing the base does or fails to do can
hang the head:

- at a measurement, `meet(key)` waits for the base to arrive at the same one. It comes
  back with a `Meeting`, or with the one line saying why the measurement cannot be
  compared: the test is not at REF (`new at head, not compared`), it failed or was
  skipped there, the base's run ended or failed (`REF run failed: ...`), or the base did
  not arrive within the limit (then it is given up for the rest of the session).
- both sessions run the tests in the same (the head's) order, so a base that arrives
  at a later test has passed this one, and one that arrives at an earlier test or at
  another measurement of this test (measured in another order at REF) is released to go
  on alone: a test or a measurement that exists on one side only cannot deadlock either.
- `Meeting.rounds` takes turns, head then base then base then head (ABBA: a drift in
  time favours neither side), the side not measuring blocked until its turn.
"""

from __future__ import annotations

import contextlib
import os
import queue
import threading
import time
from collections import deque
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from multiprocessing.connection import Client, Connection, Listener

from pytest_hwperf.ab.protocol import (
    MAX_MESSAGE_BYTES,
    Key,
    Message,
    ProtocolError,
    decode,
    encode,
    key_fields,
    key_of,
)
from pytest_hwperf.records.codec import RecordError, from_json
from pytest_hwperf.records.types import JSONValue, RoundRecord

__all__ = ["NEW_AT_HEAD", "Coordinator", "Meeting", "Unpaired"]

NEW_AT_HEAD = "new at head, not compared"
# How long the head waits for the base's exit status once its connection closed: the
# status (and its log) says why better than the closed connection does.
_EXIT_GRACE_S = 10.0


class Unpaired(Exception):
    """A measurement the base could not be paired with; `why` is its one line."""

    def __init__(self, why: str) -> None:
        super().__init__(why)
        self.why = why


@dataclass(frozen=True)
class _Gone:
    """The base's connection closed (`exit_reason` None) or its process ended."""

    exit_reason: str | None


_TIMEOUT = object()


class Coordinator:
    """The head's end of the A/B connection; used from the head's main thread only
    (the reader and the accepting thread touch nothing but the queue)."""

    def __init__(self, *, wait_s: float) -> None:
        self.authkey = os.urandom(32)
        self._listener = Listener(("127.0.0.1", 0), authkey=self.authkey)
        host, port = self._listener.address
        self.address = f"{host}:{port}"
        self._plan: list[str] | None = None  # the tests, once the head has collected
        self._order: dict[str, int] = {}
        self._plan_lock = threading.Lock()  # the plan is sent once, by whoever is last
        self._send_lock = threading.Lock()
        self.wait_s = wait_s
        self._inbox: queue.Queue[Message | _Gone] = queue.Queue()
        self._pending: deque[Message] = deque()
        self._conn: Connection | None = None
        self._closed = False
        self.collected: frozenset[str] | None = None
        self.done: dict[str, tuple[str, str]] = {}  # test -> (outcome, its one line)
        self.collect_errors: dict[str, str] = {}  # file -> why it could not be collected
        self._released: set[Key] = set()
        self._progress = -1  # the furthest test (by index) the base was seen at
        self.gone: str | None = None  # why the base is gone, once it is
        self._connection_closed = False
        self._process_watched = False
        self._exit_reason: str | None = None
        self.on_give_up: Callable[[], object] = lambda: None  # ends the base process

    # -- threads ----------------------------------------------------------------------

    def start(self) -> None:
        threading.Thread(target=self._serve, name="hwperf-ab-accept", daemon=True).start()

    def _serve(self) -> None:
        while True:
            try:
                conn = self._listener.accept()
            except Exception as exc:  # a stranger with the wrong key, or closed
                if self._closed:
                    return
                if isinstance(exc, OSError):
                    self._inbox.put(_Gone(f"the connection could not be accepted: {exc}"))
                    return
                continue
            if self._closed:
                conn.close()
                return
            break
        with self._plan_lock:
            self._conn = conn
            if self._plan is not None:
                self._send("plan", ids=list(self._plan))
        while True:
            try:
                data = conn.recv_bytes(MAX_MESSAGE_BYTES)
            except (EOFError, OSError):
                self._inbox.put(_Gone(None))
                return
            try:
                self._inbox.put(decode(data))
            except ProtocolError as exc:
                self._inbox.put(_Gone(f"it sent a message the head cannot read ({exc})"))
                return

    def process_ended(self, reason: str) -> None:
        """The base process ended, with `reason` (its exit status and last error line);
        called from the thread that waits for it."""
        self._inbox.put(_Gone(reason))

    def watching_process(self) -> None:
        """A thread will report the base process's end (`process_ended`)."""
        self._process_watched = True

    def set_plan(self, order: Sequence[str]) -> None:
        """The head's perf tests, in the order it runs them (sent to the base once it has
        connected)."""
        self._order = {test: index for index, test in enumerate(order)}
        with self._plan_lock:
            self._plan = list(order)
            if self._conn is not None:
                self._send("plan", ids=list(self._plan))

    # -- sending and receiving --------------------------------------------------------

    def _send(self, kind: str, **fields: JSONValue) -> None:
        conn = self._conn
        if conn is None or self._connection_closed:
            return
        try:
            with self._send_lock:  # the plan may go out from the accepting thread
                conn.send_bytes(encode(kind, **fields))
        except (OSError, ValueError):
            self._connection_closed = True

    def _absorb(self, item: Message | _Gone) -> Message | None:
        """Book-keeping of what the base says; the message, or None when it was only
        book-keeping or the base is gone."""
        if isinstance(item, _Gone):
            if item.exit_reason is None:  # the connection closed: nothing more will come
                self._connection_closed = True
                if self._exit_reason is not None:
                    self.gone = self.gone or self._exit_reason
                elif not self._process_watched:
                    self.gone = self.gone or "its session closed the connection"
            elif self._conn is not None and not self._connection_closed:
                # The process ended; what it sent before may still be unread: the
                # reason counts once the connection has closed.
                self._exit_reason = item.exit_reason
            else:
                self.gone = self.gone or item.exit_reason
            return None
        try:
            if item.kind == "collected":
                self.collected = frozenset(item.texts("ids"))
            elif item.kind == "error":
                self.collect_errors[item.text("path")] = item.text("reason")
            elif item.kind == "done":
                test = item.text("test")
                self.done[test] = (item.text("outcome"), item.text("reason"))
                self._progress = max(self._progress, self._order.get(test, -1))
            elif item.kind == "ready":
                self._progress = max(self._progress, self._order.get(key_of(item).test, -1))
                return item
            else:
                return item
        except ProtocolError:
            return None
        return None

    def _next(self, deadline: float) -> Message | object | None:
        """The next message to act on; None after mere book-keeping; `_TIMEOUT` at the
        deadline."""
        if self.gone is not None:
            self._drain()  # what the base said before it went still counts
        if self._pending:
            return self._pending.popleft()
        if self.gone is not None:
            return _TIMEOUT
        remaining = deadline - time.monotonic()
        if self._connection_closed and self._process_watched:
            # The exit status follows the closed connection; wait for it, a little.
            remaining = min(remaining, _EXIT_GRACE_S)
        if remaining <= 0:
            return _TIMEOUT
        try:
            item = self._inbox.get(timeout=remaining)
        except queue.Empty:
            if self._connection_closed and self.gone is None:
                self.gone = "its session closed the connection"
                return None
            return _TIMEOUT
        return self._absorb(item)

    def _drain(self) -> None:
        """Take in what has arrived, without waiting."""
        while True:
            try:
                item = self._inbox.get_nowait()
            except queue.Empty:
                return
            found = self._absorb(item)
            if found is not None:
                self._pending.append(found)

    # -- meeting ----------------------------------------------------------------------

    def _why_not(self, key: Key, index: int) -> str | None:
        """Why `key` cannot be compared, as far as is known now; None: wait on."""
        if self.gone is not None:
            self._drain()  # a test the base finished before it went is known as such
        if key in self._released:
            return "not compared: measured in another order at REF"
        if self.collected is not None and key.test not in self.collected:
            path = key.test.split("::", 1)[0]
            if path in self.collect_errors:
                return f"failed at REF: {self.collect_errors[path]}"
            return NEW_AT_HEAD
        if key.test in self.done:
            outcome, reason = self.done[key.test]
            if outcome == "failed":
                return f"failed at REF: {reason}"
            if outcome == "skipped":
                return f"skipped at REF: {reason}"
            return NEW_AT_HEAD  # the test ran at REF without this measurement
        if self._progress > index:
            return "not compared: the test did not run at REF"
        if self.gone is not None:
            return f"REF run failed: {self.gone}"
        return None

    def _release(self, key: Key) -> None:
        self._released.add(key)
        self._send("release", **key_fields(key))

    def give_up(self, reason: str) -> None:
        """Stop waiting for the base for the rest of the session, and end it."""
        self.gone = self.gone or reason
        self.on_give_up()

    def meet(self, key: Key) -> Meeting:
        """Wait until the base is at `key`; raises `Unpaired` with the line that says why
        it will not be."""
        index = self._order.get(key.test)
        if index is None:
            raise Unpaired("not compared: the test was not planned for the REF run")
        deadline = time.monotonic() + self.wait_s
        while True:
            why = self._why_not(key, index)
            if why is not None:
                raise Unpaired(why)
            event = self._next(deadline)
            if event is _TIMEOUT:
                if self.gone is None:
                    self.give_up(
                        f"it did not reach {key.describe()} within {self.wait_s:g} s"
                        " (given up for the rest of the session)"
                    )
                continue
            if not isinstance(event, Message) or event.kind != "ready":
                continue  # book-keeping, or a stale message
            try:
                other = key_of(event)
            except ProtocolError:
                continue
            if other == key:
                return Meeting(self, key)
            if self._order.get(other.test, -1) > index:
                self._pending.appendleft(event)  # for a later measurement of the head
            else:
                self._release(other)  # an earlier test, or measured in another order

    def test_over(self, test: str) -> None:
        """The head finished `test`: a base waiting at it, or at an earlier one, goes on."""
        index = self._order.get(test)
        if index is None:
            return
        self._drain()
        kept: deque[Message] = deque()
        for message in self._pending:
            try:
                waiting = key_of(message) if message.kind == "ready" else None
            except ProtocolError:
                waiting = None
            if waiting is not None and self._order.get(waiting.test, -1) <= index:
                self._release(waiting)
            else:
                kept.append(message)
        self._pending = kept

    # -- the rounds -------------------------------------------------------------------

    def _base_round(self, key: Key, number: int) -> RoundRecord:
        self._send("turn", i=number)
        deadline = time.monotonic() + self.wait_s
        while True:
            event = self._next(deadline)
            if event is _TIMEOUT:
                if self.gone is None:
                    self.give_up(
                        f"its round {number + 1} of {key.describe()} did not come within"
                        f" {self.wait_s:g} s (given up for the rest of the session)"
                    )
                raise Unpaired(f"REF run failed: {self.gone}")
            if not isinstance(event, Message):
                continue
            if event.kind == "round" and event.fields.get("i") == number:
                try:
                    return from_json(RoundRecord, event.fields.get("figures"), "round")
                except RecordError as exc:
                    raise Unpaired(f"REF run failed: its round could not be read ({exc})") from None
            if event.kind == "ready":
                # The base went on without this pairing (it stopped waiting).
                self._pending.appendleft(event)
                raise Unpaired("not compared: the REF run went on before the rounds ended")

    def finish(self) -> None:
        """The head session is ending: the base stops waiting."""
        self._send("finish")

    def close(self) -> None:
        self._closed = True
        if self._conn is None:
            # Wake the accepting thread with a connection of our own.
            with contextlib.suppress(Exception):
                Client(self._listener.address, authkey=self.authkey).close()
        with contextlib.suppress(Exception):
            self._listener.close()
        if self._conn is not None:
            with contextlib.suppress(Exception):
                self._conn.close()


class Meeting:
    """The head and the base at the same measurement; the base waits for `rounds`."""

    def __init__(self, coordinator: Coordinator, key: Key) -> None:
        self._coordinator = coordinator
        self.key = key
        self._over = False

    def rounds(
        self,
        count: int,
        head_round: Callable[[int], RoundRecord],
        policy: dict[str, JSONValue],
        *,
        more: Callable[[list[RoundRecord], list[RoundRecord]], bool] | None = None,
        most: int = 0,
        pause: Callable[[list[RoundRecord], list[RoundRecord]], object] | None = None,
    ) -> tuple[list[RoundRecord], list[RoundRecord]]:
        """`count` rounds a side, alternating head, base, base, head, ...: the head's
        rounds and the base's. Then, while `more(head, base)` says so, more rounds, up to
        `most` a side in all; `pause(head, base)` is called before each pair after the
        first (it decides whether to wait). Raises
        `Unpaired` when the base fails to take its turn; whatever happens, the base is
        told the pairing is over."""
        coordinator = self._coordinator
        head: list[RoundRecord] = []
        base: list[RoundRecord] = []
        coordinator._send("go", rounds=count, policy=policy, **key_fields(self.key))
        try:
            number = 0
            while number < count or (number < most and more is not None and more(head, base)):
                if number > 0 and pause is not None:
                    pause(head, base)
                if number % 2 == 0:
                    head.append(head_round(number))
                    base.append(coordinator._base_round(self.key, number))
                else:
                    base.append(coordinator._base_round(self.key, number))
                    head.append(head_round(number))
                number += 1
        finally:
            self.release()
        return head, base

    def release(self) -> None:
        """The pairing is over (or never started): the base goes on."""
        if not self._over:
            self._over = True
            self._coordinator._send("end", **key_fields(self.key))
