"""The journal's files are private, it survives reopening, and one process holds the run lock."""

from __future__ import annotations

import contextlib
import sqlite3
import stat
import subprocess
import sys
from pathlib import Path

import pytest
from conftest import subprocess_env
from fakes import Harness

from cockpit.engine.views import Outcome
from cockpit.events import StepStateChanged
from cockpit.journal import Journal, private_dir
from cockpit.lock import RunLock, RunLocked, holder_of

BODY = '\n[[step]]\nid = "a"\nphase = "window"\nkind = "fake.work"\nwith = { lines = 3 }\n'


def _mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


def test_journal_files_and_folders_are_private(tmp_path: Path) -> None:
    h = Harness(tmp_path, BODY).start()
    try:
        assert h.settle() == Outcome.DONE
        folder = tmp_path / ".cockpit"
        assert _mode(folder) == 0o700
        for name in ("journal.db", "journal.db-wal", "journal.db-shm"):
            if (folder / name).exists():
                assert _mode(folder / name) == 0o600, name
        artifacts = folder / "runs" / str(h.engine.run_id) / "a"
        assert artifacts.is_dir()
        assert _mode(folder / "runs") == 0o700 and _mode(artifacts.parent) == 0o700 and _mode(artifacts) == 0o700
    finally:
        h.close()


def test_private_dir_makes_every_missing_level_private(tmp_path: Path) -> None:
    deep = private_dir(tmp_path / "x" / "y" / "z")
    assert all(_mode(p) == 0o700 for p in (tmp_path / "x", tmp_path / "x" / "y", deep))


def test_journal_is_in_wal_mode_and_events_read_back(tmp_path: Path) -> None:
    h = Harness(tmp_path, BODY).start()
    try:
        assert h.settle() == Outcome.DONE
    finally:
        h.close()
    journal = Journal(tmp_path / ".cockpit" / "journal.db", readonly=True)
    with contextlib.closing(sqlite3.connect(journal.path)) as db:
        assert db.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
    run = journal.latest_run()
    assert run is not None and run.state == "done"
    states = [e for e in journal.events(run.id) if isinstance(e, StepStateChanged)]
    assert [e.state for e in states] == ["ready", "running", "succeeded"]
    assert journal.log_lines(run.id, "a") == ["line 1", "line 2", "line 3"]


def test_a_second_process_is_refused_at_once_naming_the_lock_and_the_holder(tmp_path: Path) -> None:
    lock = RunLock(tmp_path / ".cockpit" / "run.lock")
    lock.acquire("alice (ssh from 10.1.2.3:5555)", "cockpit run runbook.toml --headless")
    try:
        code = (
            "import sys; from pathlib import Path; from cockpit.lock import RunLock, RunLocked\n"
            f"try:\n    RunLock(Path({str(tmp_path / '.cockpit' / 'run.lock')!r})).acquire('bob', 'x')\n"
            "except RunLocked as exc:\n    print(exc); sys.exit(2)\n"
        )
        result = subprocess.run(
            [sys.executable, "-c", code], capture_output=True, text=True, env=subprocess_env(), timeout=30
        )
        assert result.returncode == 2
        assert str(tmp_path / ".cockpit" / "run.lock") in result.stdout
        assert "alice (ssh from 10.1.2.3:5555)" in result.stdout and "process" in result.stdout
        holder = holder_of(tmp_path / ".cockpit" / "run.lock")
        assert holder is not None and holder["operator"].startswith("alice")
    finally:
        lock.release()
    assert holder_of(tmp_path / ".cockpit" / "run.lock") is None


def test_the_lock_is_released_by_the_kernel_when_its_holder_dies(tmp_path: Path) -> None:
    path = tmp_path / ".cockpit" / "run.lock"
    code = (
        "import os, signal; from pathlib import Path; from cockpit.lock import RunLock\n"
        f"RunLock(Path({str(path)!r})).acquire('victim', 'x'); os.kill(os.getpid(), signal.SIGKILL)\n"
    )
    subprocess.run([sys.executable, "-c", code], env=subprocess_env(), timeout=30)
    lock = RunLock(path)
    lock.acquire("survivor", "y")  # must not raise
    lock.release()


def test_in_process_second_lock_is_refused(tmp_path: Path) -> None:
    first = RunLock(tmp_path / "run.lock")
    first.acquire("a", "x")
    try:
        with pytest.raises(RunLocked):
            RunLock(tmp_path / "run.lock").acquire("b", "y")
    finally:
        first.release()
