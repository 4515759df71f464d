"""runbook.toml -> frozen pydantic models; every problem carries file:line.

`load()` returns a `Runbook` or raises `RunbookError` holding every problem at once, each
with the line of the offending key, so `cockpit check` can print them all in one pass. The
cross-reference checks (ids, needs, cycles, connections, times) live in `runbook_checks`.
"""

from __future__ import annotations

import difflib
import hashlib
import re
import tomllib
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from functools import cached_property
from pathlib import Path
from typing import Annotated, Any, Literal

from pydantic import BaseModel, BeforeValidator, ConfigDict, Field, ValidationError, field_validator, model_validator

from cockpit import tomlpos
from cockpit.clock import DurationError, format_offset, parse_duration, parse_offset
from cockpit.connections import CONNECTION_KINDS
from cockpit.step import Step, StepParams

STEP_STATES = (
    "scheduled",
    "ready",
    "running",
    "succeeded",
    "failed",
    "skipped",
    "cancelled",
    "waiting",
    "interrupted",
)

_ID = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]*$")


def _duration(value: Any) -> timedelta:
    if isinstance(value, timedelta):
        return value
    try:
        return parse_duration(value)
    except DurationError as exc:
        raise ValueError(str(exc)) from None


def _offset(value: Any) -> timedelta:
    if isinstance(value, timedelta):
        return value
    try:
        return parse_offset(value)
    except DurationError as exc:
        raise ValueError(str(exc)) from None


def _identifier(value: Any) -> str:
    if not isinstance(value, str) or not _ID.match(value):
        raise ValueError(f"bad id {value!r}: use letters, digits, '-', '_' and '.', starting with a letter or digit")
    return value


Duration = Annotated[timedelta, BeforeValidator(_duration)]
Offset = Annotated[timedelta, BeforeValidator(_offset)]
Identifier = Annotated[str, BeforeValidator(_identifier)]


class _Model(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True, defer_build=True)


class RunbookHeader(_Model):
    """The `[runbook]` table."""

    name: str
    t0: datetime = Field(description="T-0: when the maintenance window opens; a TOML offset datetime")
    window: Duration | None = Field(default=None, description="planned length of the window phase")

    @field_validator("t0", mode="before")
    @classmethod
    def _offset_datetime(cls, value: Any) -> Any:
        if isinstance(value, datetime):
            if value.tzinfo is None:
                raise ValueError("t0 needs a UTC offset, e.g. 2026-12-05T23:00:00-05:00 (this one is a local datetime)")
            return value
        raise ValueError(f"t0 must be a TOML offset datetime, e.g. 2026-12-05T23:00:00-05:00, not {value!r}")


class Phase(_Model):
    """A `[[phase]]`: a group of steps with a start time (the rollback phase has none)."""

    id: Identifier
    title: str | None = None
    at: Offset | None = None
    kind: Literal["normal", "rollback"] = "normal"
    window: bool = False

    @property
    def label(self) -> str:
        return self.title or self.id


class RunbookStep(_Model):
    """A `[[step]]` entry as written; its `with` is validated by the kind's own model."""

    id: Identifier
    phase: str
    title: str | None = None
    kind: str
    at: Offset | None = None
    needs: list[str] = Field(default_factory=list)
    budget: Duration | None = None
    timeout: Duration | None = None
    retries: int = 0
    retry_delay: Duration = timedelta(seconds=5)
    start: Literal["auto", "operator"] = "auto"
    undo: str | None = None
    point_of_no_return: bool = False
    with_: dict[str, Any] = Field(default_factory=dict, alias="with")

    @field_validator("retries")
    @classmethod
    def _not_negative(cls, value: int) -> int:
        if value < 0:
            raise ValueError(f"retries must be 0 or more, not {value}")
        return value

    @property
    def label(self) -> str:
        return self.title or self.id


class StepStateCondition(_Model):
    step: str
    state: str

    @field_validator("state")
    @classmethod
    def _known_state(cls, value: str) -> str:
        if value not in STEP_STATES:
            hint = did_you_mean(value, STEP_STATES)
            raise ValueError(f"unknown step state {value!r}{hint}; one of: {', '.join(STEP_STATES)}")
        return value


class MetricCondition(_Model):
    metric: str
    above: float


class PhaseOverdueCondition(_Model):
    phase: str
    overdue: Duration


Condition = StepStateCondition | MetricCondition | PhaseOverdueCondition


def condition_model(value: Any) -> type[BaseModel] | None:
    """Which condition a `when` table is, told by its first key (None: not a condition)."""
    if not isinstance(value, dict):
        return None
    if "step" in value:
        return StepStateCondition
    if "metric" in value:
        return MetricCondition
    if "phase" in value:
        return PhaseOverdueCondition
    return None


