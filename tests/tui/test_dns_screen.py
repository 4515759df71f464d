"""The DNS line and grid follow the propagation reports as they arrive."""

from __future__ import annotations

import copy
from pathlib import Path

import pytest
from scenes import app_for, dns_propagating, dns_report
from textual.widgets import DataTable

from widgets.dns_grid import DnsStrip
from widgets.screens.dns import DnsScreen

pytestmark = pytest.mark.tui


async def test_the_grid_opens_with_g_and_updates_live(tmp_path: Path) -> None:
    session = dns_propagating(tmp_path)
    app = app_for(session)
    try:
        async with app.run_test(size=(80, 24)) as pilot:
            await pilot.pause()
            strip = app.query_one(DnsStrip)
            assert strip.has_class("-shown") and "3/6 → 198.51.100.20" in str(strip.render())
            await pilot.press("g")
            await pilot.pause()
            assert isinstance(app.screen, DnsScreen)
            table = app.screen.query_one(DataTable)
            rows = [[str(c) for c in table.get_row_at(i)] for i in range(table.row_count)]
            assert rows[2][:5] == ["Cloudflare", "1.1.1.1", "192.0.2.10", "112", "old"]
            assert rows[8][4] == "other*"  # the filtering resolver, marked
            # The next round: Cloudflare's cache ran out.
            report = copy.deepcopy(dns_report())
            report["resolvers"][2].update(
                state="new",
                answer=["198.51.100.20"],
                ttl=300,
                history=[{"at": None, "state": "old"}, {"at": None, "state": "new"}],
            )
            report["summary"].update(new=4, fraction=4 / 6)
            app.show_dns_report(report)
            await pilot.pause()
            row = [str(c) for c in table.get_row_at(2)]
            assert row[2:5] == ["198.51.100.20", "300", "new"] and row[6] == "○●"
            assert "4/6 → 198.51.100.20" in str(app.screen.query_one("#dns-summary").render())
            await pilot.press("escape")
            await pilot.pause()
            assert not isinstance(app.screen, DnsScreen)
            await pilot.pause()
            assert "4/6 → 198.51.100.20" in str(strip.render())
    finally:
        session.close()


async def test_a_long_grid_scrolls_at_80x24(tmp_path: Path) -> None:
    session = dns_propagating(tmp_path)
    app = app_for(session)
    report = copy.deepcopy(dns_report())
    template = report["resolvers"][0]
    report["resolvers"] = [{**template, "name": f"ISP {i}", "address": f"192.0.2.{i + 1}"} for i in range(40)]
    try:
        async with app.run_test(size=(80, 24)) as pilot:
            await pilot.pause()
            app.show_dns_report(report)
            await pilot.press("g")
            await pilot.pause()
            table = app.screen.query_one(DataTable)
            assert table.row_count == 40 + 3 and table.scroll_y == 0
            for _ in range(42):
                await pilot.press("down")
            await pilot.pause()
            assert table.cursor_row == 42 and table.scroll_y > 0  # the last row, scrolled into view
            assert table.region.width <= 80
    finally:
        session.close()
