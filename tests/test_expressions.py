"""CEL expressions with Inngest's semantics (``pkg/expressions/unknown.go``, ``residual.go``)."""

from __future__ import annotations

import logging
from typing import Any

import pytest

from django_inngest import expressions
from django_inngest.definitions import match_expression
from django_inngest.exceptions import ExpressionError
from django_inngest.expressions import equality_predicate, evaluate, interpolate, validate

EVENT: dict[str, Any] = {
    "name": "app/user.updated",
    "id": "01JDJK451Y9KFGE5TTM2FHDEDN",
    "ts": 1732558407003,
    "user": {},
    "v": "1",
    "data": {
        "n": 1.0,
        "amount": 150,
        "plan": "pro",
        "name": "bob",
        "s": "abc",
        "nul": None,
        "items": [1, 2, 3],
        "nested": {"a": {"b": "deep"}},
        "flag": True,
        "empty": "",
    },
}

CANCELLED = {
    "name": "inngest/function.cancelled",
    "id": "01JDJKH1S5P2YER8PKXPZJ1YZJ",
    "ts": 1732570023717,
    "data": {
        "error": {
            "error": "function cancelled",
            "message": "function cancelled",
            "name": "Error",
        },
        "event": {
            "data": {"importId": "bdce"},
            "id": "01JDJK451Y9KFGE5TTM2FHDEDN",
            "name": "newsletter/import.requested",
            "ts": 1732558407003,
            "user": {},
        },
        "events": [],
        "function_id": "newsletter-app-import-all-contacts",
        "run_id": "01JDJKGTGDVV4DTXHY6XYB7BKK",
    },
}


# --- The unknown.go table ------------------------------------------------------------------


@pytest.mark.parametrize(
    ("expression", "expected"),
    [
        ("event.data.nonexistent == null", True),
        ("null == event.data.nonexistent", True),
        ("event.data.nonexistent == 1", False),
        ("event.data.nonexistent == 'x'", False),
        ("event.data.nonexistent == false", False),
        ("event.data.nonexistent != null", False),
        ("event.data.nonexistent != 1", True),
        ("event.data.nonexistent != 'x'", True),
        ("event.data.nonexistent < 1", True),
        ("event.data.nonexistent < -100", True),
        ("event.data.nonexistent <= 1", True),
        ("event.data.nonexistent > 1", False),
        ("event.data.nonexistent > -100", False),
        ("event.data.nonexistent >= 1", False),
        ("1 < event.data.nonexistent", False),
        ("1 > event.data.nonexistent", True),
        ("size(event.data.nonexistent) == 0", True),
        ("event.data.nonexistent.size() == 0", True),
        ("event.data.nonexistent + 5 == 5", True),
        ("5 + event.data.nonexistent == 5", True),
        ("event.data.nonexistent + 'x' == 'x'", True),
        ("event.data.nonexistent", False),
        ("event.nonexistent", False),
    ],
)
def test_missing_fields_follow_inngest(expression: str, expected: bool) -> None:
    assert evaluate(expression, event=EVENT) is expected


@pytest.mark.parametrize(
    ("expression", "expected"),
    [
        ("event.data.a.b.c == null", True),  # nested access through a missing map
        ("event.data.a.b.c == 'x'", False),
        ("event.data.a.b.c != 'x'", True),
        ("event.data.nul == null", True),  # explicit JSON null
        ("event.data.nul != null", False),
        ("event.data.nul == 1", False),
        ("event.data.nul != 1", True),
        ("event.data.nul.x == null", True),  # field of a null is unknown
        ("event.data.s.x == null", True),  # field of a string is unknown
        ("event.data.nul < 1", True),  # null is the other operand's zero value
        ("event.data.nul < -1", False),
        ("event.data.nul == event.data.nul", True),
        ("event.data.missing == event.data.other", False),  # unknown == unknown is false
        ("event.data.missing && true", False),  # missing is falsy, and && must not error
        ("true && event.data.missing", False),
        ("event.data.missing || true", True),
        ("event.data.missing || event.data.flag", True),
        ("event.data.missing || event.data.other", False),
        ("!event.data.missing", False),  # any other call on unknown is false
        ("event.data.missing.contains('x')", False),
        ("'x' in event.data.missing", False),
        ("event.data.missing[0] == null", True),
        ("event.data.items[10] == null", True),
        ("event.data.nested.missing['b'] == null", True),
    ],
)
def test_nested_missing_null_and_logic(expression: str, expected: bool) -> None:
    assert evaluate(expression, event=EVENT) is expected


