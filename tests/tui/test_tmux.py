"""`cockpit demo` in a real terminal (tmux, 80x24), driven by keys, read from the screen."""

from __future__ import annotations

import os
import re
import shlex
import shutil
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from conftest import COCKPIT, copy_example, subprocess_env

pytestmark = [
    pytest.mark.tui,
    pytest.mark.skipif(shutil.which("tmux") is None, reason="tmux is not installed (.ci/run installs it)"),
]


class Terminal:
    def __init__(self, name: str, socket: Path) -> None:
        self.name = name
        self.socket = socket

    def tmux(self, *args: str) -> str:
        return subprocess.run(
            ["tmux", "-S", str(self.socket), *args], capture_output=True, text=True, timeout=30
        ).stdout

    def screen(self) -> str:
        return self.tmux("capture-pane", "-p", "-t", self.name)

    def keys(self, *keys: str) -> None:
        self.tmux("send-keys", "-t", self.name, *keys)

    def settled(self, text: str, timeout: float = 60.0) -> str:
        """The screen once `text` is on it and the redraw that brought it is over: a capture can
        fall between two frames of a redraw (a blank header line that a moment later is not)."""
        self.wait_for(text, timeout)
        time.sleep(0.5)
        return self.wait_for(text, timeout)

    def wait_for(self, text: str, timeout: float = 60.0) -> str:
        deadline = time.monotonic() + timeout
        screen = ""
        while time.monotonic() < deadline:
            screen = self.screen()
            if text in screen:
                return screen
            time.sleep(0.2)
        raise AssertionError(f"{text!r} never appeared; the screen shows:\n{screen}")


@pytest.fixture
def terminal(tmp_path: Path) -> Iterator[Terminal]:
    term = Terminal("cockpit", tmp_path / "tmux.sock")
    yield term
    term.tmux("kill-server")
    deadline = time.monotonic() + 30  # a demo still shutting down must not meet the next test
    while _sandbox_processes() and time.monotonic() < deadline:
        time.sleep(0.2)


def _sandbox_processes() -> list[str]:
    out = subprocess.run(["ps", "-eww", "-o", "args"], capture_output=True, text=True).stdout
    return [line for line in out.splitlines() if "cockpit-demo-state-" in line or "127.0.53." in line]


def _selected_title(screen: str) -> str:
    """The selected step's title, as the step's pane under the table shows it."""
    lines = screen.splitlines()
    rule = next(i for i, line in enumerate(lines) if line.startswith("────"))
    return lines[rule + 1][2:].split("  ")[0].strip()


def test_a_whole_demo_driven_by_keys_at_80x24(terminal: Terminal, tmp_path: Path) -> None:
    copy_example(tmp_path)
    env = subprocess_env(TERM="xterm-256color")
    script = tmp_path / "run.sh"
    exports = "".join(f"export {k}={shlex.quote(v)}\n" for k, v in env.items() if k.isidentifier())
    script.write_text(
        f"{exports}cd {shlex.quote(str(tmp_path))}\n"
        f"{shlex.quote(COCKPIT)} demo --speed 300 --glide 0.3 --scale 0.2\n"
        'echo "EXIT=$?" > exit.txt\nsleep 30\n'
    )
    before = _sandbox_processes()
    terminal.tmux("new-session", "-d", "-s", terminal.name, "-x", "80", "-y", "24", f"sh {script}")
    screen = terminal.wait_for("REHEARSAL 300×", timeout=60)
    screen = terminal.wait_for("^q Quit")
    lines = screen.splitlines()
    assert len(lines) <= 24 and max(len(line) for line in lines) <= 80
    assert "step" in lines[2] and "budget" in lines[2]  # the header, the "what now" line, the table
    assert "triggers" in screen and "+2" in screen  # six triggers: those that do not fit are counted
    # The rehearsal moves through the window by itself (the demo's autopilot answers the gates);
    # the operator looks around with the keys meanwhile.
    terminal.wait_for("Set v1 to read-only", timeout=90)
    terminal.keys("l")
    screen = terminal.settled("escape back")
    assert screen.splitlines()[0].startswith("  REHEARSAL")  # the header stays on top of the enlarged log
    terminal.keys("Escape")
    terminal.wait_for("budget")  # the table again
    terminal.keys("Up")  # the operator moves: following stops, and the header says so
    screen = terminal.wait_for("follow off: f")
    time.sleep(0.6)
    selected = _selected_title(terminal.screen())
    terminal.keys("Up")
    time.sleep(0.6)
    assert _selected_title(terminal.screen()) != selected  # the arrows move the selection, no Tab needed
    terminal.keys("f")  # follow the run again
    terminal.keys("g")
    screen = terminal.settled("resolver")
    assert screen.splitlines()[0].startswith("  REHEARSAL")  # the grid keeps the header
    terminal.keys("Escape")
    terminal.keys("?")
    terminal.wait_for("Cutover cockpit: keys")
    terminal.keys("Escape")
    screen = terminal.wait_for("DONE", timeout=180)
    assert "window closed" in screen and "done: every step succeeded" in screen
    terminal.keys("C-q")
    deadline = time.monotonic() + 30
    while not (tmp_path / "exit.txt").exists() and time.monotonic() < deadline:
        time.sleep(0.2)
    assert (tmp_path / "exit.txt").read_text().strip() == "EXIT=0"
    # The screen ends as headless does: the run's one-line summary.
    assert re.search(r"^run 1: done \(\d+ scheduled, \d+ succeeded\); exit 0$", terminal.screen(), re.M)
    assert _sandbox_processes() == before  # PostgreSQL and the stand-ins stopped with the demo
    status = subprocess.run([COCKPIT, "status", "runbook.toml"], cwd=tmp_path, env=env, capture_output=True, text=True)
    assert "is done" in status.stdout


