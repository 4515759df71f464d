"""Last-resort cleanup when the terminal disappears (SIGHUP: the SSH session dropped).

A screen that has lost its terminal cannot shut down gracefully (its writes to the dead tty
block), so the hangup handler runs every registered cleanup (stop the engine, journaling
running steps as interrupted; stop the sandbox's servers) and exits the process at once.
"""

from __future__ import annotations

import os
import sys
import threading
from collections.abc import Callable

_lock = threading.Lock()
_cleanups: list[Callable[[], None]] = []


def register(cleanup: Callable[[], None]) -> Callable[[], None]:
    """Run `cleanup` on an emergency exit; returns a function that unregisters it."""
    with _lock:
        _cleanups.append(cleanup)

    def unregister() -> None:
        with _lock:
            if cleanup in _cleanups:
                _cleanups.remove(cleanup)

    return unregister


def emergency_exit(code: int) -> None:
    """Run the cleanups, newest first, and leave without waiting for anything else."""
    with _lock:
        cleanups = list(reversed(_cleanups))
        _cleanups.clear()
    for cleanup in cleanups:
        try:
            cleanup()
        except Exception as exc:  # one failing cleanup must not stop the others
            print(f"cockpit: cleanup failed: {exc}", file=sys.__stderr__)
    os._exit(code)
