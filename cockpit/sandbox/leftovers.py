"""What a killed sandbox leaves behind, found and stopped by the next one.

Every folder a sandbox server lives in is claimed by the process that made it (an owner file:
its pid and start time). The servers are started to die with that process (the kernel's
parent-death signal), but a server that drops privileges loses that signal, and a folder
outlives everything. So before a demo starts its sandbox it looks for sandbox folders whose
owner is gone, stops any process still running from them, removes the folders that were only
ever temporary, and says what it did. A folder whose owner is alive (another demo, a test run)
is never touched.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
import tempfile
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from pathlib import Path

OWNER_FILE = ".cockpit-owner"
# The folders the sandbox servers make in the temporary folder.
TEMPORARY_PREFIXES = (
    "cockpit-demo-pgdata-",
    "cockpit-pgdata-",
    "cockpit-knot-",
    "cockpit-dnsmasq-",
    "cockpit-convex-standin-",
)
# A demo's state, kept between runs so that `cockpit demo` continues a rehearsal.
KEPT_PREFIX = "cockpit-demo-state-"


def _start_time(pid: int) -> str | None:
    """The process's start time in clock ticks since boot, which tells a pid reused apart."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    return stat.rsplit(")", 1)[1].split()[19]


def claim(folder: Path) -> None:
    """Mark `folder` as this process's: while it lives, no other sandbox touches the folder."""
    pid = os.getpid()
    (folder / OWNER_FILE).write_text(f"{pid} {_start_time(pid) or ''}\n")


def owner_alive(folder: Path) -> bool:
    try:
        pid_text, _, started = (folder / OWNER_FILE).read_text().strip().partition(" ")
        pid = int(pid_text)
    except (OSError, ValueError):
        return False
    current = _start_time(pid)
    return current is not None and (not started or current == started)


def processes_in(folder: Path) -> list[int]:
    """Processes whose command line names `folder` (a data folder, a configuration in it)."""
    found = []
    needle = str(folder).encode()
    for entry in os.listdir("/proc"):
        if not entry.isdigit() or int(entry) == os.getpid():
            continue
        with contextlib.suppress(OSError):
            if needle in Path(f"/proc/{entry}/cmdline").read_bytes():
                found.append(int(entry))
    return found


@dataclass(frozen=True)
class Leftover:
    folder: Path
    pids: tuple[int, ...]
    temporary: bool


def find(root: Path | None = None) -> list[Leftover]:
    """Sandbox folders whose owner is gone, with the processes still running from them."""
    root = root or Path(tempfile.gettempdir())
    found = []
    for folder in sorted(root.iterdir()):
        temporary = folder.name.startswith(TEMPORARY_PREFIXES)
        if not (temporary or folder.name.startswith(KEPT_PREFIX)) or not folder.is_dir():
            continue
        if not (folder / OWNER_FILE).exists() or owner_alive(folder):
            continue  # not claimed (made by an older cockpit, or by hand), or in use
        found.append(Leftover(folder, tuple(processes_in(folder)), temporary))
    return found


def stop_processes(pids: Iterable[int], grace: float = 5.0) -> None:
    pids = list(pids)
    for pid in pids:
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.kill(pid, signal.SIGTERM)
    deadline = time.monotonic() + grace
    while time.monotonic() < deadline and any(_start_time(pid) for pid in pids):
        time.sleep(0.1)
    for pid in pids:
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.kill(pid, signal.SIGKILL)


def clear(say: Callable[[str], None], root: Path | None = None) -> list[Leftover]:
    """Stop and remove what killed sandboxes left; say what, if anything, was found."""
    leftovers = find(root)
    if not leftovers:
        return []
    pids = [pid for leftover in leftovers for pid in leftover.pids]
    stop_processes(pids)
    removed = 0
    for leftover in leftovers:
        if leftover.temporary:
            shutil.rmtree(leftover.folder, ignore_errors=True)
            removed += 1
    say(
        f"a sandbox that was killed left {len(pids)} process{'es' if len(pids) != 1 else ''} running and "
        f"{removed} temporary folder{'s' if removed != 1 else ''}: stopped and removed"
    )
    return leftovers
