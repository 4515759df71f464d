"""A step attempt's processes: each command runs under a keeper (cockpit/process_keeper.py)
that stops its whole tree when the attempt ends, the cockpit's death included; what the
attempt started is recorded in the step's checkpoint, so that the cockpit's next start finds
what is still alive, journals what the keeper stopped, and stops the rest before the operator
settles the step.
"""

from __future__ import annotations

import contextlib
import json
import os
import secrets
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import IO, Any

from cockpit.parent_death import dying_with_parent
from cockpit.process_keeper import ATTEMPT_VARIABLE, descendants, is_zombie, program_of

RECORD = "_process"  # the checkpoint's key
GRACE_S = 5.0


@dataclass(frozen=True)
class Survivor:
    """A process of an attempt that outlived it."""

    pid: int
    program: str
    since: float  # wall time it started

    def describe(self) -> str:
        return f"pid {self.pid} still running `{self.program}` since {datetime.fromtimestamp(self.since):%H:%M}"


class KeptCommand:
    """A command started under its keeper. `end()` (any thread, any number of times) tells the
    keeper the attempt is over: it stops the command's whole tree."""

    def __init__(
        self,
        argv: Sequence[str],
        *,
        cwd: Path,
        env: Mapping[str, str],
        stdout: int | IO[Any] | None,
        stderr: int | IO[Any] | None,
        report: Path,
        grace: float = GRACE_S,
    ) -> None:
        self.token = secrets.token_hex(8)
        self.report = report
        report.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
        report.unlink(missing_ok=True)
        lifeline, self._lifeline = os.pipe()
        keeper = [sys.executable, "-m", "cockpit.process_keeper", "--lifeline", str(lifeline)]
        keeper += ["--report", str(report), "--token", self.token, "--grace", f"{grace:g}", "--", *argv]
        self._lock = threading.Lock()
        try:
            self.popen = subprocess.Popen(
                dying_with_parent(keeper, "TERM"),
                stdout=stdout,
                stderr=stderr,
                stdin=subprocess.DEVNULL,
                cwd=cwd,
                env=dict(env),
                start_new_session=True,
                pass_fds=(lifeline,),
                bufsize=0,
            )
        except BaseException:
            os.close(self._lifeline)
            raise
        finally:
            os.close(lifeline)
        self.record = {
            "keeper": self.popen.pid,
            "started": start_ticks(self.popen.pid),
            "token": self.token,
            "report": str(report),
            "program": Path(argv[0]).name,
            "since": time.time(),
        }

    def end(self) -> None:
        with self._lock:
            if self._lifeline >= 0:
                os.close(self._lifeline)
                self._lifeline = -1

    def wait(self) -> dict[str, Any]:
        """Wait for the keeper; the command's outcome as it reported it (`status`: the exit
        status, negative for a signal; `stopped`: what it stopped)."""
        self.popen.wait()
        self.end()
        outcome = read_report(self.report) or {"status": None, "stopped": []}
        with contextlib.suppress(FileNotFoundError):
            self.report.unlink()
        return outcome


def start_ticks(pid: int) -> int | None:
    """A process's start time in clock ticks since boot (field 22 of /proc/PID/stat)."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    return int(stat.rsplit(")", 1)[1].split()[19])


def _boot_time() -> float:
    for line in Path("/proc/stat").read_text().splitlines():
        if line.startswith("btime "):
            return float(line.split()[1])
    return 0.0


def _started_at(pid: int) -> float:
    ticks = start_ticks(pid)
    return _boot_time() + (ticks or 0) / os.sysconf("SC_CLK_TCK")


def read_report(path: Path) -> dict[str, Any] | None:
    try:
        document: dict[str, Any] = json.loads(path.read_text())
    except (OSError, ValueError):
        return None
    return document


def _holders_of(token: str) -> list[int]:
    """The processes whose environment carries the attempt's token (a tree its keeper could not
    stop: the keeper itself was killed)."""
    marker = f"{ATTEMPT_VARIABLE}={token}".encode()
    found = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            if marker in (entry / "environ").read_bytes().split(b"\0"):
                found.append(int(entry.name))
        except OSError:
            continue
    return found


def survivors(record: Mapping[str, Any]) -> list[Survivor]:
    """The processes of the recorded attempt still alive: its keeper and everything below it,
    or, the keeper gone, whatever carries its token."""
    pids = descendants(int(record["keeper"])) if _keeper_alive(record) else _holders_of(str(record.get("token") or "-"))
    return [Survivor(pid, program_of(pid), _started_at(pid)) for pid in pids if not is_zombie(pid)]


def stop(record: Mapping[str, Any], grace: float = GRACE_S) -> list[Survivor]:
    """Stop what the recorded attempt left alive (its keeper stops its own tree); what was left."""
    left = survivors(record)
    if not left:
        return []
    if _keeper_alive(record):
        with contextlib.suppress(ProcessLookupError):
            os.kill(int(record["keeper"]), signal.SIGTERM)
    else:
        for survivor in left:
            with contextlib.suppress(ProcessLookupError):
                os.kill(survivor.pid, signal.SIGTERM)
    deadline = time.monotonic() + grace + 1.0
    while time.monotonic() < deadline and survivors(record):
        time.sleep(0.05)
    for survivor in survivors(record):
        with contextlib.suppress(ProcessLookupError):
            os.kill(survivor.pid, signal.SIGKILL)
    return left


def after_crash(record: Mapping[str, Any]) -> tuple[list[str], list[Survivor]]:
    """For the cockpit's next start: what the keeper stopped after the crash (its report, then
    removed), and what is still alive."""
    lines: list[str] = []
    report_path = Path(str(record.get("report") or ""))
    report = read_report(report_path) if record.get("report") else None
    if report is not None:
        lines = [f"after the cockpit stopped, the keeper {line}" for line in stopped_lines(report)]
        with contextlib.suppress(OSError):
            report_path.unlink()
    return lines, survivors(record)


def left_running(left: Sequence[Survivor]) -> str:
    """`pid 4321 still running `pg_dump` since 23:04 (and 2 more)`."""
    more = f" (and {len(left) - 1} more)" if len(left) > 1 else ""
    return left[0].describe() + more


def stopped_lines(report: Mapping[str, Any]) -> list[str]:
    """What a keeper's report says it stopped, one line each."""
    return [f"pid {s['pid']} ({s['program']}) stopped with {s['signal']}" for s in report.get("stopped", [])]


def _keeper_alive(record: Mapping[str, Any]) -> bool:
    """The recorded keeper runs (the same process: its start time matches; not a zombie that no
    init reaped)."""
    keeper = int(record.get("keeper") or 0)
    return keeper > 0 and start_ticks(keeper) == record.get("started") and not is_zombie(keeper)
