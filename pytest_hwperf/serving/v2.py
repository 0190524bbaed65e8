"""A client for the V2 (Open Inference Protocol) REST API that MLServer serves.

One :class:`V2Client` holds one persistent HTTP/1.1 keep-alive connection
(:class:`http.client.HTTPConnection`), so a load loop gives each of its threads its own
client and every request after the first reuses a warm TCP connection.

- ``POST /v2/models/<model>/infer`` with ``{"inputs": [{"name", "shape", "datatype",
  "data"}]}``; the answer's ``outputs`` become numpy arrays of their ``shape``.
- Datatypes both ways: BOOL, UINT8/16/32/64, INT8/16/32/64, FP16, FP32, FP64, and BYTES
  for arrays of ``str`` or ``bytes`` (bytes must be UTF-8: JSON carries text). BYTES
  outputs come back as object arrays of ``str``.
- Errors are :class:`RequestError`, whose ``str`` is one line: a non-200 answer gives
  its status and the JSON ``"error"`` field (MLServer's form) or the body's first 200
  characters; a refused or reset connection gives ``status`` None; no data from the
  server for ``timeout_s`` (connecting, or any one read) gives :class:`RequestTimeout`;
  a malformed answer (not HTTP, not JSON, outputs whose data do not fill their shape, a
  body over ``max_body_bytes``) gives a ``RequestError`` too, never another exception.
- A request is never sent twice, with one exception: the server may close an idle
  keep-alive connection (uvicorn, under MLServer, does after 5 s) just as a request is
  written to it. A reused connection that is readable before a request (the server's
  end-of-file) is replaced first; one that fails with a reset or an empty answer is
  replaced and the request sent once more on the fresh connection.

JSON goes through ``orjson`` when it is importable (MLServer installs it): it writes a
numpy array without making Python floats first (a 32 x 512 float32 batch in well
under a millisecond). Otherwise the standard ``json`` module is used. numpy is imported only when a
request is encoded or an answer decoded.
"""

from __future__ import annotations

import http.client
import json
import math
import select
import socket
from collections.abc import Mapping
from types import TracebackType
from typing import TYPE_CHECKING, Any
from urllib.parse import quote

if TYPE_CHECKING:
    import numpy as np

try:
    import orjson

    _ORJSON = True
except ImportError:  # pragma: no cover - MLServer installs orjson
    _ORJSON = False

__all__ = [
    "MAX_BODY_BYTES",
    "RequestError",
    "RequestTimeout",
    "V2Client",
    "decode_response",
    "encode_request",
]

MAX_BODY_BYTES = 256 * 1024 * 1024  # a response larger than this is refused
_MESSAGE_CHARS = 200
_MAX_DEPTH = 32  # nesting of "data" lists

# V2 datatype -> numpy dtype name (BYTES is handled apart).
_DTYPES = {
    "BOOL": "bool",
    "UINT8": "uint8",
    "UINT16": "uint16",
    "UINT32": "uint32",
    "UINT64": "uint64",
    "INT8": "int8",
    "INT16": "int16",
    "INT32": "int32",
    "INT64": "int64",
    "FP16": "float16",
    "FP32": "float32",
    "FP64": "float64",
}
_DATATYPES = {dtype: datatype for datatype, dtype in _DTYPES.items()}


class RequestError(Exception):
    """A request that got no valid answer. ``str()`` is one line: ``HTTP <status>:
    <message>`` when the server answered with an error status, else the message."""

    def __init__(self, status: int | None, message: str) -> None:
        self.status = status
        self.message = _one_line(message)
        super().__init__(self.status, self.message)

    def __str__(self) -> str:
        return self.message if self.status is None else f"HTTP {self.status}: {self.message}"


class RequestTimeout(RequestError):
    """The server sent nothing for the client's ``timeout_s`` (``status`` is None)."""