def test_closing_the_terminal_stops_the_demo_and_its_sandbox(terminal: Terminal, tmp_path: Path) -> None:
    copy_example(tmp_path)
    env = subprocess_env(TERM="xterm-256color")
    exports = "".join(f"export {k}={shlex.quote(v)}\n" for k, v in env.items() if k.isidentifier())
    script = tmp_path / "run.sh"
    script.write_text(f"{exports}cd {shlex.quote(str(tmp_path))}\nexec {shlex.quote(COCKPIT)} demo --scale 0.1\n")
    before = _sandbox_processes()
    terminal.tmux("new-session", "-d", "-s", terminal.name, "-x", "80", "-y", "24", f"sh {script}")
    terminal.wait_for("REHEARSAL 30×", timeout=60)
    assert len(_sandbox_processes()) > len(before)
    terminal.tmux("kill-session", "-t", terminal.name)  # the SSH session drops: SIGHUP
    deadline = time.monotonic() + 30
    while _sandbox_processes() != before and time.monotonic() < deadline:
        time.sleep(0.2)
    assert _sandbox_processes() == before
    assert os.path.exists(tmp_path / ".cockpit" / "journal.db")


def test_a_broken_runbook_never_starts_and_its_problems_are_printed(terminal: Terminal, tmp_path: Path) -> None:
    (tmp_path / "bad.toml").write_text(
        '[runbook]\nname = "Broken"\nt0 = 2026-12-05T23:00:00Z\n\n'
        '[[phase]]\nid = "w"\nat = "T-0"\n\n'
        '[[step]]\nid = "a"\nphase = "w"\nkind = "shell"\nbudget = "soon"\n'
        'with = { argv = ["true"] }\n'
    )
    env = subprocess_env(TERM="xterm-256color")
    exports = "".join(f"export {k}={shlex.quote(v)}\n" for k, v in env.items() if k.isidentifier())
    script = tmp_path / "run.sh"
    script.write_text(
        f'{exports}cd {shlex.quote(str(tmp_path))}\n{shlex.quote(COCKPIT)} bad.toml\necho "EXIT=$?"\nsleep 30\n'
    )
    terminal.tmux("new-session", "-d", "-s", terminal.name, "-x", "80", "-y", "24", f"sh {script}")
    screen = terminal.wait_for("EXIT=", timeout=60)
    assert "bad.toml:13: step 'a': budget: bad duration 'soon'" in screen
    assert "EXIT=2" in screen
    assert not (tmp_path / ".cockpit" / "journal.db").exists()  # nothing started


def test_the_screen_exits_3_after_a_rollback(terminal: Terminal, tmp_path: Path) -> None:
    copy_example(tmp_path)
    env = subprocess_env(TERM="xterm-256color")
    exports = "".join(f"export {k}={shlex.quote(v)}\n" for k, v in env.items() if k.isidentifier())
    script = tmp_path / "run.sh"
    script.write_text(
        f"{exports}cd {shlex.quote(str(tmp_path))}\n"
        f"{shlex.quote(COCKPIT)} demo --break auth --speed 600 --glide 0.2 --scale 0.1\n"
        'echo "EXIT=$?" > exit.txt\n'
    )
    terminal.tmux("new-session", "-d", "-s", terminal.name, "-x", "80", "-y", "24", f"sh {script}")
    screen = terminal.wait_for("ROLLED BACK", timeout=120)
    assert "✖ auth-failing" in screen
    terminal.keys("C-q")
    deadline = time.monotonic() + 30
    while not (tmp_path / "exit.txt").exists() and time.monotonic() < deadline:
        time.sleep(0.2)
    assert (tmp_path / "exit.txt").read_text().strip() == "EXIT=3"