@pytest.mark.parametrize(
    ("expression", "expected"),
    [
        ("event.data.n == 1", True),  # 1.0 == 1
        ("event.data.amount == 150.0", True),
        ("event.data.n < 1.5 && event.data.n >= 1", True),
        ("event.data.amount != 150.0", False),
        ("event.data.flag == 1", False),  # bools are not numbers
        ("event.data.amount == '150'", False),  # different types are unequal, not an error
        ('event.data.amount > 100 && event.data.plan == "pro"', True),
        ('event.data.amount > 200 && event.data.plan == "pro"', False),
        ("event.data.amount > 100 && event.data.plan == 'free'", False),
        ("event.data.name == 'bob'", True),
        ("event.data.name == 'alice' || event.data.name == 'bob'", True),
        ("event.name == 'app/user.updated' && event.ts > 0", True),
        ("event.data.nested.a.b == 'deep'", True),
        ("event.data['plan'] == 'pro'", True),
        ("event.data.items.exists(i, i == 2)", True),
        ("event.data.items.all(i, i > 0)", True),
        ("event.data.items.filter(i, i > 1).size() == 2", True),
        ("size(event.data.items) == 3 && 3 in event.data.items", True),
        ("has(event.data.plan)", True),
        ("has(event.data.nul)", True),  # has() keeps its CEL meaning: the key is present
        ("has(event.data.nonexistent)", False),
        ("has(event.data.nested.a)", True),
        ("has(event.data.nested.x)", False),
        ("has(event.data.missing.x)", False),
        ("event.data.s.startsWith('ab') && event.data.s.endsWith('bc')", True),
        ("event.data.s.matches('^a.c$')", True),
        ("('a' + event.data.s).contains('aab')", True),
        ("event.data.s + 1 == 'abc1'", True),  # Inngest concatenates string + number
        ("event.data.flag ? event.data.amount > 1 : false", True),
        ("event.data.empty || event.data.flag", True),
        ("event.data.plan == 'pro' && event.data.empty", False),
    ],
)
def test_typical_expressions(expression: str, expected: bool) -> None:
    assert evaluate(expression, event=EVENT) is expected


def test_logical_operators_use_js_like_truthiness() -> None:
    # `&&`/`||` on non-booleans yield an operand, as in Inngest; only a bool result can be true.
    assert evaluate("(event.data.flag && event.data.s) == 'abc'", event=EVENT)
    assert evaluate("(event.data.empty || event.data.s) == 'abc'", event=EVENT)
    assert evaluate("(event.data.missing || 0) == 0", event=EVENT)
    assert evaluate("event.data.flag && event.data.s", event=EVENT) is False


def test_seed_scenario_function_cancelled() -> None:
    expression = "event.data.function_id == 'newsletter-app-import-all-contacts'"
    assert evaluate(expression, event=CANCELLED) is True
    other = {**CANCELLED, "data": {**CANCELLED["data"], "function_id": "newsletter-app-other"}}
    assert evaluate(expression, event=other) is False
    assert evaluate("event.data.event.data.importId == 'bdce'", event=CANCELLED) is True