def _one_line(text: str, limit: int = 2 * _MESSAGE_CHARS) -> str:
    """Text on one line: whitespace runs and control characters become one space."""
    cleaned = "".join(c if c.isprintable() else " " for c in text)
    line = " ".join(cleaned.split())
    return line if len(line) <= limit else line[: limit - 3] + "..."


# --- encoding ----------------------------------------------------------------------


def encode_request(inputs: Any) -> bytes:
    """The JSON body of an infer request.

    ``inputs`` is one array (a numpy array, a CPU torch tensor or anything
    ``numpy.asarray`` takes, named ``input-0``), a mapping of input name to array, or a
    list or tuple of arrays (named ``input-0``, ``input-1``, ...). Raises ValueError,
    with a one-line message, for an input JSON cannot carry: no inputs, a name that is
    not a non-empty string, a dtype outside the V2 datatypes, NaN or infinity, bytes
    that are not UTF-8.
    """
    if isinstance(inputs, Mapping):
        named = list(inputs.items())
        for name, _ in named:
            if not isinstance(name, str) or not name:
                raise ValueError(f"input names must be non-empty strings, got {name!r}")
    elif isinstance(inputs, list | tuple):
        named = [(f"input-{i}", value) for i, value in enumerate(inputs)]
    else:
        named = [("input-0", inputs)]
    if not named:
        raise ValueError("no inputs to send")
    tensors = [_tensor(name, value) for name, value in named]
    document = {"inputs": tensors}
    if _ORJSON:
        return orjson.dumps(document, option=orjson.OPT_SERIALIZE_NUMPY)
    for tensor in tensors:
        data = tensor["data"]
        if not isinstance(data, list):
            tensor["data"] = data.tolist()
    return json.dumps(document, separators=(",", ":"), allow_nan=False).encode()


def _tensor(name: str, value: Any) -> dict[str, Any]:
    """One input as a V2 tensor; its data a flat native-endian array, or a list of str."""
    import numpy as np

    array = _as_array(name, value)
    shape = [int(n) for n in array.shape]
    kind = array.dtype.kind
    if kind in "USO":
        return {"name": name, "shape": shape, "datatype": "BYTES", "data": _texts(name, array)}
    datatype = _DATATYPES.get(array.dtype.name)
    if datatype is None:
        raise ValueError(
            f"input {name!r}: dtype {array.dtype} has no V2 datatype"
            " (bool, int8-64, uint8-64, float16/32/64, str or bytes)"
        )
    if kind == "f" and array.size and not np.isfinite(array).all():
        raise ValueError(f"input {name!r} holds NaN or infinity, which JSON cannot carry")
    flat = np.ascontiguousarray(array).reshape(-1)
    if not flat.dtype.isnative:
        flat = flat.astype(flat.dtype.newbyteorder("="))
    return {"name": name, "shape": shape, "datatype": datatype, "data": flat}


def _as_array(name: str, value: Any) -> np.ndarray:
    import numpy as np

    if hasattr(value, "detach") and hasattr(value, "cpu") and hasattr(value, "numpy"):
        try:  # a torch tensor: off the autograd graph and onto the CPU first
            value = value.detach().cpu().numpy()
        except (TypeError, RuntimeError) as exc:  # bfloat16 has no numpy dtype
            raise ValueError(f"input {name!r}: cannot convert the tensor to numpy: {exc}") from None
    try:
        return np.asarray(value)
    except (TypeError, ValueError) as exc:
        raise ValueError(f"input {name!r} is not an array: {_one_line(str(exc))}") from None


def _texts(name: str, array: np.ndarray) -> list[str]:
    texts: list[str] = []
    for item in array.reshape(-1).tolist():
        if isinstance(item, bytes):
            try:
                item = item.decode("utf-8")
            except UnicodeDecodeError:
                raise ValueError(f"input {name!r} holds bytes that are not UTF-8") from None
        if not isinstance(item, str):
            raise ValueError(
                f"input {name!r}: an object array must hold str or bytes, got {type(item).__name__}"
            )
        texts.append(item)
    return texts


# --- decoding ----------------------------------------------------------------------


