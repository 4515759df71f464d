"""Reading a table as shares of its creation times, several chains of pages at once, against the
Convex stand-in: every document once, the chains really at once, the fallback for a deployment
with older functions, and an error in one chain stopping the read."""

from __future__ import annotations

import threading
import time
from collections import Counter
from typing import Any

import pytest

from cockpit.sandbox.convex.functions import FunctionError
from cockpit.sandbox.convex.server import ConvexStandIn
from cockpit.step import StepCancelled
from steps.convex.client import ConvexClient, ConvexFunctionError

pytestmark = pytest.mark.integration

SPAN = "cockpit:timeSpan"


def fill(standin: ConvexStandIn, n: int) -> None:
    """n documents created 1 ms apart from 1000 ms: share bounds fall exactly on some of them."""
    with standin.store.transaction():
        standin.store.insert_many("t", [{"legacyId": f"d{i:04d}", "_creationTime": 1000.0 + i} for i in range(n)])


def seen(client: ConvexClient, shares: int, num_items: int = 7) -> Counter[str]:
    """How many times each legacyId was counted, grouping by it over every page of every share."""
    counted: Counter[str] = Counter()
    for value in client.pages_in_shares(
        "query", "cockpit:aggregatePage", {"table": "t", "groupBy": "legacyId"}, num_items, shares
    ):
        for key, group in value["groups"].items():
            counted[key] += int(group["count"])
    return counted


@pytest.mark.parametrize("shares", [1, 2, 3, 4, 9])
def test_every_document_is_read_exactly_once_whatever_the_shares(standin: ConvexStandIn, shares: int) -> None:
    fill(standin, 100)  # span 1000..1099: with 3 shares the cuts are 1033 and 1066, both documents
    with ConvexClient(standin.url, standin.deploy_key) as client:
        counted = seen(client, shares)
        total = sum(v["count"] for v in client.pages_in_shares("query", "cockpit:countPage", {"table": "t"}, 7, shares))
    assert counted == Counter({f"d{i:04d}": 1 for i in range(100)})
    assert total == 100


def test_the_shares_are_read_at_once(standin: ConvexStandIn) -> None:
    fill(standin, 60)
    name = "cockpit:countPage"
    kind, internal, count_page = standin.functions[name]
    lock = threading.Lock()
    running, most, shares_seen = 0, 0, set()

    def slow_count(store: Any, args: dict[str, Any]) -> Any:
        nonlocal running, most
        with lock:
            running += 1
            most = max(most, running)
            shares_seen.add(args.get("from"))
        time.sleep(0.05)
        with lock:
            running -= 1
        return count_page(store, args)

    standin.functions[name] = (kind, internal, slow_count)
    with ConvexClient(standin.url, standin.deploy_key) as client:
        total = sum(v["count"] for v in client.pages_in_shares("query", name, {"table": "t"}, 5, 4))
    assert total == 60
    assert len(shares_seen) == 4 and None in shares_seen  # the first share is open at its start
    assert most >= 3, f"at most {most} pages were read at once"


def test_a_deployment_without_time_span_is_read_in_one_chain_and_says_so(standin: ConvexStandIn) -> None:
    fill(standin, 30)
    del standin.functions[SPAN]
    lines: list[str] = []
    with ConvexClient(standin.url, standin.deploy_key, log=lines.append) as client:
        counted = seen(client, 4)
    assert counted == Counter({f"d{i:04d}": 1 for i in range(30)})
    assert len(lines) == 1 and "t: read in one chain" in lines[0] and "deploy the current convex/cockpit.ts" in lines[0]


def test_older_functions_refuse_a_share_as_convex_does(standin: ConvexStandIn) -> None:
    fill(standin, 3)
    with (
        ConvexClient(standin.url, standin.deploy_key) as client,
        pytest.raises(ConvexFunctionError, match="extra field `since`"),
    ):
        client.query("cockpit:countPage", {"table": "t", "cursor": None, "numItems": 5, "since": 1000})


@pytest.mark.parametrize("failing_share", ["first", "last"])
def test_an_error_in_one_share_ends_the_read_with_that_error(standin: ConvexStandIn, failing_share: str) -> None:
    fill(standin, 80)
    name = "cockpit:countPage"
    kind, internal, count_page = standin.functions[name]
    calls = Counter[str]()

    def failing(store: Any, args: dict[str, Any]) -> Any:
        share = "first" if "from" not in args else "last" if "before" not in args else "middle"
        calls[share] += 1
        time.sleep(0.05)
        if share == failing_share and args["cursor"] is not None:  # its second page
            raise FunctionError("the disk is on fire")
        return count_page(store, args)

    standin.functions[name] = (kind, internal, failing)
    with (
        ConvexClient(standin.url, standin.deploy_key) as client,
        pytest.raises(ConvexFunctionError, match="the disk is on fire"),
    ):
        for _value in client.pages_in_shares("query", name, {"table": "t"}, 5, 3):
            pass
    assert calls[failing_share] == 2  # it stopped at its error
    # The other two chains (6 pages each) stopped after the page they were reading.
    assert sum(calls.values()) - calls[failing_share] <= 2 * 3, calls


def test_a_cancel_stops_every_share_at_once(standin: ConvexStandIn) -> None:
    fill(standin, 60)
    name = "cockpit:countPage"
    kind, internal, count_page = standin.functions[name]

    def slow_count(store: Any, args: dict[str, Any]) -> Any:
        time.sleep(3.0)  # every page: the cancel comes while all three shares wait for one
        return count_page(store, args)

    standin.functions[name] = (kind, internal, slow_count)
    cancel = threading.Event()
    timer = threading.Timer(0.5, cancel.set)
    with ConvexClient(standin.url, standin.deploy_key, cancel=cancel) as client:
        started = time.monotonic()
        timer.start()
        with pytest.raises(StepCancelled):
            for _value in client.pages_in_shares("query", name, {"table": "t"}, 5, 3):
                pass
        took = time.monotonic() - started
    assert took < 0.5 + 1.0, f"the shares took {took:.1f}s to stop"


def test_answers_parse_as_before_where_msgspec_refuses_them(standin: ConvexStandIn) -> None:
    """msgspec parses answers; what it refuses (NaN, a number past float64) pydantic's parser
    still reads, as the client did before; text that is no JSON at all is a ConvexError."""
    from cockpit.sandbox.convex.functions import RawJSON
    from steps.convex.client import ConvexError

    answers = {"plain": '[{"n": 1.5, "s": "x"}]', "nan": '{"n": NaN}', "huge": '{"n": 1e400}', "broken": "[1,"}
    for name, text in answers.items():
        standin.functions[f"raw:{name}"] = ("query", False, lambda store, args, text=text: RawJSON(text))
    with ConvexClient(standin.url, standin.deploy_key) as client:
        assert client.query("raw:plain") == [{"n": 1.5, "s": "x"}]
        assert client.query("raw:nan")["n"] != client.query("raw:nan")["n"]  # NaN is not itself
        assert client.query("raw:huge") == {"n": float("inf")}
        with pytest.raises(ConvexError, match="the answer is not JSON"):
            client.query("raw:broken")
