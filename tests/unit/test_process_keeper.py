"""How the keeper finds an attempt's processes: the kernel's children lists, or every process's
parent where a kernel has no such lists; and the whole tree below a process."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path

from cockpit.process_keeper import children, children_by_parent, descendants


def test_children_are_found_either_way() -> None:
    started = [subprocess.Popen(["sleep", "30"]) for _ in range(2)]
    try:
        mine = {p.pid for p in started}  # the test run may have children of its own (a server)
        assert mine <= set(children(os.getpid())) and mine <= set(children_by_parent(os.getpid()))
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


POOL = """
import multiprocessing, os, sys, time
from concurrent.futures import ProcessPoolExecutor
from cockpit.parent_death import die_with_parent

def busy(seconds):
    time.sleep(seconds)
    return os.getpid()

if __name__ == "__main__":
    kept = sys.argv[1] == "kept"
    pool = ProcessPoolExecutor(
        max_workers=2, mp_context=multiprocessing.get_context("spawn"),
        initializer=die_with_parent if kept else None, initargs=(os.getpid(),) if kept else (),
    )
    futures = [pool.submit(busy, 60) for _ in range(2)]
    time.sleep(60)
"""


def _workers_after_kill(tmp_path: Path, mode: str) -> list[int]:
    script = tmp_path / "pool.py"
    script.write_text(POOL)
    parent = subprocess.Popen([sys.executable, str(script), mode], cwd=tmp_path)
    deadline = time.monotonic() + 20
    while len([p for p in children(parent.pid) if "spawn_main" in _args(p)]) < 2 and time.monotonic() < deadline:
        time.sleep(0.05)
    workers = [p for p in children(parent.pid) if "spawn_main" in _args(p)]
    assert len(workers) == 2
    parent.kill()
    parent.wait()
    deadline = time.monotonic() + 3
    while any(_running(p) for p in workers) and time.monotonic() < deadline:
        time.sleep(0.05)
    alive = [p for p in workers if _running(p)]
    for pid in alive:
        os.kill(pid, 9)
    return alive


def _args(pid: int) -> str:
    try:
        return Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ").decode()
    except OSError:
        return ""


def _running(pid: int) -> bool:
    try:
        return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0] != "Z"
    except OSError:
        return False


def test_a_pool_worker_busy_with_a_task_dies_with_the_steps_process(tmp_path: Path) -> None:
    assert _workers_after_kill(tmp_path, "kept") == []
    # Without it, a busy worker outlives its parent until its task ends (what this guards against).
    assert len(_workers_after_kill(tmp_path, "plain")) == 2