def test_event_and_async() -> None:
    expression = "event.data.importId == async.data.importId"
    trigger = {"name": "import.requested", "data": {"importId": "bdce"}}
    assert evaluate(expression, event=trigger, async_={"data": {"importId": "bdce"}}) is True
    assert evaluate(expression, event=trigger, async_={"data": {"importId": "other"}}) is False
    assert evaluate(expression, event=trigger, async_={"data": {}}) is False
    assert evaluate("async.data.x == null", event=trigger) is True  # no async: all unknown


def test_keyword_variable_and_match_expression() -> None:
    expression = match_expression("data.importId", "match")
    assert expression == "event.data.importId == async.data.importId"
    validate(expression)
    assert evaluate(expression, event=CANCELLED["data"]["event"], async_=CANCELLED["data"]["event"])


def test_results_are_cached_per_expression() -> None:
    expression = "event.data.amount > 100"
    assert evaluate(expression, event=EVENT)
    assert expressions._program(expression) is expressions._program(expression)


@pytest.mark.parametrize(
    "expression",
    [
        "1 / 0",
        "1 / 0 == 1",
        "event.data.s - 1 > 0",  # string minus int: no such overload
        "event.data.s < 1",
        "event.data.amount",  # a number is not a boolean
        "'a' + ",  # invalid syntax at evaluation time
        "undefined_var == 1",
    ],
)
def test_evaluation_problems_are_logged_and_false(
    expression: str, caplog: pytest.LogCaptureFixture
) -> None:
    with caplog.at_level(logging.WARNING, logger="django_inngest.expressions"):
        assert evaluate(expression, event=EVENT) is False
    assert any(
        record.levelno == logging.WARNING and expression in record.getMessage()
        for record in caplog.records
    )


def test_bare_missing_field_is_false_without_warning(caplog: pytest.LogCaptureFixture) -> None:
    with caplog.at_level(logging.WARNING, logger="django_inngest.expressions"):
        assert evaluate("event.data.nonexistent", event=EVENT) is False
    assert not caplog.records


def test_non_json_event_values_do_not_raise() -> None:
    assert evaluate("event.data.obj == 1", event={"data": {"obj": object()}}) is False


# --- validate ------------------------------------------------------------------------------


def test_validate_accepts_good_expressions() -> None:
    validate("event.data.a == async.data.a && event.data.items.exists(x, x == async.data.b)")
    validate("event.data.a == 'x'", variables=("event",))
    validate("has(event.data.a) || size(event.data.list) > 0")


def test_validate_reports_where_parsing_failed() -> None:
    with pytest.raises(ExpressionError) as info:
        validate("event.data.amount >> 100")
    message = str(info.value)
    assert "line 1, column 20" in message
    assert "event.data.amount >> 100\n" in message and "^" in message
    assert info.value.expression == "event.data.amount >> 100"

    with pytest.raises(ExpressionError, match="line 2, column 4"):
        validate("event.data.a &&\n b ==")
    with pytest.raises(ExpressionError, match="end of expression"):
        validate("event.data.x == ")
    with pytest.raises(ExpressionError, match="syntax error"):
        validate("")


def test_validate_rejects_unquoted_strings_as_unknown_variables() -> None:
    # Inngest's most common pitfall: string literals need quotes.
    with pytest.raises(ExpressionError, match="unknown variable 'bob'"):
        validate("event.data.name == bob")


def test_validate_restricts_variables() -> None:
    with pytest.raises(ExpressionError, match=r"unknown variable 'async'.*allowed: event"):
        validate("event.data.id == async.data.id", variables=("event",))
    validate("event.data.items.exists(x, x > 1)", variables=("event",))  # a bound name is fine
    validate("event.data.items.exists(class, class > 1)")  # Python keywords are fine too
    with pytest.raises(ExpressionError, match="macro's variable"):
        validate("event.data.items.exists(async, async > 1)")


def test_validate_rejects_unknown_functions_and_bad_has() -> None:
    with pytest.raises(ExpressionError, match="unknown function 'nope'"):
        validate("nope(event.data.x)")
    with pytest.raises(ExpressionError, match="has"):
        validate("has(event)")


