"""Go duration strings, as SDKs write them in function config and step opts.

Private to ``django_inngest.sdk``: another module (``django_inngest/durations.py``) is being
written for the rest of the package; merge the two when both exist.

The grammar is Go's ``time.ParseDuration`` extended with days and weeks, as Inngest parses it
(``github.com/xhit/go-str2duration``): one or more ``<number><unit>`` pairs, in any order,
numbers may have a fraction (``1.5h``), units ``ns us µs μs ms s m h d w``; a bare ``0`` is
zero. inngest-py writes one unit (``5m``, ``2d``); the TS SDK writes compound strings
(``1h30m``). Negative durations are refused: no SDK option means "in the past".
"""

from __future__ import annotations

import re
from datetime import timedelta
from decimal import Decimal

from django_inngest.sdk.errors import SdkProtocolError

_MICROSECONDS_PER_UNIT: dict[str, Decimal] = {
    "ns": Decimal("0.001"),
    "us": Decimal(1),
    "µs": Decimal(1),  # U+00B5 MICRO SIGN, which Go accepts
    "μs": Decimal(1),  # U+03BC GREEK SMALL LETTER MU, which Go also accepts
    "ms": Decimal(1_000),
    "s": Decimal(1_000_000),
    "m": Decimal(60_000_000),
    "h": Decimal(3_600_000_000),
    "d": Decimal(86_400_000_000),
    "w": Decimal(604_800_000_000),
}
# Longest units first, so that "ms" is not read as "m" followed by a stray "s".
_UNIT = "|".join(sorted(map(re.escape, _MICROSECONDS_PER_UNIT), key=len, reverse=True))
_SEGMENT = re.compile(rf"(\d+(?:\.\d*)?|\.\d+)({_UNIT})")
#: Far beyond anything an SDK sends; keeps timedelta from overflowing.
_MAX = timedelta(days=365 * 100)


def parse_go_duration(text: object, *, field: str) -> timedelta:
    """The duration ``text`` denotes; ``SdkProtocolError`` naming ``field`` if it is not one."""
    if not isinstance(text, str):
        raise SdkProtocolError(field, f"must be a duration string like '5m', got {text!r}")
    body = text.removeprefix("+")
    if body.startswith("-"):
        raise SdkProtocolError(field, f"must not be negative, got {text!r}")
    if body == "0":
        return timedelta(0)
    if not body:
        raise SdkProtocolError(field, "must be a duration string like '5m', got ''")
    total = Decimal(0)
    position = 0
    while position < len(body):
        match = _SEGMENT.match(body, position)
        if match is None:
            raise SdkProtocolError(
                field,
                f"is not a duration: {text!r} (expected <number><unit> pairs, "
                "units ns us ms s m h d w, e.g. '90s' or '1h30m')",
            )
        total += Decimal(match.group(1)) * _MICROSECONDS_PER_UNIT[match.group(2)]
        position = match.end()
    if total > Decimal(_MAX // timedelta(microseconds=1)):
        raise SdkProtocolError(field, f"is too long: {text!r}")
    return timedelta(microseconds=int(total))
