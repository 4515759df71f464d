"""The log lines of every step as they arrive, fed to the panel for the step it shows.

Lines come from the engine in batches (on the UI thread, by message) and from the journal for
what earlier processes wrote; a line in both is dropped by its number. The panel is written
on a short interval, not per batch. A search (`/`) shows the step's lines from the whole
journal that contain the text, and keeps adding the new ones that do; `w` writes the step's
whole log to a file.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import TYPE_CHECKING

from cockpit.journal import private_dir
from widgets.log_lines import MAX_LOG_LINES, LogLine, StepLogLines, render_lines

if TYPE_CHECKING:
    from cockpit.events import StepLog
    from cockpit.journal import Journal
    from widgets.step_panel import StepPanel


class LogFeed:
    def __init__(self, journal: Journal, run_id: int, panel: StepPanel) -> None:
        self.journal = journal
        self.run_id = run_id
        self.panel = panel
        self.buffers: dict[str, StepLogLines] = {}
        self.last_line: dict[str, int] = {}  # the number of the last line held, per step
        self.pending: list[str] = []
        self.shown: str | None = None
        self.filter_text = ""
        self.lines_shown = 0  # counted for bench/log_flood.py

    def buffer(self, step_id: str) -> StepLogLines:
        buffer = self.buffers.get(step_id)
        if buffer is None:
            buffer = self.buffers[step_id] = StepLogLines()
            # A resumed run: the journal has the lines of earlier processes.
            entries = self.journal.log_entries(self.run_id, step_id, tail=MAX_LOG_LINES)
            buffer.extend(LogLine(e.attempt, e.wall, e.line) for e in entries)
            self.last_line[step_id] = entries[-1].n if entries else 0
        return buffer

    def arrived(self, event: StepLog) -> None:
        buffer = self.buffer(event.step_id)
        seen = self.last_line.get(event.step_id, 0)
        lines = event.lines[max(0, seen - event.first_line + 1) :]
        if not lines:
            return
        self.last_line[event.step_id] = event.first_line + len(event.lines) - 1
        shown = buffer.extend(LogLine(event.attempt, event.wall, line) for line in lines)
        if event.step_id != self.shown:
            return
        if self.filter_text:
            needle = self.filter_text.lower()
            shown = render_lines([LogLine(event.attempt, event.wall, line) for line in lines if needle in line.lower()])
        self.pending.extend(shown)
        if len(self.pending) > MAX_LOG_LINES:
            del self.pending[:-MAX_LOG_LINES]

    def show(self, step_id: str | None) -> None:
        """The panel shows `step_id`'s log from now on (a new step clears the search)."""
        if step_id == self.shown:
            return
        self.shown = step_id
        self.filter_text = ""
        self.panel.filter_text = ""
        self._fill()

    def set_filter(self, text: str) -> None:
        if text == self.filter_text:
            return
        self.filter_text = text
        self.panel.filter_text = text
        self._fill()

    def _fill(self) -> None:
        self.pending = []
        step_id = self.shown
        if step_id is None:
            self.panel.replace_log([])
        elif self.filter_text:
            entries = self.journal.log_entries(self.run_id, step_id, tail=MAX_LOG_LINES, containing=self.filter_text)
            self.panel.replace_log(render_lines(LogLine(e.attempt, e.wall, e.line) for e in entries))
        else:
            self.panel.replace_log(self.buffer(step_id).render())

    def flush(self) -> None:
        if not self.pending or not self.panel.is_mounted:
            return
        lines, self.pending = self.pending, []
        self.panel.append_log(lines)
        self.lines_shown += len(lines)

    def save(self, step_id: str, folder: Path) -> tuple[Path, int]:
        """The step's whole log, timed and with a rule between attempts, in a file readable by its
        owner only; its path and how many lines it holds."""
        entries = self.journal.log_entries(self.run_id, step_id)
        private_dir(folder)
        path = folder / f"run-{self.run_id}-{step_id}.log"
        text = "\n".join(render_lines(LogLine(e.attempt, e.wall, e.line) for e in entries)) + "\n"
        partial = path.with_name(path.name + ".partial")  # a crash leaves no half-written log behind
        descriptor = os.open(partial, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(descriptor, "w", encoding="utf-8") as out:
            os.fchmod(out.fileno(), 0o600)
            out.write(text)
        os.replace(partial, path)
        return path, len(entries)
