"""The engine's mutable state per step, and the immutable views it hands to readers.

`StepRuntime` lives inside the engine under its lock. `RunView`/`StepView` are frozen copies
that the screen, the headless printer and `cockpit status` read without touching the engine's
state.
"""

from __future__ import annotations

import threading
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from enum import StrEnum

from cockpit.events import StepState
from cockpit.journal import StepRecord


class Outcome(StrEnum):
    """What a headless run ends with; maps to the exit code."""

    RUNNING = "running"
    DONE = "done"
    FAILED = "failed"
    ROLLED_BACK = "rolled_back"
    WAITING = "waiting"
    ABANDONED = "abandoned"

    @property
    def exit_code(self) -> int:
        return {
            Outcome.DONE: 0,
            Outcome.FAILED: 1,
            Outcome.ROLLED_BACK: 3,
            Outcome.WAITING: 4,
            Outcome.ABANDONED: 1,
            Outcome.RUNNING: 4,
        }[self]


@dataclass
class Gate:
    """Something only the operator can settle: a question, a start, a checklist."""

    kind: str  # ask | start | checklist
    question: str
    confirm: str | None = None
    items: tuple[str, ...] = ()
    ticked: set[int] = field(default_factory=set)
    answered: threading.Event = field(default_factory=threading.Event)
    answer: bool | None = None


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
    # Live attempt bookkeeping; none of it survives a restart.
    cancel: threading.Event | None = None
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


@dataclass(frozen=True)
class ProgressView:
    label: str
    done: float
    total: float | None
    unit: str
    rate: float | None

    @property
    def fraction(self) -> float | None:
        if not self.total:
            return None
        return max(0.0, min(1.0, self.done / self.total))

    @property
    def eta_seconds(self) -> float | None:
        if not self.total or not self.rate or self.rate <= 0:
            return None
        return max(0.0, (self.total - self.done) / self.rate)


@dataclass(frozen=True)
class GateView:
    kind: str
    question: str
    confirm: str | None
    items: tuple[str, ...]
    ticked: frozenset[int]


@dataclass(frozen=True)
class StepView:
    id: str
    title: str
    phase: str
    kind: str
    effect: str
    state: StepState
    attempt: int
    reason: str
    due: datetime | None
    planned_start: timedelta | None
    planned_end: timedelta | None
    budget: timedelta | None
    started: datetime | None
    ended: datetime | None
    elapsed: timedelta | None
    late_by: timedelta | None
    progress: tuple[ProgressView, ...]
    gate: GateView | None
    not_run: bool
    retry_at: datetime | None
    in_rollback: bool
    start_mode: str
    log_count: int
    undo: str | None
    needs: tuple[str, ...]
    point_of_no_return: bool
    resumes: bool = False  # a retry continues from the checkpoint (else it starts over)


@dataclass(frozen=True)
class TriggerView:
    id: str
    title: str
    condition: str
    action: str
    within: timedelta | None
    fired: bool
    fired_at: datetime | None
    reason: str


@dataclass(frozen=True)
class RollbackView:
    reason: str
    trigger_id: str | None
    deadline: datetime | None
    plan: tuple[str, ...]
    position: int
    awaiting_confirmation: bool
    finished: bool
    ok: bool | None


@dataclass(frozen=True)
class PhaseView:
    id: str
    title: str
    kind: str
    at: timedelta | None
    window: bool
    step_ids: tuple[str, ...]


@dataclass(frozen=True)
class RunView:
    run_id: int
    name: str
    mode: str  # live | rehearsal
    dry_run: bool
    state: str
    paused: bool
    now: datetime
    t0: datetime
    window_start: datetime | None
    window_end: datetime | None
    phases: tuple[PhaseView, ...]
    steps: dict[str, StepView]
    triggers: tuple[TriggerView, ...]
    rollback: RollbackView | None
    ponr_passed: bool
    outcome: Outcome
    metrics: dict[str, float]
    speed: float
    operator: str

    @property
    def window_left(self) -> timedelta | None:
        if self.window_end is None:
            return None
        return self.window_end - self.now
