"""`cockpit migrate status|apply|rollback|create|schema`: versioned migrations on both
databases, from the command line. Heavy modules are imported when a command runs."""

from __future__ import annotations

import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

import click

_EXIT_INVALID = 2


def _out(line: str) -> None:
    click.echo(line)


def _err(line: str) -> None:
    click.echo(line, err=True)


def _common(f: Callable[..., Any]) -> Callable[..., Any]:
    f = click.option(
        "--config",
        default="migrate.toml",
        show_default=True,
        type=click.Path(dir_okay=False, path_type=Path),
        help="The environments file: the migrations folder, the logs folder, each environment's sides.",
    )(f)
    return click.option("--env", "environment", metavar="NAME", help="The environment (default: the file's).")(f)


def _run(action: str, **kwargs: Any) -> None:
    from migrate.session import MigrateRequest, run

    sys.exit(run(MigrateRequest(action=action, **kwargs), _out, _err))


@click.group()
def migrate() -> None:
    """Versioned migrations applied to PostgreSQL and Convex together."""


@migrate.command()
@_common
@click.option("--json", "as_json", is_flag=True, help="The state of every migration as one JSON document.")
@click.option("--no-schema-check", "skip_schema", is_flag=True, help="Do not read Convex's documents.")
def status(config: Path, environment: str | None, as_json: bool, skip_schema: bool) -> None:
    """Each migration as applied (when, by whom, its checksum) or pending; files changed since
    they were applied; documents that violate the declared schema. Exit 1 if anything is off."""
    _run("status", config=config, environment=environment, as_json=as_json, check_schema=not skip_schema)


@migrate.command()
@_common
@click.option("--target", metavar="NNN", help="Apply up to this version (default: all).")
@click.option("--dry-run", is_flag=True, help="Do it all and keep none of it: what would change.")
@click.option("--json", "as_json", is_flag=True, help="What was applied as one JSON document.")
def apply(config: Path, environment: str | None, target: str | None, dry_run: bool, as_json: bool) -> None:
    """Apply the pending migrations up to the target, in order, on both sides."""
    _run("apply", config=config, environment=environment, target=target, dry_run=dry_run, as_json=as_json)


@migrate.command()
@_common
@click.option("--target", metavar="NNN", help="Roll back down to this version, kept (000: all; default: the last one).")
@click.option("--dry-run", is_flag=True, help="Do it all and keep none of it: what would change.")
@click.option("--json", "as_json", is_flag=True, help="What was rolled back as one JSON document.")
def rollback(config: Path, environment: str | None, target: str | None, dry_run: bool, as_json: bool) -> None:
    """Undo applied migrations down to the target, newest first, on both sides."""
    _run("rollback", config=config, environment=environment, target=target, dry_run=dry_run, as_json=as_json)


def _folder(config: Path) -> Path:
    """The migrations folder the environments file names (no environment is resolved)."""
    from cockpit.checked_toml import load_checked
    from migrate.environments import EnvironmentError, MigrateConfig

    try:
        settings, _ = load_checked(config, MigrateConfig, "environments file", EnvironmentError)
    except EnvironmentError as exc:
        for problem in exc.problems:
            _err(str(problem))
        sys.exit(_EXIT_INVALID)
    return config.parent / settings.migrations


@migrate.command()
@click.option("--config", default="migrate.toml", show_default=True, type=click.Path(dir_okay=False, path_type=Path))
@click.option("--name", required=True, help="snake_case, e.g. add_tags.")
def create(config: Path, name: str) -> None:
    """Write the next numbered migration file from a template."""
    from migrate.create import CreateError
    from migrate.create import create as create_file

    try:
        path = create_file(_folder(config), name)
    except CreateError as exc:
        _err(str(exc))
        sys.exit(_EXIT_INVALID)
    _out(f"created {path}")


@migrate.command()
@click.option("--config", default="migrate.toml", show_default=True, type=click.Path(dir_okay=False, path_type=Path))
@click.option("--target", metavar="NNN", help="The schema as of this version (default: the last).")
def schema(config: Path, target: str | None) -> None:
    """Print the schema the migrations declare as a convex/schema.ts to merge into yours."""
    from migrate.files import MigrationsError, load_folder
    from migrate.schema_ts import schema_ts

    try:
        files = load_folder(_folder(config))
    except MigrationsError as exc:
        for problem in exc.problems:
            _err(str(problem))
        sys.exit(_EXIT_INVALID)
    if target is not None and target not in {f.version for f in files}:
        _err(f"--target {target}: no such migration")
        sys.exit(_EXIT_INVALID)
    _out(schema_ts([f for f in files if target is None or f.version <= target]))


@click.command()
@click.argument("tables", nargs=-1)
@_common
@click.option("--dry-run", is_flag=True, help="Print what would change per table; write nothing.")
@click.option("--limit", type=int, metavar="N", help="At most N changed rows per table this run.")
@click.option(
    "--format",
    "output",
    type=click.Choice(["text", "json"]),
    default="text",
    show_default=True,
    help="json: one document with every table's counts.",
)
def sync(
    tables: tuple[str, ...], config: Path, environment: str | None, dry_run: bool, limit: int | None, output: str
) -> None:
    """Move v1's rows changed since the last sync into v2 (all mapped TABLES by default)."""
    from migrate.sync_session import SyncRequest
    from migrate.sync_session import run as run_sync

    request = SyncRequest(config, environment, list(tables), dry_run, limit, output == "json")
    sys.exit(run_sync(request, _out, _err))
