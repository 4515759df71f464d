"""`cockpit migrate create --name NAME`: the next numbered migration file, from a template."""

from __future__ import annotations

import json
import re
from pathlib import Path

from migrate.files import FILE_NAME

_NAME = re.compile(r"^[a-z][a-z0-9_]*$")


class CreateError(ValueError):
    pass


def create(folder: Path, name: str) -> Path:
    """Write NNN_name.json, NNN one past the highest version in `folder`; its path."""
    if not _NAME.match(name):
        raise CreateError(f"--name {name!r}: a migration's name is snake_case: lowercase letters, digits and _")
    folder.mkdir(parents=True, exist_ok=True)
    versions = [int(m.group(1)) for m in (FILE_NAME.match(p.name) for p in folder.glob("*.json")) if m]
    version = f"{max(versions, default=0) + 1:03d}"
    if len(version) > 3:
        raise CreateError(f"{folder}: 999 migrations already; versions have three digits")
    template = {
        "version": version,
        "name": name,
        "description": "",
        "schema": {},
        "data": [],
        "indexes": [],
    }
    path = folder / f"{version}_{name}.json"
    try:
        with path.open("x", encoding="utf-8") as out:
            out.write(json.dumps(template, indent=2) + "\n")
    except FileExistsError:
        raise CreateError(f"{path} exists already") from None
    return path
