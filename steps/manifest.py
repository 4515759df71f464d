"""A folder's manifest.json: what a step wrote there (files, bytes, sha256, rows), for the steps
after it and for checks. Written atomically; read with a clear error when missing or broken."""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

from cockpit.step_api import StepFailed

MANIFEST = "manifest.json"


def write_manifest(folder: Path, manifest: dict[str, Any]) -> None:
    """Replace the manifest atomically (readers never see half of one)."""
    tmp = folder / f".{MANIFEST}.tmp"
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as out:
        json.dump(manifest, out, indent=2, sort_keys=True)
        out.flush()
        os.fsync(out.fileno())
    os.replace(tmp, folder / MANIFEST)


def read_manifest(folder: Path) -> dict[str, Any]:
    path = folder / MANIFEST
    try:
        value: dict[str, Any] = json.loads(path.read_text())
    except FileNotFoundError:
        raise StepFailed(f"no manifest in {folder}: has the step that writes it run?") from None
    except ValueError as exc:
        raise StepFailed(f"{path} is not valid JSON: {exc}") from None
    return value
