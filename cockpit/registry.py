"""Finds step kinds through the `cockpit.steps` entry-point group.

The core never imports `steps/` by name: a third party adds a kind by declaring an entry
point, and no import circle can form (`steps/` imports the core, never the reverse).
"""

from __future__ import annotations

from collections.abc import Mapping
from functools import lru_cache
from importlib.metadata import entry_points
from typing import Any

from cockpit.step import Step

GROUP = "cockpit.steps"


class KindLoadError(RuntimeError):
    """An entry point that does not load or is not a `Step`."""


@lru_cache(maxsize=1)
def installed_kinds() -> Mapping[str, type[Step[Any]]]:
    """Every installed step kind, by name."""
    kinds: dict[str, type[Step[Any]]] = {}
    for ep in entry_points(group=GROUP):
        try:
            cls = ep.load()
        except Exception as exc:  # a broken plugin must not hide the others' problems
            raise KindLoadError(f"step kind {ep.name!r} ({ep.value}) failed to load: {exc}") from exc
        if not (isinstance(cls, type) and issubclass(cls, Step)):
            raise KindLoadError(f"step kind {ep.name!r} ({ep.value}) is not a Step subclass")
        if not cls.kind:
            cls.kind = ep.name
        kinds[ep.name] = cls
    return kinds
