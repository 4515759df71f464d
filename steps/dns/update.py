"""`dns.update` and its undo, `dns.restore`.

`dns.update` reads the record set it is about to change and journals it (its checkpoint)
before changing anything; if it cannot read it, it changes nothing. `dns.restore` puts back
exactly what that update recorded, through the same connection. Both check the result by
reading the set again.
"""

from __future__ import annotations

import time
from typing import Annotated, Any

from pydantic import Field, model_validator

from cockpit.step_api import ConnectionRef, Effect, Step, StepContext, StepFailed, StepParams, StepRef
from steps.dns.check.records import parse_values
from steps.dns.providers import DnsProvider, ProviderError, RecordSet, Rfc2136
from steps.dns.watch import DnsName, RecordType

RECORDED = "recorded"


def provider_for(connection: Any) -> DnsProvider:
    """The provider a `dns` connection names; ProviderError when the connection lacks a field."""
    from steps.dns.http_providers import Cloudflare, Vercel

    kind = connection.provider
    if kind == "rfc2136":
        if not connection.primary:
            raise ProviderError("rfc2136 needs `primary` (the zone's primary server address) in the connection")
        return Rfc2136(
            connection.zone.rstrip("."),
            connection.primary,
            connection.port,
            connection.tsig_name,
            connection.tsig_secret,
            connection.tsig_algorithm,
        )
    if kind == "cloudflare":
        return Cloudflare(connection.zone.rstrip("."), connection.zone_id, connection.token, connection.api_url)
    if kind == "vercel":
        return Vercel(connection.zone.rstrip("."), connection.team_id, connection.token, connection.api_url)
    raise ProviderError(f"unknown DNS provider {kind!r}")


class UpdateParams(StepParams):
    connection: Annotated[str, ConnectionRef("dns")]
    name: DnsName = Field(description="the name to change, inside the connection's zone")
    type: RecordType = "A"
    value: str | list[str] = Field(description="the new value(s)")
    ttl: int = Field(default=300, ge=1, le=604_800, description="seconds; 1 is Cloudflare's automatic")

    @model_validator(mode="after")
    def _values_fit_the_type(self) -> UpdateParams:
        parse_values(self.type, self.value)  # BadRecord is a ValueError: reported at the key's line
        return self

    @property
    def values(self) -> list[str]:
        return [self.value] if isinstance(self.value, str) else list(self.value)


def _verify(provider: DnsProvider, want: RecordSet, what: str) -> None:
    try:
        now = provider.current(want.name, want.type)
    except ProviderError as exc:
        raise StepFailed(f"{what}, but reading it back failed: {exc}") from None
    if not now.same_values(want):
        raise StepFailed(f"{what}, but the provider now holds {now.describe()}, not {want.describe()}")


class UpdateStep(Step[UpdateParams]):
    """Changes one record set, having journaled what was there."""

    kind = "dns.update"
    effect = Effect.MUTATE
    Params = UpdateParams
    resumes = True

    def describe(self, params: UpdateParams) -> str:
        return (
            f"set {params.name} {params.type} to {', '.join(params.values)} (TTL {params.ttl}) "
            f"through connection {params.connection!r}, after recording the current value"
        )

    def run(self, ctx: StepContext[UpdateParams]) -> None:
        params = ctx.params
        connection = ctx.connection(params.connection)
        target = RecordSet(params.name, params.type, params.values, params.ttl)
        try:
            provider = provider_for(connection)
        except ProviderError as exc:
            raise StepFailed(f"{exc}; nothing was changed") from None
        try:
            saved = ctx.checkpoint.get(RECORDED)
            if saved is not None:
                recorded = RecordSet.from_json(saved)
                ctx.log(f"recorded by an earlier attempt: {recorded.describe()}")
            else:
                try:
                    recorded = provider.current(params.name, params.type)
                except ProviderError as exc:
                    raise StepFailed(
                        f"cannot record the current {params.name} {params.type}: {exc}; nothing was changed"
                    ) from None
                ctx.checkpoint.update_all(
                    {
                        RECORDED: recorded.to_json(),
                        "target": target.to_json(),
                        "connection": params.connection,
                        "provider": connection.provider,
                    }
                )
                ctx.log(f"recorded before the change: {recorded.describe()}")
            target.extra = dict(recorded.extra)  # keep what the provider had (Cloudflare's proxied)
            ctx.raise_if_cancelled()
            current = provider.current(params.name, params.type)
            if current.same_values(target) and current.ttl == target.ttl:
                ctx.log(f"already set: {current.describe()}")
            else:
                ctx.log(f"changing to {target.describe()} via {connection.provider}")
                provider.apply(target, recorded)
                _verify(provider, target, f"changed {params.name} {params.type}")
            ctx.checkpoint["applied_at"] = time.time()
            ctx.log(f"done: {target.describe()}; the undo step restores {recorded.describe()}")
        except ProviderError as exc:
            raise StepFailed(str(exc)) from None
        finally:
            provider.close()


class RestoreParams(StepParams):
    update: Annotated[str, StepRef("dns.update")] = Field(
        description="the id of the dns.update step whose recorded records to put back"
    )


class RestoreStep(Step[RestoreParams]):
    """Puts back exactly what a `dns.update` step recorded before its change."""

    kind = "dns.restore"
    effect = Effect.MUTATE
    Params = RestoreParams

    def describe(self, params: RestoreParams) -> str:
        return f"put back the records that step {params.update!r} recorded before its change"

    def run(self, ctx: StepContext[RestoreParams]) -> None:
        params = ctx.params
        saved = ctx.checkpoint_of(params.update)
        if RECORDED not in saved:
            ctx.log(f"step {params.update!r} recorded nothing, so it changed nothing: there is nothing to restore")
            return
        recorded = RecordSet.from_json(saved[RECORDED])
        target = RecordSet.from_json(saved["target"])
        connection = ctx.connection(saved["connection"])
        try:
            provider = provider_for(connection)
        except ProviderError as exc:
            raise StepFailed(str(exc)) from None
        try:
            current = provider.current(recorded.name, recorded.type)
            if current.same_values(recorded) and current.ttl == recorded.ttl:
                ctx.log(f"already as recorded: {recorded.describe()}")
                return
            ctx.log(f"restoring {recorded.describe()} (now {current.describe()})")
            provider.apply(recorded, target)
            _verify(provider, recorded, f"restored {recorded.name} {recorded.type}")
            ctx.log(f"restored: {recorded.describe()}")
        except ProviderError as exc:
            raise StepFailed(str(exc)) from None
        finally:
            provider.close()
