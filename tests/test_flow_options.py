"""Flow-control value classes: inngest-py's API, Inngest's bounds, inngest-py's JSON."""

from __future__ import annotations

import dataclasses
import datetime
import random
import typing
from typing import Any

import inngest
import pytest
from inngest._internal import transforms

from django_inngest.exceptions import ConfigurationError
from django_inngest.flow_control import options as ours

SECOND = datetime.timedelta(seconds=1)
PAIRS = [
    (ours.Concurrency, inngest.Concurrency),
    (ours.Throttle, inngest.Throttle),
    (ours.RateLimit, inngest.RateLimit),
    (ours.Debounce, inngest.Debounce),
    (ours.Batch, inngest.Batch),
    (ours.Priority, inngest.Priority),
    (ours.Singleton, inngest.Singleton),
    (ours.Timeouts, inngest.Timeouts),
]


def theirs_json(model: Any) -> dict[str, Any]:
    """What inngest-py puts in a sync payload for ``model``."""
    return transforms.deep_strip_none(model.to_dict())  # type: ignore[no-any-return]


@pytest.mark.parametrize(("mine", "theirs"), PAIRS)
def test_fields_defaults_and_types_are_inngest_pys(mine: type, theirs: Any) -> None:
    their_fields = theirs.model_fields
    my_fields = {field.name: field for field in dataclasses.fields(mine)}
    assert list(my_fields) == list(their_fields)
    my_hints = typing.get_type_hints(mine)
    for name, their_field in their_fields.items():
        mine_field = my_fields[name]
        if their_field.is_required():
            assert mine_field.default is dataclasses.MISSING, name
        else:
            assert mine_field.default == their_field.default, name
        assert my_hints[name] == their_field.annotation, name


@pytest.mark.parametrize(("mine", "theirs"), PAIRS)
def test_keywords_only_like_inngest_py(mine: type, theirs: Any) -> None:
    with pytest.raises(TypeError):
        theirs(5)
    with pytest.raises(TypeError):
        mine(5)


def test_instances_are_frozen() -> None:
    limit = ours.Concurrency(limit=5)
    with pytest.raises(dataclasses.FrozenInstanceError):
        limit.limit = 6  # type: ignore[misc]


def test_missing_required_keywords_are_named() -> None:
    with pytest.raises(TypeError, match="'mode'"):
        ours.Singleton()  # type: ignore[call-arg]
    with pytest.raises(TypeError, match="'period'"):
        ours.Throttle(limit=1)  # type: ignore[call-arg]


def random_options(rng: random.Random) -> list[dict[str, Any]]:
    """Valid keyword sets per class, the same for both libraries."""

    def seconds(low: int, high: int) -> int | datetime.timedelta:
        value = rng.randint(low, high)
        unit = rng.choice([1, 60, 3600])
        total = min(value * unit, high)
        return total * 1000 if rng.random() < 0.5 else datetime.timedelta(seconds=total)

    def key() -> str | None:
        return rng.choice([None, "event.data.user_id", '"openai"'])

    cases: list[dict[str, Any]] = []
    for _ in range(40):
        scope = rng.choice([None, "fn", "env", "account"])
        cases += [
            {
                "cls": "Concurrency",
                "limit": rng.randint(0, 100),
                "key": key() if scope in (None, "fn") else "event.data.team",
                "scope": scope,
            },
            {
                "cls": "Throttle",
                "limit": rng.randint(1, 50),
                "period": seconds(1, 7 * 86_400),
                "key": key(),
                **({"burst": rng.choice([None, 0, 1, 5])} if rng.random() < 0.7 else {}),
            },
            {
                "cls": "RateLimit",
                "limit": rng.randint(1, 9),
                "period": seconds(1, 86_400),
                "key": key(),
            },
            {
                "cls": "Debounce",
                "period": seconds(1, 7 * 86_400),
                "timeout": rng.choice([None, seconds(1, 30 * 86_400)]),
                "key": key(),
            },
            {
                "cls": "Batch",
                "max_size": rng.randint(2, 500),
                "timeout": rng.choice([2_000, SECOND * 90, datetime.timedelta(hours=25), 300_000]),
                "key": key(),
                "if_exp": rng.choice([None, "event.data.kind == 'a'"]),
            },
            {"cls": "Priority", "run": rng.choice(["event.data.plan == 'pro' ? 120 : 0", "60"])},
            {"cls": "Singleton", "mode": rng.choice(["skip", "cancel"]), "key": key()},
            {
                "cls": "Timeouts",
                "start": rng.choice([None, seconds(1, 86_400)]),
                "finish": rng.choice([None, seconds(1, 86_400)]),
            },
        ]
    return cases


