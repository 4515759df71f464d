"""`files.verify`: the files a manifest lists are there, whole, with the sha256 it recorded.

A backup is only worth its restore: before v1's database is paused for good, the decommission
checks that the window's backup still holds what it held when it was made.
"""

from __future__ import annotations

import hashlib
from pathlib import Path
from typing import Any

from pydantic import Field

from cockpit.step_api import Effect, Step, StepCancelled, StepContext, StepFailed, StepParams
from steps.manifest import read_manifest


class VerifyParams(StepParams):
    folder: str = Field(description="a folder with a manifest.json (a backup's), relative to the runbook's folder")


class VerifyStep(Step[VerifyParams]):
    """Reads every file the manifest lists and compares its size and sha256 with the manifest's."""

    kind = "files.verify"
    effect = Effect.PROBE
    Params = VerifyParams

    def describe(self, params: VerifyParams) -> str:
        return f"verify the files of {params.folder} against its manifest"

    def run(self, ctx: StepContext[VerifyParams]) -> None:
        verify_folder(ctx, ctx.base_dir / ctx.params.folder)


def verify_folder(ctx: StepContext[Any], folder: Path) -> dict[str, Any]:
    """Check every file `folder`'s manifest lists; raise StepFailed naming each that differs.

    Returns the manifest. The log has a line per file and one for the whole.
    """
    manifest = read_manifest(folder)
    files = manifest.get("files")
    if not isinstance(files, dict) or not files:
        raise StepFailed(f"{folder / 'manifest.json'} lists no files")
    total = sum(int(entry.get("bytes", 0)) for entry in files.values())
    done = 0
    wrong = []
    for name, entry in sorted(files.items()):
        path = folder / name
        try:
            size, digest = _measure(path, ctx, done, total)
        except FileNotFoundError:
            wrong.append(f"{name} is missing")
            ctx.log(f"{name}: missing")
            continue
        done += size
        if size != entry.get("bytes") or digest != entry.get("sha256"):
            wrong.append(f"{name} differs from the manifest")
            ctx.log(
                f"{name}: {size:,} bytes sha256 {digest}, the manifest says {entry.get('bytes'):,} bytes "
                f"sha256 {entry.get('sha256')}"
            )
        else:
            ctx.log(f"{name}: {size:,} bytes, sha256 {digest} as in the manifest")
    if wrong:
        raise StepFailed("; ".join(wrong))
    made = f", made {manifest['made_at']}" if manifest.get("made_at") else ""
    ctx.log(f"all {len(files)} files match the manifest ({total:,} bytes{made})")
    return manifest


def _measure(path: Path, ctx: StepContext[Any], before: int, total: int) -> tuple[int, str]:
    """The file's size and sha256, read in blocks; progress counts the bytes read of all files."""
    digest = hashlib.sha256()
    size = 0
    with path.open("rb") as f:
        while block := f.read(1 << 20):
            if ctx.cancelled:
                raise StepCancelled("cancelled while reading")
            digest.update(block)
            size += len(block)
            ctx.progress(before + size, total, "bytes")
    return size, digest.hexdigest()
