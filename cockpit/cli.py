"""The command line (a contract with users; see the README).

    cockpit [RUNBOOK]                open the cockpit (default ./runbook.toml)
    cockpit check RUNBOOK            validate; exit 0 or 2
    cockpit plan RUNBOOK             the timeline with absolute times, budgets and the window total
    cockpit run RUNBOOK --headless   run without the screen; --json prints one event per line
    cockpit status RUNBOOK           the journal's view of the current run
    cockpit due RUNBOOK [--run]      what is overdue, due now and coming; --run runs the due steps
    cockpit demo [--headless]        start the sandbox and rehearse runbook.toml against it
    cockpit dns check NAME --expect VALUE   a propagation check without a runbook

Exit codes: 0 done, 1 a step or the run failed, 2 invalid input, 3 rolled back, 4 waiting for
an operator (headless).
"""

from __future__ import annotations

import json
import os
import signal
import sys
import threading
from collections.abc import Callable
from pathlib import Path
from typing import Any

import click

# Only light modules here: the screen paints its first frame before the core is imported.
from cockpit.options import RunOptions, SessionError
from migrate.command import migrate as migrate_command
from migrate.command import sync as sync_command

EXIT_INVALID = 2


class _DefaultToOpen(click.Group):
    """`cockpit RUNBOOK` and plain `cockpit` open the screen; known words are subcommands."""

    def parse_args(self, ctx: click.Context, args: list[str]) -> list[str]:
        if not args or (args[0] not in self.commands and args[0] not in ("--help", "-h", "--version")):
            args = ["open", *args]
        return super().parse_args(ctx, args)


def _fail(lines: list[str], code: int = EXIT_INVALID) -> None:
    for line in lines:
        click.echo(line, err=True)
    sys.exit(code)


def _runbook_path(value: str | None) -> Path:
    return Path(value or "runbook.toml")


def _run_options(f: Callable[..., Any]) -> Callable[..., Any]:
    options = [
        click.option("--dry-run", is_flag=True, help="Run probes for real; print what other steps would do."),
        click.option("--rehearsal", is_flag=True, help="Compressed time: --speed times faster, idle gaps skipped."),
        click.option("--speed", type=float, default=60.0, show_default=True, help="Rehearsal clock speed."),
        click.option("--from", "start_from", metavar="T-OFFSET", help="Rehearsal start time, e.g. T-1d."),
        click.option(
            "--answer",
            "answers",
            multiple=True,
            metavar="STEP=VALUE",
            help="Answer for the operator: yes/no for a gate; retry, skip:REASON or done:REASON for "
            "an interrupted or failed step; rollback=yes past a point of no return.",
        ),
        click.option("--new", "new_run", is_flag=True, help="Abandon an unfinished run (journaled) and start afresh."),
    ]
    for option in reversed(options):
        f = option(f)
    return f


