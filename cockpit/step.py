"""The contract between the engine and a step kind.

A step kind is a `Step` subclass with a `Params` pydantic model (its `with` table), an
`effect` (probe, mutate or notify) and a `run(ctx)` method that the engine calls on a worker
thread. Everything a step may touch comes through its `StepContext`: parameters, resolved
connections, `log()`, `progress()`, `metric()`, a journaled checkpoint, the cancellation
event, an artifacts folder, the clock, and `dry_run`.

Kinds live in `steps/` (or any installed package) and register through the `cockpit.steps`
entry-point group; the core never imports them by name. A kind imports what it needs of the
cockpit from `cockpit.step_api`, which re-exports this module's names with the others a kind
may use.
"""

from __future__ import annotations

import contextlib
import threading
from abc import ABC, abstractmethod
from collections.abc import Callable, Iterator, Mapping, MutableMapping, Sequence
from contextlib import AbstractContextManager
from dataclasses import dataclass
from datetime import datetime, timedelta
from enum import StrEnum
from pathlib import Path
from typing import Any, ClassVar, Generic, Protocol, TypeVar

from pydantic import BaseModel, ConfigDict, Field

from cockpit.clock import Clock


class Effect(StrEnum):
    """What running a step does to the world; a dry run executes only probes."""

    PROBE = "probe"
    MUTATE = "mutate"
    NOTIFY = "notify"


class StepFailed(Exception):
    """The step ran and did not achieve its purpose; the message is for the operator."""


class StepCancelled(Exception):
    """The step noticed its cancellation event and stopped."""


class StepParams(BaseModel):
    """Base of every kind's `with` model: strict, immutable."""

    model_config = ConfigDict(extra="forbid", frozen=True, defer_build=True)


# A kind's parameter model: `Step[ShellParams]` runs with a `StepContext[ShellParams]`, whose
# `params` is typed as that model.
P = TypeVar("P", bound=StepParams)


@dataclass(frozen=True)
class ConnectionRef:
    """Marks a parameter that names a connection, and the connection kind it must be.

    Use as `connection: Annotated[str, ConnectionRef("postgres")]`; `cockpit check` reports a
    missing connection or one of the wrong kind at the parameter's line.
    """

    kind: str


@dataclass(frozen=True)
class StepRef:
    """Marks a parameter that names another step of the runbook, and the kind it must be.

    Use as `update: Annotated[str, StepRef("dns.update")]`: `cockpit check` reports a missing
    step or one of another kind at the parameter's line, so an undo step never looks for the
    record of a step that does not exist.
    """

    kind: str


class ProbeCall(StepParams):
    """A probe step kind and its `with`, embedded in another step: a checklist item's `check`.

    `cockpit check` validates the embedded `with` by that kind's model and refuses a kind whose
    effect with these parameters is not a probe, at the line where it is written.
    """

    kind: str = Field(description="a probe step kind, e.g. dns.propagation, http.check")
    with_: dict[str, Any] = Field(default_factory=dict, alias="with", description="that kind's parameters")


@dataclass(frozen=True)
class ProbeResult:
    """How an embedded probe ended: passed or why not, and the last lines of its log as evidence."""

    passed: bool
    reason: str
    evidence: tuple[str, ...]


KeyPath = tuple[str | int, ...]


def embedded_probes(model: BaseModel, path: KeyPath = ()) -> Iterator[tuple[KeyPath, ProbeCall]]:
    """Every `ProbeCall` inside a parameter model, with its key path as written in the runbook."""
    for name, info in type(model).model_fields.items():
        value = getattr(model, name)
        yield from _probes_in(value, (*path, info.alias or name))


def _probes_in(value: Any, path: KeyPath) -> Iterator[tuple[KeyPath, ProbeCall]]:
    if isinstance(value, ProbeCall):
        yield path, value
    elif isinstance(value, BaseModel):
        yield from embedded_probes(value, path)
    elif isinstance(value, list | tuple):
        for index, item in enumerate(value):
            yield from _probes_in(item, (*path, index))


