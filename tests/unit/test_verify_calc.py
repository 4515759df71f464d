"""verify.calc shares one scan of a v2 table among the checks that can use it."""

from __future__ import annotations

import itertools

from steps.verify.calc import CalcCheck, _derive, _total, plan_passes


def check(name: str, table: str | None = "cases", group_by: str | None = None, sum_: str | None = None) -> CalcCheck:
    if table is None:
        return CalcCheck(name=name, sql="SELECT 1 AS value", function="stats:total")
    return CalcCheck(name=name, sql="SELECT 1 AS count", table=table, group_by=group_by, sum=sum_)


def test_checks_of_one_table_share_a_scan_when_they_can() -> None:
    checks = [
        check("per status", group_by="caseStatus"),
        check("wages", sum_="pwdWageAmount"),
        check("users", table="users"),
        check("per type", group_by="caseType"),
        check("fn", table=None),
    ]
    plan = plan_passes(checks)
    assert plan[0] == plan[1] == ("cases", "caseStatus", "pwdWageAmount")
    assert plan[2] == ("users", None, None)
    assert plan[3] == ("cases", "caseType", None)  # grouped otherwise: a scan of its own
    assert 4 not in plan  # a function check scans nothing


def test_a_check_is_derived_from_a_finer_scan() -> None:
    totals = {"pwd": {"count": 3, "sum": 300}, "i140": {"count": 2, "sum": 50}}
    v1_total = {"": {"count": 5, "sum": 350}}
    assert _derive(totals, check("wages", sum_="x"), v1_total) == {"": {"count": 5, "sum": 350}}
    v1_status = {"pwd": {"count": 3}, "i140": {"count": 2}}
    assert _derive(totals, check("per status", group_by="caseStatus"), v1_status) == v1_status
    # An empty table: one group of zeros, as SQL's count(*) answers.
    assert _derive({}, check("wages", sum_="x"), v1_total) == {"": {"count": 0, "sum": 0}}


def test_page_sums_add_up_the_same_in_any_order() -> None:
    # Shares' pages arrive in no fixed order: the total must not depend on it.
    parts = [1e16, 1.0, -1e16, 0.5, 0.1, 0.2]
    assert {_total(list(order)) for order in itertools.permutations(parts)} == {1.8}
    assert _total([2**53, 1]) == 2**53 + 1 and isinstance(_total([2**53, 1]), int)  # whole numbers stay exact
