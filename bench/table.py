"""The table every benchmark prints: figure, value, target; one row each, values aligned."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any


def print_table(rows: Sequence[tuple[str, Any, str]]) -> None:
    width = max(len(label) for label, _, _ in rows)
    print(f"{'figure':<{width}}  {'value':>12}  target")
    for label, value, target in rows:
        text = f"{value:,}" if isinstance(value, int | float) and not isinstance(value, bool) else str(value)
        print(f"{label:<{width}}  {text:>12}  {target}".rstrip())
