"""Convex's own clients, from the `convex` npm package pinned in tests/convex_clients (installed by
`make convex-clients`, which `make test` runs first): `ConvexHttpClient` through call.mjs, and the
CLI run from a Convex app's folder, each pointed at a stand-in."""

from __future__ import annotations

import json
import subprocess
from pathlib import Path
from typing import Any

from conftest import ROOT, subprocess_env

from cockpit.sandbox.convex.server import ConvexStandIn

CLIENTS = ROOT / "tests" / "convex_clients"
CONVEX_CLI = CLIENTS / "node_modules" / ".bin" / "convex"


def _installed() -> None:
    assert (CLIENTS / "node_modules" / "convex").is_dir(), "run `make convex-clients` (npm ci) first"


def official(
    standin: ConvexStandIn, kind: str, path: str, args: dict[str, Any], *, key: str | None = None
) -> dict[str, Any]:
    """One call through ConvexHttpClient, in Node, with the stand-in's admin key unless `key` is
    given; its outcome as call.mjs prints it: {"ok": true, "value": ...} or {"ok": false, "error":
    the class of the error thrown, "message": its message, "data": a ConvexError's data}."""
    _installed()
    result = subprocess.run(
        ["node", str(CLIENTS / "call.mjs"), standin.url, key or standin.deploy_key, kind, path, json.dumps(args)],
        cwd=CLIENTS,
        env={**subprocess_env(), "CI": "1"},
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode == 0, result.stderr[-2000:]
    outcome: dict[str, Any] = json.loads(result.stdout.strip().splitlines()[-1])
    return outcome


def convex_app(folder: Path) -> str:
    """Make `folder` a Convex app's folder, as the CLI wants to be run from (a package.json, and the
    pinned `convex` package in node_modules); the CLI's path."""
    _installed()
    folder.mkdir(exist_ok=True)
    (folder / "package.json").write_text('{"name": "app", "private": true, "dependencies": {"convex": "1.48.0"}}')
    (folder / "node_modules").symlink_to(CLIENTS / "node_modules")
    return str(CONVEX_CLI)


def cli_env(standin: ConvexStandIn, *, key: str | None = None) -> dict[str, str]:
    """The CLI's environment for a self-hosted deployment: the stand-in's URL and admin key (or
    `key`), and CI=1 so that it neither prompts nor reports errors outside."""
    return {
        **subprocess_env(),
        "CI": "1",
        "CONVEX_SELF_HOSTED_URL": standin.url,
        "CONVEX_SELF_HOSTED_ADMIN_KEY": key or standin.deploy_key,
    }


def convex_import(
    app: Path, standin: ConvexStandIn, *args: str, key: str | None = None
) -> subprocess.CompletedProcess[str]:
    """`npx convex import ARGS` run from the app's folder against the stand-in."""
    return subprocess.run(
        [str(CONVEX_CLI), "import", *args],
        cwd=app,
        env=cli_env(standin, key=key),
        capture_output=True,
        text=True,
        timeout=120,
    )
