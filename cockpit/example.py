"""The example go-live that ships with the cockpit: `runbook.toml`, its mapping and resolvers
(`migration/`), the versioned migrations it applies at T-2d (`migrations/`), the Convex
functions it calls (`convex/`) and the announcements (`comms/`).

In a checkout they lie at the repository's root. An installed wheel carries them inside the
package (`cockpit/example/`, see `[tool.hatch.build.targets.wheel.force-include]`), where the
demo cannot keep its journal: it copies them to `./cockpit-demo/` first, once, and rehearses
that copy.
"""

from __future__ import annotations

import shutil
from pathlib import Path

RUNBOOK = "runbook.toml"
PARTS = ("migration", "migrations", "convex", "comms")
COPY_FOLDER = "cockpit-demo"


def shipped_folder() -> Path:
    """Where the example lies: inside the installed package, else the checkout's root."""
    inside = Path(__file__).resolve().parent / "example"
    if (inside / RUNBOOK).exists():
        return inside
    return Path(__file__).resolve().parent.parent


def demo_runbook(cwd: Path) -> Path:
    """The runbook `cockpit demo` rehearses: ./runbook.toml, else the shipped example (copied
    to ./cockpit-demo/ when it lies inside an installed package)."""
    local = cwd / RUNBOOK
    if local.exists():
        return local
    shipped = shipped_folder()
    if shipped.name != "example":
        return shipped / RUNBOOK
    copy = cwd / COPY_FOLDER
    if not (copy / RUNBOOK).exists():
        partial = cwd / (COPY_FOLDER + ".partial")
        shutil.rmtree(partial, ignore_errors=True)
        partial.mkdir(mode=0o700)
        shutil.copy2(shipped / RUNBOOK, partial / RUNBOOK)
        for part in PARTS:
            if (shipped / part).is_dir():
                shutil.copytree(shipped / part, partial / part)
        partial.rename(copy)  # whole or not at all: a half copy is never rehearsed
    return copy / RUNBOOK
