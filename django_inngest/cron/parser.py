"""Parse cron expressions exactly as Inngest's Go server accepts them.

Inngest validates a ``TriggerCron`` at sync with ``github.com/robfig/cron/v3``
``NewParser(Minute | Hour | Dom | Month | Dow)`` (``pkg/inngest/trigger.go``,
``CronTrigger.Validate``). That parser's rules, all reproduced here:

* exactly five whitespace-separated fields: minute, hour, day of month, month, day of week
  (no seconds field, no year field);
* no descriptors: ``@daily``, ``@every 1h`` and friends are refused (the scheduler's own
  parser would accept them, but a function carrying one never syncs);
* an optional ``TZ=Area/City `` or ``CRON_TZ=Area/City `` prefix, ended by a space;
* in each field, comma-separated ranges: ``*``, ``?`` (a synonym of ``*`` in every field),
  ``N``, ``N-M``, each with an optional ``/step``; ``N/step`` means ``N-max/step``;
* month names ``jan``..``dec`` and weekday names ``sun``..``sat``, any case, as range ends;
* day of week is 0-6 (Sunday is 0; 7 is refused); no ``L``, ``W`` or ``#``;
* numbers go through Go's ``strconv.Atoi`` (a leading ``+`` and leading zeros are fine).

Fields are kept as robfig's 64-bit sets, including its "star bit": day of month and day of
week combine with AND when either field was written as ``*``/``?`` (unstepped), and with OR
otherwise, as in Vixie cron.
"""

from __future__ import annotations

import re
import zoneinfo
from collections.abc import Callable
from dataclasses import dataclass

from django_inngest.exceptions import ConfigurationError

#: robfig sets this bit on a field written as ``*`` or ``?`` without a step above 1.
STAR_BIT = 1 << 63
#: ``pkg/inngest/trigger.go``: longer expressions are refused at sync.
MAX_CRON_LENGTH = 255

_MONTH_NAMES = {
    name: number
    for number, name in enumerate(
        ("jan", "feb", "mar", "apr", "may", "jun", "jul", "aug", "sep", "oct", "nov", "dec"),
        start=1,
    )
}
_WEEKDAY_NAMES = {
    name: number for number, name in enumerate(("sun", "mon", "tue", "wed", "thu", "fri", "sat"))
}
_ATOI = re.compile(r"[+-]?[0-9]+")
_INT64_MAX = (1 << 63) - 1
# Go's strings.Fields splits on unicode.IsSpace, which is str.isspace() minus these four.
_NOT_GO_SPACE = frozenset("\x1c\x1d\x1e\x1f")

_DESCRIPTOR_EQUIVALENTS = {
    "@yearly": "0 0 1 1 *",
    "@annually": "0 0 1 1 *",
    "@monthly": "0 0 1 * *",
    "@weekly": "0 0 * * 0",
    "@daily": "0 0 * * *",
    "@midnight": "0 0 * * *",
    "@hourly": "0 * * * *",
}


@dataclass(frozen=True)
class _Bounds:
    name: str
    low: int
    high: int
    names: dict[str, int] | None = None


_FIELDS = (
    _Bounds("minute", 0, 59),
    _Bounds("hour", 0, 23),
    _Bounds("day-of-month", 1, 31),
    _Bounds("month", 1, 12, _MONTH_NAMES),
    _Bounds("day-of-week", 0, 6, _WEEKDAY_NAMES),
)


@dataclass(frozen=True)
class ParsedCron:
    """One cron expression: its time zone and robfig's bit set for each field."""

    expression: str
    timezone: zoneinfo.ZoneInfo
    minute: int
    hour: int
    day_of_month: int
    month: int
    day_of_week: int


class _FieldError(Exception):
    pass


_InvalidFactory = Callable[[str], ConfigurationError]


def parse_cron_expression(expression: str, *, field: str = "TriggerCron.cron") -> ParsedCron:
    """Parse ``expression`` or raise ``ConfigurationError`` naming ``field`` and the problem."""
    if not isinstance(expression, str):
        raise ConfigurationError(
            f"{field} must be a cron expression string, not {type(expression).__name__}"
        )

    def invalid(detail: str) -> ConfigurationError:
        return ConfigurationError(f"{field}: {expression!r} isn't a valid cron schedule: {detail}")

    if not expression:
        raise invalid("empty spec string")
    if len(expression) > MAX_CRON_LENGTH:
        raise invalid(f"cron is too long; the maximum length is {MAX_CRON_LENGTH} characters")
    spec, timezone = _split_timezone(expression, invalid)
    if spec.startswith("@"):
        equivalent = _DESCRIPTOR_EQUIVALENTS.get(spec)
        hint = f"; write {equivalent!r} instead" if equivalent else ""
        raise invalid(
            f"Inngest's parser does not accept descriptors such as {spec!r}{hint} "
            "(five fields: minute hour day-of-month month day-of-week)"
        )
    fields = _go_fields(spec)
    if len(fields) != 5:
        extra = " Inngest has no seconds or year field." if len(fields) in (6, 7) else ""
        raise invalid(
            f"expected exactly 5 fields (minute hour day-of-month month day-of-week), "
            f"found {len(fields)}: [{' '.join(fields)}].{extra}"
        )
    bits: list[int] = []
    for text, bounds in zip(fields, _FIELDS, strict=True):
        try:
            bits.append(_field_bits(text, bounds))
        except _FieldError as error:
            raise invalid(f"{bounds.name} field {text!r}: {error}") from None
    return ParsedCron(expression, timezone, *bits)