# --- interpolate ---------------------------------------------------------------------------


def _residual_matches(residual: str, async_event: dict[str, Any]) -> bool:
    assert "event." not in residual.replace("async.", "")
    validate(residual, variables=("async",))
    return evaluate(residual, async_=async_event)


def test_interpolate_residual_from_inngest_tests() -> None:
    residual = interpolate(
        "event.data.id == async.data.id && event.data.foo == async.data.foo",
        {"data": {"id": "ab_1"}},
    )
    # Equivalent to `async.data.id == "ab_1" && async.data.foo == null`.
    assert _residual_matches(residual, {"data": {"id": "ab_1"}})
    assert _residual_matches(residual, {"data": {"id": "ab_1", "foo": None}})
    assert not _residual_matches(residual, {"data": {"id": "ab_1", "foo": 1}})
    assert not _residual_matches(residual, {"data": {"id": "ab_2"}})
    assert not _residual_matches(residual, {"data": {}})
    assert equality_predicate(residual) == ("data.id", "ab_1")


def test_interpolate_folds_known_parts() -> None:
    assert interpolate("event.data.foo == 1", {"data": {}}) == "false"
    assert interpolate("event.data.foo == null", {"data": {}}) == "true"
    assert interpolate("event.data.a == 'x'", {"data": {"a": "x"}}) == "true"
    residual = interpolate(
        "event.data.a == 'x' && async.data.id == event.data.id",
        {"data": {"a": "x", "id": "ab_1"}},
    )
    assert residual == 'async.data.id == "ab_1"'
    assert (
        interpolate("event.data.a == 'x' && async.data.id == event.data.id", {"data": {"a": "y"}})
        == "false"
    )
    assert interpolate("event.data.a == 'x' || async.data.b", {"data": {"a": "x"}}) == "true"
    residual = interpolate(
        "event.data.id == async.data.id && 500 <= event.data.value",
        {"data": {"id": "ab_1", "value": 1295}},
    )
    assert residual == '"ab_1" == async.data.id'
    residual = interpolate(
        "async.data.val <= event.data.value", {"data": {"id": "ab_1", "value": 1295.0}}
    )
    assert residual == "async.data.val <= 1295.0"


def test_interpolate_keeps_structure_it_cannot_fold() -> None:
    residual = interpolate(
        "(async.data.a == event.data.a || async.data.b == 2) && "
        "async.data.items.exists(i, i == event.data.id) && event.data.flag",
        {"data": {"a": [1, {"k": None}], "id": 7, "flag": True}},
    )
    assert residual == (
        '(async.data.a == [1, {"k": null}] || async.data.b == 2) && '
        "async.data.items.exists(i, i == 7)"
    )
    assert _residual_matches(residual, {"data": {"a": [1, {"k": None}], "items": [7]}})
    assert not _residual_matches(residual, {"data": {"b": 2, "items": [8]}})
    ternary = "event.data.flag ? async.data.x == 1 : async.data.y"
    assert interpolate(ternary, {"data": {"flag": True}}) == "async.data.x == 1"
    assert interpolate(ternary, {"data": {"flag": False}}) == "async.data.y"
    assert interpolate(ternary, {"data": {}}) == "false"  # unknown condition: unknown result
    assert interpolate("event.data.name", {"data": {"name": "x"}}) == "false"  # not a bool


@pytest.mark.parametrize(
    "value",
    [
        "quote \" and ' single",
        "back\\slash \\n not a newline",
        "new\nline\r\ttab \x01 \x7f",
        "unicode é ß 漢字 😀 \u2028",
        "",
        12,
        -3.5,
        1e300,
        True,
        None,
        [1, "two", [3.0]],
        {"k": "v", "n": {"x": False}},
    ],
)
def test_interpolated_literals_round_trip(value: Any) -> None:
    residual = interpolate("async.data.v == event.data.v", {"data": {"v": value}})
    assert "event." not in residual
    assert evaluate(residual, async_={"data": {"v": value}}) is True
    if value is not None:
        assert evaluate(residual, async_={"data": {"v": "something else"}}) is False


