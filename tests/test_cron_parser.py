"""Cron expressions accepted and refused exactly as Inngest's sync (robfig/cron v3) does."""

from __future__ import annotations

import zoneinfo

import pytest

from django_inngest.cron import CronSchedule, parse_cron_trigger, parse_jitter
from django_inngest.cron.parser import STAR_BIT, ParsedCron, parse_cron_expression
from django_inngest.exceptions import ConfigurationError


def values(bits: int, low: int, high: int) -> set[int]:
    return {value for value in range(low, high + 1) if 1 << value & bits}


def starred(bits: int) -> bool:
    return bool(bits & STAR_BIT)


@pytest.mark.parametrize(
    ("expression", "field", "expected"),
    [
        ("*/15 * * * *", "minute", {0, 15, 30, 45}),
        ("5/20 * * * *", "minute", {5, 25, 45}),  # N/step is N-max/step
        ("10-40/10 * * * *", "minute", {10, 20, 30, 40}),
        ("1,,2, * * * *", "minute", {1, 2}),  # empty list items are dropped
        ("+5 * * * *", "minute", {5}),  # strconv.Atoi takes a sign
        ("05 * * * *", "minute", {5}),
        ("*-5 * * * *", "minute", set(range(60))),  # robfig ignores what follows "*-"
        ("? * * * *", "minute", set(range(60))),
        ("0 */6 * * *", "hour", {0, 6, 12, 18}),
        ("0 22-23,0-3 * * *", "hour", {22, 23, 0, 1, 2, 3}),
        ("0 0 1,15,31 * *", "day_of_month", {1, 15, 31}),
        ("0 0 * jan,JUL,Dec *", "month", {1, 7, 12}),
        ("0 0 * feb-apr *", "month", {2, 3, 4}),
        ("0 0 * */3 *", "month", {1, 4, 7, 10}),
        ("0 0 * * MON-fri", "day_of_week", {1, 2, 3, 4, 5}),
        ("0 0 * * sun,sat", "day_of_week", {0, 6}),
        ("0 0 * * 0-6/2", "day_of_week", {0, 2, 4, 6}),
    ],
)
def test_field_syntax(expression: str, field: str, expected: set[int]) -> None:
    parsed = parse_cron_expression(expression)
    assert values(getattr(parsed, field), 0, 59) == expected


def test_star_bit_follows_robfig() -> None:
    # Set for "*" and "?" unless stepped by more than one; decides dom/dow AND vs OR.
    def dom(expression: str) -> ParsedCron:
        return parse_cron_expression(f"0 0 {expression} * *")

    assert starred(dom("*").day_of_month)
    assert starred(dom("?").day_of_month)
    assert starred(dom("*/1").day_of_month)
    assert starred(dom("1,*").day_of_month)
    assert not starred(dom("*/2").day_of_month)
    assert not starred(dom("1-31").day_of_month)


@pytest.mark.parametrize(
    ("expression", "zone"),
    [
        ("TZ=Europe/Paris 0 9 * * *", "Europe/Paris"),
        ("CRON_TZ=America/New_York 0 9 * * *", "America/New_York"),
        ("TZ=Asia/Kolkata    0 9 * * *", "Asia/Kolkata"),
        ("TZ=UTC 0 9 * * *", "UTC"),
        ("TZ= 0 9 * * *", "UTC"),  # Go's LoadLocation("") is UTC
        ("0 9 * * *", "UTC"),
        ("  0\t9  * *\n*  ", "UTC"),  # Go's strings.Fields
    ],
)
def test_time_zone_prefix(expression: str, zone: str) -> None:
    parsed = parse_cron_expression(expression)
    assert parsed.timezone == zoneinfo.ZoneInfo(zone)
    assert parsed.expression == expression
    assert values(parsed.hour, 0, 23) == {9}


