"""Starting the disk write of a file's data as soon as it is written, so that its fsync is short.

Linux keeps written data in memory until a tenth of RAM is dirty or 30 s pass. A step that
writes a gigabyte and then calls fsync waits for the whole gigabyte at the end, while nothing
else is left to do. Asking the kernel to start
writing each range right after it is written (`sync_file_range` with SYNC_FILE_RANGE_WRITE, as
PostgreSQL's `*_flush_after` settings do) lets the disk work while the step computes; the final
fsync then waits only for the last range. On systems without `sync_file_range` this does
nothing, and the fsync waits as before.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import os
from collections.abc import Callable

SYNC_FILE_RANGE_WRITE = 2  # <fcntl.h>: start writing the dirty pages of the range, do not wait
EVERY_BYTES = 8 << 20


def _load() -> Callable[[int, int, int, int], int] | None:
    try:
        libc = ctypes.CDLL(ctypes.util.find_library("c"), use_errno=True)
        function = libc.sync_file_range
    except (OSError, AttributeError):
        return None
    function.argtypes = [ctypes.c_int, ctypes.c_longlong, ctypes.c_longlong, ctypes.c_uint]
    function.restype = ctypes.c_int
    return function


_SYNC_FILE_RANGE = _load()


def start_writeback(fd: int, offset: int, length: int) -> None:
    """Ask the kernel to start writing this range of the file to disk; return at once."""
    if _SYNC_FILE_RANGE is not None and length > 0:
        # A failure only means the final fsync does all the work: nothing to report.
        _SYNC_FILE_RANGE(fd, offset, length, SYNC_FILE_RANGE_WRITE)


class Writeback:
    """Follows what is appended to a file and starts its writeback every EVERY_BYTES."""

    def __init__(self, fd: int, every: int = EVERY_BYTES) -> None:
        self.fd = fd
        self.every = every
        self.position = os.lseek(fd, 0, os.SEEK_CUR)
        self._started = self.position  # everything before is the caller's own business

    def wrote(self, length: int) -> None:
        self.position += length
        if self.position - self._started >= self.every:
            start_writeback(self.fd, self._started, self.position - self._started)
            self._started = self.position
