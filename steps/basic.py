"""General-purpose kinds: `shell`, `manual`, `checklist`, `wait`."""

from __future__ import annotations

import os
import shlex
import shutil
import subprocess
import threading
from collections.abc import Callable
from datetime import timedelta
from pathlib import Path
from typing import IO, Any, Literal

from pydantic import Field, model_validator

from cockpit.step_api import (
    PROCESS_RECORD,
    Duration,
    Effect,
    KeptCommand,
    Offset,
    ProbeCall,
    Step,
    StepCancelled,
    StepContext,
    StepFailed,
    StepParams,
    format_duration,
    format_offset,
    stop_processes,
)

# How long a cancelled command gets between SIGTERM and SIGKILL.
_TERM_GRACE = 3.0


class ShellParams(StepParams):
    argv: list[str] = Field(min_length=1, description="the command and its arguments; no shell is involved")
    env: dict[str, str] = Field(default_factory=dict, description="added to the inherited environment")
    cwd: str | None = Field(default=None, description="working folder, relative to the runbook's folder")
    effect: Literal["probe", "mutate", "notify"] = Field(
        default="mutate", description="declare `probe` for a read-only command, so a dry run executes it"
    )


class ShellStep(Step[ShellParams]):
    """Runs a command; its output streams to the step's log; a non-zero exit fails the step."""

    kind = "shell"
    effect = Effect.MUTATE
    Params = ShellParams

    def effect_of(self, params: ShellParams) -> Effect:
        return Effect(params.effect)

    def describe(self, params: ShellParams) -> str:
        return f"run {shlex.join(params.argv)}"

    def run(self, ctx: StepContext[ShellParams]) -> None:
        params = ctx.params
        cwd = ctx.base_dir / params.cwd if params.cwd else ctx.base_dir
        run_command(ctx, params.argv, {**os.environ, **params.env}, cwd)


def run_command(
    ctx: StepContext[Any],
    argv: list[str],
    env: dict[str, str],
    cwd: Path,
    sink: Callable[[bytes], None] | None = None,
    watch: Callable[[str], None] | None = None,
) -> None:
    """Run a command for a step: output to the log, stopped on cancel, and every process it
    starts stopped with the attempt, the cockpit's death included (cockpit/process_keeper.py).

    With `sink`, standard output goes to it in blocks (a dump to a file) and only standard
    error to the log. `watch` sees every line that goes to the log (to read a figure from
    it). A non-zero exit raises StepFailed.
    """
    _stop_leftovers(ctx)
    if not cwd.is_dir():
        raise StepFailed(f"cwd is not a folder: {cwd}")
    program = _find_program(argv[0], env, cwd)
    try:
        command = KeptCommand(
            [program, *argv[1:]],
            cwd=cwd,
            env=env,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE if sink else subprocess.STDOUT,
            report=ctx.artifacts / f"processes-{ctx.attempt}.json",
            grace=_TERM_GRACE,
        )
    except OSError as exc:
        raise StepFailed(f"cannot start {argv[0]}: {exc.strerror}") from None
    # If the cockpit dies now, its next start finds what this attempt left by this record.
    ctx.checkpoint[PROCESS_RECORD] = command.record
    proc = command.popen
    finished = threading.Event()
    watcher = threading.Thread(target=_end_on_cancel, args=(command, ctx.cancel, finished), daemon=True)
    watcher.start()
    errors = None
    try:
        if sink is None:
            _stream_lines(proc.stdout, ctx, watch)
        else:
            errors = threading.Thread(target=_stream_lines, args=(proc.stderr, ctx, watch), daemon=True)
            errors.start()
            _stream_blocks(proc.stdout, sink)
        outcome = command.wait()
        if errors is not None:
            errors.join()
    except BaseException:
        command.end()  # our side failed (a full disk): the command's tree stops too
        command.wait()
        raise
    finally:
        finished.set()
    del ctx.checkpoint[PROCESS_RECORD]
    code = outcome["status"]
    if ctx.cancel.is_set():
        raise StepCancelled(f"command stopped ({_exit(code)})")
    if code != 0:
        raise StepFailed(f"{argv[0]} {_exit(code)}")


def _exit(code: int | None) -> str:
    if code is None:
        return "its keeper was stopped"
    return f"killed by signal {-code}" if code < 0 else f"exited with status {code}"


def _find_program(name: str, env: dict[str, str], cwd: Path) -> str:
    """The executable's path, or a StepFailed that says what is wrong with it."""
    if "/" in name:
        path = Path(name) if Path(name).is_absolute() else cwd / name
        if not path.exists():
            raise StepFailed(f"command not found: {name}")
        if not os.access(path, os.X_OK) or path.is_dir():
            raise StepFailed(f"not executable: {name}")
        return str(path)
    found = shutil.which(name, path=env.get("PATH", os.defpath))
    if found is None:
        raise StepFailed(f"command not found: {name}")
    return found


def _stop_leftovers(ctx: StepContext[Any]) -> None:
    """Stop what an interrupted attempt left running (the cockpit died before its keeper
    finished), before this attempt starts."""
    left = ctx.checkpoint.get(PROCESS_RECORD)
    if not left:
        return
    for survivor in stop_processes(left):
        ctx.log(f"[cockpit] stopped pid {survivor.pid} ({survivor.program}) of the interrupted attempt")
    del ctx.checkpoint[PROCESS_RECORD]


