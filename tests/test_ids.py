"""ULIDs: the internal IDs of events and runs."""

from __future__ import annotations

import re
from datetime import UTC, datetime

import pytest

from django_inngest.ids import is_ulid, new_ulid, ulid_datetime, ulid_ms

CROCKFORD = re.compile(r"^[0-9A-HJKMNP-TV-Z]{26}$")


def test_new_ulid_is_26_crockford_characters() -> None:
    for _ in range(200):
        value = new_ulid()
        assert len(value) == 26
        assert CROCKFORD.match(value), value
        assert not set(value) & set("ILOU")
        assert is_ulid(value)


def test_new_ulids_are_unique() -> None:
    values = {new_ulid(1_700_000_000_000) for _ in range(1000)}
    assert len(values) == 1000


@pytest.mark.parametrize("ms", [0, 1, 1_732_558_407_003, 2**48 - 1])
def test_ulid_ms_round_trips(ms: int) -> None:
    assert ulid_ms(new_ulid(ms)) == ms


def test_ulid_ms_of_now_is_close_to_the_clock() -> None:
    before = int(datetime.now(tz=UTC).timestamp() * 1000)
    value = new_ulid()
    after = int(datetime.now(tz=UTC).timestamp() * 1000)
    assert before <= ulid_ms(value) <= after


def test_ulid_datetime() -> None:
    assert ulid_datetime(new_ulid(1_732_558_407_003)) == datetime(
        2024, 11, 25, 18, 13, 27, 3000, tzinfo=UTC
    )


def test_ulids_sort_by_time() -> None:
    times = [5, 1_000, 1_000_000, 1_700_000_000_000, 1_700_000_000_001, 2**47]
    ulids = [new_ulid(ms) for ms in times]
    assert sorted(ulids) == ulids
    # Lexical order follows time even when generated out of order.
    shuffled = [ulids[3], ulids[0], ulids[5], ulids[1], ulids[4], ulids[2]]
    assert sorted(shuffled) == ulids


def test_known_ulid_decodes() -> None:
    # An event ID Inngest generated (from the seed): 2024-11-25T21:20:01.086Z.
    assert ulid_ms("01JDJK451Y9KFGE5TTM2FHDEDN") == 1_732_569_601_086
    assert is_ulid("01JDJK451Y9KFGE5TTM2FHDEDN")


@pytest.mark.parametrize(
    "value",
    [
        "",
        "01JDJK451Y9KFGE5TTM2FHDED",  # 25 characters
        "01JDJK451Y9KFGE5TTM2FHDEDNX",  # 27 characters
        "01jdjk451y9kfge5ttm2fhdedn",  # lowercase
        "01JDJK451Y9KFGE5TTM2FHDEDI",  # I is not Crockford
        "01JDJK451Y9KFGE5TTM2FHDEDL",  # L
        "01JDJK451Y9KFGE5TTM2FHDEDO",  # O
        "01JDJK451Y9KFGE5TTM2FHDEDU",  # U
        "81JDJK451Y9KFGE5TTM2FHDEDN",  # first character > 7 overflows 128 bits
        "01JDJK451Y9KFGE5TTM2FHDE-N",
        None,
        12345,
        b"01JDJK451Y9KFGE5TTM2FHDEDN",
    ],
)
def test_is_ulid_rejects_bad_values(value: object) -> None:
    assert not is_ulid(value)
