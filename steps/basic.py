"""General-purpose kinds: `shell`, `manual`, `checklist`, `wait`."""

from __future__ import annotations

import contextlib
import os
import shlex
import shutil
import signal
import subprocess
import threading
import time
from collections.abc import Callable
from datetime import timedelta
from pathlib import Path
from typing import IO, Any, Literal

from pydantic import Field, model_validator

from cockpit.step_api import (
    Duration,
    Effect,
    Offset,
    ProbeCall,
    Step,
    StepCancelled,
    StepContext,
    StepFailed,
    StepParams,
    dying_with_parent,
    format_duration,
    format_offset,
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
    """Run a command for a step: output to the log, dies with the cockpit, stopped on cancel.

    With `sink`, standard output goes to it in blocks (a dump to a file) and only standard
    error to the log. `watch` sees every line that goes to the log (to read a figure from
    it). A non-zero exit raises StepFailed; a cancelled step kills the command's process group.
    """
    _stop_leftovers(ctx)
    if not cwd.is_dir():
        raise StepFailed(f"cwd is not a folder: {cwd}")
    program = _find_program(argv[0], env, cwd)
    try:
        proc = subprocess.Popen(
            dying_with_parent([program, *argv[1:]]),
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE if sink else subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
            cwd=cwd,
            env=env,
            start_new_session=True,
            bufsize=0,
        )
    except OSError as exc:
        raise StepFailed(f"cannot start {argv[0]}: {exc.strerror}") from None
    # If the cockpit dies now, the next attempt finds this group by its leader's start time.
    ctx.checkpoint[_PROCESS] = {"pgid": proc.pid, "started": _start_time(proc.pid)}
    finished = threading.Event()
    watcher = threading.Thread(target=_stop_on_cancel, args=(proc, ctx.cancel, finished), daemon=True)
    watcher.start()
    errors = None
    try:
        if sink is None:
            _stream_lines(proc.stdout, ctx, watch)
        else:
            errors = threading.Thread(target=_stream_lines, args=(proc.stderr, ctx, watch), daemon=True)
            errors.start()
            _stream_blocks(proc.stdout, sink)
        code = proc.wait()
        if errors is not None:
            errors.join()
    except BaseException:
        with contextlib.suppress(ProcessLookupError):  # our side failed (a full disk): stop the command too
            os.killpg(proc.pid, signal.SIGKILL)
        proc.wait()
        raise
    finally:
        finished.set()
    del ctx.checkpoint[_PROCESS]
    if ctx.cancel.is_set():
        raise StepCancelled(f"command stopped (exit status {code})")
    if code != 0:
        what = f"killed by signal {-code}" if code < 0 else f"exited with status {code}"
        raise StepFailed(f"{argv[0]} {what}")


_PROCESS = "_process"

# The command dies with the cockpit (cockpit/parent_death.py): after a crash its work is not
# finished unjournaled behind the operator's back, so a retry never repeats completed work.


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


def _start_time(pid: int) -> int | None:
    """The process's start time in clock ticks since boot (field 22 of /proc/PID/stat)."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    return int(stat.rsplit(")", 1)[1].split()[19])


def _group_members(pgid: int) -> list[int]:
    members = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            fields = (entry / "stat").read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        if int(fields[2]) == pgid and fields[0] != "Z":
            members.append(int(entry.name))
    return members


def _stop_leftovers(ctx: StepContext[Any]) -> None:
    """Stop the process group an interrupted attempt left running (the cockpit died, the command did not)."""
    left = ctx.checkpoint.get(_PROCESS)
    if not left:
        return
    pgid, started = left.get("pgid"), left.get("started")
    # The leader alive with the same start time is the same process; a dead leader whose group
    # still has members is the same group too (Linux does not reuse a live group's id).
    if pgid and (_start_time(pgid) == started or (_start_time(pgid) is None and _group_members(pgid))):
        ctx.log(f"[cockpit] stopping process group {pgid}, left running by the interrupted attempt")
        try:
            os.killpg(pgid, signal.SIGTERM)
            for _ in range(int(_TERM_GRACE / 0.05)):
                if not _group_members(pgid):
                    break
                time.sleep(0.05)
            else:
                os.killpg(pgid, signal.SIGKILL)
        except ProcessLookupError:
            pass
    del ctx.checkpoint[_PROCESS]


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


def _stop_on_cancel(proc: subprocess.Popen[bytes], cancel: threading.Event, finished: threading.Event) -> None:
    while not finished.is_set():
        if cancel.wait(0.1):
            break
    if finished.is_set() or proc.poll() is not None:
        return
    try:
        os.killpg(proc.pid, signal.SIGTERM)
        try:
            proc.wait(_TERM_GRACE)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
    except ProcessLookupError:
        pass


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