def decode_response(body: bytes) -> np.ndarray | dict[str, np.ndarray]:
    """The outputs of an infer response: the array when there is one output, else a
    dict of output name to array. Raises RequestError (status None) when ``body`` is not
    a valid V2 response."""
    document = _load_json(body)
    if not isinstance(document, dict):
        raise RequestError(None, "bad response: not a JSON object")
    outputs = document.get("outputs")
    if not isinstance(outputs, list):
        raise RequestError(None, "bad response: no 'outputs' list")
    arrays: dict[str, np.ndarray] = {}
    for index, output in enumerate(outputs):
        if not isinstance(output, dict):
            raise RequestError(None, f"bad response: output {index} is not an object")
        name = output.get("name")
        if not isinstance(name, str):
            raise RequestError(None, f"bad response: output {index} has no name")
        if name in arrays:
            raise RequestError(None, f"bad response: output {name!r} appears twice")
        arrays[name] = _output_array(name, output)
    if len(arrays) == 1:
        return next(iter(arrays.values()))
    return arrays


def _load_json(body: bytes) -> Any:
    try:
        if _ORJSON:
            return orjson.loads(body)
        return json.loads(body)
    except (ValueError, TypeError, RecursionError):
        raise RequestError(None, f"bad response: not JSON: {_preview(body)}") from None


def _output_array(name: str, output: Mapping[str, Any]) -> np.ndarray:
    """One output's array, checked against its shape and datatype."""
    import numpy as np

    shape = output.get("shape")
    datatype = output.get("datatype")
    data = output.get("data")
    where = f"bad response: output {name!r}"
    if (
        not isinstance(shape, list)
        or len(shape) > _MAX_DEPTH
        or not all(isinstance(n, int) and not isinstance(n, bool) and n >= 0 for n in shape)
    ):
        raise RequestError(None, f"{where} has an invalid shape {_preview(shape)}")
    if not isinstance(datatype, str) or (datatype != "BYTES" and datatype not in _DTYPES):
        raise RequestError(None, f"{where} has an unknown datatype {_preview(datatype)}")
    if not isinstance(data, list):
        raise RequestError(None, f"{where} has no 'data' list")
    expected = math.prod(shape)
    try:
        with np.errstate(all="ignore"):  # FP16 overflow to inf is the value's meaning
            flat = _texts_array(data) if datatype == "BYTES" else _numbers(data, datatype)
    except (ValueError, TypeError, OverflowError, RecursionError):
        flat = None
    if flat is None:
        raise RequestError(None, f"{where}: data do not match datatype {datatype}")
    if flat.size != expected:
        raise RequestError(
            None, f"{where} has {flat.size} values for shape {shape} ({expected} expected)"
        )
    try:
        return flat.reshape(shape)
    except (ValueError, OverflowError):  # an empty array with a dimension numpy refuses
        raise RequestError(None, f"{where} has an invalid shape {_preview(shape)}") from None


def _numbers(data: list[Any], datatype: str) -> np.ndarray | None:
    """A flat array of the datatype from JSON numbers, or None when they do not fit."""
    import numpy as np

    dtype = np.dtype(_DTYPES[datatype])
    raw = np.asarray(data)
    if raw.size == 0:
        return np.zeros(0, dtype=dtype)
    kind = raw.dtype.kind
    if datatype == "BOOL":
        ok = kind == "b"
    elif dtype.kind in "iu":
        info = np.iinfo(dtype)
        if kind not in "iu":  # mixed signs past int64 come as floats: check exact ints
            items = np.array(data, dtype=object).reshape(-1).tolist()
            if not all(isinstance(x, int) and not isinstance(x, bool) for x in items):
                return None
            raw = np.array(items, dtype=object)
        ok = int(raw.min()) >= info.min and int(raw.max()) <= info.max
    elif kind == "O":  # null in a float array is NaN (orjson writes NaN as null)
        items = raw.reshape(-1).tolist()
        if not all(
            x is None or (isinstance(x, int | float) and not isinstance(x, bool)) for x in items
        ):
            return None
        raw = np.array([math.nan if x is None else x for x in items], dtype=np.float64)
        ok = True
    else:
        ok = kind in "iuf"
    return raw.astype(dtype).reshape(-1) if ok else None


