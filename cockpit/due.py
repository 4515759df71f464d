"""What is due: the runbook's steps against a time, sorted into overdue, due now and coming.

A go-live is sixty days; between the announcements and the decommission nobody keeps the
cockpit open. `cockpit due` answers, at any moment, what the plan expects by now and who must
act (the cockpit runs automatic steps; the operator answers questions, ticks checklists and
settles what failed). A step is due once its planned start has passed, and overdue when it is
still unfinished `grace` after its planned end (start plus budget): late enough that the
person reading cron's mail should look.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta

from cockpit.clock import format_offset
from cockpit.plan import Plan
from cockpit.runbook import Runbook

# A step is overdue this long after its planned end, unless the caller says otherwise.
DEFAULT_GRACE = timedelta(hours=1)

FINISHED = frozenset({"succeeded", "skipped"})
# States in which nothing moves until the operator acts.
NEEDS_OPERATOR = frozenset({"waiting", "failed", "cancelled", "interrupted"})


@dataclass(frozen=True)
class DueStep:
    step_id: str
    title: str
    kind: str
    offset: timedelta  # the planned start, from T-0
    planned: datetime  # the planned start
    state: str
    who: str  # cockpit | operator
    status: str  # overdue | due | coming

    def to_dict(self) -> dict[str, str]:
        return {
            "step": self.step_id,
            "title": self.title,
            "kind": self.kind,
            "planned": self.planned.isoformat(),
            "offset": format_offset(self.offset),
            "state": self.state,
            "who": self.who,
            "status": self.status,
        }


@dataclass(frozen=True)
class DueList:
    now: datetime
    within: timedelta
    steps: tuple[DueStep, ...]
    run_ended: str | None = None  # the state of a run that has ended: nothing is due any more

    def of(self, status: str) -> list[DueStep]:
        return [s for s in self.steps if s.status == status]

    @property
    def overdue(self) -> bool:
        return any(s.status == "overdue" for s in self.steps)


def who_acts(runbook: Runbook, step_id: str, state: str) -> str:
    """Who moves a step on: the cockpit by itself, or the operator."""
    step = runbook.step(step_id)
    if state in NEEDS_OPERATOR or step.start == "operator" or runbook.kind_of(step_id).asks_only:
        return "operator"
    return "cockpit"


def due_list(
    runbook: Runbook,
    plan: Plan,
    states: dict[str, str],
    now: datetime,
    within: timedelta,
    grace: timedelta = DEFAULT_GRACE,
    run_ended: str | None = None,
) -> DueList:
    """Sort the unfinished forward steps by `now`: overdue, due, or coming within `within`."""
    out: list[DueStep] = []
    if run_ended is None:
        for step in runbook.forward_steps:
            state = states.get(step.id, "scheduled")
            if state in FINISHED:
                continue
            planned = plan.steps[step.id]
            start = runbook.t0 + planned.start
            if start > now + within:
                continue
            if start > now and state == "scheduled":
                status = "coming"
            elif start > now:
                status = "due"  # started ahead of its plan: it is happening now
            elif now > runbook.t0 + planned.end + grace:
                status = "overdue"
            else:
                status = "due"
            out.append(
                DueStep(
                    step_id=step.id,
                    title=step.label,
                    kind=step.kind,
                    offset=planned.start,
                    planned=start,
                    state=state,
                    who=who_acts(runbook, step.id, state),
                    status=status,
                )
            )
    out.sort(key=lambda s: (s.planned, plan.order.index(s.step_id)))
    return DueList(now=now, within=within, steps=tuple(out), run_ended=run_ended)


_HEADINGS = {"overdue": "overdue", "due": "due now", "coming": "coming within {within}"}


def due_text(listing: DueList, runbook: Runbook, run_line: str) -> str:
    """The list for a terminal or cron's mail: a heading per group, a line per step."""
    from cockpit.clock import format_duration

    zone = runbook.t0.tzinfo
    now = listing.now.astimezone(zone)
    lines = [f"{runbook.name}: {now:%Y-%m-%d %H:%M %z} ({format_offset(listing.now - runbook.t0)}); {run_line}"]
    if listing.run_ended is not None:
        lines.append(f"the run has ended ({listing.run_ended.replace('_', ' ')}): nothing is due")
        return "\n".join(lines)
    # Columns as wide as the longest id and kind listed, so the lines line up under each other.
    id_width = max((len(s.step_id) for s in listing.steps), default=0)
    kind_width = max((len(s.kind) for s in listing.steps), default=0)
    for status in ("overdue", "due", "coming"):
        group = listing.of(status)
        heading = _HEADINGS[status].format(within=format_duration(listing.within))
        lines.append(f"{heading}: {len(group) or 'nothing'}")
        for s in group:
            when = s.planned.astimezone(zone)
            lines.append(
                f"  {s.step_id:<{id_width}}  {format_offset(s.offset):<9} {when:%a %d %b %H:%M}  "
                f"{s.kind:<{kind_width}}  {s.state:<11} {s.who:<8} {s.title}"
            )
    return "\n".join(lines)
