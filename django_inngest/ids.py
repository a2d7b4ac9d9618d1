"""ULIDs: 26-character, time-sortable identifiers, as Inngest uses for events and runs."""

from __future__ import annotations

import os
import re
import threading
import time
from collections import OrderedDict
from datetime import UTC, datetime

_ALPHABET = "0123456789ABCDEFGHJKMNPQRSTVWXYZ"  # Crockford base32
_DECODE = {c: i for i, c in enumerate(_ALPHABET)}
ULID_RE = re.compile(r"^[0-7][0-9A-HJKMNP-TV-Z]{25}$")


_monotonic_lock = threading.Lock()
#: The last entropy used per recent millisecond: a send stamps all its rows with one time while
#: other IDs are made meanwhile, so "the last millisecond" alone would not be enough.
_last_entropy: OrderedDict[int, int] = OrderedDict()
_REMEMBERED_MILLISECONDS = 256


def new_ulid(ms: int | None = None) -> str:
    """A new ULID for the given Unix time in milliseconds (default: now).

    Monotonic within a process (the ULID spec's monotonic mode): IDs made in the same
    millisecond count up from random entropy, so runs created together sort in creation order
    (a concurrency queue's ties are broken by run ID).
    """
    if ms is None:
        ms = time.time_ns() // 1_000_000
    with _monotonic_lock:
        previous = _last_entropy.pop(ms, None)
        # Fresh entropy has its top bit clear: room to count up within a millisecond.
        entropy = (
            previous + 1 if previous is not None else int.from_bytes(os.urandom(10), "big") >> 1
        )
        _last_entropy[ms] = entropy
        while len(_last_entropy) > _REMEMBERED_MILLISECONDS:
            _last_entropy.popitem(last=False)
    return seeded_ulid(ms, entropy)


def seeded_ulid(ms: int, entropy: int) -> str:
    """The ULID with this timestamp and 80-bit entropy (wrapping), for deterministic IDs."""
    value = (ms << 80) | (entropy % (1 << 80))
    chars = []
    for _ in range(26):
        chars.append(_ALPHABET[value & 31])
        value >>= 5
    return "".join(reversed(chars))


def is_ulid(value: object) -> bool:
    return isinstance(value, str) and bool(ULID_RE.match(value))


def ulid_ms(ulid: str) -> int:
    """The millisecond timestamp encoded in a ULID."""
    value = 0
    for char in ulid[:10]:
        value = (value << 5) | _DECODE[char]
    return value


def ulid_datetime(ulid: str) -> datetime:
    return datetime.fromtimestamp(ulid_ms(ulid) / 1000, tz=UTC)
