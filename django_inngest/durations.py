"""Durations as Inngest reads and writes them.

Three shapes meet here:

* inngest-py option values: ``int`` milliseconds or a ``timedelta`` (``normalize_duration``);
* the strings inngest-py puts in a sync payload (``to_duration_str``, a port of
  ``inngest._internal.transforms.to_duration_str``: the largest whole unit, ``"90s"``,
  ``"2h"``, ``"1w"``);
* the strings Inngest's Go server parses (``parse_duration``). Most fields go through
  ``github.com/xhit/go-str2duration/v2``: Go's ``time.ParseDuration`` grammar plus ``d`` and
  ``w`` units. A batch timeout and cron ``@every`` use Go's own ``time.ParseDuration``, which
  has no ``d``/``w``: pass ``days_and_weeks=False`` for those.

Every error is a ``ConfigurationError`` whose message starts with the field's name.
"""

from __future__ import annotations

import datetime

from django_inngest.exceptions import ConfigurationError

NANOSECOND = 1
MICROSECOND = 1_000
MILLISECOND = 1_000_000
SECOND = 1_000_000_000
MINUTE = 60 * SECOND
HOUR = 60 * MINUTE
DAY = 24 * HOUR
WEEK = 7 * DAY

_GO_UNITS: dict[str, int] = {
    "ns": NANOSECOND,
    "us": MICROSECOND,
    "\u00b5s": MICROSECOND,  # micro sign
    "\u03bcs": MICROSECOND,  # Greek small letter mu
    "ms": MILLISECOND,
    "s": SECOND,
    "m": MINUTE,
    "h": HOUR,
}
_STR2DURATION_UNITS: dict[str, int] = {**_GO_UNITS, "d": DAY, "w": WEEK}
_INT64_MAX = (1 << 63) - 1

#: inngest-py's ``to_duration_str`` units, largest first.
_PY_SDK_UNITS_MS: tuple[tuple[int, str], ...] = (
    (7 * 24 * 3_600_000, "w"),
    (24 * 3_600_000, "d"),
    (3_600_000, "h"),
    (60_000, "m"),
    (1_000, "s"),
)


def parse_duration_ns(text: str, *, field: str, days_and_weeks: bool = True) -> int:
    """Nanoseconds in ``text``, parsed exactly as Go does (``str2duration`` by default).

    The grammar is ``[-+]?([0-9]*(\\.[0-9]*)?[a-z]+)+`` or a bare ``"0"``: ``"1h30m"``,
    ``"1.5h"``, ``"500ms"``, ``"-2s"``, ``"2w"``. Whitespace, a missing unit, an unknown unit
    and int64 overflow are errors, as in Go.
    """
    if not isinstance(text, str):
        raise ConfigurationError(
            f"{field} must be a duration string like '30s' or '1h30m', not {type(text).__name__}"
        )
    units = _STR2DURATION_UNITS if days_and_weeks else _GO_UNITS

    def invalid(reason: str) -> ConfigurationError:
        known = ", ".join(units)
        return ConfigurationError(
            f"{field}: {text!r} is not a valid duration ({reason}); "
            f"use a number and a unit ({known}), as in '30s' or '1h30m'"
        )

    rest = text
    negative = False
    if rest[:1] in ("-", "+"):
        negative = rest[0] == "-"
        rest = rest[1:]
    if rest == "0":
        return 0
    if not rest:
        raise invalid("empty")
    total = 0
    while rest:
        if not (rest[0] == "." or "0" <= rest[0] <= "9"):
            raise invalid(f"expected a number at {rest!r}")
        whole, rest, digits_before = _leading_int(rest)
        if whole is None:
            raise invalid("number too large")
        fraction, scale, digits_after = 0, 1.0, False
        if rest[:1] == ".":
            fraction, scale, rest, digits_after = _leading_fraction(rest[1:])
        if not digits_before and not digits_after:
            raise invalid("a '.' with no digits")
        unit_end = 0
        while unit_end < len(rest) and not (rest[unit_end] == "." or "0" <= rest[unit_end] <= "9"):
            unit_end += 1
        if unit_end == 0:
            raise invalid("missing unit")
        unit_name, rest = rest[:unit_end], rest[unit_end:]
        if unit_name not in units:
            hint = " (Go's time.ParseDuration has no 'd' or 'w')" if unit_name in "dw" else ""
            raise invalid(f"unknown unit {unit_name!r}{hint}")
        unit = units[unit_name]
        if whole > _INT64_MAX // unit:
            raise invalid("overflows int64 nanoseconds")
        value = whole * unit
        if fraction > 0:
            # Go computes the fraction in float64; so do we, to land on the same nanosecond.
            value += int(float(fraction) * (float(unit) / scale))
            if value > _INT64_MAX:
                raise invalid("overflows int64 nanoseconds")
        total += value
        if total > _INT64_MAX:
            raise invalid("overflows int64 nanoseconds")
    return -total if negative else total