def _split_timezone(expression: str, invalid: _InvalidFactory) -> tuple[str, zoneinfo.ZoneInfo]:
    # robfig: the prefix must open the spec; the zone name runs from '=' to the first space.
    if not expression.startswith(("TZ=", "CRON_TZ=")):
        return expression, zoneinfo.ZoneInfo("UTC")
    space = expression.find(" ")
    if space == -1:
        raise invalid("a TZ= prefix must be followed by a space and the five fields")
    name = expression[expression.index("=") + 1 : space]
    return expression[space:].strip(), _load_zone(name, invalid)


def _load_zone(name: str, invalid: _InvalidFactory) -> zoneinfo.ZoneInfo:
    # Go's time.LoadLocation: "" and "UTC" are UTC; "Local" is the server's zone, which is UTC
    # on Inngest's servers (its docs: "Without a prefix, the schedule uses UTC").
    if name in ("", "UTC", "Local"):
        return zoneinfo.ZoneInfo("UTC")
    if ".." in name or name.startswith(("/", "\\")):
        raise invalid(f"provided bad location {name}: invalid location name")
    try:
        return zoneinfo.ZoneInfo(name)
    except (zoneinfo.ZoneInfoNotFoundError, ValueError, OSError):
        raise invalid(
            f"provided bad location {name}: unknown time zone; use an IANA name such as "
            "'Europe/Paris'"
        ) from None


def _go_fields(spec: str) -> list[str]:
    fields: list[str] = []
    current: list[str] = []
    for char in spec:
        if char.isspace() and char not in _NOT_GO_SPACE:
            if current:
                fields.append("".join(current))
                current = []
        else:
            current.append(char)
    if current:
        fields.append("".join(current))
    return fields


def _field_bits(text: str, bounds: _Bounds) -> int:
    bits = 0
    # strings.FieldsFunc drops empty pieces, so "1,,2" is "1,2" and "," sets no bit at all.
    for piece in (part for part in text.split(",") if part):
        bits |= _range_bits(piece, bounds)
    return bits


def _range_bits(expr: str, bounds: _Bounds) -> int:
    range_and_step = expr.split("/")
    low_and_high = range_and_step[0].split("-")
    single = len(low_and_high) == 1
    extra = 0
    if low_and_high[0] in ("*", "?"):
        # robfig ignores anything after "*-": "*-5" is "*".
        start, end, extra = bounds.low, bounds.high, STAR_BIT
    else:
        start = _int_or_name(low_and_high[0], bounds)
        if len(low_and_high) == 1:
            end = start
        elif len(low_and_high) == 2:
            end = _int_or_name(low_and_high[1], bounds)
        else:
            raise _FieldError(f"too many hyphens: {expr}")
    if len(range_and_step) == 1:
        step = 1
    elif len(range_and_step) == 2:
        step = _atoi(range_and_step[1])
        if single:
            end = bounds.high
        if step > 1:
            extra = 0
    else:
        raise _FieldError(f"too many slashes: {expr}")
    if start < bounds.low:
        raise _FieldError(f"beginning of range ({start}) below minimum ({bounds.low}): {expr}")
    if end > bounds.high:
        hint = "; use 0 for Sunday" if bounds.name == "day-of-week" and end == 7 else ""
        raise _FieldError(f"end of range ({end}) above maximum ({bounds.high}): {expr}{hint}")
    if start > end:
        raise _FieldError(f"beginning of range ({start}) beyond end of range ({end}): {expr}")
    if step == 0:
        raise _FieldError(f"step of range should be a positive number: {expr}")
    return sum(1 << value for value in range(start, end + 1, step)) | extra


def _int_or_name(text: str, bounds: _Bounds) -> int:
    if bounds.names is not None and text.lower() in bounds.names:
        return bounds.names[text.lower()]
    return _atoi(text)


def _atoi(text: str) -> int:
    if not _ATOI.fullmatch(text):
        raise _FieldError(f"failed to parse int from {text!r}: not a whole number")
    number = int(text)
    if not -_INT64_MAX - 1 <= number <= _INT64_MAX:
        raise _FieldError(f"failed to parse int from {text!r}: value out of range")
    if number < 0:
        raise _FieldError(f"negative number ({number}) not allowed: {text}")
    return number
