"""Collects step output from worker threads and hands it on in batches.

A step may print tens of thousands of lines a second. Lines are redacted on the step's own
thread, queued, and drained every `interval` (or sooner when many are pending) into one
journal transaction and one event per step, so the journal keeps every line and the screen
receives a few batches a second instead of a message per line. When the queue passes
`max_pending` lines the producing step blocks until it drains: back-pressure, never loss.
Progress reports ride the same thread and are collapsed to the latest per bar.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from dataclasses import dataclass


@dataclass
class LogChunk:
    step_id: str
    attempt: int
    wall: float
    lines: list[str]


@dataclass
class ProgressReport:
    step_id: str
    attempt: int
    label: str
    done: float
    total: float | None
    unit: str
    wall: float


class LogPump:
    def __init__(
        self,
        sink: Callable[[list[LogChunk]], None],
        progress_sink: Callable[[list[ProgressReport]], None],
        *,
        redact: Callable[[str], str],
        interval: float = 0.05,
        progress_interval: float = 0.1,
        max_pending: int = 200_000,
        batch_lines: int = 20_000,
    ) -> None:
        self._sink = sink
        self._progress_sink = progress_sink
        self._redact = redact
        self._interval = interval
        self._progress_interval = progress_interval
        self._max_pending = max_pending
        self._batch_lines = batch_lines
        self._cond = threading.Condition()
        self._pending: list[LogChunk] = []
        self._pending_lines = 0
        self._progress: dict[tuple[str, str], ProgressReport] = {}
        self._flush_lock = threading.Lock()
        self._stopping = False
        self._thread: threading.Thread | None = None
        self._last_progress = 0.0

    def start(self) -> None:
        self._thread = threading.Thread(target=self._loop, name="cockpit-logpump", daemon=True)
        self._thread.start()

    def stop(self) -> None:
        with self._cond:
            self._stopping = True
            self._cond.notify_all()
        if self._thread is not None:
            self._thread.join(timeout=10)
        self.flush()

    def add(self, step_id: str, attempt: int, lines: list[str]) -> None:
        clean = [self._redact(line) for line in lines]
        with self._cond:
            while self._pending_lines > self._max_pending and not self._stopping:
                self._cond.notify_all()
                self._cond.wait(0.1)
            wall = time.time()
            last = self._pending[-1] if self._pending else None
            if last is not None and last.step_id == step_id and last.attempt == attempt:
                last.lines.extend(clean)
            else:
                self._pending.append(LogChunk(step_id, attempt, wall, clean))
            self._pending_lines += len(clean)
            if self._pending_lines >= self._batch_lines:
                self._cond.notify_all()

    def report(self, report: ProgressReport) -> None:
        with self._cond:
            self._progress[(report.step_id, report.label)] = report

    def flush(self) -> None:
        """Hand every pending line to the sink now (a step that ends flushes before its state changes)."""
        with self._flush_lock:
            with self._cond:
                chunks = self._pending
                self._pending = []
                self._pending_lines = 0
                progress = list(self._progress.values())
                self._progress.clear()
                self._cond.notify_all()
            if chunks:
                self._sink(chunks)
            if progress:
                self._progress_sink(progress)

    def _loop(self) -> None:
        while True:
            with self._cond:
                if self._stopping:
                    return
                if self._pending_lines < self._batch_lines:
                    self._cond.wait(self._interval)
            with self._flush_lock:
                with self._cond:
                    chunks = self._pending
                    self._pending = []
                    self._pending_lines = 0
                    self._cond.notify_all()
                    progress: list[ProgressReport] = []
                    now = time.monotonic()
                    if self._progress and now - self._last_progress >= self._progress_interval:
                        progress = list(self._progress.values())
                        self._progress.clear()
                        self._last_progress = now
                if chunks:
                    self._sink(chunks)
                if progress:
                    self._progress_sink(progress)
