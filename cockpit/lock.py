"""Exactly one process drives a run: an exclusive lock file beside the journal.

The lock is an `fcntl.flock` on `.cockpit/run.lock`, so the kernel releases it when the
holder dies, even by `kill -9`; the file's contents say who holds it, for the refusal
message another process prints.
"""

from __future__ import annotations

import fcntl
import json
import os
import socket
import time
from pathlib import Path
from typing import Any

from cockpit.journal import private_dir


class RunLocked(RuntimeError):
    """Another process drives this runbook's run."""

    def __init__(self, path: Path, holder: dict[str, Any]) -> None:
        self.path = path
        self.holder = holder
        who = holder.get("operator") or "unknown operator"
        pid = holder.get("pid", "?")
        host = holder.get("host", "?")
        since = holder.get("since")
        when = time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(since)) if since else "an unknown time"
        command = holder.get("command", "")
        super().__init__(
            f"another cockpit drives this run: process {pid} on {host} ({who}, since {when}"
            f"{', ' + command if command else ''}) holds the lock {path}; "
            "watch it with `cockpit status`, or stop that process first"
        )


class RunLock:
    """Held for the life of the driving process."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self._fd: int | None = None

    def acquire(self, operator: str, command: str) -> None:
        private_dir(self.path.parent)
        fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o600)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            holder = _read_holder(fd)
            os.close(fd)
            raise RunLocked(self.path, holder) from None
        info = {
            "pid": os.getpid(),
            "host": socket.gethostname(),
            "operator": operator,
            "since": time.time(),
            "command": command,
        }
        os.ftruncate(fd, 0)
        os.pwrite(fd, json.dumps(info).encode(), 0)
        self._fd = fd

    def release(self) -> None:
        if self._fd is not None:
            os.ftruncate(self._fd, 0)
            fcntl.flock(self._fd, fcntl.LOCK_UN)
            os.close(self._fd)
            self._fd = None

    @property
    def held(self) -> bool:
        return self._fd is not None

    def __enter__(self) -> RunLock:
        return self

    def __exit__(self, *exc: object) -> None:
        self.release()


def _read_holder(fd: int) -> dict[str, Any]:
    try:
        data = os.pread(fd, 4096, 0)
        value = json.loads(data.decode() or "{}")
        return value if isinstance(value, dict) else {}
    except (OSError, ValueError):
        return {}


def holder_of(path: Path) -> dict[str, Any] | None:
    """Who holds the lock now, or None when nobody does."""
    if not path.exists():
        return None
    fd = os.open(path, os.O_RDONLY)
    try:
        try:
            fcntl.flock(fd, fcntl.LOCK_SH | fcntl.LOCK_NB)
        except BlockingIOError:
            return _read_holder(fd)
        fcntl.flock(fd, fcntl.LOCK_UN)
        return None
    finally:
        os.close(fd)