class Step(ABC, Generic[P]):
    """A step kind over its parameter model `P`. One instance runs one attempt."""

    kind: ClassVar[str] = ""
    effect: ClassVar[Effect] = Effect.MUTATE
    Params: ClassVar[type[StepParams]] = StepParams
    # True when the step does nothing but ask the operator: if the cockpit stops while it waits
    # at its gate, it asks again on restart instead of being recorded as interrupted.
    asks_only: ClassVar[bool] = False
    # True when a retried attempt continues from the checkpoint the last one saved; False when
    # it starts over. The operator is told which before a retry.
    resumes: ClassVar[bool] = False
    # True when the step waits on the run's clock rather than working (a `wait`): a rehearsal
    # compresses its time, where it measures a working step's in real seconds.
    waits: ClassVar[bool] = False
    # True when the kind does its own dry run (`ctx.dry_run`): an announcement writes its messages
    # to files instead of sending them. Otherwise a dry run runs only probes.
    dry_runs: ClassVar[bool] = False
    # True when the kind still runs with some of the connections it names switched off
    # (`enabled = false`) and works on the others (convex.migrate migrates PostgreSQL alone).
    # Otherwise such a step is skipped, the reason journaled.
    runs_with_connections_off: ClassVar[bool] = False

    def effect_of(self, params: P) -> Effect:
        """The effect of a step with these parameters (a read-only SQL step is a probe)."""
        return self.effect

    def describe(self, params: P) -> str:
        """One line saying what the step does; a dry run prints it for mutate and notify steps."""
        return f"{self.kind}: {params.model_dump(exclude_defaults=True)}"

    @abstractmethod
    def run(self, ctx: StepContext[P]) -> None:
        """Do the work. Return on success; raise `StepFailed` (or any error) on failure."""


class StepHost(Protocol):
    """What the engine provides behind a `StepContext`."""

    def step_log(self, step_id: str, attempt: int, lines: list[str]) -> None: ...

    def step_progress(
        self, step_id: str, attempt: int, done: float, total: float | None, unit: str, label: str
    ) -> None: ...

    def step_metric(self, step_id: str, name: str, value: float) -> None: ...

    def step_checkpoint(self, step_id: str, data: dict[str, Any]) -> None: ...

    def step_report(self, step_id: str, attempt: int, topic: str, data: dict[str, Any]) -> None: ...

    def step_checkpoint_of(self, step_id: str) -> dict[str, Any]: ...

    def step_ask(self, step_id: str, question: str, confirm: str | None, cancel: threading.Event) -> bool: ...

    def step_checklist(
        self, step_id: str, items: list[str], cancel: threading.Event, checks: Sequence[Check | None] = ()
    ) -> bool: ...

    def step_probe(
        self, step_id: str, attempt: int, call: ProbeCall, label: str, cancel: threading.Event
    ) -> ProbeResult: ...


# A checklist item's check, ready to run: the host calls it before it asks and on demand.
Check = Callable[[], ProbeResult]


class Checkpoint(MutableMapping[str, Any]):
    """A step's resumable state: every change is written to the journal before it returns.

    Values must be JSON-serialisable. A retried or resumed attempt starts with the last saved
    contents, so a step can continue where it stopped.
    """

    def __init__(self, data: Mapping[str, Any], save: Any) -> None:
        self._data: dict[str, Any] = dict(data)
        self._save = save

    def __getitem__(self, key: str) -> Any:
        return self._data[key]

    def __setitem__(self, key: str, value: Any) -> None:
        self._data[key] = value
        self._save(dict(self._data))

    def __delitem__(self, key: str) -> None:
        del self._data[key]
        self._save(dict(self._data))

    def __iter__(self) -> Iterator[str]:
        return iter(self._data)

    def __len__(self) -> int:
        return len(self._data)

    def update_all(self, values: Mapping[str, Any]) -> None:
        """Set several keys with one journal write."""
        self._data.update(values)
        self._save(dict(self._data))


