"""convex.resolve_refs in shares of a table's creation times, against the Convex stand-in: the
shares really at once, each resumed at its own cursor after a failure, nothing written twice,
one chain when asked, and a clear message where the deployed resolveRefs takes no shares."""

from __future__ import annotations

import threading
import time
from pathlib import Path
from typing import Any

import pytest
from datapath import V2_CONNECTION, env_for, log_of, step, wrap_function
from fakes import HEADER, Harness

from cockpit.engine.views import Outcome
from cockpit.operator import Operator
from cockpit.sandbox.convex.functions import FunctionError
from cockpit.sandbox.convex.server import ConvexStandIn
from cockpit.sandbox.convex.store import DocumentStore
from steps.convex.resolve import saved_chains

pytestmark = pytest.mark.integration

MAPPING = (
    '[table."auth.users"]\ntarget = "users"\n\n[table."public.cases"]\ntarget = "cases"\n'
    'references = { user_id = "users" }\n'
)
PATH = "cockpit:resolveRefs"


def fill(folder: Path, standin: ConvexStandIn, cases: int) -> None:
    (folder / "mapping.toml").write_text(MAPPING)
    with standin.store.transaction():
        standin.store.insert_many("users", [{"legacyId": f"u{i}"} for i in range(20)])
        standin.store.insert_many(
            "cases",
            [{"legacyId": f"c{i}", "legacyUserId": f"u{i % 20}", "_creationTime": 5000.0 + i} for i in range(cases)],
        )


def body(extra: str = "") -> str:
    return step(
        "resolve", "convex.resolve_refs", f'connection = "v2"\nmapping = "mapping.toml"\nbatch_size = 25\n{extra}'
    )


def all_resolved(standin: ConvexStandIn) -> bool:
    ids = {d["legacyId"]: d["_id"] for d in standin.store.documents("users")}
    return all(d.get("userId") == ids[d["legacyUserId"]] for d in standin.store.documents("cases"))


def share_of(call: dict[str, Any]) -> tuple[Any, Any]:
    return call.get("from"), call.get("before")


def test_two_shares_run_at_once_and_each_resumes_where_it_stopped(tmp_path: Path, standin: ConvexStandIn) -> None:
    fill(tmp_path, standin, 400)  # 16 pages of 25: two shares of 8
    lock = threading.Lock()
    running, most, failed = 0, 0, False

    def slow_then_failing(implementation: Any, store: DocumentStore, args: dict[str, Any]) -> Any:
        nonlocal running, most, failed
        with lock:
            running += 1
            most = max(most, running)
            # The second share's fourth page fails once: the step stops with both shares part done.
            fail = "from" in args and not failed and sum(1 for c in calls if "from" in c) == 3
            failed = failed or fail
        try:
            time.sleep(0.03)
            if fail:
                raise FunctionError("Uncaught Error: the deployment is being updated")
            return implementation(store, args)
        finally:
            with lock:
                running -= 1

    calls = wrap_function(standin, PATH, slow_then_failing)
    h = Harness(tmp_path, body(), header=HEADER + V2_CONNECTION, env=env_for(standin=standin)).start()
    try:
        assert h.settle(60) == Outcome.FAILED
        assert "the deployment is being updated" in h.engine.step_runtime("resolve").reason
        before_retry = len(calls)
        shares = {share_of(c) for c in calls}
        assert len(shares) == 2 and most == 2, (shares, most)
        saved = saved_chains(h.journal.checkpoint(h.engine.run_id, "resolve")["page:cases.userId"])
        assert [(c.start, c.end) for c in saved] == sorted(shares, key=lambda s: s[0] or 0)
        assert all(c.cursor is not None and not c.done for c in saved), saved

        h.engine.retry("resolve", Operator("tester"))
        assert h.settle(60) == Outcome.DONE, h.engine.step_runtime("resolve").reason
    finally:
        h.close()
    assert all_resolved(standin)
    assert sum(c["answer"]["resolved"] for c in calls) == 400  # not a document written twice
    after = calls[before_retry:]
    # Each share went on from its saved cursor: no share started again from its beginning.
    assert all(c["cursor"] is not None for c in after)
    assert {share_of(c) for c in after} == shares
    assert "cases.userId: continuing after" in log_of(h, "resolve")
    assert "2 shares at once" in log_of(h, "resolve")


def test_parallel_one_is_one_chain_without_share_arguments(tmp_path: Path, standin: ConvexStandIn) -> None:
    fill(tmp_path, standin, 120)
    calls = wrap_function(standin, PATH)
    h = Harness(tmp_path, body("parallel = 1"), header=HEADER + V2_CONNECTION, env=env_for(standin=standin)).start()
    try:
        assert h.settle(60) == Outcome.DONE, h.engine.step_runtime("resolve").reason
    finally:
        h.close()
    assert all_resolved(standin)
    assert len(calls) == 5 and all(share_of(c) == (None, None) for c in calls)


def test_a_deployment_whose_resolve_refs_takes_no_shares_says_what_to_do(
    tmp_path: Path, standin: ConvexStandIn
) -> None:
    fill(tmp_path, standin, 120)

    def older(implementation: Any, store: DocumentStore, args: dict[str, Any]) -> Any:
        for name in ("from", "before"):  # what Convex's validator answers for an argument it does not name
            if name in args:
                raise FunctionError(
                    f"ArgumentValidationError: Object contains extra field `{name}` that is not in the validator."
                )
        return implementation(store, args)

    wrap_function(standin, PATH, older)
    h = Harness(tmp_path, body(), header=HEADER + V2_CONNECTION, env=env_for(standin=standin)).start()
    try:
        assert h.settle(60) == Outcome.FAILED
        reason = h.engine.step_runtime("resolve").reason
    finally:
        h.close()
    assert "resolves no shares" in reason and "deploy the current convex/cockpit.ts, or set parallel = 1" in reason


def test_a_checkpoint_of_one_cursor_reads_as_one_chain() -> None:
    # A journal written before shares: one cursor, None once its last page was done.
    assert [(c.cursor, c.done) for c in saved_chains({"cursor": "abc", "figures": {}})] == [("abc", False)]
    assert [(c.cursor, c.done) for c in saved_chains({"cursor": None, "figures": {}})] == [(None, True)]
    assert saved_chains({}) == []