@pytest.mark.parametrize("options", random_options(random.Random(3)))
def test_to_config_is_inngest_pys_json_and_from_config_reads_it_back(
    options: dict[str, Any],
) -> None:
    kwargs = {name: value for name, value in options.items() if name != "cls"}
    mine = getattr(ours, options["cls"])(**kwargs)
    theirs = getattr(inngest, options["cls"])(**kwargs)
    expected = theirs_json(theirs)
    assert mine.to_config() == expected
    assert list(mine.to_config()) == list(expected)  # same key order too
    parsed = type(mine).from_config(expected)
    assert parsed.to_config() == expected


def test_from_config_reads_go_durations_an_sdk_may_send() -> None:
    throttle = ours.Throttle.from_config({"limit": 2, "period": "1h30m", "burst": 3})
    assert throttle.period == datetime.timedelta(minutes=90)
    assert throttle.to_config()["period"] == "90m"
    debounce = ours.Debounce.from_config({"period": "1w", "timeout": "2w"})
    assert (debounce.period, debounce.timeout) == (
        datetime.timedelta(weeks=1),
        datetime.timedelta(weeks=2),
    )
    with pytest.raises(ConfigurationError, match=r"^Batch\.timeout: '1d' is not a valid"):
        ours.Batch.from_config({"maxSize": 5, "timeout": "1d"})
    with pytest.raises(ConfigurationError, match=r"^Throttle\.period must be at least 1 second"):
        ours.Throttle.from_config({"limit": 2, "period": "500ms"})
    with pytest.raises(ConfigurationError, match="Singleton config must be a JSON object"):
        ours.Singleton.from_config(["skip"])


