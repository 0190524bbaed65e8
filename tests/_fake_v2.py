"""A fake V2 inference server for the client and load-loop tests (stdlib only).

A ThreadingHTTPServer on 127.0.0.1, port 0, in a thread, speaking HTTP/1.1 keep-alive.
``POST /v2/models/<m>/infer`` echoes the request's inputs as outputs; ``GET`` answers
200. ``FakeV2.behaviour`` changes what one request gets: a function of the request's
number (1-based, over the server's life) and body that returns one of

- ``None``: the echo;
- ``(status, body)``: that answer with a Content-Length;
- ``Raw(bytes, close=True)``: those bytes written as they are (not even HTTP);
- ``DROP``: the connection closed without an answer;
- ``HANG``: no answer until the server stops.

``service_s`` sleeps before every answer; ``serial`` serves one request at a time (a
lock held over the sleep), like a one-worker server. Requests and connections are
counted.
"""

from __future__ import annotations

import json
import sys
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any


@dataclass(frozen=True)
class Raw:
    data: bytes
    close: bool = True


DROP = object()
HANG = object()
Behaviour = Callable[[int, bytes], Any]


def echo(body: bytes) -> bytes:
    request = json.loads(body)
    return json.dumps({"model_name": "tiny", "outputs": request["inputs"]}).encode()


class FakeV2:
    def __init__(self) -> None:
        self.behaviour: Behaviour = lambda n, body: None
        self.service_s = 0.0
        self.serial = False
        self.close_after_answer = False  # drop every connection once it has answered
        self.requests = 0
        self.connections = 0
        self.paths: list[str] = []
        self._count_lock = threading.Lock()
        self._serial_lock = threading.Lock()
        self.stopping = threading.Event()
        self.server = _Server(("127.0.0.1", 0), _handler(self))
        self.server.daemon_threads = True
        self.host, self.port = "127.0.0.1", self.server.server_address[1]
        self._thread = threading.Thread(target=self.server.serve_forever, daemon=True)

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        self.stopping.set()
        self.server.shutdown()
        self.server.server_close()
        self._thread.join()

    def count(self, path: str) -> int:
        with self._count_lock:
            self.requests += 1
            self.paths.append(path)
            return self.requests

    def connected(self) -> None:
        with self._count_lock:
            self.connections += 1

    def serve(self) -> Iterator[None]:
        if self.serial:
            with self._serial_lock:
                time.sleep(self.service_s)
                yield
        else:
            if self.service_s:
                time.sleep(self.service_s)
            yield


class _Server(ThreadingHTTPServer):
    def handle_error(self, request: Any, client_address: Any) -> None:
        if not isinstance(sys.exc_info()[1], OSError):  # a client gone is not news
            super().handle_error(request, client_address)


def _handler(fake: FakeV2) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"
        disable_nagle_algorithm = True  # headers and body go in separate writes

        def setup(self) -> None:
            super().setup()
            fake.connected()

        def log_message(self, format: str, *args: Any) -> None:
            pass

        def do_GET(self) -> None:
            fake.count(self.path)
            self._answer(200, b"{}")

        def do_POST(self) -> None:
            length = int(self.headers.get("Content-Length", "0"))
            body = self.rfile.read(length)
            n = fake.count(self.path)
            outcome = fake.behaviour(n, body)
            if outcome is DROP:
                self.close_connection = True
                return
            if outcome is HANG:
                fake.stopping.wait(30)
                self.close_connection = True
                return
            for _ in fake.serve():
                if isinstance(outcome, Raw):
                    self.wfile.write(outcome.data)
                    self.wfile.flush()
                    self.close_connection = outcome.close
                elif isinstance(outcome, tuple):
                    self._answer(*outcome)
                else:
                    self._answer(200, echo(body))

        def _answer(self, status: int, data: bytes) -> None:
            self.send_response(status)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)
            self.wfile.flush()
            if fake.close_after_answer:
                self.close_connection = True

    return Handler


@contextmanager
def fake_v2() -> Iterator[FakeV2]:
    server = FakeV2()
    server.start()
    try:
        yield server
    finally:
        server.stop()
