"""The state of one run in this process, shared by the engine's parts.

Every part of the engine (scheduling, attempts, operator actions, rollback, opening) reads
and changes the run through this object, under its one lock. It holds state and the
questions asked of that state; what changes it, and how, belongs to the parts.
"""

from __future__ import annotations

import os
import threading
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from cockpit import secrets
from cockpit.clock import Clock
from cockpit.engine.rollback_state import RollbackState
from cockpit.engine.step_runtime import StepRuntime
from cockpit.events import RunState, StepState
from cockpit.journal import Journal
from cockpit.operator import Operator
from cockpit.plan import Plan, compute_plan
from cockpit.runbook import Runbook
from cockpit.step import StepParams
from cockpit.triggers import TriggerWatch

# How long a stopped attempt may take to notice its cancellation before it is abandoned.
DEFAULT_GRACE = 5.0


@dataclass(frozen=True)
class EngineOptions:
    """How this process runs the runbook: fixed for the life of the engine."""

    rehearsal: bool = False
    dry_run: bool = False
    new_run: bool = False
    jump_idle: bool = False
    grace: float = DEFAULT_GRACE
    command: str = ""

    @property
    def mode(self) -> str:
        return "rehearsal" if self.rehearsal else "live"


class LiveRun:
    def __init__(
        self,
        runbook: Runbook,
        journal: Journal,
        clock: Clock,
        operator: Operator,
        options: EngineOptions,
        *,
        answers: Mapping[str, str] | None = None,
        env: Mapping[str, str] | None = None,
    ) -> None:
        self.runbook = runbook
        self.journal = journal
        self.clock = clock
        self.operator = operator
        self.options = options
        # Answers given on the command line, consumed as the gates they answer open.
        self.answers: dict[str, str] = dict(answers or {})
        self.env: Mapping[str, str] = os.environ if env is None else env
        self.plan: Plan = compute_plan(runbook)
        self.redact = secrets.Redactor()
        self.lock = threading.RLock()
        # Notified on every change the scheduler may act on.
        self.wake = threading.Condition(self.lock)
        self.steps: dict[str, StepRuntime] = {}
        self.params: dict[str, StepParams] = {}
        self.connections: dict[str, Any] = {}
        # Each trigger's `notify` with its ${VAR}s resolved, by trigger id.
        self.notify: dict[str, Any] = {}
        self.run_id = 0
        self.state = RunState.RUNNING
        self.paused = False
        self.resumed = False
        # The order in which forward steps succeeded: a rollback undoes them latest first.
        self.completions = 0
        self.metrics: dict[str, float] = {}
        self.triggers = TriggerWatch(runbook, self.plan, {})
        self.rollback: RollbackState | None = None

    def step(self, step_id: str) -> StepRuntime:
        return self.steps[step_id]

    def needs_met(self, step_id: str) -> bool:
        return all(self.steps[n].state.satisfies_needs for n in self.runbook.step(step_id).needs if n in self.steps)

    def unfinished_phases(self) -> set[str]:
        return {s.phase for s in self.runbook.forward_steps if not self.steps[s.id].state.terminal}

    @property
    def ponr_passed(self) -> bool:
        """A step marked point_of_no_return has succeeded: a rollback now needs typed confirmation."""
        return any(
            s.point_of_no_return and self.steps[s.id].state == StepState.SUCCEEDED for s in self.runbook.forward_steps
        )

    def live_attempts(self) -> list[StepRuntime]:
        return [rt for rt in self.steps.values() if rt.cancel is not None]

    def persist(self) -> None:
        """Journal what the run's row keeps beside its events: paused, and the rollback's progress."""
        rb = self.rollback
        self.journal.update_run(self.run_id, paused=int(self.paused), rollback=rb.to_json() if rb else None)

    @property
    def artifacts_root(self) -> Path:
        return self.journal.path.parent / "runs" / str(self.run_id)
