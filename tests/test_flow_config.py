"""Function-level flow control: the combinations Inngest refuses, and the registration JSON."""

from __future__ import annotations

import datetime
from typing import Any

import inngest
import pytest
from inngest._internal import server_lib, transforms

from django_inngest.exceptions import ConfigurationError
from django_inngest.flow_control.config import FlowOptions, concurrency_from_config
from django_inngest.flow_control.options import (
    Batch,
    Concurrency,
    Debounce,
    Priority,
    RateLimit,
    Singleton,
    Throttle,
    Timeouts,
    validate_combination,
)

MINUTE = datetime.timedelta(minutes=1)
BATCH = Batch(max_size=10, timeout=5_000)


def test_a_plain_combination_passes() -> None:
    validate_combination(
        "app-fn",
        concurrency=[Concurrency(limit=5), Concurrency(limit=1, key="event.data.user")],
        throttle=Throttle(limit=10, period=MINUTE),
        debounce=Debounce(period=MINUTE),
        rate_limit=RateLimit(limit=1, period=MINUTE),
        priority=Priority(run="10"),
        singleton=Singleton(mode="skip"),
        timeouts=Timeouts(start=MINUTE),
        cancel=[object()] * 5,
        cron_expressions=["0 * * * *", "TZ=Europe/Paris 0 * * * *"],
    )
    validate_combination("app-fn", batch_events=BATCH, throttle=Throttle(limit=1, period=MINUTE))


@pytest.mark.parametrize(
    ("options", "message"),
    [
        ({"cancel": [object()]}, "batch_events cannot be combined with cancel; Inngest refuses it"),
        ({"debounce": Debounce(period=MINUTE)}, "'Batching and debouncing are mutually exclusive'"),
        (
            {"singleton": Singleton(mode="cancel")},
            "'Batching and singletons are mutually exclusive'",
        ),
        ({"priority": Priority(run="1")}, "'A function cannot specify Priority.Run and Batch"),
        (
            {"rate_limit": RateLimit(limit=1, period=MINUTE)},
            "batch_events cannot be combined with rate_limit",
        ),
        ({"idempotency": "event.data.id"}, "idempotency is a rate limit, which batching excludes"),
    ],
)
def test_batching_excludes(options: dict[str, Any], message: str) -> None:
    with pytest.raises(ConfigurationError) as caught:
        validate_combination("app-fn", batch_events=BATCH, **options)
    assert str(caught.value).startswith("app-fn: ")
    assert message in str(caught.value)


def test_limits_on_counts() -> None:
    with pytest.raises(
        ConfigurationError, match="app-fn: concurrency has 3 limits; Inngest allows at most 2"
    ):
        validate_combination("app-fn", concurrency=[Concurrency(limit=1)] * 3)
    with pytest.raises(
        ConfigurationError, match="app-fn: cancel has 6 rules; Inngest allows at most 5"
    ):
        validate_combination("app-fn", cancel=[object()] * 6)


def test_idempotency_with_rate_limit_is_refused_rather_than_silently_dropped() -> None:
    with pytest.raises(ConfigurationError, match="idempotency and rate_limit cannot be combined"):
        validate_combination(
            "app-fn", idempotency="event.data.id", rate_limit=RateLimit(limit=5, period=MINUTE)
        )
    with pytest.raises(ConfigurationError, match="idempotency must be a non-empty CEL"):
        validate_combination("app-fn", idempotency="  ")


def test_duplicate_cron_expressions_are_refused() -> None:
    with pytest.raises(ConfigurationError, match="'0 9 \\* \\* \\*' appears twice"):
        validate_combination("app-fn", cron_expressions=["0 9 * * *", "0 10 * * *", "0 9 * * *"])


def test_inngest_py_objects_get_a_porting_hint() -> None:
    with pytest.raises(ConfigurationError) as caught:
        validate_combination("app-fn", throttle=inngest.Throttle(limit=1, period=MINUTE))  # type: ignore[arg-type]
    assert "throttle must be a django_inngest Throttle, not inngest." in str(caught.value)
    assert "import it from django_inngest" in str(caught.value)
    with pytest.raises(
        ConfigurationError, match=r"concurrency\[1\] must be a django_inngest Concurrency"
    ):
        validate_combination(
            "app-fn", concurrency=[Concurrency(limit=1), inngest.Concurrency(limit=1)]
        )  # type: ignore[list-item]


def all_options() -> tuple[FlowOptions, dict[str, Any]]:
    kwargs: dict[str, Any] = {
        "concurrency": [{"limit": 5}, {"limit": 1, "key": "event.data.team", "scope": "env"}],
        "debounce": {"period": MINUTE, "timeout": 600_000, "key": "event.data.id"},
        "idempotency": "event.data.order_id",
        "priority": {"run": "event.data.vip ? 300 : 0"},
        "throttle": {"limit": 3, "period": 90_000, "burst": 2},
        "timeouts": {"start": MINUTE, "finish": datetime.timedelta(hours=2)},
        "singleton": {"mode": "skip", "key": "event.data.user"},
    }
    mine = FlowOptions(
        concurrency=[Concurrency(**item) for item in kwargs["concurrency"]],  # type: ignore[arg-type]
        debounce=Debounce(**kwargs["debounce"]),
        idempotency=kwargs["idempotency"],
        priority=Priority(**kwargs["priority"]),
        throttle=Throttle(**kwargs["throttle"]),
        timeouts=Timeouts(**kwargs["timeouts"]),
        singleton=Singleton(**kwargs["singleton"]),
    )
    theirs = {
        "concurrency": [inngest.Concurrency(**item) for item in kwargs["concurrency"]],
        "debounce": inngest.Debounce(**kwargs["debounce"]),
        "idempotency": kwargs["idempotency"],
        "priority": inngest.Priority(**kwargs["priority"]),
        "throttle": inngest.Throttle(**kwargs["throttle"]),
        "timeouts": inngest.Timeouts(**kwargs["timeouts"]),
        "singleton": inngest.Singleton(**kwargs["singleton"]),
    }
    return mine, theirs


