"""The keeper of a step's processes: a small process between the cockpit and a step's command
that stops every process the command starts, at any depth, when the attempt ends for any
reason, the cockpit's death by kill -9 included.

It makes itself the child subreaper (PR_SET_CHILD_SUBREAPER), so that whatever the command
forks stays its descendant when its own parent exits: a pipeline's stages, a script's children,
a daemon that double-forks into a session of its own. It holds the read end of a pipe, the
lifeline, whose write end only the cockpit's attempt holds: the kernel closes it when the
cockpit dies, however it dies. When the lifeline closes or the keeper is told to stop
(SIGTERM, SIGHUP, SIGINT), and when the command exits, the keeper stops every descendant that
is left: SIGTERM, then SIGKILL after `grace` seconds, until none is left. It then exits with the
command's status (128 + N for a signal), having written what it stopped to standard error (the
step's log, while the cockpit reads it) and to its report file (which the cockpit journals,
after a crash too).

    python -m cockpit.process_keeper --lifeline FD --report FILE [--grace S] -- COMMAND [ARGS...]

Every process of the command carries COCKPIT_ATTEMPT (the report's token) in its environment,
so that one the keeper could not stop (the keeper itself killed) is found again by the
cockpit's next start.
"""

from __future__ import annotations

import argparse
import contextlib
import ctypes
import json
import os
import select
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

PR_SET_CHILD_SUBREAPER = 36
ATTEMPT_VARIABLE = "COCKPIT_ATTEMPT"


def become_subreaper() -> bool:
    """Orphaned descendants come to this process instead of init (Linux 3.4 and later)."""
    try:
        libc = ctypes.CDLL(None, use_errno=True)
        return int(libc.prctl(PR_SET_CHILD_SUBREAPER, 1, 0, 0, 0)) == 0
    except (OSError, AttributeError):
        return False


def children(pid: int) -> list[int]:
    """The live children of `pid`, from each of its threads' /proc children list (or, on a
    kernel built without those lists, from every process's parent)."""
    found: list[int] = []
    try:
        tasks = list(Path(f"/proc/{pid}/task").iterdir())
    except OSError:
        return found
    for task in tasks:
        try:
            found += [int(child) for child in (task / "children").read_text().split()]
        except FileNotFoundError:
            return children_by_parent(pid)
        except OSError:
            continue
    return found


def children_by_parent(pid: int) -> list[int]:
    found = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                if int((entry / "stat").read_text().rsplit(")", 1)[1].split()[1]) == pid:
                    found.append(int(entry.name))
            except OSError:
                continue
    return found


def descendants(pid: int) -> list[int]:
    """Every live process below `pid`, parents before their children."""
    out: list[int] = []
    queue = children(pid)
    while queue:
        child = queue.pop(0)
        if child in out:
            continue
        out.append(child)
        queue += children(child)
    return out


def program_of(pid: int) -> str:
    """The process's program name (/proc/PID/comm): no arguments, which may hold secrets."""
    try:
        return Path(f"/proc/{pid}/comm").read_text().strip()
    except OSError:
        return "?"


def is_zombie(pid: int) -> bool:
    """Exited and not reaped yet (or gone): no longer running."""
    try:
        return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0] == "Z"
    except OSError:
        return True


