"""Listener index keys: an event's leaf keys must contain the key of every predicate it meets."""

from __future__ import annotations

from typing import Any

import pytest

from django_inngest import expressions
from django_inngest.definitions import match_expression
from django_inngest.matching import event_keys, key_for_expression, listener_key


def _incoming(data: dict[str, Any]) -> dict[str, Any]:
    return {
        "name": "app/import.cancelled",
        "id": "01JDJKH1S5P2YER8PKXPZJ1YZJ",
        "ts": 1732570023717,
        "user": {"email": "a@example.com"},
        "v": "2024-01-01",
        "data": data,
    }


def test_key_of_expression_is_among_matching_event_keys() -> None:
    key = key_for_expression('async.data.importId == "x"')
    assert key is not None
    assert key in event_keys(_incoming({"importId": "x"}))
    assert key not in event_keys(_incoming({"importId": "y"}))
    assert key not in event_keys(_incoming({"other": "x"}))


def test_interpolated_listener_round_trip() -> None:
    expression = match_expression("data.importId", "match")
    residual = expressions.interpolate(expression, {"data": {"importId": "bdce"}})
    key = key_for_expression(residual)
    matching_event = _incoming({"importId": "bdce"})
    assert key in event_keys(matching_event)
    assert expressions.evaluate(residual, async_=matching_event)


def test_ints_and_floats_share_keys_but_bools_and_strings_do_not() -> None:
    assert listener_key("data.n", 1) == listener_key("data.n", 1.0)
    assert listener_key("data.n", 0) == listener_key("data.n", -0.0)
    assert listener_key("data.n", 1) != listener_key("data.n", True)
    assert listener_key("data.n", 0) != listener_key("data.n", False)
    assert listener_key("data.n", 1) != listener_key("data.n", "1")
    assert listener_key("data.n", 1.5) != listener_key("data.n", 1)
    assert listener_key("data.a", "x") != listener_key("data.b", "x")
    assert len(listener_key("data.a", "x")) == 32

    key = key_for_expression("async.data.n == 1")
    assert key in event_keys(_incoming({"n": 1.0}))
    assert key_for_expression("async.data.n == 1.0") in event_keys(_incoming({"n": 1}))
    assert key_for_expression("async.data.ok == true") in event_keys(_incoming({"ok": True}))
    assert key_for_expression("async.data.ok == true") not in event_keys(_incoming({"ok": 1}))


def test_nested_and_top_level_paths() -> None:
    event = _incoming({"a": {"b": {"c": "deep"}}, "list": ["x"], "nothing": None})
    keys = event_keys(event)
    assert key_for_expression("async.data.a.b.c == 'deep'") in keys
    assert key_for_expression("async.name == 'app/import.cancelled'") in keys
    assert key_for_expression("async.user.email == 'a@example.com'") in keys
    assert listener_key("data.list", "x") not in keys  # list items are not indexed
    assert listener_key("data.list.0", "x") not in keys
    # name, id, ts, user.email, v and data.a.b.c
    assert len(keys) == 6


def test_unindexable_expressions_have_no_key() -> None:
    assert key_for_expression("async.data.a == 'x' || async.data.b == 'y'") is None
    assert key_for_expression("async.data.a != 'x'") is None
    assert key_for_expression("async.data.a == null") is None
    assert key_for_expression("true") is None
    assert key_for_expression("not valid ==") is None


@pytest.mark.parametrize("limit", [0, 3, 1000])
def test_limit_keeps_shallow_paths(limit: int) -> None:
    deep: dict[str, Any] = {"leaf": "bottom"}
    for _ in range(6):
        deep = {"k": deep}
    data = {f"f{i}": i for i in range(20)} | {"deep": deep}
    keys = event_keys(_incoming(data), limit=limit)
    assert listener_key("data.f19", 19) in keys  # depth 2: always indexed
    deep_key = listener_key("data.deep.k.k.k.k.k.k.leaf", "bottom")
    assert (deep_key in keys) is (limit == 1000)
    assert len(keys) == 25 + (limit == 1000)


def test_large_events_do_not_blow_up() -> None:
    nested: dict[str, Any] = {"v": 1}
    for _ in range(5000):  # deeper than Python's recursion limit
        nested = {"n": nested}
    data = {f"f{i}": str(i) for i in range(5000)} | {"nested": nested}
    keys = event_keys(_incoming(data), limit=1000)
    assert len(keys) == 5005  # 5 top-level + 5000 at depth 2; nothing past the limit
    assert len(event_keys(_incoming(data), limit=10_000)) == 5006
