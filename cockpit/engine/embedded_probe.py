"""Running a probe inside another step (a checklist item's check), on that step's thread.

The probe is an ordinary step kind given a context of its own: its log lines join the host
step's log after the check's label, its progress and reports show under the host step, and
its checkpoint lives only as long as the check (a check starts over each time it runs). It may
not ask the operator: a check is evidence, not a question.
"""

from __future__ import annotations

import threading
import traceback
from collections import deque
from collections.abc import Sequence
from typing import Any

from cockpit.engine.live_run import LiveRun
from cockpit.journal import private_dir
from cockpit.step import (
    Check,
    Effect,
    ProbeCall,
    ProbeResult,
    StepCancelled,
    StepContext,
    StepFailed,
    StepHost,
)

# How many of a check's last log lines are kept as its evidence.
EVIDENCE_LINES = 6


class _ProbeHost:
    """The host step's services, seen from the embedded probe."""

    def __init__(self, outer: StepHost, label: str) -> None:
        self._outer = outer
        self._label = label
        self.last_lines: deque[str] = deque(maxlen=EVIDENCE_LINES)

    def step_log(self, step_id: str, attempt: int, lines: list[str]) -> None:
        self.last_lines.extend(lines)
        self._outer.step_log(step_id, attempt, [f"  {self._label}: {line}" for line in lines])

    def step_progress(
        self, step_id: str, attempt: int, done: float, total: float | None, unit: str, label: str
    ) -> None:
        self._outer.step_progress(step_id, attempt, done, total, unit, f"{self._label} {label}".strip())

    def step_metric(self, step_id: str, name: str, value: float) -> None:
        self._outer.step_metric(step_id, name, value)

    def step_checkpoint(self, step_id: str, data: dict[str, Any]) -> None:
        return None  # a check starts over each time: nothing of it is resumed

    def step_report(self, step_id: str, attempt: int, topic: str, data: dict[str, Any]) -> None:
        self._outer.step_report(step_id, attempt, topic, data)

    def step_checkpoint_of(self, step_id: str) -> dict[str, Any]:
        return self._outer.step_checkpoint_of(step_id)

    def step_ask(self, step_id: str, question: str, confirm: str | None, cancel: threading.Event) -> bool:
        raise StepFailed("a check cannot ask the operator")

    def step_checklist(
        self, step_id: str, items: list[str], cancel: threading.Event, checks: Sequence[Check | None] = ()
    ) -> bool:
        raise StepFailed("a check cannot ask the operator")

    def step_probe(
        self, step_id: str, attempt: int, call: ProbeCall, label: str, cancel: threading.Event
    ) -> ProbeResult:
        return self._outer.step_probe(step_id, attempt, call, f"{self._label} {label}", cancel)


def run_probe(
    live: LiveRun, outer: StepHost, step_id: str, attempt: int, call: ProbeCall, label: str, cancel: threading.Event
) -> ProbeResult:
    """Run `call` now and say whether it passed; a cancelled host step stops it and raises."""
    kind_type = live.runbook.kinds.get(call.kind)
    if kind_type is None:  # `cockpit check` refuses this; a runbook edited under a run may not
        return ProbeResult(False, f"no step kind {call.kind!r}", ())
    kind = kind_type()
    host = _ProbeHost(outer, label)
    try:
        # Its `${VAR}`s were resolved with the host step's `with`, of which it is a part.
        params = kind.Params.model_validate(call.with_, context={"base_dir": live.runbook.base_dir})
    except Exception as exc:
        return ProbeResult(False, f"{call.kind}: {live.redact(str(exc)).splitlines()[0]}", ())
    if kind.effect_of(params) != Effect.PROBE:
        return ProbeResult(False, f"{call.kind} with these parameters is not a probe; a check only looks", ())
    ctx: StepContext[Any] = StepContext(
        step_id=step_id,
        title=f"{live.runbook.step(step_id).label}: {label}",
        attempt=attempt,
        params=params,
        connections=live.connections,
        host=host,
        cancel=cancel,
        clock=live.clock,
        artifacts=private_dir(live.artifacts_root / step_id / label.replace(" ", "-")),
        dry_run=live.options.dry_run,
        checkpoint={},
        base_dir=live.runbook.base_dir,
        t0=live.runbook.t0,
        window=live.runbook.header.window,
        runbook_name=live.runbook.name,
    )
    host.step_log(step_id, attempt, [f"{kind.describe(params)}"])
    try:
        kind.run(ctx)
    except StepCancelled:
        raise
    except StepFailed as exc:
        result = ProbeResult(False, str(exc), ())
    except Exception as exc:
        host.step_log(step_id, attempt, traceback.format_exc().splitlines()[-3:])
        result = ProbeResult(False, f"{type(exc).__name__}: {exc}", ())
    else:
        result = ProbeResult(True, "", ())
    if cancel.is_set():
        raise StepCancelled("cancelled while a check ran")
    evidence = tuple(live.redact(line) for line in host.last_lines)
    return ProbeResult(result.passed, live.redact(result.reason), evidence)
