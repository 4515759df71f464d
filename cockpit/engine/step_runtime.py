"""The engine's mutable state per step; it lives inside `LiveRun`, under the run's lock."""

from __future__ import annotations

import threading
import time
from dataclasses import dataclass, field
from datetime import datetime

from cockpit.events import StepState
from cockpit.journal import StepRecord


@dataclass
class Gate:
    """Something only the operator can settle: a question, a start, a checklist."""

    kind: str  # ask | start | checklist
    question: str
    confirm: str | None = None
    items: tuple[str, ...] = ()
    ticked: set[int] = field(default_factory=set)
    notes: dict[int, str] = field(default_factory=dict)  # a checklist item's failing check, and why
    answered: threading.Event = field(default_factory=threading.Event)
    answer: bool | None = None
    recheck: bool = False  # the operator asked the checklist's checks to run again


@dataclass
class ProgressState:
    label: str
    done: float
    total: float | None
    unit: str
    rate: float | None = None
    first_wall: float = 0.0
    first_done: float = 0.0
    last_wall: float = 0.0


@dataclass
class StepRuntime:
    id: str
    state: StepState = StepState.SCHEDULED
    attempt: int = 0
    retries_left: int = 0
    reason: str = ""
    started_clock: datetime | None = None
    ended_clock: datetime | None = None
    started_wall: float | None = None
    ended_wall: float | None = None
    completed_seq: int | None = None
    operator_started: bool = False
    not_run: bool = False
    left_running: str = ""  # an interrupted attempt's processes found alive at the restart
    # Live attempt bookkeeping; none of it survives a restart.
    cancel: threading.Event | None = None
    start_requested: bool = False  # the operator pressed start: it starts even while the run is paused
    thread: threading.Thread | None = None
    timed_out: bool = False
    stop_requested_wall: float | None = None
    intent: str | None = None  # what to record when the running attempt stops: cancel|skip|done|rollback|quit
    intent_reason: str = ""
    retry_at: datetime | None = None
    gate: Gate | None = None
    progress: dict[str, ProgressState] = field(default_factory=dict)
    over_budget_reported: bool = False
    log_count: int = 0

    @property
    def attempt_live(self) -> bool:
        """An attempt of this step has a worker thread that has not finished."""
        return self.cancel is not None

    def request_stop(self, intent: str, reason: str) -> None:
        """Ask the live attempt to stop; `intent` says what to record once it has."""
        assert self.cancel is not None, "no live attempt to stop"
        self.intent = intent
        self.intent_reason = reason
        self.stop_requested_wall = time.time()
        self.cancel.set()

    def record(self) -> StepRecord:
        return StepRecord(
            step=self.id,
            state=self.state.value,
            attempt=self.attempt,
            retries_left=self.retries_left,
            reason=self.reason,
            started_clock=self.started_clock,
            ended_clock=self.ended_clock,
            started_wall=self.started_wall,
            ended_wall=self.ended_wall,
            completed_seq=self.completed_seq,
            operator_started=self.operator_started,
            not_run=self.not_run,
        )
