"""The headless subscriber: a line per state change, periodic progress, or JSON events.

Plain text when stdout is not a terminal (logs, CI); colour on a terminal; with `--json`
one JSON object per line for every event, progress reports included.
"""

from __future__ import annotations

import json
import sys
import threading
from collections.abc import Callable
from typing import IO, Any

from cockpit.clock import format_duration, format_t_clock
from cockpit.engine.views import RunView
from cockpit.events import (
    Alert,
    Event,
    GateOpened,
    ItemChecked,
    OperatorActed,
    RollbackFinished,
    RollbackStarted,
    RunOpened,
    RunStateChanged,
    StepLog,
    StepProgress,
    StepStateChanged,
    TriggerFired,
)

_COLOURS = {
    "succeeded": "32",
    "failed": "31;1",
    "running": "36",
    "waiting": "33;1",
    "interrupted": "35;1",
    "skipped": "2",
    "cancelled": "33",
    "ready": "36",
    "scheduled": "2",
    "error": "31;1",
    "warning": "33",
    "info": "0",
}


def format_count(value: float) -> str:
    if value == int(value):
        return f"{int(value):,}"
    return f"{value:,.1f}"


def describe_progress(done: float, total: float | None, unit: str, rate: float | None) -> str:
    text = f"{format_count(done)}"
    if total:
        text += f"/{format_count(total)} {unit} ({100 * done / total:.0f}%)".rstrip()
    elif unit:
        text += f" {unit}"
    if rate:
        text += f", {format_count(round(rate))} {unit}/s".rstrip()
        if total and rate > 0 and total > done:
            text += f", ETA {format_duration((total - done) / rate)}"
    return text


def summary_line(view: RunView, exit_code: int) -> str:
    """`run 3: done (30 succeeded, 6 scheduled); exit 0`: the last line of a run, headless or not."""
    counts: dict[str, int] = {}
    for step in view.steps.values():
        counts[step.state.value] = counts.get(step.state.value, 0) + 1
    summary = ", ".join(f"{n} {state}" for state, n in sorted(counts.items()))
    return f"run {view.run_id}: {view.outcome.value} ({summary}); exit {exit_code}"


class HeadlessPrinter:
    """Subscribe it to an engine; call `progress_loop` on a thread for periodic progress."""

    def __init__(
        self,
        stream: IO[str] | None = None,
        *,
        as_json: bool = False,
        colour: bool | None = None,
        t0: Any = None,
        log_tail: Callable[[str], list[str]] | None = None,
    ) -> None:
        self.stream = stream or sys.stdout
        self.as_json = as_json
        self.colour = self.stream.isatty() if colour is None else colour
        self.t0 = t0
        self.log_tail = log_tail
        self._lock = threading.Lock()

    def _paint(self, text: str, key: str) -> str:
        code = _COLOURS.get(key)
        if not self.colour or not code or code == "0":
            return text
        return f"\x1b[{code}m{text}\x1b[0m"

    def _write(self, line: str) -> None:
        with self._lock:
            try:
                self.stream.write(line + "\n")
                self.stream.flush()
            except (BrokenPipeError, ValueError):
                pass

    def _stamp(self, event: Event) -> str:
        """`[12-05 22:00:02 T-00:59:58]`: the run's clock in the runbook's zone, which only moves
        forward, then the offset from T-0 (before T-0 a countdown, so it shrinks)."""
        if event.clock is None or self.t0 is None:
            return ""
        local = event.clock.astimezone(self.t0.tzinfo)
        return f"[{local:%m-%d %H:%M:%S} {format_t_clock(event.clock, self.t0)}] "

    def __call__(self, event: Event) -> None:
        if self.as_json:
            self._write(json.dumps(event.to_dict(), default=str, ensure_ascii=False))
            return
        line = self.format(event)
        if line is not None:
            self._write(self._stamp(event) + line)
            if isinstance(event, StepStateChanged) and event.state == "failed" and self.log_tail is not None:
                for text in self.log_tail(event.step_id):
                    self._write("    | " + text)

    def format(self, event: Event) -> str | None:
        if isinstance(event, RunOpened):
            mode = ("dry run " if event.dry_run else "") + event.mode
            verb = "continues" if event.resumed else "starts"
            return f"run {event.run_id} {verb}: {event.runbook} ({mode}), operator {event.operator}"
        if isinstance(event, StepStateChanged):
            # A gate line says why a step waits; the operator's answer line says it moved on.
            if (
                event.state == "ready"
                or event.state == "waiting"
                or (event.state == "running" and event.reason.startswith("answered"))
            ):
                return None
            state = self._paint(f"{event.state:<11}", event.state)
            reason = f"  {event.reason}" if event.reason else ""
            return f"{event.step_id:<22} {state}{reason}".rstrip()
        if isinstance(event, GateOpened):
            who = event.step_id or "run"
            hint = f" (type {event.confirm!r})" if event.confirm else ""
            if event.gate == "checklist":
                return f"{who:<22} {self._paint('checklist', 'waiting')}  " + "; ".join(event.items)
            return f"{who:<22} {self._paint('asks', 'waiting')}       {event.question}{hint}"
        if isinstance(event, OperatorActed):
            target = f" {event.step_id}" if event.step_id else ""
            detail = f": {event.detail}" if event.detail else ""
            return f"operator {event.operator}: {event.action}{target}{detail}"
        if isinstance(event, ItemChecked):
            if event.passed:
                seen = f" ({event.evidence[-1]})" if event.evidence else ""
                return f"{event.step_id:<22} {self._paint('checked', 'succeeded')}    {event.item}{seen}"
            return f"{event.step_id:<22} {self._paint('unchecked', 'waiting')}  {event.item}: {event.reason}"
        if isinstance(event, TriggerFired):
            deadline = f", roll back by {event.deadline:%H:%M:%S}" if event.deadline else ""
            return self._paint(f"TRIGGER {event.trigger_id} fired ({event.action}): {event.reason}{deadline}", "error")
        if isinstance(event, RollbackStarted):
            plan = ", ".join(event.plan) or "nothing to undo"
            return self._paint(f"ROLLBACK starts: {event.reason}; plan: {plan}", "error")
        if isinstance(event, RollbackFinished):
            return self._paint("ROLLBACK finished" + ("" if event.ok else f" with errors: {event.reason}"), "error")
        if isinstance(event, RunStateChanged):
            return f"run is {event.state}" + (f": {event.reason}" if event.reason else "")
        if isinstance(event, Alert):
            return self._paint(f"{event.level.upper()}: {event.message}", event.level)
        if isinstance(event, StepLog | StepProgress):
            return None
        return None

    def print_progress(self, view: RunView) -> None:
        """One line per running step that reported progress (called every few seconds)."""
        if self.as_json:
            return
        for step in view.steps.values():
            if step.state.value != "running":
                continue
            elapsed = format_duration(step.elapsed) if step.elapsed is not None else "?"
            bars = "; ".join(
                (f"{p.label}: " if p.label != step.title else "") + describe_progress(p.done, p.total, p.unit, p.rate)
                for p in step.bars(4)
            )
            late = f", {format_duration(step.late_by)} over budget" if step.late_by else ""
            indent = 2 + len(f"{view.now:%m-%d %H:%M:%S} ") + len(format_t_clock(view.now, view.t0))
            self._write(f"{'':<{indent}} {step.id:<22} {'…':<11}  {elapsed}{late}" + (f"  {bars}" if bars else ""))
