"""A stand-in for `npx convex import`, for the sandbox and the tests: not the Convex CLI.

It accepts the arguments the cockpit's `method = "cli"` passes (`import --table NAME --format
jsonLines -y [--replace | --append] PATH`), reads the deployment from the environment as the
real CLI does for a self-hosted backend (CONVEX_SELF_HOSTED_URL and
CONVEX_SELF_HOSTED_ADMIN_KEY), imports through the one-shot `/api/import` endpoint and prints
lines shaped like the CLI's. It prints the arguments it was given, so a test can see that no
key travelled on the command line.

    python -m cockpit.sandbox.convex.cli import --table cases --format jsonLines -y cases.jsonl
"""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path

import httpx


def main(argv: list[str] | None = None) -> int:
    args_list = sys.argv[1:] if argv is None else argv
    print(f"convex (stand-in) called with: {' '.join(args_list)}", flush=True)
    parser = argparse.ArgumentParser(prog="convex")
    sub = parser.add_subparsers(dest="command", required=True)
    imp = sub.add_parser("import")
    imp.add_argument("--table", required=True)
    imp.add_argument("--format", default="jsonLines")
    imp.add_argument("-y", "--yes", action="store_true")
    mode = imp.add_mutually_exclusive_group()
    mode.add_argument("--replace", action="store_true")
    mode.add_argument("--append", action="store_true")
    imp.add_argument("path")
    args = parser.parse_args(args_list)
    url = os.environ.get("CONVEX_SELF_HOSTED_URL")
    key = os.environ.get("CONVEX_SELF_HOSTED_ADMIN_KEY")
    if not url or not key:
        print("✖ No CONVEX_SELF_HOSTED_URL and CONVEX_SELF_HOSTED_ADMIN_KEY in the environment", file=sys.stderr)
        return 1
    if not args.yes:
        print("✖ Refusing to prompt: pass -y", file=sys.stderr)
        return 1
    path = Path(args.path)
    mode_name = "replace" if args.replace else "append" if args.append else "requireEmpty"
    print(f'Importing data from "{path}" to table "{args.table}"...', flush=True)
    try:
        with path.open("rb") as body:
            response = httpx.post(
                f"{url.rstrip('/')}/api/import",
                content=body.read(),
                timeout=300,
                params={"tableName": args.table, "format": args.format, "mode": mode_name},
                headers={"Authorization": f"Convex {key}"},
            )
    except OSError as exc:
        print(f"✖ {exc}", file=sys.stderr)
        return 1
    except httpx.HTTPError as exc:
        print(f"✖ Error: {type(exc).__name__}: {exc}", file=sys.stderr)
        return 1
    if response.status_code != 200:
        print(f"✖ Error: Unable to import: {response.text}", file=sys.stderr)
        return 1
    written = response.json().get("numWritten", 0)
    print(f'✔ Added {written} documents to table "{args.table}".', flush=True)  # the CLI's words
    return 0


if __name__ == "__main__":
    sys.exit(main())
