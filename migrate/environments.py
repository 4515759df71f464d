"""The environments file of `cockpit migrate` (migrate.toml): where the migrations are, where
each run's log goes, and each environment's two sides.

    migrations = "migrations"          # the folder of NNN_name.json files, beside this file
    logs = "migration_logs"
    mapping = "migration/perm-mapping.toml"   # the transform's mapping, for `cockpit sync`
    default = "development"

    [environments.development]
    postgres = { dsn = "${DATABASE_URL}" }
    convex = { url = "${CONVEX_URL}", deploy_key = "${CONVEX_DEPLOY_KEY}", enabled = "${USE_CONVEX}" }

A side with `enabled = false` (or a `${VAR}` that says false, as the seed's USE_CONVEX does) is
left out: `migrate` then applies the other side alone. Values hold `${VAR}` references,
resolved when the command runs; what they resolve to is a secret (the DSN's password, the
deploy key) and never printed.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

from pydantic import BaseModel, ConfigDict, Field

from cockpit.checked_toml import ProblemsError, load_checked
from cockpit.runbook import Problem, did_you_mean
from cockpit.secrets import Redactor, UnsetVariable, resolve

_TRUE = ("true", "1", "yes", "on")
_FALSE = ("false", "0", "no", "off", "")


class _Model(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class PostgresSideConfig(_Model):
    dsn: str = Field(description="libpq connection string or URL; usually ${VAR}")
    enabled: bool | str = True


class ConvexSideConfig(_Model):
    url: str
    deploy_key: str = Field(description="usually ${VAR}")
    enabled: bool | str = Field(default=True, description='true, false, or a ${VAR} such as "${USE_CONVEX}"')


class Environment(_Model):
    postgres: PostgresSideConfig | None = None
    convex: ConvexSideConfig | None = None


class MigrateConfig(_Model):
    migrations: str = "migrations"
    logs: str = "migration_logs"
    mapping: str | None = Field(default=None, description="the transform's mapping file, for `cockpit sync`")
    default: str | None = None
    environments: dict[str, Environment] = Field(min_length=1)


class EnvironmentError(ProblemsError):
    """The environments file, or the environment asked for, is wrong: each problem at its line."""


@dataclass(frozen=True)
class Sides:
    """An environment resolved: each enabled side's connection (None: absent or disabled)."""

    name: str
    migrations: Path
    logs: Path
    mapping: Path | None
    postgres_dsn: str | None
    convex_url: str | None
    convex_key: str | None
    disabled: list[str]  # the sides the file declares but turns off, and why


def load(path: Path, env_name: str | None, environ: Mapping[str, str], redactor: Redactor) -> Sides:
    """The environment `env_name` (or the file's default, or its only one), resolved."""
    config, collect = load_checked(path, MigrateConfig, "environments file", EnvironmentError)
    names = list(config.environments)
    chosen = env_name or config.default or (names[0] if len(names) == 1 else None)
    if chosen is None:
        raise EnvironmentError([Problem(path, 0, f"several environments ({', '.join(names)}): name one with --env")])
    if chosen not in config.environments:
        # The file's `default` names it, or --env does (the file as a whole: no line of it is wrong).
        line = collect.lines.line_of(("default",)) if env_name is None else 0
        message = f"no environment {chosen!r}{did_you_mean(chosen, names)} (it has {', '.join(names)})"
        raise EnvironmentError([Problem(path, line, message)])
    environment = config.environments[chosen]
    disabled: list[str] = []

    def value(keys: tuple[str, ...], text: str, *, address: bool = False, plain: bool = False) -> str | None:
        try:
            return str(resolve(text, environ, redactor, address=address, plain=plain))
        except UnsetVariable as exc:
            collect.error(keys, f"{'.'.join(keys[2:])}: {exc}")
            return None

    def enabled(keys: tuple[str, ...], setting: bool | str) -> bool:
        side = keys[-1]
        if isinstance(setting, bool):
            if not setting:
                disabled.append(f"{side} (enabled = false)")
            return setting
        text = value((*keys, "enabled"), setting, plain=True)
        answer = None if text is None else text.strip().lower()
        if answer in _TRUE:
            return True
        if answer in _FALSE:
            disabled.append(f"{side} (enabled = {setting}, which is {text!r})")
        elif answer is not None:
            collect.error((*keys, "enabled"), f"{side}.enabled: {text!r} is neither true nor false")
        return False

    prefix = ("environments", chosen)
    dsn = url = key = None
    if environment.postgres is not None and enabled((*prefix, "postgres"), environment.postgres.enabled):
        dsn = value((*prefix, "postgres", "dsn"), environment.postgres.dsn, address=True)
    if environment.convex is not None and enabled((*prefix, "convex"), environment.convex.enabled):
        url = value((*prefix, "convex", "url"), environment.convex.url, plain=True)
        key = value((*prefix, "convex", "deploy_key"), environment.convex.deploy_key)
    if not collect.problems and dsn is None and url is None:
        collect.error(prefix, f"environment {chosen}: no side is enabled")
    if collect.problems:
        raise EnvironmentError(collect.problems)
    base = path.parent
    mapping = base / config.mapping if config.mapping else None
    return Sides(chosen, base / config.migrations, base / config.logs, mapping, dsn, url, key, disabled)
