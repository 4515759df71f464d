"""Which progress bars a step shows when it reported more than there is room for: the ones at
work stay in view, in the order they were reported."""

from __future__ import annotations

from cockpit.engine.views import ProgressView, StepView
from cockpit.events import StepState


def _step(*bars: ProgressView) -> StepView:
    return StepView(
        id="sync", title="Sync", phase="window", kind="sync", effect="mutate", state=StepState.RUNNING, attempt=1,
        reason="", due=None, planned_start=None, planned_end=None, budget=None, started=None, ended=None,
        elapsed=None, late_by=None, progress=bars, gate=None, not_run=False, retry_at=None, in_rollback=False,
        start_mode="auto", log_count=0, undo=None, needs=(), point_of_no_return=False,
    )  # fmt: skip


def _bar(label: str, done: float, total: float | None = 100) -> ProgressView:
    return ProgressView(label, done, total, "rows", None)


def test_bars_that_fit_are_shown_as_reported() -> None:
    step = _step(_bar("sync", 1, 5), _bar("users", 100))
    assert [b.label for b in step.bars(4)] == ["sync", "users"]


def test_the_bars_at_work_stay_in_view_with_the_last_finished() -> None:
    step = _step(
        _bar("sync", 4, 5), _bar("users", 100), _bar("cases", 100), _bar("settings", 100), _bar("prefs", 100),
        _bar("notifications", 40),
    )  # fmt: skip
    assert [b.label for b in step.bars(4)] == ["sync", "settings", "prefs", "notifications"]
    assert [b.label for b in step.bars(1)] == ["sync"]


def test_a_bar_without_a_total_is_at_work() -> None:
    step = _step(_bar("a", 100), _bar("b", 100), _bar("c", 7, None))
    assert [b.label for b in step.bars(1)] == ["c"]
    assert [b.label for b in step.bars(2)] == ["b", "c"]