def _leading_int(text: str) -> tuple[int | None, str, bool]:
    index = 0
    value = 0
    while index < len(text) and "0" <= text[index] <= "9":
        value = value * 10 + ord(text[index]) - 48
        if value > _INT64_MAX:
            return None, "", True
        index += 1
    return value, text[index:], index > 0


def _leading_fraction(text: str) -> tuple[int, float, str, bool]:
    # Like Go's leadingFraction: past int64 precision the digits are consumed but ignored.
    index = 0
    value = 0
    scale = 1.0
    overflow = False
    while index < len(text) and "0" <= text[index] <= "9":
        if not overflow:
            candidate = value * 10 + ord(text[index]) - 48
            if candidate > _INT64_MAX:
                overflow = True
            else:
                value = candidate
                scale *= 10
        index += 1
    return value, scale, text[index:], index > 0


def parse_duration(text: str, *, field: str, days_and_weeks: bool = True) -> datetime.timedelta:
    """``parse_duration_ns`` as a ``timedelta`` (nanoseconds below a microsecond are dropped)."""
    nanoseconds = parse_duration_ns(text, field=field, days_and_weeks=days_and_weeks)
    magnitude = datetime.timedelta(microseconds=abs(nanoseconds) // MICROSECOND)
    return -magnitude if nanoseconds < 0 else magnitude


def sdk_duration_value(value: object, *, field: str) -> int | datetime.timedelta:
    """``value`` if it is an inngest-py duration (``int`` ms, not ``bool``, or ``timedelta``)."""
    if isinstance(value, datetime.timedelta):
        return value
    if isinstance(value, int) and not isinstance(value, bool):
        return value
    raise ConfigurationError(
        f"{field} must be milliseconds (int) or a datetime.timedelta, "
        f"not {type(value).__name__} {value!r}"
    )


def normalize_duration(value: object, *, field: str) -> datetime.timedelta:
    """An inngest-py duration option (``int`` milliseconds or ``timedelta``) as a ``timedelta``.

    inngest-py validates these in pydantic's strict mode, so ``bool``, ``float`` and ``str``
    are refused here too. The sign is kept; callers apply their own bounds.
    """
    checked = sdk_duration_value(value, field=field)
    if isinstance(checked, datetime.timedelta):
        return checked
    return datetime.timedelta(milliseconds=checked)


def sdk_milliseconds(value: int | datetime.timedelta) -> int:
    """The milliseconds inngest-py serialises: ``int(total_seconds() * 1000)`` for a timedelta.

    The float arithmetic is inngest-py's; it truncates sub-millisecond parts.
    """
    if isinstance(value, datetime.timedelta):
        return int(value.total_seconds() * 1000)
    return value


def to_duration_str(value: object, *, field: str) -> str:
    """The sync-payload string inngest-py writes for ``value``: the largest unit that divides it.

    ``timedelta(seconds=90)`` -> ``"90s"``, ``120_000`` -> ``"2m"``, ``timedelta(days=7)`` ->
    ``"1w"``. Like inngest-py, less than one second or a fractional second is an error.
    """
    milliseconds = sdk_milliseconds(sdk_duration_value(value, field=field))
    if milliseconds < 1_000:
        raise ConfigurationError(
            f"{field} must be at least 1 second, got {_describe(milliseconds)}"
        )
    for unit, suffix in _PY_SDK_UNITS_MS:
        if milliseconds % unit == 0:
            return f"{milliseconds // unit}{suffix}"
    raise ConfigurationError(
        f"{field} must be a whole number of seconds, got {_describe(milliseconds)}"
    )


def _describe(milliseconds: int) -> str:
    return f"{milliseconds} ms ({datetime.timedelta(milliseconds=milliseconds)})"


def describe(duration: datetime.timedelta) -> str:
    """A short human form for error messages: ``"7 days"``, ``"90 seconds"``, ``"0.5 seconds"``."""
    seconds = duration.total_seconds()
    for size, name in ((604_800, "week"), (86_400, "day"), (3_600, "hour"), (60, "minute")):
        if seconds and seconds % size == 0:
            count = int(seconds // size)
            return f"{count} {name}{'' if count == 1 else 's'}"
    if seconds == int(seconds):
        count = int(seconds)
        return f"{count} second{'' if count == 1 else 's'}"
    return f"{seconds:g} seconds"
