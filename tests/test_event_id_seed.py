"""``x-inngest-event-id-seed``: SDK retries derive the same IDs and are not stored twice."""

from __future__ import annotations

import base64
import json
from typing import Any

import pytest
from django.test import Client

from django_inngest import Context, Inngest, TriggerEvent
from django_inngest.ids import is_ulid, seeded_ulid, ulid_ms
from django_inngest.models import Event, FunctionRun

pytestmark = pytest.mark.django_db(transaction=True)
URL = "/e/test-event-key"
ENTROPY = bytes(range(10))
SEED = f"1732558407003,{base64.b64encode(ENTROPY).decode()}"


def post(body: Any, **headers: str) -> Any:
    return Client().post(URL, json.dumps(body), content_type="application/json", headers=headers)


def test_seeded_ids_are_deterministic_and_increment_by_index() -> None:
    base = int.from_bytes(ENTROPY, "big")
    first, second = seeded_ulid(1732558407003, base), seeded_ulid(1732558407003, base + 1)
    assert is_ulid(first) and ulid_ms(first) == 1732558407003
    assert first < second


def test_a_retried_request_is_recognised(isolated_registry: Any) -> None:
    client = Inngest(app_id="seed")
    started: list[str] = []

    @client.create_function(fn_id="f", trigger=TriggerEvent(event="seed/x"))
    def fn(ctx: Context) -> None:
        started.append(ctx.event.data["n"])

    batch = [{"name": "seed/x", "data": {"n": 1}}, {"name": "seed/x", "data": {"n": 2}}]
    first = post(batch, **{"x-inngest-event-id-seed": SEED})
    again = post(batch, **{"x-inngest-event-id-seed": SEED})
    assert first.status_code == again.status_code == 200
    assert first.json()["ids"] == again.json()["ids"]
    base = int.from_bytes(ENTROPY, "big")
    assert first.json()["ids"] == [seeded_ulid(1732558407003, base + i) for i in range(2)]
    assert Event.objects.filter(name="seed/x").count() == 2
    assert FunctionRun.objects.filter(function_id="seed-f").count() == 2
    assert sorted(started) == [1, 2]


def test_without_a_seed_every_request_is_new() -> None:
    body = {"name": "seed/y"}
    assert post(body).json()["ids"] != post(body).json()["ids"]
    assert Event.objects.count() == 2


@pytest.mark.parametrize(
    "seed", ["nonsense", "123", "abc,AAAA", f"1,{base64.b64encode(b'short').decode()}"]
)
def test_a_malformed_seed_is_a_400(seed: str) -> None:
    response = post({"name": "seed/z"}, **{"x-inngest-event-id-seed": seed})
    assert response.status_code == 400
    assert "x-inngest-event-id-seed" in response.json()["error"]
    assert not Event.objects.exists()
