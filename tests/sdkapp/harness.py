"""Drives an inngest-py app by hand, the way our engine will: build a call request, sign it,
POST it to ``inngest.django.serve`` through Django's test client, parse the answer."""

from __future__ import annotations

import types
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

import inngest
import inngest.django
from django.test import Client

from django_inngest.sdk import responses, signing, wire
from tests.sdkapp.functions import SIGNING_KEY, SyncFunctions

SYNC_PATH = "/api/inngest"
ASYNC_PATH = "/api/inngest-async"


def urlconf(
    client: inngest.Inngest, sync_fns: SyncFunctions, async_fns: list[Any]
) -> types.ModuleType:
    """A throwaway URLconf module serving both function sets (an async function would turn the
    whole view async, so the sync ones get their own, sync, view)."""
    module = types.ModuleType("tests_sdkapp_urls")
    module.urlpatterns = [  # type: ignore[attr-defined]
        inngest.django.serve(client, sync_fns.all()),
        inngest.django.serve(client, async_fns, serve_path=ASYNC_PATH),
    ]
    return module


@dataclass(frozen=True)
class Answer:
    status: int
    headers: dict[str, str]
    body: bytes

    @property
    def outcome(self) -> responses.CallOutcome:
        return responses.parse_call_response(self.status, self.headers, self.body)


def fn_id(local_id: str) -> str:
    return f"sdkapp-{local_id}"


def event(name: str, data: Mapping[str, Any] | None = None) -> dict[str, Any]:
    return {
        "name": name,
        "data": dict(data or {}),
        "id": "01J0000000000000000000EVNT",
        "ts": 1_700_000_000_000,
    }


@dataclass
class Driver:
    """One run of one function, driven by hand: memos accumulate as the engine would store them."""

    http: Client
    function_id: str
    trigger: dict[str, Any]
    path: str = SYNC_PATH
    run_id: str = "01J00000000000000000000RUN"
    steps: dict[str, Any] = field(default_factory=dict)
    stack: list[str] = field(default_factory=list)
    max_attempts: int | None = None

    def memoize(self, step_id: str, memo: Any) -> None:
        self.steps[step_id] = memo
        self.stack.append(step_id)

    def request(self, *, attempt: int = 0, force_plan: bool = False) -> wire.CallRequest:
        return wire.CallRequest(
            event=self.trigger,
            steps=dict(self.steps),
            ctx=wire.CallContext(
                run_id=self.run_id,
                attempt=attempt,
                max_attempts=self.max_attempts,
                disable_immediate_execution=force_plan,
                stack=tuple(self.stack),
            ),
        )

    def call(
        self,
        *,
        step_id: str | None = None,
        attempt: int = 0,
        force_plan: bool = False,
        key: str = SIGNING_KEY,
    ) -> Answer:
        payload = self.request(attempt=attempt, force_plan=force_plan).to_payload()
        signed = signing.sign_payload(payload, key)
        return post(self.http, self.target(step_id), signed.body, signature=signed.signature)

    def target(self, step_id: str | None = None) -> str:
        url = wire.call_url(
            f"http://testserver{self.path}?fnId={self.function_id}&stepId=step", step_id
        )
        return url.removeprefix("http://testserver")


def post(http: Client, target: str, body: bytes, *, signature: str | None) -> Answer:
    headers = {"X-Inngest-Server-Kind": "cloud"}
    if signature is not None:
        headers["X-Inngest-Signature"] = signature
    response = http.generic("POST", target, body, content_type="application/json", headers=headers)
    return Answer(
        status=response.status_code,
        headers={k.lower(): v for k, v in response.headers.items()},
        body=response.content,
    )


__all__ = ["SIGNING_KEY", "Answer", "Driver", "event", "fn_id", "post", "urlconf", "wire"]