def _texts_array(data: list[Any]) -> np.ndarray | None:
    import numpy as np

    texts: list[str] = []
    stack: list[tuple[list[Any], int, int]] = [(data, 0, 0)]  # (list, next index, depth)
    while stack:  # depth-first, so the texts stay in row-major order
        items, start, depth = stack.pop()
        for position in range(start, len(items)):
            item = items[position]
            if isinstance(item, list):
                if depth >= _MAX_DEPTH:
                    return None
                stack.append((items, position + 1, depth))
                stack.append((item, 0, depth + 1))
                break
            if not isinstance(item, str):
                return None
            texts.append(item)
    array = np.empty(len(texts), dtype=object)
    array[:] = texts
    return array


def _preview(value: object) -> str:
    if isinstance(value, bytes):
        text = value[: 4 * _MESSAGE_CHARS].decode("utf-8", "replace")
    else:
        text = repr(value)[: 4 * _MESSAGE_CHARS]
    text = _one_line(text, _MESSAGE_CHARS)
    return text or "(empty)"


def _error_message(body: bytes, reason: str) -> str:
    """What an error answer says: MLServer's JSON ``"error"``, else the body's start."""
    try:
        document = orjson.loads(body) if _ORJSON else json.loads(body)
    except (ValueError, TypeError, RecursionError):
        document = None
    if isinstance(document, dict) and isinstance(document.get("error"), str):
        return _one_line(document["error"], 2 * _MESSAGE_CHARS)
    return _preview(body) if body else (reason or "(empty body)")


# --- the client --------------------------------------------------------------------