@click.group(cls=_DefaultToOpen, context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(package_name="cutover-cockpit")
def main() -> None:
    """Drive a database go-live from one terminal screen."""


@main.command("open", hidden=True)
@click.argument("runbook", required=False)
@_run_options
def open_cmd(runbook: str | None, **kwargs: Any) -> None:
    """Open the cockpit screen on RUNBOOK (default ./runbook.toml)."""
    _screen(RunOptions(runbook=_runbook_path(runbook), **_options(kwargs)))


def _options(kwargs: dict[str, Any]) -> dict[str, Any]:
    kwargs["answers"] = list(kwargs.get("answers") or [])
    return kwargs


@main.command()
@click.argument("runbook", type=click.Path(dir_okay=False))
def check(runbook: str) -> None:
    """Validate RUNBOOK: every problem as file:line: message; exit 0 when sound, 2 when not."""
    from cockpit import runbook_loader

    parsed, problems = runbook_loader.check(Path(runbook))
    for problem in problems:
        click.echo(str(problem), err=problem.severity == "error")
    if any("is not set (a run will need it)" in p.message for p in problems):
        from cockpit.options import UNSET_HINT

        click.echo(f"{runbook}: {UNSET_HINT}")
    errors = [p for p in problems if p.severity == "error"]
    if errors or parsed is None:
        click.echo(f"{runbook}: {len(errors)} problem{'s' if len(errors) != 1 else ''}", err=True)
        sys.exit(EXIT_INVALID)
    warnings = len(problems)
    click.echo(
        f"{runbook}: sound: {parsed.name!r}, {len(parsed.phases)} phases, {len(parsed.steps)} steps, "
        f"{len(parsed.triggers)} triggers, T-0 {parsed.t0:%Y-%m-%d %H:%M %z}"
        + (f" ({warnings} warning{'s' if warnings != 1 else ''})" if warnings else "")
    )


@main.command()
@click.argument("runbook", type=click.Path(dir_okay=False))
def plan(runbook: str) -> None:
    """The timeline: absolute start times, budgets, needs, the window total and its critical path."""
    from cockpit.plan_report import plan_report
    from cockpit.session import load_runbook

    try:
        parsed = load_runbook(Path(runbook), os.environ)
    except SessionError as exc:
        _fail(exc.lines)
    click.echo(plan_report(parsed))


@main.command()
@click.argument("runbook", type=click.Path(dir_okay=False))
@click.option("--headless", is_flag=True, help="No screen: a line per state change and periodic progress.")
@click.option("--json", "as_json", is_flag=True, help="With --headless: one JSON event per line.")
@_run_options
def run(runbook: str, headless: bool, as_json: bool, **kwargs: Any) -> None:
    """Run RUNBOOK: continue its unfinished run, or start a new one."""
    options = RunOptions(runbook=Path(runbook), **_options(kwargs))
    if not headless:
        if as_json:
            _fail(["--json goes with --headless"])
        _screen(options)
        return
    sys.exit(_headless(options, as_json))


@main.command()
@click.argument("runbook", type=click.Path(dir_okay=False))
@click.option("--json", "as_json", is_flag=True, help="The steps and the run as one JSON document.")
@click.option("--log", "log_step", metavar="STEP", help="Print the complete log of one step.")
def status(runbook: str, as_json: bool, log_step: str | None) -> None:
    """The journal's view of the current (or last) run of RUNBOOK."""
    from cockpit.journal import Journal, journal_dir
    from cockpit.status import status_facts, status_text

    path = Path(runbook)
    try:
        journal = Journal.for_runbook(path, readonly=True)
    except FileNotFoundError:
        _fail([f"{runbook}: no run yet (no journal at {journal_dir(path) / 'journal.db'})"], 1)
    run = journal.latest_run(str(path.resolve()))
    if run is None:
        _fail([f"{runbook}: no run yet"], 1)
    assert run is not None
    if log_step is not None:
        lines = journal.log_lines(run.id, log_step)
        if not lines and log_step not in journal.steps(run.id):
            _fail([f"{runbook}: run {run.id} has no step {log_step!r}"])
        for line in lines:
            click.echo(line)
        return
    facts = status_facts(journal, run, journal_dir(path) / "run.lock")
    if as_json:
        click.echo(json.dumps(facts, indent=2, default=str))
        return
    click.echo(status_text(facts))


@main.command()
@click.argument("runbook", type=click.Path(dir_okay=False))
@click.option("--within", default="24h", show_default=True, help="How far ahead 'coming' looks.")
@click.option("--grace", default="1h", show_default=True, help="Unfinished this long past its planned end: overdue.")
@click.option("--at", "at", metavar="TIME", help="List as of another time: T+7d, or 2026-12-12T23:00-05:00.")
@click.option("--run", "run_due", is_flag=True, help="Run the automatic steps that are due (headless), then list.")
@click.option("--json", "as_json", is_flag=True, help="The list as one JSON document.")
def due(runbook: str, within: str, grace: str, at: str | None, run_due: bool, as_json: bool) -> None:
    """What is overdue, due now and coming within --within, and who must act; exit 0 when
    nothing is overdue, 1 when something is, 2 on bad input. For cron or a systemd timer."""
    from cockpit.due_command import DueRequest
    from cockpit.due_command import run_due as run

    request = DueRequest(Path(runbook), within, grace, at, run_due, as_json)
    sys.exit(run(request, out=click.echo, err=lambda text: click.echo(text, err=True)))


main.add_command(migrate_command, "migrate")
main.add_command(sync_command, "sync")


@main.group()
def dns() -> None:
    """DNS checks without a runbook."""


@dns.command("check")
@click.argument("name")
@click.option("--type", "kind", default="A", show_default=True, help="Record type: A, AAAA, CNAME, TXT, MX, ...")
@click.option("--expect", multiple=True, metavar="VALUE", help="The new value (repeat for several records).")
@click.option("--old", multiple=True, metavar="VALUE", help="The value before the change: shown as 'old'.")
@click.option(
    "--resolvers",
    "resolvers_file",
    type=click.Path(dir_okay=False),
    default=None,
    help="TOML file of [[resolver]] name, address, port, filtering; replaces the built-in set.",
)
@click.option(
    "--authoritative",
    multiple=True,
    metavar="ADDRESS[:PORT]",
    help="The zone's authoritative servers (default: found from NS).",
)
@click.option("--timeout", type=float, default=2.0, show_default=True, help="Seconds per query.")
@click.option("--watch", is_flag=True, help="Check again every --interval until it holds (Ctrl+C stops).")
@click.option("--interval", type=float, default=5.0, show_default=True, help="Seconds between checks with --watch.")
@click.option("--within", type=float, default=None, help="With --watch: give up after this many seconds.")
@click.option(
    "--require", type=float, default=0.9, show_default=True, help="Fraction of answering resolvers that must be new."
)
@click.option("--json", "as_json", is_flag=True, help="Each server's state, answer and TTL as one JSON document.")
def dns_check(
    name: str,
    kind: str,
    expect: tuple[str, ...],
    old: tuple[str, ...],
    resolvers_file: str | None,
    authoritative: tuple[str, ...],
    timeout: float,
    watch: bool,
    interval: float,
    within: float | None,
    require: float,
    as_json: bool,
) -> None:
    """Ask every resolver and authoritative server for NAME at once; exit 0 when the expected
    answer holds where required, 1 when not, 2 on bad input."""
    from cockpit.dns_command import CheckRequest, run_check

    request = CheckRequest(
        name, kind, expect, old, resolvers_file, authoritative, timeout, watch, interval, within, require, as_json
    )
    sys.exit(run_check(request, out=click.echo, err=lambda text: click.echo(text, err=True)))


@main.command()
@click.option("--headless", is_flag=True, help="No screen; ends by itself (exit 0 when the rehearsal passes).")
@click.option("--json", "as_json", is_flag=True, help="With --headless: one JSON event per line.")
@click.option(
    "--scale",
    type=float,
    default=1.0,
    show_default=True,
    help="Size of the seeded v1 database: 1 is 1,000 users and 10,000 cases.",
)
@click.option(
    "--speed",
    type=float,
    default=None,
    help="Rehearsal clock speed (default 30 on screen, paced to about two minutes; 60 headless).",
)
@click.option(
    "--glide",
    type=float,
    default=None,
    help="On screen, seconds the clock takes to sweep over each idle gap (default 5; 0 jumps at once).",
)
@click.option(
    "--break",
    "breaks",
    multiple=True,
    type=click.Choice(["auth", "cases", "health"]),
    help="Make a v2 stand-in endpoint fail, to rehearse a rollback.",
)
@click.option(
    "--runbook",
    "runbook_path",
    type=click.Path(dir_okay=False),
    default=None,
    help="The runbook to rehearse (default: ./runbook.toml, else the example shipped with the cockpit, "
    "copied to ./cockpit-demo/ when the cockpit is installed).",
)
@click.option(
    "--new",
    "new_run",
    is_flag=True,
    help="Start a new rehearsal with a new sandbox, instead of continuing the unfinished one.",
)
def demo(
    headless: bool,
    as_json: bool,
    scale: float,
    speed: float | None,
    glide: float | None,
    breaks: tuple[str, ...],
    runbook_path: str | None,
    new_run: bool,
) -> None:
    """Start the sandbox (PostgreSQL, v1 and v2 stand-ins) and rehearse the runbook against it:
    the unfinished rehearsal, with the sandbox as it left it, or a new one."""
    from cockpit.example import demo_runbook
    from cockpit.sandbox.world import Sandbox, state_folder

    path = Path(runbook_path) if runbook_path else demo_runbook(Path.cwd())
    say: Callable[[str], None] = (
        (lambda text: click.echo(f"sandbox: {text}", err=True)) if not as_json else (lambda text: None)
    )
    state = state_folder(path)
    unfinished = _unfinished_rehearsal(path)
    fresh = new_run or unfinished is None or not state.exists()
    if unfinished is not None and not new_run:
        say(
            f"the sandbox of the unfinished rehearsal (run {unfinished}) is gone: a new rehearsal starts"
            if fresh
            else f"continuing the unfinished rehearsal (run {unfinished}); `cockpit demo --new` starts afresh"
        )
    _exit_on_signals()
    try:
        with Sandbox(scale, breaks=breaks, say=say, state=state, fresh=fresh) as sandbox:
            env = {**os.environ, **sandbox.env}
            # On screen the demo is paced for watching: the clock glides between due times and the
            # autopilot lets each question show before it answers.
            options = RunOptions(
                runbook=path,
                rehearsal=True,
                speed=speed or (60.0 if headless else 30.0),
                new_run=fresh,
                glide=0.0 if headless else (5.0 if glide is None else glide),
                env=env,
                command="cockpit demo" + (" --headless" if headless else ""),
            )
            if headless:
                code = _headless(options, as_json, autopilot_delay=0.0)
            else:
                code = _screen(options, autopilot_delay=3.0, exit_after=False)
            if sandbox.mail is not None:
                say(f"{len(sandbox.mail.arrivals()):,} messages in the mailbox, {sandbox.mail.mailbox}")
    except KeyboardInterrupt:
        click.echo("demo: stopped; the sandbox is shut down", err=True)
        sys.exit(130)
    except SessionError as exc:
        _fail(exc.lines)
    except Exception as exc:
        from cockpit.sandbox.world import SandboxError

        if isinstance(exc, SandboxError | ValueError):
            _fail([f"demo: {exc}"], 1)
        raise
    sys.exit(code)


def _unfinished_rehearsal(runbook: Path) -> int | None:
    """The id of the runbook's unfinished rehearsal, if its journal holds one."""
    from cockpit.events import RunState
    from cockpit.journal import Journal

    try:
        journal = Journal.for_runbook(runbook, readonly=True)
    except FileNotFoundError:
        return None
    try:
        run = journal.latest_run(str(runbook.resolve()))
    finally:
        journal.close()
    if run is None or run.mode != "rehearsal" or run.dry_run or RunState(run.state).ended:
        return None
    return run.id


def _exit_on_signals() -> None:
    """SIGTERM and SIGHUP (a dropped SSH session) unwind like Ctrl+C, so everything started stops."""

    def interrupt(signum: int, frame: Any) -> None:
        raise KeyboardInterrupt

    if threading.current_thread() is threading.main_thread():
        signal.signal(signal.SIGTERM, interrupt)
        signal.signal(signal.SIGHUP, interrupt)


def _headless(options: RunOptions, as_json: bool, autopilot_delay: float | None = None) -> int:
    from cockpit.headless import HeadlessPrinter
    from cockpit.session import open_session

    _exit_on_signals()
    try:
        session = open_session(options)
    except SessionError as exc:
        _fail(exc.lines)
        raise AssertionError from None
    engine = session.engine
    printer = HeadlessPrinter(
        as_json=as_json,
        t0=session.runbook.t0,
        log_tail=lambda step: session.journal.log_lines(engine.run_id, step, tail=5),
    )
    engine.subscribe(printer)
    autopilot = None
    if autopilot_delay is not None:
        from cockpit.autopilot import Autopilot

        autopilot = Autopilot(engine, autopilot_delay)
        engine.subscribe(autopilot)
        autopilot.retry_interrupted()
    # The journal already holds what happened before this process: replay it for the reader.
    for event in session.journal.events(engine.run_id):
        printer(event)
    stop_progress = threading.Event()

    def progress_loop() -> None:
        while not stop_progress.wait(5.0):
            printer.print_progress(engine.view())

    ticker = threading.Thread(target=progress_loop, daemon=True)
    try:
        engine.start()
        ticker.start()
        outcome = engine.wait_until_settled()
    except KeyboardInterrupt:
        stop_progress.set()
        if autopilot:
            autopilot.cancel()
        session.close()
        click.echo("stopped: running steps are recorded as interrupted; `cockpit run` continues the run", err=True)
        return 130
    stop_progress.set()
    if autopilot:
        autopilot.cancel()
    from cockpit.headless import summary_line

    view = engine.view()
    session.close()
    if not as_json:
        click.echo(summary_line(view, outcome.exit_code))
    return outcome.exit_code


def _screen(options: RunOptions, autopilot_delay: float | None = None, exit_after: bool = True) -> int:
    from cockpit.app import run_screen
    from cockpit.options import precheck

    problems = precheck(options.runbook, options.env if options.env is not None else os.environ)
    if problems:
        _fail(problems)

    code, problems, summary = run_screen(options, autopilot_delay=autopilot_delay)
    if problems:
        _fail(problems, code)
    if summary:
        click.echo(summary)
    if exit_after:
        sys.exit(code)
    return code


if __name__ == "__main__":
    main()