def inngest_py_function_json(**options: Any) -> dict[str, Any]:
    """The function object inngest-py syncs, built by inngest-py itself."""
    client = inngest.Inngest(app_id="app", is_production=False)

    @client.create_function(fn_id="fn", trigger=inngest.TriggerEvent(event="a/b"), **options)
    def handler(ctx: inngest.ContextSync) -> None:
        return None

    config = handler.get_config("http://localhost/api/inngest")
    return transforms.deep_strip_none(config.main.to_dict())  # type: ignore[no-any-return]


def test_flow_options_serialise_as_inngest_pys_function_config() -> None:
    mine, theirs = all_options()
    function_json = inngest_py_function_json(**theirs)
    expected = {key: function_json[key] for key in mine.to_config()}
    assert mine.to_config() == expected
    assert set(function_json) - set(mine.to_config()) == {"id", "name", "steps", "triggers"}


def test_flow_options_read_back_from_inngest_pys_function_config() -> None:
    mine, theirs = all_options()
    function_json = inngest_py_function_json(**theirs)
    parsed = FlowOptions.from_config(function_json)
    assert parsed.to_config() == mine.to_config()
    parsed.validate("app-fn")


@pytest.mark.parametrize(
    ("mine", "theirs"),
    [
        (
            FlowOptions(batch_events=Batch(max_size=5, timeout=2_000, if_exp="event.data.x")),
            {"batch_events": inngest.Batch(max_size=5, timeout=2_000, if_exp="event.data.x")},
        ),
        (
            FlowOptions(rate_limit=RateLimit(limit=2, period=MINUTE, key="event.data.k")),
            {"rate_limit": inngest.RateLimit(limit=2, period=MINUTE, key="event.data.k")},
        ),
        (FlowOptions(concurrency=[]), {"concurrency": []}),
    ],
)
def test_the_other_options_serialise_as_inngest_py(
    mine: FlowOptions, theirs: dict[str, Any]
) -> None:
    function_json = inngest_py_function_json(**theirs)
    assert mine.to_config() == {key: function_json[key] for key in mine.to_config()}
    assert len(mine.to_config()) == 1


def test_batch_and_rate_limit_read_back() -> None:
    function_json = inngest_py_function_json(
        batch_events=inngest.Batch(max_size=50, timeout=30_000, key="event.data.shop"),
    )
    parsed = FlowOptions.from_config(function_json)
    assert parsed.batch_events == Batch(
        max_size=50, timeout=datetime.timedelta(seconds=30), key="event.data.shop"
    )
    function_json = inngest_py_function_json(
        rate_limit=inngest.RateLimit(limit=4, period=3_600_000)
    )
    assert FlowOptions.from_config(function_json).rate_limit == RateLimit(
        limit=4, period=datetime.timedelta(hours=1)
    )


def test_an_empty_function_config_has_no_options() -> None:
    assert FlowOptions.from_config(inngest_py_function_json()) == FlowOptions()
    assert FlowOptions().to_config() == {}


def test_flow_options_validate_applies_the_rules() -> None:
    options = FlowOptions(batch_events=BATCH, debounce=Debounce(period=MINUTE))
    with pytest.raises(
        ConfigurationError, match="app-fn: batch_events cannot be combined with debounce"
    ):
        options.validate("app-fn")


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        (None, None),
        (5, (Concurrency(limit=5),)),
        ({"limit": 2, "key": "event.data.a"}, (Concurrency(limit=2, key="event.data.a"),)),
        (
            [{"limit": 2}, {"limit": 1, "scope": "account", "key": '"x"'}],
            (Concurrency(limit=2), Concurrency(limit=1, scope="account", key='"x"')),
        ),
        ([], ()),
    ],
)
def test_concurrency_shapes_sdks_send(value: object, expected: object) -> None:
    assert concurrency_from_config(value) == expected


@pytest.mark.parametrize(
    ("value", "message"),
    [
        ({"fn": [{"limit": 1}]}, "not supported"),
        ("5", "must be a number, an object or a list"),
        (True, "must be a number, an object or a list"),
        ([{"limit": -1}], "Concurrency.limit must be at least 0"),
        ([{"limit": 1, "scope": "env"}], "Concurrency.key is required with scope='env'"),
    ],
)
def test_bad_concurrency_configs(value: object, message: str) -> None:
    with pytest.raises(ConfigurationError, match=message):
        concurrency_from_config(value)


def test_bad_function_configs() -> None:
    with pytest.raises(ConfigurationError, match="function config must be a JSON object"):
        FlowOptions.from_config([])  # type: ignore[arg-type]
    with pytest.raises(ConfigurationError, match="idempotency must be a CEL expression string"):
        FlowOptions.from_config({"idempotency": 5})
    with pytest.raises(ConfigurationError, match=r"Batch\.timeout is required"):
        FlowOptions.from_config({"batchEvents": {"maxSize": 5}})


def test_server_lib_models_are_what_the_package_exports() -> None:
    # The parity tests compare against the classes inngest-py users import.
    assert inngest.Throttle is server_lib.Throttle
    assert inngest.Batch is server_lib.Batch
