"""Time to first paint: `cockpit runbook.toml` against a bare Textual app, in the same run.

Each program starts in its own pseudo-terminal (80x24); the clock stops when its first frame
shows a known text. The two are run alternately, several times, and compared by median.
Target: the cockpit paints within 1.5x the time of a bare Textual app.

The cockpit opens the project's own runbook where it lies, with everything it references, and
keeps its journal in a workspace of the bench's own (bench/runbook_workspace.py).

    python bench/first_paint.py [--runs 7] [--json]
"""

from __future__ import annotations

import argparse
import fcntl
import json
import os
import pty
import re
import select
import signal
import statistics
import struct
import sys
import termios
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from bench.runbook_workspace import RunbookWorkspace  # noqa: E402

BIN = Path(sys.executable).parent
ANSI = re.compile(rb"\x1b\[[0-9;?]*[A-Za-z]|\x1b[()][A-Z0-9]|\x1b[>=]")

BARE_APP = """
from textual.app import App
from textual.widgets import Footer, Static


class Bare(App):
    def compose(self):
        yield Static("bare textual app ready")
        yield Footer()


Bare().run()
"""


def time_to_text(argv: list[str], marker: str, cwd: Path, env: dict[str, str], timeout: float = 30.0) -> float:
    """Seconds from exec until `marker` appears on the program's terminal."""
    pid, fd = pty.fork()
    if pid == 0:  # the child: becomes the program
        os.chdir(cwd)
        os.execve(argv[0], argv, env)
    fcntl.ioctl(fd, termios.TIOCSWINSZ, struct.pack("HHHH", 24, 80, 0, 0))
    started = time.perf_counter()
    seen = b""
    try:
        while time.perf_counter() - started < timeout:
            ready, _, _ = select.select([fd], [], [], 0.05)
            if not ready:
                continue
            try:
                chunk = os.read(fd, 65536)
            except OSError:
                break
            seen += chunk
            if marker.encode() in ANSI.sub(b"", seen).replace(b"\r", b"").replace(b"\n", b""):
                return time.perf_counter() - started
        raise RuntimeError(f"{argv[0]} never showed {marker!r}")
    finally:
        os.kill(pid, signal.SIGKILL)
        os.waitpid(pid, 0)
        os.close(fd)


def measure(runs: int) -> dict[str, float]:
    with RunbookWorkspace(ROOT / "runbook.toml") as workspace:
        work = workspace.folder
        (work / "bare.py").write_text(BARE_APP)
        env = {**os.environ, **workspace.placeholder_env(), "TERM": "xterm-256color", "COLUMNS": "80", "LINES": "24"}
        bare_cmd = [str(BIN / "python"), str(work / "bare.py")]
        cockpit_cmd = [str(BIN / "cockpit"), workspace.runbook.name, "--rehearsal", "--speed", "1", "--new"]
        # One untimed run of each warms the disk cache, as an operator's second start would be.
        time_to_text(bare_cmd, "bare textual app ready", work, env)
        time_to_text(cockpit_cmd, "PERM Tracker", work, env)
        bare, cockpit, ready = [], [], []
        for _ in range(runs):
            bare.append(time_to_text(bare_cmd, "bare textual app ready", work, env))
            cockpit.append(time_to_text(cockpit_cmd, "PERM Tracker", work, env))
            # Not the target, but said plainly: when the validated runbook fills the screen.
            ready.append(time_to_text(cockpit_cmd, "Send the T-30 announcement", work, env))
    b, c, r = statistics.median(bare), statistics.median(cockpit), statistics.median(ready)
    return {
        "runs": runs,
        "bare_textual_s": round(b, 3),
        "cockpit_s": round(c, 3),
        "ratio": round(c / b, 2),
        "target_ratio": 1.5,
        "cockpit_filled_s": round(r, 3),
        "filled_ratio": round(r / b, 2),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--runs", type=int, default=7)
    parser.add_argument("--json", action="store_true", help="print the figures as one JSON object")
    args = parser.parse_args()
    result = measure(args.runs)
    if args.json:
        print(json.dumps({"first_paint": result}))
        return
    print(f"first paint, median of {result['runs']} runs at 80x24")
    print(f"  bare Textual app   {result['bare_textual_s']:.3f} s")
    print(f"  cockpit            {result['cockpit_s']:.3f} s")
    print(f"  ratio              {result['ratio']:.2f}x (target <= {result['target_ratio']}x)")
    print(
        f"  cockpit, filled    {result['cockpit_filled_s']:.3f} s ({result['filled_ratio']:.2f}x): the runbook "
        "validated, the run opened, the steps on screen"
    )


if __name__ == "__main__":
    main()
