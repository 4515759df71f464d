"""The cockpit as a step kind sees it: the one module a step kind imports from the cockpit.

A step kind is a class registered under the `cockpit.steps` entry-point group of its package's
`pyproject.toml` (`"my.kind" = "my_package.module:MyStep"`); the cockpit finds it there and never
imports it by name. The smallest one::

    from cockpit.step_api import Effect, Step, StepContext, StepFailed, StepParams

    class PingParams(StepParams):
        url: str

    class PingStep(Step[PingParams]):
        kind = "my.ping"
        effect = Effect.PROBE          # probe (a dry run runs it), mutate or notify
        Params = PingParams            # the step's `with` table, validated by `cockpit check`

        def run(self, ctx: StepContext[PingParams]) -> None:
            ctx.log(f"pinging {ctx.params.url}")
            ...                          # raise StepFailed("why") to fail

What a kind may use, all from here:

- `Step[P]`, `StepParams`, `Effect`: the kind itself, its parameters, what it does to the world.
  Class attributes say more: `asks_only` (it only asks the operator), `resumes` (a retry
  continues from its checkpoint), `waits` (a rehearsal compresses its time).
- `StepContext[P]`: everything one attempt may touch: `params`, `connection(name)`, `log()`,
  `progress()`, `metric()`, `report()`, `checkpoint` (journaled; a retry starts from it),
  `checkpoint_of(step)`, `ask()`, `checklist()`, `sleep()` (on the run's clock), `cancel`
  (an Event to watch), `artifacts` (a private folder), `base_dir` (the runbook's folder),
  `dry_run`, `clock`, `t0`.
- `StepFailed`, `StepCancelled`: how an attempt ends other than by returning.
- `ProbeCall`: a parameter that embeds a probe kind with its `with` (a checklist item's
  `check`); `cockpit check` validates it by that kind, and `ctx.probe(call, label)` runs it.
- `ConnectionRef`, `StepRef`: markers for parameters that name a connection or another step,
  checked by `cockpit check` at the parameter's line.
- `Duration`, `Offset`: parameter types written `"90s"`, `"5m"`, `"T-1d"`; `format_duration`,
  `format_offset` and `parse_duration` for text.
- `private_dir`: a folder (and its missing parents) readable by its owner only, for files that
  hold user data; `Writeback`: start writing a large file's data to disk as it is written, so
  its final fsync is short.
- `KeptCommand`: a command whose whole process tree stops when the attempt ends, the
  cockpit's death included (cockpit/process_keeper.py); `PROCESS_RECORD`, `stop_processes`
  and `stopped_lines`: its record in the checkpoint, stopping what a crashed attempt left, and
  what its keeper stopped. `die_with_parent`: a worker pool's initializer, so that a worker
  busy with a task does not outlive the step's process.
- `load_checked`, `ProblemsError`, `Problem`: read a companion TOML file (a mapping) through a
  pydantic model, every problem at its file and line.
- `open_session`, `SmtpProblem`, `reply_of`: a session with an `smtp` connection's server (TLS
  and login as the connection says), and a server's reply on one line.
- `COCKPIT_VERSION`: for a user agent.
"""

from __future__ import annotations

from cockpit import __version__ as COCKPIT_VERSION
from cockpit.attempt_processes import RECORD as PROCESS_RECORD
from cockpit.attempt_processes import KeptCommand, stopped_lines
from cockpit.attempt_processes import stop as stop_processes
from cockpit.checked_toml import ProblemsError, load_checked
from cockpit.clock import format_duration, format_offset, parse_duration
from cockpit.journal import private_dir
from cockpit.parent_death import die_with_parent
from cockpit.runbook import Duration, Offset, Problem
from cockpit.smtp import SmtpProblem, open_session, reply_of
from cockpit.step import (
    Checkpoint,
    ConnectionRef,
    Effect,
    ProbeCall,
    ProbeResult,
    Step,
    StepCancelled,
    StepContext,
    StepFailed,
    StepParams,
    StepRef,
)
from cockpit.writeback import Writeback

__all__ = [
    "COCKPIT_VERSION",
    "Checkpoint",
    "ConnectionRef",
    "Duration",
    "Effect",
    "Offset",
    "ProbeCall",
    "ProbeResult",
    "Problem",
    "ProblemsError",
    "KeptCommand",
    "PROCESS_RECORD",
    "SmtpProblem",
    "Step",
    "StepCancelled",
    "StepContext",
    "StepFailed",
    "StepParams",
    "StepRef",
    "Writeback",
    "die_with_parent",
    "format_duration",
    "format_offset",
    "load_checked",
    "open_session",
    "parse_duration",
    "private_dir",
    "reply_of",
    "stop_processes",
    "stopped_lines",
]
