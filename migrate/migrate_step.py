"""`convex.migrate`: versioned migrations (cockpit migrate) as a runbook step, so that the
schema's migrations are applied before the window (at T-2d, say) and can be undone by a
rollback step.

    [[step]]
    id = "migrate"
    kind = "convex.migrate"
    with = { postgres = "v1", convex = "v2", migrations = "migrations", target = "003" }

Either connection may be left out (or switched off with `enabled = false`): the other side is
migrated alone. A dry run applies them and keeps none of it, as `cockpit migrate --dry-run`.
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Literal

from pydantic import AfterValidator, Field, ValidationInfo, model_validator

from cockpit.step_api import ConnectionRef, Effect, Step, StepContext, StepFailed, StepParams
from migrate.convex_side import ConvexSide
from migrate.files import MigrationsError, load_folder
from migrate.postgres_side import PostgresSide, SideBusy
from migrate.universal import MigrationFailed, Migrator, Refused


def _migrations_are_sound(value: str, info: ValidationInfo) -> str:
    """Read the migrations when the runbook is checked: their problems are the runbook's."""
    base = (info.context or {}).get("base_dir")
    if base is not None:
        try:
            load_folder(Path(base) / value)
        except MigrationsError as exc:
            raise ValueError("; ".join(str(p) for p in exc.problems[:10])) from None
    return value


class MigrateParams(StepParams):
    postgres: Annotated[str, ConnectionRef("postgres")] | None = None
    convex: Annotated[str, ConnectionRef("convex")] | None = None
    migrations: Annotated[str, AfterValidator(_migrations_are_sound)] = Field(
        description="the folder of NNN_name.json migration files"
    )
    action: Literal["apply", "rollback"] = "apply"
    target: str | None = Field(default=None, pattern=r"^\d{3}$", description="apply up to it, or roll back down to it")

    @model_validator(mode="after")
    def _a_side(self) -> MigrateParams:
        if self.postgres is None and self.convex is None:
            raise ValueError("name a postgres connection, a convex connection, or both")
        return self


class MigrateStep(Step[MigrateParams]):
    kind = "convex.migrate"
    effect = Effect.MUTATE
    Params = MigrateParams
    dry_runs = True
    runs_with_connections_off = True

    def describe(self, params: MigrateParams) -> str:
        sides = " and ".join(name for name in (params.postgres, params.convex) if name)
        up_to = f" {'up' if params.action == 'apply' else 'down'} to {params.target}" if params.target else ""
        return f"{params.action} the migrations of {params.migrations}{up_to} on {sides}"

    def run(self, ctx: StepContext[MigrateParams]) -> None:
        params = ctx.params
        try:
            files = load_folder(ctx.base_dir / params.migrations)
        except MigrationsError as exc:
            raise StepFailed("; ".join(str(p) for p in exc.problems)) from None
        postgres = convex = None
        if params.postgres is not None and _enabled(ctx, params.postgres):
            postgres = PostgresSide(ctx.connection(params.postgres).dsn)
        if params.convex is not None and _enabled(ctx, params.convex):
            connection = ctx.connection(params.convex)
            convex = ConvexSide(connection.url, connection.deploy_key, log=ctx.log)
        if postgres is None and convex is None:
            ctx.log("both sides are switched off: nothing to migrate")
            return
        try:
            migrator = Migrator(
                files, postgres=postgres, convex=convex, applied_by=f"runbook step {ctx.step_id}", log=ctx.log
            )
            act = migrator.apply if params.action == "apply" else migrator.rollback
            outcome = act(params.target, dry_run=ctx.dry_run)
            ctx.log(f"{'dry run: ' if ctx.dry_run else ''}{params.action}: {len(outcome.done)} migrations")
        except (Refused, MigrationFailed, SideBusy) as exc:
            raise StepFailed(str(exc)) from None
        finally:
            for side in (postgres, convex):
                if side is not None:
                    side.close()


def _enabled(ctx: StepContext[MigrateParams], name: str) -> bool:
    enabled = getattr(ctx.connection(name), "enabled", True) is not False
    if not enabled:
        ctx.log(f"connection {name!r} is switched off (enabled = false): its side is left out")
    return enabled