class Keeper:
    def __init__(self, lifeline: int, grace: float, say: Any) -> None:
        self.lifeline = lifeline
        self.grace = grace
        self.say = say
        self.stopped: list[dict[str, Any]] = []
        self.command_status: int | None = None
        self.command_pid: int | None = None
        self._wakeup_r, self._wakeup_w = os.pipe()
        os.set_blocking(self._wakeup_w, False)

    def told_to_stop(self, signum: int, frame: Any) -> None:
        with contextlib.suppress(OSError):
            os.write(self._wakeup_w, b"x")

    def reap(self) -> None:
        """Collect every child that exited (orphans of the command's tree come here too)."""
        while True:
            try:
                pid, status = os.waitpid(-1, os.WNOHANG)
            except ChildProcessError:
                return
            if pid == 0:
                return
            if pid == self.command_pid:
                self.command_status = os.waitstatus_to_exitcode(status)

    def watch(self) -> str:
        """Until the command exits or the attempt ends: why the watch ended."""
        while True:
            ready, _, _ = select.select([self.lifeline, self._wakeup_r], [], [], 0.2)
            self.reap()
            if self.command_status is not None:
                return "the command exited"
            if self._wakeup_r in ready:
                return "the keeper was told to stop"
            if self.lifeline in ready and not os.read(self.lifeline, 1):
                return "the attempt ended"

    def stop_all(self) -> None:
        """SIGTERM to every descendant, SIGKILL to those left after the grace period; again
        until none is left (a dying process's children come here as it dies)."""
        termed: set[int] = set()
        deadline = time.monotonic() + self.grace
        while True:
            self.reap()
            alive = [pid for pid in descendants(os.getpid()) if not is_zombie(pid)]
            if not alive:
                return
            late = time.monotonic() >= deadline
            for pid in alive:
                if pid in termed and not late:
                    continue
                how = signal.SIGKILL if late else signal.SIGTERM
                try:
                    os.kill(pid, how)
                    if how == signal.SIGTERM:
                        os.kill(pid, signal.SIGCONT)  # a stopped process hears SIGTERM only once resumed
                except ProcessLookupError:
                    continue
                if pid not in termed:
                    self._record(pid, how)
                    termed.add(pid)
                elif how == signal.SIGKILL:
                    self._killed(pid)
            time.sleep(0.05)

    def _record(self, pid: int, how: signal.Signals) -> None:
        entry = {"pid": pid, "program": program_of(pid), "signal": how.name}
        self.stopped.append(entry)
        self.say(f"[cockpit] stopping pid {pid} ({entry['program']}) with {how.name}")

    def _killed(self, pid: int) -> None:
        for entry in self.stopped:
            if entry["pid"] == pid and entry["signal"] != "SIGKILL":
                entry["signal"] = "SIGKILL"
                self.say(f"[cockpit] pid {pid} ({entry['program']}) outlived {self.grace:g}s: SIGKILL")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="cockpit.process_keeper")
    parser.add_argument("--lifeline", type=int, required=True)
    parser.add_argument("--report", type=Path, required=True)
    parser.add_argument("--token", default="")
    parser.add_argument("--grace", type=float, default=5.0)
    parser.add_argument("command", nargs=argparse.REMAINDER)
    args = parser.parse_args(argv)
    command = args.command[1:] if args.command[:1] == ["--"] else args.command
    if not command:
        parser.error("no command")

    def say(line: str) -> None:
        with contextlib.suppress(OSError):  # the cockpit is gone: the report keeps it
            os.write(2, (line + "\n").encode())

    keeper = Keeper(args.lifeline, args.grace, say)
    for signum in (signal.SIGTERM, signal.SIGHUP, signal.SIGINT):
        signal.signal(signum, keeper.told_to_stop)
    subreaper = become_subreaper()
    env = {**os.environ, ATTEMPT_VARIABLE: args.token}
    started = time.time()
    try:
        proc = subprocess.Popen(command, stdin=subprocess.DEVNULL, env=env, start_new_session=True)
    except OSError as exc:
        say(f"cannot start {command[0]}: {exc.strerror}")
        return 127
    keeper.command_pid = proc.pid
    why = keeper.watch()
    keeper.stop_all()
    status = keeper.command_status
    document = {
        "token": args.token,
        "command_pid": proc.pid,
        "started": started,
        "ended": time.time(),
        "why": why,
        "status": status,
        "subreaper": subreaper,
        "stopped": keeper.stopped,
    }
    partial = args.report.with_name(args.report.name + ".partial")
    fd = os.open(partial, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as out:
        json.dump(document, out)
    partial.replace(args.report)
    if status is None:
        return 128 + signal.SIGTERM
    return status if status >= 0 else 128 - status


if __name__ == "__main__":
    sys.exit(main())