@pytest.mark.parametrize(
    ("expression", "fragment"),
    [
        ("", "empty spec string"),
        ("@daily", "does not accept descriptors such as '@daily'; write '0 0 * * *'"),
        ("@hourly", "write '0 * * * *'"),
        ("@every 1h", "descriptors such as '@every 1h'"),
        ("TZ=Europe/Paris @weekly", "write '0 0 * * 0'"),
        ("* * * *", "expected exactly 5 fields"),
        ("0 * * * * *", "Inngest has no seconds or year field"),
        ("0 0 * * * * 2030", "found 7"),
        ("60 * * * *", "minute field '60': end of range (60) above maximum (59)"),
        ("* 24 * * *", "hour field '24': end of range (24) above maximum (23)"),
        ("* * 0 * *", "day-of-month field '0': beginning of range (0) below minimum (1)"),
        ("* * 32 * *", "day-of-month field '32'"),
        ("* * * 0 *", "month field '0': beginning of range (0)"),
        ("* * * 13 *", "month field '13'"),
        ("* * * * 7", "above maximum (6): 7; use 0 for Sunday"),
        ("* * * * 1-7", "above maximum (6)"),
        ("5-1 * * * *", "beginning of range (5) beyond end of range (1)"),
        ("*/0 * * * *", "step of range should be a positive number"),
        ("*/-1 * * * *", "negative number (-1) not allowed"),
        ("-1 * * * *", "failed to parse int from ''"),
        ("1/2/3 * * * *", "too many slashes"),
        ("1-2-3 * * * *", "too many hyphens"),
        ("a * * * *", "minute field 'a': failed to parse int from 'a'"),
        ("1.5 * * * *", "failed to parse int"),
        ("* * L * *", "day-of-month field 'L'"),
        ("* * 15W * *", "day-of-month field '15W'"),
        ("* * * * 5#2", "day-of-week field '5#2'"),
        ("* * * mon *", "month field 'mon'"),  # names belong to their own field
        ("* * * * jan", "day-of-week field 'jan'"),
        ("mon * * * *", "minute field 'mon'"),
        ("99999999999999999999 * * * *", "value out of range"),
        ("TZ=Mars/Olympus 0 9 * * *", "provided bad location Mars/Olympus"),
        ("TZ=../etc/passwd 0 9 * * *", "invalid location name"),
        ("TZ=Europe/Paris", "must be followed by a space"),
        (
            "TZ=Europe/Paris\t0 9 * * *",
            "provided bad location Europe/Paris\t0",
        ),  # only a space ends it
        ("TZ=Europe/Paris ", "expected exactly 5 fields (minute hour day-of-month"),
        (" TZ=Europe/Paris 0 9 * * *", "expected exactly 5 fields"),  # the prefix must open it
        ("0 " * 130, "too long"),
    ],
)
def test_refused_expressions_say_which_field_and_why(expression: str, fragment: str) -> None:
    with pytest.raises(ConfigurationError) as caught:
        parse_cron_expression(expression)
    message = str(caught.value)
    assert message.startswith(f"TriggerCron.cron: {expression!r} isn't a valid cron schedule: ")
    assert fragment in message


def test_non_string_is_refused() -> None:
    with pytest.raises(ConfigurationError, match="must be a cron expression string, not int"):
        parse_cron_expression(5)  # type: ignore[arg-type]


def test_the_field_name_is_the_callers() -> None:
    with pytest.raises(ConfigurationError, match=r"^fn\.triggers\[1\]\.cron: "):
        CronSchedule.parse("61 * * * *", field="fn.triggers[1].cron")


def test_unstarted_never_firing_fields_are_accepted_like_go() -> None:
    # strings.FieldsFunc leaves no range in ",": robfig accepts it and it never fires.
    parsed = parse_cron_expression("0 0 , * *")
    assert values(parsed.day_of_month, 1, 31) == set()
    assert parse_cron_expression("0 0 30 2 *").month == 1 << 2


@pytest.mark.parametrize(
    ("jitter", "seconds"),
    [(None, 0), ("", 0), ("   ", 0), ("0s", 0), ("1s", 1), ("30s", 30), ("5m", 300), ("1m30s", 90)],
)
def test_jitter_accepted(jitter: str | None, seconds: int) -> None:
    assert parse_jitter(jitter).total_seconds() == seconds


@pytest.mark.parametrize(
    ("jitter", "fragment"),
    [
        ("500ms", "at least 1s"),
        ("-5s", "zero or more"),
        ("5m1s", "at most 5m"),
        ("1h", "at most 5m"),
        ("30", "missing unit"),
        (" 30s", "expected a number"),  # Go parses the untrimmed string
    ],
)
def test_jitter_refused(jitter: str, fragment: str) -> None:
    with pytest.raises(ConfigurationError) as caught:
        parse_jitter(jitter)
    assert str(caught.value).startswith("TriggerCron.jitter")
    assert fragment in str(caught.value)


def test_jitter_must_be_a_string() -> None:
    with pytest.raises(ConfigurationError, match=r"TriggerCron\.jitter must be a duration string"):
        parse_jitter(30)  # type: ignore[arg-type]


def test_parse_cron_trigger_checks_both_parts() -> None:
    schedule, jitter = parse_cron_trigger("TZ=Europe/Paris 0 9 * * 1-5", "30s")
    assert schedule.timezone == zoneinfo.ZoneInfo("Europe/Paris")
    assert jitter.total_seconds() == 30
    with pytest.raises(ConfigurationError, match=r"^TriggerCron\.jitter"):
        parse_cron_trigger("0 9 * * *", "10m")
    with pytest.raises(ConfigurationError, match=r"^TriggerCron\.cron"):
        parse_cron_trigger("0 9 * * 8", "10s")
