"""The messages between the pool (parent) and a worker process.

Parent -> worker: an empty message means stop; otherwise a request id followed by the
pickled input. Worker -> parent: request id and kind, then a payload (pickled result,
traceback text, or pickled worker facts). Inputs are pickled with the standard pickle
(not through torch's shared-memory reducers).
"""

from __future__ import annotations

import pickle
import struct
from typing import Any

__all__ = [
    "ERROR",
    "NO_REQUEST",
    "OK",
    "READY",
    "REQUEST",
    "RESPONSE",
    "START_ERROR",
    "pickle_input",
]

REQUEST = struct.Struct("<q")
RESPONSE = struct.Struct("<qB")
OK, ERROR, READY, START_ERROR = 0, 1, 2, 3
NO_REQUEST = -1


def pickle_input(value: Any, index: int) -> bytes:
    """Input ``index`` as sent to a worker; TypeError when it cannot be pickled."""
    try:
        return pickle.dumps(value, protocol=pickle.HIGHEST_PROTOCOL)
    except Exception as exc:
        raise TypeError(f"input {index} ({type(value).__name__}) cannot be pickled: {exc}") from exc