class Notify(_Model):
    """Where a trigger's firing goes besides the screen: mail to people on call, a webhook (a
    chat channel's, a pager's). Values may be `${VAR}`: a webhook's URL is a secret."""

    connection: str | None = Field(default=None, description="the smtp connection the mail goes through")
    email: list[str] = Field(default_factory=list, description="addresses told of the firing")
    webhook: str | None = Field(default=None, description="a URL that gets the firing as JSON by POST")

    @model_validator(mode="after")
    def _complete(self) -> Notify:
        if self.email and self.connection is None:
            raise ValueError("notify.email needs notify.connection, an smtp connection")
        if not self.email and self.webhook is None:
            raise ValueError("notify needs email (with connection) or webhook")
        if (
            self.webhook is not None
            and "${" not in self.webhook
            and not self.webhook.startswith(("http://", "https://"))
        ):
            raise ValueError(f"notify.webhook {self.webhook!r} is not an http(s) URL")
        return self


class Trigger(_Model):
    """A `[[trigger]]`: a condition watched for the whole run, and what to do when it holds."""

    id: Identifier
    title: str | None = None
    when: Condition
    action: Literal["rollback", "pause", "alert"]
    within: Duration | None = None
    notify: Notify | None = None

    @property
    def label(self) -> str:
        return self.title or self.id


@dataclass(frozen=True)
class Problem:
    """One thing wrong with a runbook, at the line of the offending key."""

    file: Path
    line: int
    message: str
    severity: Literal["error", "warning"] = "error"

    def __str__(self) -> str:
        prefix = "warning: " if self.severity == "warning" else ""
        where = f"{self.file}:{self.line}" if self.line else str(self.file)  # line 0: the file as a whole
        return f"{where}: {prefix}{self.message}"


class RunbookError(Exception):
    """A runbook that must not run; `problems` lists every error found."""

    def __init__(self, problems: list[Problem]) -> None:
        self.problems = problems
        super().__init__("\n".join(str(p) for p in problems))


@dataclass(frozen=True)
class Runbook:
    """A validated runbook. Immutable; the engine keeps run state elsewhere."""

    source: Path
    text: str
    header: RunbookHeader
    connections: Mapping[str, Any]
    raw_connections: Mapping[str, Mapping[str, Any]]
    phases: tuple[Phase, ...]
    steps: tuple[RunbookStep, ...]
    triggers: tuple[Trigger, ...]
    params: Mapping[str, StepParams]
    kinds: Mapping[str, type[Step[Any]]]
    lines: tomlpos.KeyLines
    indices: Mapping[str, tuple[int, ...]]
    declared: Mapping[str, frozenset[str]]
    warnings: tuple[Problem, ...] = field(default=())

    @property
    def name(self) -> str:
        return self.header.name

    @property
    def t0(self) -> datetime:
        return self.header.t0

    @cached_property
    def digest(self) -> str:
        return hashlib.sha256(self.text.encode()).hexdigest()

    @property
    def base_dir(self) -> Path:
        return self.source.parent

    @cached_property
    def _phases(self) -> dict[str, Phase]:
        return {p.id: p for p in self.phases}

    @cached_property
    def _steps(self) -> dict[str, RunbookStep]:
        return {s.id: s for s in self.steps}

    def phase(self, phase_id: str) -> Phase:
        return self._phases[phase_id]

    def step(self, step_id: str) -> RunbookStep:
        return self._steps[step_id]

    def has_step(self, step_id: str) -> bool:
        return step_id in self._steps

    def has_phase(self, phase_id: str) -> bool:
        return phase_id in self._phases

    @cached_property
    def window_phase(self) -> Phase | None:
        return next((p for p in self.phases if p.window), None)

    @cached_property
    def rollback_phase(self) -> Phase | None:
        return next((p for p in self.phases if p.kind == "rollback"), None)

    def is_rollback_step(self, step_id: str) -> bool:
        return self.phase(self.step(step_id).phase).kind == "rollback"

    @cached_property
    def forward_steps(self) -> tuple[RunbookStep, ...]:
        return tuple(s for s in self.steps if not self.is_rollback_step(s.id))

    @cached_property
    def rollback_steps(self) -> tuple[RunbookStep, ...]:
        return tuple(s for s in self.steps if self.is_rollback_step(s.id))

    def offset_of(self, step_id: str) -> timedelta:
        """When the step may start, relative to T-0 (its own `at`, else its phase's)."""
        s = self.step(step_id)
        if s.at is not None:
            return s.at
        return self.phase(s.phase).at or timedelta(0)

    def due_at(self, step_id: str) -> datetime:
        return self.t0 + self.offset_of(step_id)

    def steps_in(self, phase_id: str) -> tuple[RunbookStep, ...]:
        return tuple(s for s in self.steps if s.phase == phase_id)

    def kind_of(self, step_id: str) -> type[Step[Any]]:
        return self.kinds[self.step(step_id).kind]

    def line_of(self, *path: str | int) -> int:
        return self.lines.line_of(path)

    def index_of(self, key: str, item: Any) -> int:
        """The document index of a parsed phase, step or trigger (items that failed are dropped)."""
        items: tuple[Any, ...] = getattr(self, key + "s")
        position = next(i for i, x in enumerate(items) if x is item)
        return self.indices[key][position]

    def step_line(self, step_id: str, *key: str) -> int:
        return self.lines.line_of(("step", self.index_of("step", self.step(step_id)), *key))

    def where(self, *path: str | int) -> str:
        """`file:line` of a key, for messages raised at run time."""
        return f"{self.source}:{self.lines.line_of(path)}"

    def describe_at(self, step_id: str) -> str:
        return format_offset(self.offset_of(step_id))


