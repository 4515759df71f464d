"""`dns.propagation`: poll every resolver and authoritative server until the change holds.

Each round asks all servers at once (steps/dns/check), logs every server whose state changed,
publishes the whole grid as a `dns.propagation` report (the DNS screen draws it) and the
propagated fraction as the metric `<step>.propagated` for triggers, and stops when the
requirement holds (success) or `within` passes (failure, saying what is missing).
"""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path
from typing import Annotated, Any

from pydantic import AfterValidator, Field, ValidationInfo, model_validator

from cockpit.step_api import (
    Duration,
    Effect,
    Step,
    StepCancelled,
    StepContext,
    StepFailed,
    StepParams,
    StepRef,
    format_duration,
)
from steps.dns.check.probe import State
from steps.dns.check.propagation import DiscoveryError, Propagation, Requirement, discover_authoritative
from steps.dns.check.records import check_name, check_type, parse_values, split_address
from steps.dns.check.resolvers import BUILTIN, Resolver, ResolversFileError, combine, load_resolvers

REPORT_TOPIC = "dns.propagation"


def _addresses(values: list[str]) -> list[str]:
    for value in values:
        split_address(value)  # BadRecord is a ValueError: pydantic reports it at the key's line
    return values


def _resolvers_file(value: str | None, info: ValidationInfo) -> str | None:
    base = (info.context or {}).get("base_dir")
    if value is not None and base is not None:
        try:
            load_resolvers(Path(base) / value)
        except ResolversFileError as exc:
            raise ValueError(
                "; ".join(f"{value}{f':{p.line}' if p.line else ''}: {p.message}" for p in exc.problems)
            ) from None
    return value


DnsName = Annotated[str, AfterValidator(check_name)]
RecordType = Annotated[str, AfterValidator(check_type)]


class PropagationParams(StepParams):
    name: DnsName = Field(description="the name that changes, e.g. app.example.com")
    type: RecordType = "A"
    expect: str | list[str] = Field(description="the new value(s)")
    old: str | list[str] | None = Field(default=None, description="the value(s) before the change")
    resolvers: list[Resolver] = Field(default_factory=list, description="resolvers added to the set")
    resolvers_file: Annotated[str | None, AfterValidator(_resolvers_file)] = None
    builtin_resolvers: bool = Field(default=True, description="include the built-in public resolvers")
    authoritative: Annotated[list[str], AfterValidator(_addresses)] = Field(
        default_factory=list, description="address[:port] of each authoritative server; default: from NS"
    )
    zone: DnsName | None = None
    require: Requirement = Field(default_factory=Requirement)
    interval: Duration = timedelta(seconds=10)
    within: Duration = Field(default=timedelta(minutes=30), description="give up after this long")
    query_timeout: Duration = timedelta(seconds=2)
    old_ttl: int | None = Field(default=None, ge=0, description="the old record's TTL, if known; for the ETA")
    update: Annotated[str | None, StepRef("dns.update")] = Field(
        default=None,
        description="the dns.update step of this change: its recorded value is the old one, "
        "its TTL and time give the ETA",
    )

    @model_validator(mode="after")
    def _values_fit_the_type(self) -> PropagationParams:
        parse_values(self.type, self.expect)
        if self.old is not None:
            parse_values(self.type, self.old)
        if not (self.builtin_resolvers or self.resolvers or self.resolvers_file):
            raise ValueError("no resolvers: set builtin_resolvers = true, or list resolvers or a resolvers_file")
        if self.query_timeout.total_seconds() <= 0 or self.interval.total_seconds() <= 0:
            raise ValueError("query_timeout and interval must be more than 0")
        return self


