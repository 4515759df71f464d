"""What the operator must read is never cut: progress with rate and ETA, every trigger counted,
the DNS line whole, the keys of the "what now" line, the rollback's order."""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path

import pytest
from rich.text import Text
from scenes import interrupted_after_restart, ponr_waiting, smoke_failed_and_rolling_back, window_in_progress

from widgets.dns_grid import summary_text
from widgets.format import progress_line, squeeze
from widgets.steps_table import PHASE_PREFIX, StepsTable
from widgets.triggers import strip_text
from widgets.what_now import what_now


@pytest.mark.parametrize("width", [80, 64, 48, 40, 30, 24])
def test_a_progress_line_keeps_its_rate_and_eta_at_any_width(width: int) -> None:
    line = progress_line("cases", 8_400, 10_000, "documents", 18_305.4, width).plain
    assert len(line) <= width
    assert "84%" in line and "/s" in line and "ETA 0s" in line


def test_a_progress_line_shortens_its_counts_before_it_drops_them() -> None:
    assert progress_line("", 8_400, 10_000, "documents", 183.0, 80).plain.endswith(
        "84% 8,400/10,000 documents  183 documents/s  ETA 9s"
    )
    assert "8.4k/10k" in progress_line("cases", 8_400, 10_000, "documents", 183.0, 44).plain


def test_squeeze_cuts_the_middle_and_keeps_the_keys() -> None:
    text = squeeze(Text(" ⚑ go-no-go asks: "), Text("x" * 200), Text("  type GO · a answer "), 80)
    assert len(text.plain) == 80 and text.plain.endswith("  type GO · a answer ") and "…" in text.plain


def test_every_trigger_is_shown_or_counted_and_fired_ones_come_first(tmp_path: Path) -> None:
    session = smoke_failed_and_rolling_back(tmp_path)
    try:
        view = session.engine.view()
        strip = strip_text(view, 80).plain
        assert strip.startswith(" ROLLBACK  9m16s left  step 1/3 read-write ")  # the countdown first, whole
        assert strip.index("✖ critical-feature") < strip.index("● data-loss")
        shown = strip.count("●") + strip.count("✖")
        assert f"+{len(view.triggers) - shown}" in strip and len(strip) <= 80
        wide = strip_text(view, 200).plain
        assert "+" not in wide.split("read-write")[1] and wide.count("●") + wide.count("✖") == len(view.triggers)
    finally:
        session.close()


def test_the_dns_line_fits_80_columns_whole_and_names_the_expected_address() -> None:
    from scenes import dns_report

    report = dns_report()
    line = summary_text(report, width=80).plain
    assert len(line) <= 80 and not line.endswith(("g:", "…"))
    assert "3/6 → 198.51.100.20" in line and "ETA" in line
    back = {**report, "expect": ["192.0.2.10"], "old": ["198.51.100.20"], "summary": {**report["summary"], "new": 0}}
    assert "0/6 → 192.0.2.10" in summary_text(back, width=80).plain  # a rollback: the count is of v1's address


def test_what_now_names_the_waiting_point_of_no_return_and_its_keys(tmp_path: Path) -> None:
    session = ponr_waiting(tmp_path)
    try:
        line = what_now(session.engine.view(), 80).plain
        assert line.startswith(" ⚑ ⚠ open-v2 asks: Smoke tests") and len(line) <= 80
        assert line.endswith("type OPEN · a answer · point of no return ")
    finally:
        session.close()


def test_what_now_names_an_interrupted_step_with_its_keys_uncut(tmp_path: Path) -> None:
    session = interrupted_after_restart(tmp_path)
    try:
        line = what_now(session.engine.view(), 80).plain
        assert line.startswith(" ⚑ sync interrupted: ") and line.endswith("r retry · k skip · d done ")
    finally:
        session.close()


def test_what_now_says_what_runs_and_what_comes_next(tmp_path: Path) -> None:
    session = window_in_progress(tmp_path)
    try:
        line = what_now(session.engine.view(), 80).plain
        assert line.startswith(" ▶ backup 58% ETA") and line.rstrip().endswith(
            "next: dns-cutover after verify-sample, backup"
        )
    finally:
        session.close()


def test_a_rollback_lists_its_steps_in_the_order_it_runs_them(tmp_path: Path) -> None:
    session = smoke_failed_and_rolling_back(tmp_path)
    try:
        view = session.engine.view()
        order = StepsTable.row_order(view)
        phase = order.index(PHASE_PREFIX + "rollback")
        assert order[phase + 1 : phase + 4] == ("read-write", "announce-rollback", "post-mortem")
        runbook_order = [s for p in view.phases if p.kind == "rollback" for s in p.step_ids]
        assert runbook_order[:3] != ["read-write", "announce-rollback", "post-mortem"]  # else this proves nothing
    finally:
        session.close()


def test_an_interrupted_step_stops_counting_time(tmp_path: Path) -> None:
    session = interrupted_after_restart(tmp_path)
    try:
        import cockpit.engine.views

        first = session.engine.view().steps["sync"].elapsed
        real_time = cockpit.engine.views.time.time
        try:
            cockpit.engine.views.time.time = lambda: real_time() + 3600  # type: ignore[assignment]
            later = session.engine.view().steps["sync"].elapsed
        finally:
            cockpit.engine.views.time.time = real_time  # type: ignore[assignment]
        assert first == later and first is not None and first < timedelta(minutes=2)
    finally:
        session.close()
