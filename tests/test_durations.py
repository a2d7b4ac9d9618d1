"""Durations: Go's grammar as Inngest's server parses it, inngest-py's format and values."""

from __future__ import annotations

import datetime
import random

import pytest
from inngest._internal import transforms

from django_inngest.durations import (
    DAY,
    HOUR,
    MICROSECOND,
    MILLISECOND,
    MINUTE,
    SECOND,
    WEEK,
    describe,
    normalize_duration,
    parse_duration,
    parse_duration_ns,
    to_duration_str,
)
from django_inngest.exceptions import ConfigurationError


@pytest.mark.parametrize(
    ("text", "nanoseconds"),
    [
        ("0", 0),
        ("-0", 0),
        ("+0", 0),
        ("1ns", 1),
        ("1us", MICROSECOND),
        ("1\u00b5s", MICROSECOND),
        ("1\u03bcs", MICROSECOND),
        ("500ms", 500 * MILLISECOND),
        ("30s", 30 * SECOND),
        ("-2s", -2 * SECOND),
        ("+3m", 3 * MINUTE),
        ("1h30m", 90 * MINUTE),
        ("1.5h", 90 * MINUTE),
        ("0.1h", 6 * MINUTE),
        (".5s", 500 * MILLISECOND),
        ("1.s", SECOND),
        ("007s", 7 * SECOND),
        ("1h1h", 2 * HOUR),
        ("2w", 2 * WEEK),
        ("1d12h", DAY + 12 * HOUR),
        ("1w1d1h1m1s1ms1us1ns", WEEK + DAY + HOUR + MINUTE + SECOND + MILLISECOND + 1001),
        ("9223372036854775807ns", (1 << 63) - 1),
        ("0.000000001s", 1),
        ("1.0000000001s", SECOND),  # below a nanosecond, like Go
    ],
)
def test_go_duration_strings_parse_as_go_does(text: str, nanoseconds: int) -> None:
    assert parse_duration_ns(text, field="X.period") == nanoseconds


@pytest.mark.parametrize(
    ("text", "reason"),
    [
        ("", "empty"),
        ("-", "empty"),
        ("1", "missing unit"),
        ("0.0", "missing unit"),
        ("h", "expected a number"),
        (".s", "'.' with no digits"),
        ("1 h", "unknown unit '"),
        (" 1h", "expected a number"),
        ("1h ", "unknown unit 'h '"),
        ("1x", "unknown unit 'x'"),
        ("1e3s", "unknown unit 'e'"),
        ("1H", "unknown unit 'H'"),
        ("--1s", "expected a number"),
        ("1.2.3s", "missing unit"),
        ("9223372036854775808ns", "too large"),
        ("2562048h", "overflows"),
        ("106752d", "overflows"),
    ],
)
def test_invalid_duration_strings_name_the_field_and_reason(text: str, reason: str) -> None:
    with pytest.raises(ConfigurationError) as caught:
        parse_duration_ns(text, field="Debounce.period")
    message = str(caught.value)
    assert message.startswith("Debounce.period: ")
    assert reason in message
    assert repr(text) in message


def test_go_stdlib_grammar_has_no_days_or_weeks() -> None:
    # A batch timeout goes through time.ParseDuration, not str2duration.
    assert parse_duration_ns("25h", field="Batch.timeout", days_and_weeks=False) == 25 * HOUR
    for text in ("1d", "1w"):
        with pytest.raises(ConfigurationError, match="no 'd' or 'w'"):
            parse_duration_ns(text, field="Batch.timeout", days_and_weeks=False)


def test_non_string_is_refused() -> None:
    with pytest.raises(ConfigurationError, match=r"Throttle\.period must be a duration string"):
        parse_duration_ns(30, field="Throttle.period")  # type: ignore[arg-type]


def test_parse_duration_gives_a_timedelta_truncating_nanoseconds() -> None:
    assert parse_duration("1h30m", field="f") == datetime.timedelta(minutes=90)
    assert parse_duration("1500ns", field="f") == datetime.timedelta(microseconds=1)
    assert parse_duration("-1500ns", field="f") == -datetime.timedelta(microseconds=1)


def _sdk_values() -> list[int | datetime.timedelta]:
    rng = random.Random(7)
    values: list[int | datetime.timedelta] = [
        0,
        999,
        1000,
        1500,
        60_000,
        90_000,
        3_600_000,
        86_400_000,
        604_800_000,
        1_209_600_000,
        -1000,
        datetime.timedelta(seconds=1),
        datetime.timedelta(seconds=1, microseconds=500),
        datetime.timedelta(seconds=1, milliseconds=1),
        datetime.timedelta(microseconds=999),
        datetime.timedelta(days=7),
        datetime.timedelta(days=1, hours=1),
        datetime.timedelta(hours=25),
        datetime.timedelta(minutes=90),
    ]
    for _ in range(100):
        unit = rng.choice([1, 1000, 60_000, 3_600_000, 86_400_000])
        count = rng.randint(1, 500)
        values.append(count * unit)
        values.append(datetime.timedelta(milliseconds=count * unit))
    return values


@pytest.mark.parametrize("value", _sdk_values())
def test_to_duration_str_matches_inngest_py(value: int | datetime.timedelta) -> None:
    theirs = transforms.to_duration_str(value)
    if isinstance(theirs, Exception):
        with pytest.raises(ConfigurationError) as caught:
            to_duration_str(value, field="Throttle.period")
        assert str(caught.value).startswith("Throttle.period must be")
        assert str(theirs).split(" must ")[1].split()[0] in str(caught.value)
    else:
        assert to_duration_str(value, field="Throttle.period") == theirs


def test_to_duration_str_round_trips_through_the_go_parser() -> None:
    for value in _sdk_values():
        try:
            text = to_duration_str(value, field="f")
        except ConfigurationError:
            continue
        milliseconds = value if isinstance(value, int) else int(value.total_seconds() * 1000)
        assert parse_duration_ns(text, field="f") == milliseconds * MILLISECOND


def test_normalize_duration_reads_ints_as_milliseconds() -> None:
    assert normalize_duration(1500, field="f") == datetime.timedelta(milliseconds=1500)
    delta = datetime.timedelta(minutes=2)
    assert normalize_duration(delta, field="f") is delta


@pytest.mark.parametrize("value", [True, 1.5, "30s", None, [1000]])
def test_normalize_duration_refuses_what_inngest_py_strict_mode_refuses(value: object) -> None:
    with pytest.raises(ConfigurationError) as caught:
        normalize_duration(value, field="Debounce.timeout")
    assert str(caught.value).startswith("Debounce.timeout must be milliseconds (int)")
    assert type(value).__name__ in str(caught.value)


@pytest.mark.parametrize(
    ("delta", "text"),
    [
        (datetime.timedelta(days=7), "1 week"),
        (datetime.timedelta(days=2), "2 days"),
        (datetime.timedelta(hours=24), "1 day"),
        (datetime.timedelta(seconds=90), "90 seconds"),
        (datetime.timedelta(minutes=3), "3 minutes"),
        (datetime.timedelta(milliseconds=500), "0.5 seconds"),
    ],
)
def test_describe(delta: datetime.timedelta, text: str) -> None:
    assert describe(delta) == text
