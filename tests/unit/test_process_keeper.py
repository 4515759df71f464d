"""How the keeper finds an attempt's processes: the kernel's children lists, or every process's
parent where a kernel has no such lists; and the whole tree below a process."""

from __future__ import annotations

import os
import subprocess
import time

from cockpit.process_keeper import children, children_by_parent, descendants


def test_children_by_either_way_are_the_same() -> None:
    started = [subprocess.Popen(["sleep", "30"]) for _ in range(2)]
    try:
        assert (
            sorted(children(os.getpid())) == sorted(children_by_parent(os.getpid())) == sorted(p.pid for p in started)
        )
    finally:
        for proc in started:
            proc.kill()
            proc.wait()


def test_descendants_reach_every_depth() -> None:
    shell = subprocess.Popen(["sh", "-c", "sh -c 'sleep 30 & sleep 30 & wait' & sleep 30 & wait"])
    try:
        deadline = time.monotonic() + 10
        while len(descendants(shell.pid)) < 4 and time.monotonic() < deadline:
            time.sleep(0.05)
        below = descendants(shell.pid)
        assert len(below) == 4  # the inner shell, its two sleeps and the outer sleep
        assert below[0] in children(shell.pid)  # parents come before their children
    finally:
        for pid in [shell.pid, *descendants(shell.pid)]:
            os.kill(pid, 9)
        shell.wait()
