"""The plugin's own probing, shielded from the user's warning filters.

A project may run its tests with ``filterwarnings = error`` (or ``-W error``), and a
package it loads may install a legacy import finder on ``sys.meta_path`` (pygal does):
``importlib.util.find_spec`` then emits an ``ImportWarning`` for every module no other
finder knows, and the user's filter turns it into an exception. The plugin's probes
(``find_spec``, package metadata, imports of optional dependencies, threadpoolctl,
NVML) are not the user's code: what they warn about is noise that must cost neither a
hardware fact nor the session. :func:`quiet_probe` runs them with those categories
ignored. pytest-hwperf's own warnings (``HwperfWarning``, a ``UserWarning``) are not
among them: they stay subject to the user's filters, as documented.
"""

from __future__ import annotations

import threading
import warnings
from collections.abc import Iterator
from contextlib import contextmanager

__all__ = ["PROBE_WARNINGS", "quiet_probe"]

PROBE_WARNINGS: tuple[type[Warning], ...] = (
    ImportWarning,  # a legacy finder (find_module only) consulted by find_spec
    DeprecationWarning,  # an old API inside a dependency (pynvml, threadpoolctl, torch)
    PendingDeprecationWarning,
    FutureWarning,  # the deprecated `pynvml` package announcing itself
    RuntimeWarning,  # threadpoolctl on two OpenMP runtimes loaded at once
)


@contextmanager
def quiet_probe() -> Iterator[None]:
    """Ignore `PROBE_WARNINGS` for the block.

    Only on the main thread: ``warnings.catch_warnings`` saves and restores the
    process-wide filter list, which a block on another thread could restore over the
    main thread's own changes (pytest's per-test filters). Elsewhere the block runs as
    it is.
    """
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    with warnings.catch_warnings():
        for category in PROBE_WARNINGS:
            warnings.simplefilter("ignore", category)
        yield
