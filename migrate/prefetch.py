"""An iterator read ahead on a thread of its own, so that two slow sources (v1's keys, v2's
legacy ids) are fetched at once rather than in turn."""

from __future__ import annotations

import queue
import threading
from collections.abc import Generator, Iterator
from typing import TypeVar

Item = TypeVar("Item")
_END = object()


def prefetched(source: Iterator[Item], depth: int = 2) -> Generator[Item, None, None]:
    """`source`'s items, up to `depth` of them fetched ahead; its exception is raised here. Close
    the returned generator (or exhaust it) to stop the thread."""
    ahead: queue.Queue[object] = queue.Queue(maxsize=depth)
    stop = threading.Event()

    def fill() -> None:
        try:
            for item in source:
                while not stop.is_set():
                    try:
                        ahead.put(item, timeout=0.1)
                        break
                    except queue.Full:
                        continue
                if stop.is_set():
                    return
            ahead.put(_END)
        except BaseException as exc:  # noqa: BLE001 - handed to the reader, who raises it
            ahead.put(exc)

    thread = threading.Thread(target=fill, name="prefetch", daemon=True)
    thread.start()
    try:
        while True:
            item = ahead.get()
            if item is _END:
                return
            if isinstance(item, BaseException):
                raise item
            yield item  # type: ignore[misc]
    finally:
        stop.set()
        thread.join(timeout=5)