class V2Client:
    """V2 REST requests to one model on one server, over one keep-alive connection.

    Not thread-safe: give each thread its own client. ``timeout_s`` bounds connecting
    and each wait for data from the server. Usable as a context manager (closes).
    """

    def __init__(
        self,
        host: str,
        port: int,
        model: str,
        *,
        timeout_s: float,
        max_body_bytes: int = MAX_BODY_BYTES,
    ) -> None:
        if not timeout_s > 0:
            raise ValueError(f"timeout_s must be positive, got {timeout_s!r}")
        self.host = host
        self.port = port
        self.model = model
        self.timeout_s = timeout_s
        self.max_body_bytes = max_body_bytes
        self.infer_path = f"/v2/models/{quote(model, safe='')}/infer"
        self._connection: http.client.HTTPConnection | None = None
        self._reused = False  # the connection has carried a complete exchange

    def infer(self, inputs: Any) -> np.ndarray | dict[str, np.ndarray]:
        """One inference: ``inputs`` as for :func:`encode_request`, the outputs as
        :func:`decode_response` gives them. Raises RequestError or ValueError (inputs)."""
        return decode_response(self.post_infer(encode_request(inputs)))

    def post_infer(self, body: bytes) -> bytes:
        """POST a pre-encoded infer body; the response body of a 200 answer."""
        status, data, reason = self._exchange("POST", self.infer_path, body)
        if status != 200:
            raise RequestError(status, _error_message(data, reason))
        return data

    def get(self, path: str) -> int:
        """GET ``path`` (for instance ``/v2/health/ready``); the status code."""
        status, _, _ = self._exchange("GET", path, None)
        return status

    def close(self) -> None:
        """Close the connection; the next request opens a new one."""
        connection, self._connection = self._connection, None
        self._reused = False
        if connection is not None:
            connection.close()

    def __enter__(self) -> V2Client:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()

    # --- one exchange --------------------------------------------------------------

    def _exchange(self, method: str, path: str, body: bytes | None) -> tuple[int, bytes, str]:
        headers = {"Content-Type": "application/json"} if body is not None else {}
        for attempt in range(2):
            connection, reused = self._connect()
            try:
                try:
                    connection.request(method, path, body=body, headers=headers)
                    response = connection.getresponse()
                except (ConnectionResetError, BrokenPipeError, http.client.RemoteDisconnected):
                    # Nothing of an answer came: on a reused connection, the server
                    # closed it while idle as the request went out. Once more, fresh.
                    if reused and attempt == 0:
                        self.close()
                        continue
                    raise
                status, reason = response.status, response.reason
                data = self._read_body(response)
            except RequestError:  # a body over the cap: its unread rest spoils the connection
                self.close()
                raise
            except TimeoutError:
                self.close()
                raise RequestTimeout(
                    None, f"{self._where()}: no response within {self.timeout_s:g} s"
                ) from None
            except (OSError, http.client.HTTPException) as exc:
                self.close()
                raise RequestError(None, f"{self._where()}: {_describe(exc)}") from None
            if response.will_close:
                self.close()
            else:
                self._reused = True
            return status, data, reason
        raise AssertionError("unreachable")  # pragma: no cover

    def _connect(self) -> tuple[http.client.HTTPConnection, bool]:
        """The open connection and whether it carried an exchange before; a reused one
        the server closed while idle is replaced first."""
        if self._connection is not None and self._reused and _dropped(self._connection):
            self.close()
        if self._connection is not None:
            return self._connection, self._reused
        connection = http.client.HTTPConnection(self.host, self.port, timeout=self.timeout_s)
        try:
            connection.connect()
        except TimeoutError:
            connection.close()
            raise RequestTimeout(
                None, f"cannot connect to {self.host}:{self.port} within {self.timeout_s:g} s"
            ) from None
        except OSError as exc:
            connection.close()
            raise RequestError(
                None, f"cannot connect to {self.host}:{self.port}: {_describe(exc)}"
            ) from None
        if connection.sock is not None:  # small requests go out at once, not after an ACK
            connection.sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        self._connection, self._reused = connection, False
        return connection, False

    def _read_body(self, response: http.client.HTTPResponse) -> bytes:
        cap = self.max_body_bytes
        if response.length is not None and response.length > cap:
            raise RequestError(
                None,
                f"{self._where()}: a response body of {response.length} bytes is over the"
                f" cap of {cap} bytes",
            )
        if response.length is not None:
            return response.read()
        chunks: list[bytes] = []  # chunked or until close: read up to the cap
        size = 0
        while chunk := response.read(min(1 << 20, cap + 1 - size)):
            chunks.append(chunk)
            size += len(chunk)
            if size > cap:
                raise RequestError(
                    None, f"{self._where()}: a response body over the cap of {cap} bytes"
                )
        return b"".join(chunks)

    def _where(self) -> str:
        return f"{self.host}:{self.port}"


def _describe(exc: BaseException) -> str:
    if isinstance(exc, http.client.RemoteDisconnected):
        return "the server closed the connection without answering"
    if isinstance(exc, ConnectionRefusedError):
        return "connection refused"
    if isinstance(exc, ConnectionResetError):
        return "connection reset by the server"
    if isinstance(exc, http.client.IncompleteRead):
        return "the server closed the connection in the middle of its answer"
    if isinstance(exc, http.client.HTTPException):
        return f"malformed HTTP answer ({type(exc).__name__}: {_one_line(str(exc), 120)})"
    if isinstance(exc, OSError) and exc.strerror:
        return f"connection error: {exc.strerror}"
    return f"connection error: {_one_line(str(exc), 120) or type(exc).__name__}"


def _dropped(connection: http.client.HTTPConnection) -> bool:
    """Whether an idle connection was closed by the server: readable while no answer
    is due means end-of-file (or stray bytes, as bad)."""
    sock = connection.sock
    if sock is None:
        return True
    try:
        if hasattr(select, "poll"):
            poller = select.poll()
            poller.register(sock, select.POLLIN)
            return bool(poller.poll(0))
        return bool(select.select([sock], [], [], 0)[0])  # pragma: no cover - not Linux
    except (OSError, ValueError):
        return True