def _stream_blocks(stream: IO[bytes] | None, sink: Callable[[bytes], None]) -> None:
    assert stream is not None
    fd = stream.fileno()
    while block := os.read(fd, 1 << 20):
        sink(block)


def _stream_lines(stream: IO[bytes] | None, ctx: StepContext[Any], watch: Callable[[str], None] | None = None) -> None:
    assert stream is not None
    fd = stream.fileno()
    partial = b""

    def emit(raw: list[bytes]) -> None:
        lines = [line.decode("utf-8", "replace").rstrip("\r") for line in raw]
        ctx.log_lines(lines)
        if watch is not None:
            for line in lines:
                watch(line)

    while True:
        chunk = os.read(fd, 1 << 16)
        if not chunk:
            break
        data = partial + chunk
        lines = data.split(b"\n")
        partial = lines.pop()
        if lines:
            emit(lines)
    if partial:
        emit([partial])


def _end_on_cancel(command: KeptCommand, cancel: threading.Event, finished: threading.Event) -> None:
    """A cancelled attempt (the operator, a timeout, a rollback) ends: the keeper stops the tree."""
    while not finished.is_set():
        if cancel.wait(0.1):
            command.end()
            return


class ManualParams(StepParams):
    question: str = Field(description="what the operator must do or decide")
    confirm: str | None = Field(default=None, description="text the operator must type to answer yes")


class ManualStep(Step[ManualParams]):
    """A gate: asks the operator; yes succeeds, no fails."""

    kind = "manual"
    # A person acting on the question may change anything, so a dry run asks nothing.
    effect = Effect.MUTATE
    Params = ManualParams
    asks_only = True

    def describe(self, params: ManualParams) -> str:
        return f"ask the operator: {params.question}"

    def run(self, ctx: StepContext[ManualParams]) -> None:
        params = ctx.params
        ctx.log(f"question: {params.question}")
        # Who answered, and how, is logged by the cockpit when the answer is given.
        if not ctx.ask(params.question, params.confirm):
            raise StepFailed("the operator answered no")


class ChecklistItem(StepParams):
    item: str = Field(description="what must be true")
    check: ProbeCall | None = Field(
        default=None, description="a probe that ticks the item when it passes: { kind = ..., with = {...} }"
    )


class ChecklistParams(StepParams):
    items: list[str | ChecklistItem] = Field(
        min_length=1, description="what must be true: a text, or { item = ..., check = {...} }"
    )

    def texts(self) -> list[str]:
        return [i if isinstance(i, str) else i.item for i in self.items]

    def checks(self) -> list[ProbeCall | None]:
        return [None if isinstance(i, str) else i.check for i in self.items]


class ChecklistStep(Step[ChecklistParams]):
    """The operator ticks every item, or an item's check ticks it; all ticked, the step succeeds."""

    kind = "checklist"
    effect = Effect.MUTATE
    Params = ChecklistParams
    asks_only = True
    resumes = True

    def describe(self, params: ChecklistParams) -> str:
        checked = sum(1 for c in params.checks() if c is not None)
        by_checks = f", {checked} of them by their checks" if checked else ""
        return f"ask the operator to tick {len(params.items)} items{by_checks}"

    def run(self, ctx: StepContext[ChecklistParams]) -> None:
        params = ctx.params
        texts, checks = params.texts(), params.checks()
        for item, check in zip(texts, checks, strict=True):
            ctx.log(f"[ ] {item}" + (f"  (checked by {check.kind})" if check else ""))
        if not ctx.checklist(texts, checks):
            raise StepFailed("the checklist was refused")
        # The log ends as the list now stands: read later, the boxes above were only the ask.
        for item in texts:
            ctx.log(f"[x] {item}")
        ctx.log(f"all {len(texts)} items ticked")


class WaitParams(StepParams):
    duration: Duration | None = Field(default=None, description="wait this long")
    until: Offset | None = Field(default=None, description="or wait until this T-offset")

    @model_validator(mode="after")
    def _one_of(self) -> WaitParams:
        if (self.duration is None) == (self.until is None):
            raise ValueError("give exactly one of duration or until")
        return self


class WaitStep(Step[WaitParams]):
    """Waits on the run's clock (compressed in a rehearsal); resumes with the time that was left."""

    kind = "wait"
    effect = Effect.PROBE
    Params = WaitParams
    resumes = True
    waits = True

    def describe(self, params: WaitParams) -> str:
        if params.duration is not None:
            return f"wait {format_duration(params.duration)}"
        return f"wait until {format_offset(params.until or timedelta(0))}"

    def run(self, ctx: StepContext[WaitParams]) -> None:
        params = ctx.params
        from datetime import datetime

        start = ctx.clock.now()
        if "until" in ctx.checkpoint:
            target = datetime.fromisoformat(ctx.checkpoint["until"])
            ctx.log(f"resuming the wait until {target.isoformat()}")
        else:
            target = start + params.duration if params.duration is not None else ctx.t0 + (params.until or timedelta(0))
            ctx.checkpoint["until"] = target.isoformat()
        total = max(0.0, (target - start).total_seconds())
        while True:
            left = (target - ctx.clock.now()).total_seconds()
            ctx.progress(total - max(left, 0.0), total, "s")
            if left <= 0:
                return
            if ctx.clock.sleep(min(left, 1.0 * ctx.clock.speed), ctx.cancel):
                raise StepCancelled("wait cancelled")