def did_you_mean(word: str, choices: Iterable[str]) -> str:
    close = difflib.get_close_matches(word, list(choices), n=1, cutoff=0.6)
    return f" (did you mean {close[0]!r}?)" if close else ""


class ProblemCollector:
    """Gathers problems with their lines while a document is validated piece by piece."""

    def __init__(self, source: Path, lines: tomlpos.KeyLines) -> None:
        self.source = source
        self.lines = lines
        self.problems: list[Problem] = []

    def error(self, path: tuple[str | int, ...], message: str) -> None:
        self.problems.append(Problem(self.source, self.lines.line_of(path), message))

    def warn(self, path: tuple[str | int, ...], message: str) -> None:
        self.problems.append(Problem(self.source, self.lines.line_of(path), message, "warning"))

    def validation(
        self,
        exc: ValidationError,
        base: tuple[str | int, ...],
        context: str,
        model: type[BaseModel] | None = None,
    ) -> None:
        for err in exc.errors():
            loc = tuple(err["loc"])
            # Errors raised inside the trigger's `when` validator carry no inner location.
            path = base + tuple(loc)
            key = next((str(p) for p in reversed(loc) if isinstance(p, str)), "")
            kind = err["type"]
            if kind == "extra_forbidden":
                allowed = _field_names(model, loc[:-1]) if model else []
                message = f"unknown key {key!r}{did_you_mean(key, allowed)}"
            elif kind == "missing":
                message = f"missing required key {key!r}"
            else:
                text = err["msg"].removeprefix("Value error, ")
                message = f"{key}: {text}" if key and not text.startswith(key) else text
                if kind in ("int_type", "int_parsing") and key == "retries":
                    message = f"retries: must be a whole number 0 or more, not {err.get('input')!r}"
                elif kind == "literal_error":
                    expected = str((err.get("ctx") or {}).get("expected", "")).replace("'", "")
                    message = f"{key}: unknown value {err.get('input')!r}; one of: {expected.replace(' or ', ', ')}"
            self.error(path, f"{context}: {message}" if context else message)


def _field_names(model: type[BaseModel], loc: tuple[Any, ...]) -> list[str]:
    """The keys allowed at `loc` inside `model`: nested models (in lists or optional) included."""
    current: type[BaseModel] | None = model
    for part in loc:
        if current is None:
            return []
        if not isinstance(part, str):
            continue  # a list index: the same model
        info = next((f for n, f in current.model_fields.items() if (f.alias or n) == part), None)
        current = _model_in(info.annotation) if info is not None else None
    if current is None:
        return []
    return [info.alias or name for name, info in current.model_fields.items()]


def _model_in(annotation: Any) -> type[BaseModel] | None:
    """The pydantic model inside an annotation such as `list[Resolver]` or `Requirement | None`."""
    import typing

    if isinstance(annotation, type) and issubclass(annotation, BaseModel):
        return annotation
    for arg in typing.get_args(annotation):
        found = _model_in(arg)
        if found is not None:
            return found
    return None


def syntax_problem(source: Path, exc: tomllib.TOMLDecodeError) -> Problem:
    message = str(exc)
    m = re.search(r"\(at line (\d+), column (\d+)\)", message)
    line = int(m.group(1)) if m else 1
    text = re.sub(r"\s*\(at line \d+, column \d+\)", "", message)
    if m:
        text += f" (column {m.group(2)})"
    if not m and "end of document" in message:
        line = max(1, source.read_text(encoding="utf-8", errors="replace").count("\n"))
    return Problem(source, line, f"TOML syntax error: {text}")


CONNECTION_KIND_NAMES = tuple(CONNECTION_KINDS)
