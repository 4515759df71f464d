"""`cockpit due`: what is overdue, due now and coming, from the runbook and its journal; with
`--run`, the automatic steps that are due run headless and the command exits.

So cron or a systemd timer carries a go-live through its sixty days without a cockpit open for
a month: each hour it runs what fell due, leaves what the operator must do waiting, and exits 1
(which cron mails) while anything is overdue.

Exit codes: 0 nothing overdue, 1 something is (or a step run now failed), 2 bad input.
"""

from __future__ import annotations

import json
import sys
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path

from cockpit.clock import DurationError, parse_duration, parse_offset
from cockpit.due import DueList, due_list, due_text
from cockpit.options import RunOptions, SessionError
from cockpit.runbook import Runbook

EXIT_CLEAR, EXIT_OVERDUE, EXIT_INVALID = 0, 1, 2
_ENDED = ("done", "rolled_back", "abandoned")


@dataclass(frozen=True)
class DueRequest:
    runbook: Path
    within: str
    grace: str
    at: str | None
    run: bool
    as_json: bool


def run_due(request: DueRequest, out: Callable[[str], None], err: Callable[[str], None]) -> int:
    from cockpit.plan import compute_plan
    from cockpit.session import load_runbook

    try:
        within = _duration("--within", request.within)
        grace = _duration("--grace", request.grace)
        runbook = load_runbook(request.runbook, _env())
        now = _now(request.at, runbook)
        if request.run and request.at is not None:
            raise SessionError(["--at shows the list at another time; --run runs what is due now: use one"])
    except SessionError as exc:
        for line in exc.lines:
            err(line)
        return EXIT_INVALID
    plan = compute_plan(runbook)
    run_failed = False
    if request.run:
        ran = _run_due_steps(runbook, request.as_json, err)
        if ran is None:
            return EXIT_INVALID
        run_failed = ran
        now = datetime.now(UTC)
    states, run_line, ended = _journal_states(runbook)
    listing = due_list(runbook, plan, states, now, within, grace, ended)
    if request.as_json:
        out(json.dumps(_as_dict(listing, run_line), indent=2))
    else:
        out(due_text(listing, runbook, run_line))
    return EXIT_OVERDUE if listing.overdue or run_failed else EXIT_CLEAR


def _env() -> dict[str, str]:
    import os

    return dict(os.environ)


def _duration(option: str, text: str) -> timedelta:
    try:
        value = parse_duration(text)
    except DurationError as exc:
        raise SessionError([f"{option}: {exc}"]) from None
    if value < timedelta(0):
        raise SessionError([f"{option}: must not be negative"])
    return value


def _now(at: str | None, runbook: Runbook) -> datetime:
    """Now, or the time `--at` names: a T-offset (T+7d) or an ISO 8601 time with its zone."""
    if at is None:
        return datetime.now(UTC)
    if at.strip().upper().startswith("T"):
        try:
            return runbook.t0 + parse_offset(at)
        except DurationError as exc:
            raise SessionError([f"--at: {exc}"]) from None
    try:
        when = datetime.fromisoformat(at)
    except ValueError:
        raise SessionError([f"--at: {at!r} is neither a T-offset (T+7d) nor an ISO 8601 time"]) from None
    if when.tzinfo is None:
        raise SessionError([f"--at: {at!r} has no zone: add one, e.g. {at}-05:00 or {at}Z"])
    return when


def _journal_states(runbook: Runbook) -> tuple[dict[str, str], str, str | None]:
    """Each step's state in the runbook's latest run, a line about that run, and its end state."""
    from cockpit.journal import Journal

    try:
        journal = Journal.for_runbook(runbook.source, readonly=True)
    except FileNotFoundError:
        return {}, "no run yet", None
    try:
        run = journal.latest_run(str(runbook.source.resolve()))
        if run is None:
            return {}, "no run yet", None
        states = {step: record.state for step, record in journal.steps(run.id).items()}
    finally:
        journal.close()
    mode = f"{run.mode}, " if run.mode != "live" else ""
    line = f"run {run.id} ({mode}{run.state.replace('_', ' ')})"
    return states, line, run.state if run.state in _ENDED else None


def _run_due_steps(runbook: Runbook, as_json: bool, err: Callable[[str], None]) -> bool | None:
    """Run what is due now, headless, until only later steps and the operator's are left.

    Returns whether a step failed, or None when the run could not be opened. A cockpit already
    driving the run runs its due steps itself: then nothing is run here.
    """
    from cockpit.headless import HeadlessPrinter
    from cockpit.journal import journal_dir
    from cockpit.lock import holder_of
    from cockpit.session import open_session

    holder = holder_of(journal_dir(runbook.source) / "run.lock")
    if holder is not None:
        err(f"the run is driven by {holder.get('operator', 'another cockpit')}: it runs what is due; nothing run here")
        return False
    try:
        session = open_session(RunOptions(runbook=runbook.source, command="due --run"))
    except SessionError as exc:
        for line in exc.lines:
            err(line)
        return None
    engine = session.engine
    # What ran is printed as `cockpit run --headless` prints it; with --json the list alone is
    # the output, so the events go to standard error.
    printer = HeadlessPrinter(sys.stderr if as_json else sys.stdout, t0=runbook.t0)
    engine.subscribe(printer)
    try:
        engine.start()
        engine.wait_until_idle()
        failed = any(s.state.value == "failed" for s in engine.view().steps.values())
    finally:
        session.close()
    return failed


def _as_dict(listing: DueList, run_line: str) -> dict[str, object]:
    return {
        "now": listing.now.isoformat(),
        "within": listing.within.total_seconds(),
        "run": run_line,
        "run_ended": listing.run_ended,
        "overdue": [s.to_dict() for s in listing.of("overdue")],
        "due": [s.to_dict() for s in listing.of("due")],
        "coming": [s.to_dict() for s in listing.of("coming")],
    }