class StepContext(Generic[P]):
    """Everything one attempt of one step may use; `params` is the kind's model, validated."""

    def __init__(
        self,
        *,
        step_id: str,
        title: str,
        attempt: int,
        params: P,
        connections: Mapping[str, Any],
        host: StepHost,
        cancel: threading.Event,
        clock: Clock,
        artifacts: Path,
        dry_run: bool,
        checkpoint: Mapping[str, Any],
        base_dir: Path,
        t0: datetime,
        window: timedelta | None = None,
        runbook_name: str = "",
        holds_real_time: bool = False,
    ) -> None:
        self.step_id = step_id
        self.title = title
        self.attempt = attempt
        self.params = params
        self.connections = connections
        self.cancel = cancel
        self.clock = clock
        self.artifacts = artifacts
        self.dry_run = dry_run
        self.base_dir = base_dir
        self.t0 = t0
        self.window = window  # the planned length of the maintenance window, when the runbook says
        self.runbook_name = runbook_name
        self._host = host
        # A working step in a rehearsal holds the clock at wall speed; its waits let go of it.
        self._holds_real_time = holds_real_time
        self.checkpoint = Checkpoint(checkpoint, lambda data: host.step_checkpoint(step_id, data))

    @property
    def cancelled(self) -> bool:
        return self.cancel.is_set()

    def raise_if_cancelled(self) -> None:
        if self.cancel.is_set():
            raise StepCancelled("cancelled")

    def log(self, text: str) -> None:
        """Append to the step's log; a text with newlines becomes several lines."""
        self._host.step_log(self.step_id, self.attempt, text.splitlines() or [""])

    def log_lines(self, lines: list[str]) -> None:
        self._host.step_log(self.step_id, self.attempt, lines)

    def progress(self, done: float, total: float | None = None, unit: str = "", label: str = "") -> None:
        """Report progress; bursts are collapsed, so call it as often as is convenient."""
        self._host.step_progress(self.step_id, self.attempt, done, total, unit, label)

    def metric(self, name: str, value: float) -> None:
        """Publish a measurement that `{metric, above}` triggers watch."""
        self._host.step_metric(self.step_id, name, float(value))

    def report(self, topic: str, data: dict[str, Any]) -> None:
        """Publish a structured snapshot (journaled) for a view that shows more than a log."""
        self._host.step_report(self.step_id, self.attempt, topic, data)

    def checkpoint_of(self, step_id: str) -> dict[str, Any]:
        """Another step's saved state in this run: how an undo step finds what its step recorded."""
        return self._host.step_checkpoint_of(step_id)

    def sleep(self, seconds: float) -> bool:
        """Wait on the run's clock; True (and return at once) if the step was cancelled."""
        with self._waiting():
            return self.clock.sleep(seconds, self.cancel)

    def ask(self, question: str, confirm: str | None = None) -> bool:
        """Ask the operator (a gate); blocks until answered. True for yes."""
        with self._waiting():
            return self._host.step_ask(self.step_id, question, confirm, self.cancel)

    def checklist(self, items: list[str], checks: Sequence[ProbeCall | None] = ()) -> bool:
        """Open a checklist for the operator; blocks until every item is ticked (True).

        An item with a check (`checks[i]`, a probe) is ticked by it when it passes: the checks
        run before the operator is asked and again whenever the operator asks for it.
        """
        runnable = [self._check_of(call, i) if call is not None else None for i, call in enumerate(checks)]
        with self._waiting():
            return self._host.step_checklist(self.step_id, items, self.cancel, runnable)

    def probe(self, call: ProbeCall, label: str) -> ProbeResult:
        """Run an embedded probe now, in this thread; its log lines join this step's, after `label`."""
        return self._host.step_probe(self.step_id, self.attempt, call, label, self.cancel)

    def _check_of(self, call: ProbeCall, index: int) -> Check:
        return lambda: self.probe(call, f"check {index + 1}")

    def _waiting(self) -> AbstractContextManager[None]:
        return self.clock.compressed() if self._holds_real_time else contextlib.nullcontext()

    def connection(self, name: str) -> Any:
        try:
            return self.connections[name]
        except KeyError:
            raise StepFailed(f"connection {name!r} is not defined") from None