def test_interpolate_rejects_invalid_expressions() -> None:
    with pytest.raises(ExpressionError):
        interpolate("event.data.a ==", {"data": {}})


def test_interpolate_leaves_errors_to_evaluation() -> None:
    residual = interpolate("async.data.a == event.data.s - 1", {"data": {"s": "abc"}})
    assert residual == 'async.data.a == "abc" - 1'
    assert evaluate(residual, async_={"data": {"a": 1}}) is False


# --- equality_predicate --------------------------------------------------------------------


@pytest.mark.parametrize(
    ("expression", "expected"),
    [
        ('async.data.importId == "bdce"', ("data.importId", "bdce")),
        ('"bdce" == async.data.importId', ("data.importId", "bdce")),
        ("async.data.n == 5 && async.name == 'x'", ("name", "x")),  # a string is preferred
        ("async.data.n == 5 && async.data.ok == true", ("data.n", 5)),
        ("async.data.n == -0x10", ("data.n", -16)),
        ("async.data.n == 2.5", ("data.n", 2.5)),
        ("async.data.ok == false", ("data.ok", False)),
        ("(async.a == 'x' && async.b > 1) && async.c != 2", ("a", "x")),
        ("async.a.b.c == 'deep'", ("a.b.c", "deep")),
        ("async.a == 'x' || async.b == 'y'", None),
        ("async.a != 'x'", None),
        ("async.a == null", None),
        ("async.a == [1]", None),
        ("async.a == async.b", None),
        ("true", None),
        ("event.a == 'x'", None),
        ("!(async.a == 'x')", None),
        ("async.a ==", None),
    ],
)
def test_equality_predicate(expression: str, expected: tuple[str, Any] | None) -> None:
    assert equality_predicate(expression) == expected


# --- robustness ----------------------------------------------------------------------------


def test_deeply_nested_expressions_fail_cleanly() -> None:
    expression = "(" * 300 + "event.data.a == 1" + ")" * 300
    with pytest.raises(ExpressionError, match=r"nested too deeply|cannot compile"):
        validate(expression)
    assert evaluate(expression, event={"data": {"a": 1}}) is False
    assert equality_predicate(expression) is None


def test_many_conjuncts() -> None:
    expression = " && ".join(f"async.data.k{i} == event.data.k{i}" for i in range(100))
    event = {"data": {f"k{i}": i for i in range(100)}}
    validate(expression)
    assert evaluate(expression, event=event, async_=event)
    residual = interpolate(expression, event)
    assert evaluate(residual, async_=event)
    assert equality_predicate(residual) == ("data.k0", 0)


def test_concurrent_evaluation_is_isolated() -> None:
    # celpy's own CompiledRunner execs every program in one shared namespace; ours must not.
    from concurrent.futures import ThreadPoolExecutor

    cases = [(f"event.data.n == {i} && async.data.n == {i}", i) for i in range(50)]

    def check(case: tuple[str, int]) -> bool:
        expression, i = case
        return all(
            evaluate(expression, event={"data": {"n": i}}, async_={"data": {"n": i}})
            and not evaluate(expression, event={"data": {"n": i}}, async_={"data": {"n": -1}})
            for _ in range(20)
        )

    with ThreadPoolExecutor(max_workers=8) as pool:
        assert all(pool.map(check, cases * 4))


def test_other_celpy_users_are_unaffected() -> None:
    import celpy

    celpy.CELParser.CEL_PARSER = None  # as if another library built celpy's parser first
    stock = celpy.Environment()
    assert stock.program(stock.compile("1 + 1 == 2")).evaluate({})
    assert evaluate("event.data.unaffected == 'yes'", event={"data": {"unaffected": "yes"}})
    assert stock.program(stock.compile("2 + 2 == 4")).evaluate({})
    celpy.CELParser.CEL_PARSER = None
