"""A mutation of the cockpit's Convex functions, or its dry run.

The shipped functions take `dryRun`: they do everything, then throw a ConvexError whose data is
`{dryRun: <what they would have done>}`, so that Convex commits nothing (as
`@convex-dev/migrations` does its dryRun). This reads that answer back as the function's value.
"""

from __future__ import annotations

from typing import Any

from steps.convex.client import ConvexClient, ConvexFunctionError


def mutation(client: ConvexClient, path: str, args: dict[str, Any], *, dry_run: bool) -> dict[str, Any]:
    """The mutation's value; with `dry_run`, what it would have returned, nothing written."""
    if not dry_run:
        return dict(client.mutation(path, args))
    try:
        client.mutation(path, {**args, "dryRun": True})
    except ConvexFunctionError as exc:
        if isinstance(exc.data, dict) and isinstance(exc.data.get("dryRun"), dict):
            return dict(exc.data["dryRun"])
        raise
    module = path.split(":")[0]
    raise RuntimeError(f"{path} with dryRun wrote instead of throwing: is convex/{module}.ts current?")