class PropagationStep(Step[PropagationParams]):
    """Checks a name across resolvers and authoritative servers until the requirement holds."""

    kind = "dns.propagation"
    effect = Effect.PROBE
    Params = PropagationParams
    resumes = True

    def describe(self, params: PropagationParams) -> str:
        return f"check that {params.name} {params.type} answers {params.expect} across resolvers"

    def build(self, ctx: StepContext[PropagationParams], params: PropagationParams) -> Propagation:
        groups: list[list[Resolver]] = [list(BUILTIN)] if params.builtin_resolvers else []
        if params.resolvers_file:
            try:
                groups.append(load_resolvers(ctx.base_dir / params.resolvers_file))
            except ResolversFileError as exc:
                raise StepFailed(str(exc)) from None
        groups.append(list(params.resolvers))
        resolvers = combine(*groups)
        timeout = params.query_timeout.total_seconds()
        authoritative = [
            Resolver(name=f"auth {i + 1}", address=a, port=p)
            for i, (a, p) in enumerate(split_address(x) for x in params.authoritative)
        ]
        zone = params.zone
        if not authoritative and params.require.authoritative != "none":
            try:
                zone, authoritative = discover_authoritative(params.name, resolvers, timeout)
            except DiscoveryError as exc:
                raise StepFailed(f"{exc}; list them under `authoritative`") from None
            ctx.log(f"authoritative servers of {zone}: " + ", ".join(f"{a.name} {a.where}" for a in authoritative))
        saved = ctx.checkpoint.get("dns", {})
        old = parse_values(params.type, params.old) if params.old is not None else None
        old_ttl, changed_at = params.old_ttl, None
        if params.update:
            # What the update recorded before its change: the old value, its TTL, and when.
            made = ctx.checkpoint_of(params.update)
            recorded = made.get("recorded") or {}
            if recorded.get("values") and old is None:
                old = parse_values(params.type, recorded["values"])
            if recorded.get("ttl") is not None and old_ttl is None:
                old_ttl = int(recorded["ttl"])
            changed_at = made.get("applied_at")
            if changed_at is None:
                ctx.log(
                    f"step {params.update!r} has not changed anything yet: the ETA waits for the authoritative servers"
                )
        return Propagation(
            params.name,
            params.type,
            parse_values(params.type, params.expect),
            old=old,
            resolvers=resolvers,
            authoritative=authoritative,
            zone=zone,
            require=params.require,
            query_timeout=timeout,
            old_ttl=saved.get("old_ttl", old_ttl),
            changed_at=saved.get("changed_at", changed_at),
        )

    def run(self, ctx: StepContext[PropagationParams]) -> None:
        params = ctx.params
        check = self.build(ctx, params)
        ctx.log(
            f"checking {params.name} {params.type} = {params.expect} at {len(check.resolvers)} resolvers and "
            f"{len(check.authoritative)} authoritative servers, every "
            f"{format_duration(params.interval)} for up to {format_duration(params.within)}"
        )
        # In a rehearsal the clock runs at wall speed while this step runs: caches expire in real
        # seconds, so `within` and the ETA must be real seconds too.
        with ctx.clock.real_time():
            self._poll(ctx, params, check)

    def _poll(self, ctx: StepContext[PropagationParams], params: PropagationParams, check: Propagation) -> None:
        started = ctx.clock.now()
        previous: dict[int, State | None] = {}
        while True:
            ctx.raise_if_cancelled()
            summary = check.check()
            lines = []
            for status in [*check.resolvers, *check.authoritative]:
                before = previous.get(id(status))
                if status.state is not before and status.state is not None:
                    answer = status.answer
                    shown = ", ".join(sorted(v.to_text() for v in answer.values)) if answer and answer.values else ""
                    ttl = f" ttl {answer.ttl}" if answer and answer.ttl is not None else ""
                    lines.append(
                        f"  {status.server.name} {status.server.where}: {before.value if before else '-'}"
                        f" -> {status.state.value}{f' {shown}' if shown else ''}{ttl}"
                    )
                    previous[id(status)] = status.state
            ctx.log_lines([f"round {check.rounds}: {summary.line()}", *lines])
            if check.changed_at is not None or check.old_ttl is not None:
                ctx.checkpoint["dns"] = {"changed_at": check.changed_at, "old_ttl": check.old_ttl}
            report: dict[str, Any] = check.to_json()
            report["round"] = check.rounds
            report["require"] = params.require.model_dump()
            ctx.report(REPORT_TOPIC, report)
            ctx.metric(f"{ctx.step_id}.propagated", round(summary.fraction, 4))
            # No ctx.progress: a rate of resolvers per second would give a false ETA. The ETA that
            # holds (change + old TTL) is in the round's log line and the DNS strip.
            if summary.held:
                ctx.log(f"holds: {summary.line()}")
                return
            if ctx.clock.now() - started >= params.within:
                raise StepFailed(
                    f"not propagated after {format_duration(params.within)}: {summary.reason} ({summary.line()})"
                )
            if ctx.sleep(params.interval.total_seconds()):
                raise StepCancelled("cancelled between checks")
