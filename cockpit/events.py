"""The frozen events the engine emits, in journal order.

The journal stores each event before it is published; the screen and the headless printer
are two subscribers of the same stream. Every text field has already been redacted.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from datetime import datetime
from enum import StrEnum
from typing import Any


class StepState(StrEnum):
    SCHEDULED = "scheduled"
    READY = "ready"
    RUNNING = "running"
    SUCCEEDED = "succeeded"
    FAILED = "failed"
    SKIPPED = "skipped"
    CANCELLED = "cancelled"
    WAITING = "waiting"
    INTERRUPTED = "interrupted"

    @property
    def terminal(self) -> bool:
        return self in (StepState.SUCCEEDED, StepState.FAILED, StepState.SKIPPED, StepState.CANCELLED)

    @property
    def satisfies_needs(self) -> bool:
        """A need is met when it succeeded, or when the operator deliberately skipped it."""
        return self in (StepState.SUCCEEDED, StepState.SKIPPED)

    @property
    def needs_operator(self) -> bool:
        return self in (StepState.FAILED, StepState.CANCELLED, StepState.INTERRUPTED, StepState.WAITING)


class RunState(StrEnum):
    RUNNING = "running"
    PAUSED = "paused"
    ROLLING_BACK = "rolling_back"
    ROLLED_BACK = "rolled_back"
    DONE = "done"
    ABANDONED = "abandoned"

    @property
    def ended(self) -> bool:
        return self in (RunState.ROLLED_BACK, RunState.DONE, RunState.ABANDONED)


@dataclass(frozen=True)
class Event:
    """Common fields: journal sequence, wall time (epoch seconds) and run clock time."""

    seq: int = field(default=0, kw_only=True)
    wall: float = field(default=0.0, kw_only=True)
    clock: datetime | None = field(default=None, kw_only=True)

    @property
    def type(self) -> str:
        return _TYPE_NAMES[type(self)]

    @property
    def step(self) -> str | None:
        return None

    def to_dict(self) -> dict[str, Any]:
        data: dict[str, Any] = {"type": self.type, "seq": self.seq, "wall": round(self.wall, 3)}
        if self.clock is not None:
            data["clock"] = self.clock.isoformat()
        for f in dataclasses.fields(self):
            if f.name in ("seq", "wall", "clock"):
                continue
            value = getattr(self, f.name)
            if isinstance(value, datetime):
                value = value.isoformat()
            elif isinstance(value, tuple):
                value = list(value)
            data[f.name] = value
        return data


@dataclass(frozen=True)
class RunOpened(Event):
    run_id: int
    runbook: str
    mode: str
    dry_run: bool
    resumed: bool
    operator: str


@dataclass(frozen=True)
class RunStateChanged(Event):
    state: str
    reason: str = ""


@dataclass(frozen=True)
class StepStateChanged(Event):
    step_id: str
    state: str
    previous: str
    attempt: int
    reason: str = ""

    @property
    def step(self) -> str | None:
        return self.step_id


@dataclass(frozen=True)
class StepLog(Event):
    step_id: str
    attempt: int
    first_line: int
    lines: tuple[str, ...]

    @property
    def step(self) -> str | None:
        return self.step_id


@dataclass(frozen=True)
class StepProgress(Event):
    step_id: str
    attempt: int
    label: str
    done: float
    total: float | None
    unit: str
    rate: float | None = None

    @property
    def step(self) -> str | None:
        return self.step_id


@dataclass(frozen=True)
class MetricRecorded(Event):
    step_id: str
    name: str
    value: float

    @property
    def step(self) -> str | None:
        return self.step_id


@dataclass(frozen=True)
class StepReport(Event):
    """A structured snapshot a step publishes for a view of its own (the DNS grid reads the
    `dns.propagation` topic); each replaces the step's previous report of the same topic."""

    step_id: str
    attempt: int
    topic: str
    data: str  # JSON text: a string, so that redaction covers it like any other field

    @property
    def step(self) -> str | None:
        return self.step_id


@dataclass(frozen=True)
class GateOpened(Event):
    """A step waits for the operator: a question, a start, a checklist, or a rollback to confirm."""

    step_id: str
    gate: str  # ask | start | checklist | rollback | interrupted
    question: str
    confirm: str | None = None
    items: tuple[str, ...] = ()
    # For a checklist, beside each item: why its check did not tick it ("" for none).
    notes: tuple[str, ...] = ()

    @property
    def step(self) -> str | None:
        return self.step_id


@dataclass(frozen=True)
class OperatorActed(Event):
    action: str
    operator: str
    step_id: str | None = None
    detail: str = ""

    @property
    def step(self) -> str | None:
        return self.step_id


@dataclass(frozen=True)
class ItemChecked(Event):
    """A checklist item's check ran: passed (the item is ticked by it) or why not, with its evidence."""

    step_id: str
    index: int
    item: str
    passed: bool
    reason: str = ""
    evidence: tuple[str, ...] = ()

    @property
    def step(self) -> str | None:
        return self.step_id


@dataclass(frozen=True)
class TriggerFired(Event):
    trigger_id: str
    action: str
    reason: str
    deadline: datetime | None = None


@dataclass(frozen=True)
class RollbackStarted(Event):
    reason: str
    trigger_id: str | None
    plan: tuple[str, ...]
    deadline: datetime | None = None


@dataclass(frozen=True)
class RollbackFinished(Event):
    ok: bool
    reason: str = ""


@dataclass(frozen=True)
class Alert(Event):
    level: str  # info | warning | error
    message: str
    step_id: str | None = None

    @property
    def step(self) -> str | None:
        return self.step_id


_TYPE_NAMES: dict[type[Event], str] = {
    RunOpened: "run_opened",
    RunStateChanged: "run_state",
    StepStateChanged: "step_state",
    StepLog: "step_log",
    StepProgress: "step_progress",
    MetricRecorded: "metric",
    StepReport: "step_report",
    GateOpened: "gate",
    OperatorActed: "operator_action",
    ItemChecked: "item_checked",
    TriggerFired: "trigger_fired",
    RollbackStarted: "rollback_started",
    RollbackFinished: "rollback_finished",
    Alert: "alert",
}
EVENT_TYPES: dict[str, type[Event]] = {v: k for k, v in _TYPE_NAMES.items()}