@pytest.mark.parametrize(
    ("build", "message"),
    [
        (lambda: ours.Concurrency(limit=-1), "Concurrency.limit must be at least 0, got -1"),
        (lambda: ours.Concurrency(limit=True), "Concurrency.limit must be an int, not bool"),
        (lambda: ours.Concurrency(limit="5"), "Concurrency.limit must be an int, not str"),
        (lambda: ours.Concurrency(limit=1, scope="team"), "Concurrency.scope must be 'fn', 'env'"),
        (
            lambda: ours.Concurrency(limit=1, scope="env"),
            "Concurrency.key is required with scope='env'",
        ),
        (lambda: ours.Concurrency(limit=1, scope="account"), "scope='account'"),
        (lambda: ours.Concurrency(limit=1, key=""), "Concurrency.key must be a non-empty CEL"),
        (
            lambda: ours.Concurrency(limit=1, key=5),
            "Concurrency.key must be a CEL expression string",
        ),
        (lambda: ours.Throttle(limit=0, period=SECOND), "Throttle.limit must be at least 1"),
        (lambda: ours.Throttle(limit=1, period=999), "Throttle.period must be at least 1 second"),
        (
            lambda: ours.Throttle(limit=1, period=1500),
            "Throttle.period must be a whole number of seconds",
        ),
        (lambda: ours.Throttle(limit=1, period=1.5), "Throttle.period must be milliseconds (int)"),
        (lambda: ours.Throttle(limit=1, period="1m"), "Throttle.period must be milliseconds (int)"),
        (
            lambda: ours.Throttle(limit=1, period=datetime.timedelta(days=7, seconds=1)),
            "Throttle.period must be at most 1 week (Inngest's documented limit)",
        ),
        (
            lambda: ours.Throttle(limit=1, period=SECOND, burst=-1),
            "Throttle.burst must be at least 0",
        ),
        (lambda: ours.RateLimit(limit=0, period=SECOND), "RateLimit.limit must be at least 1"),
        (
            lambda: ours.RateLimit(limit=1, period=datetime.timedelta(hours=24, seconds=1)),
            "RateLimit.period must be at most 1 day",
        ),
        (lambda: ours.Debounce(period=500), "Debounce.period must be at least 1 second"),
        (
            lambda: ours.Debounce(period=datetime.timedelta(days=7, seconds=1)),
            "Debounce.period must be at most 1 week",
        ),
        (
            lambda: ours.Debounce(period=SECOND, timeout=0),
            "Debounce.timeout must be at least 1 second",
        ),
        (lambda: ours.Batch(max_size=1, timeout=SECOND), "Batch.max_size must be at least 2"),
        (lambda: ours.Batch(max_size=2), "Batch.timeout is required"),
        (lambda: ours.Batch(max_size=2, timeout=999), "Batch.timeout must be at least 1 second"),
        (
            lambda: ours.Batch(max_size=2, timeout=datetime.timedelta(days=1)),
            "Batch.timeout of 1 day is written '1d', which Inngest's batch parser",
        ),
        (
            lambda: ours.Batch(max_size=2, timeout=SECOND, if_exp=" "),
            "Batch.if_exp must be a non-empty",
        ),
        (lambda: ours.Priority(run=""), "Priority.run must be a non-empty CEL"),
        (lambda: ours.Priority(run=None), "Priority.run is required"),
        (lambda: ours.Singleton(mode="replace"), "Singleton.mode must be 'skip' or 'cancel'"),
        (lambda: ours.Timeouts(start=0), "Timeouts.start must be at least 1 second"),
        (lambda: ours.Timeouts(finish=-SECOND), "Timeouts.finish must be at least 1 second"),
    ],
)
def test_bad_values_name_class_and_field(build: Any, message: str) -> None:
    with pytest.raises(ConfigurationError) as caught:
        build()
    assert message in str(caught.value)


@pytest.mark.parametrize(
    "build",
    [
        lambda: ours.Concurrency(limit=0),  # 0 = no limit, per Inngest's docs
        lambda: ours.Concurrency(limit=5, scope="env", key='"shared"'),
        lambda: ours.Throttle(limit=1, period=datetime.timedelta(days=7), burst=0),
        lambda: ours.RateLimit(limit=1, period=datetime.timedelta(hours=24)),
        lambda: ours.Debounce(period=SECOND),
        lambda: ours.Debounce(
            period=datetime.timedelta(days=7), timeout=datetime.timedelta(days=30)
        ),
        lambda: ours.Batch(max_size=2, timeout=datetime.timedelta(hours=25)),
        lambda: ours.Timeouts(),
    ],
)
def test_values_at_the_bounds_are_accepted(build: Any) -> None:
    build()


def test_inngest_py_accepts_what_it_cannot_serialise_we_refuse_at_once() -> None:
    # inngest-py only fails when the function is synced; we fail at the definition.
    theirs = inngest.Debounce(period=500)
    result = theirs.to_dict()  # inngest-py returns its errors
    assert isinstance(result, Exception)
    assert "at least 1 second" in str(result)
    with pytest.raises(ConfigurationError):
        ours.Debounce(period=500)


@pytest.mark.parametrize(
    ("evaluated", "factor"),
    [
        (0, 0),
        (600, 600),
        (-600, -600),
        (43_200, 43_200),
        (43_201, 43_200),
        (-(10**9), -43_200),
        (True, 0),
        (1.5, 0),
        ("60", 0),
        (None, 0),
    ],
)
def test_priority_factor_is_clamped_like_the_executor(evaluated: object, factor: int) -> None:
    assert ours.priority_factor(evaluated) == factor
