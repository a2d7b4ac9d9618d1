"""Calling an SDK app: one signed POST of a call request, and its answer as a typed outcome.

The request carries the trigger, the settled memos (``remote_state.memo_map``) and the
``ctx`` whose ``attempt`` counts the retries *of this request*: of the targeted step, or of the
untargeted call. Above ``SDK_INLINE_STATE_MAX_BYTES`` the state stays here and the SDK fetches
it from ``/v0/runs/<id>/batch|actions`` (``use_api``).

The body is JCS and signed with the signing key; in cloud mode the answer must be signed back
with one of our keys, or it is not trusted (a proxy, a dev-mode app, someone else). Every way
a call can go wrong is an outcome, never an exception: the interpreter decides what to retry.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, replace
from datetime import UTC, datetime

from django.utils import timezone

from django_inngest.conf import settings
from django_inngest.engine.remote_body import call_body
from django_inngest.engine.remote_state import RemoteInvocation
from django_inngest.ids import new_ulid
from django_inngest.sdk import responses, signing, wire
from django_inngest.sdk.responses import CallOutcome, SdkError
from django_inngest.sdk.transport import TransportError
from django_inngest.sdk.url_guard import UrlRefused
from django_inngest.sdk_apps.function import SdkFunction
from django_inngest.sdk_apps.http import (
    SELF_CALL_HINT,
    is_dev,
    server_kind,
    signing_keys,
    transport,
)

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class Unreachable:
    """No usable answer at all: refused, reset, timed out, an address not allowed."""

    reason: str


@dataclass(frozen=True)
class Untrusted:
    """The SDK answered, but not signed with our key: its answer is dropped."""

    status: int
    reason: str


Outcome = CallOutcome | Unreachable | Untrusted


@dataclass(frozen=True)
class Prepared:
    """A request ready to send (built on the run's thread, sendable from any thread)."""

    url: str
    body: bytes
    headers: dict[str, str]
    target: str | None
    attempt: int
    use_api: bool


@dataclass(frozen=True)
class Answer:
    outcome: Outcome
    started_at: datetime
    ended_at: datetime


def prepare(inv: RemoteInvocation, *, target: str | None, attempt: int) -> Prepared:
    """Build and sign one call request: untargeted (``target`` None) or for one step."""
    function = inv.function
    assert isinstance(function, SdkFunction)
    ctx = wire.CallContext(
        run_id=inv.run.run_id,
        attempt=attempt,
        # So the SDK itself reports StepFailed, not StepError, on a step's last attempt.
        max_attempts=function.retry_limit + 1,
    )
    steps = list(inv.memos.values())
    body = call_body(inv.body_parts, inv.trigger, steps, ctx)
    use_api = len(body) > settings.SDK_INLINE_STATE_MAX_BYTES
    if use_api:
        # Too big to send inline (the app's Django would refuse the body): the SDK fetches
        # the events and memos from /v0/runs/<id>/batch and /actions.
        body = call_body(inv.body_parts, inv.trigger, steps, replace(ctx, use_api=True))
    keys = signing_keys()
    headers = wire.call_headers(
        signing.signature_header(body, keys[0]) if keys else "",
        run_id=inv.run.run_id,
        server_kind=server_kind(),
        request_id=new_ulid(),
    )
    if not keys:
        del headers[signing.SIGNATURE_HEADER]  # dev mode without a key
    return Prepared(
        url=wire.call_url(function.step_url, target),
        body=body,
        headers=headers,
        target=target,
        attempt=attempt,
        use_api=use_api,
    )


def send(prepared: Prepared) -> Answer:
    """POST it and read the answer; safe on any thread (connections are per thread)."""
    started = timezone.now()
    outcome = _outcome(prepared)
    return Answer(outcome=outcome, started_at=started, ended_at=timezone.now())


def _outcome(prepared: Prepared) -> Outcome:
    try:
        response = transport().request("POST", prepared.url, prepared.body, prepared.headers)
    except TransportError as error:
        if error.timed_out:
            # The step outlived the timeout (it runs again on the retry), or the app is
            # stuck calling back into a web server with no free worker.
            limit = settings.SDK_HTTP_TIMEOUT_SECONDS
            return Unreachable(f"no answer within {limit:g} s{SELF_CALL_HINT}")
        return Unreachable(error.reason)
    except UrlRefused as refused:
        return Unreachable(f"address not allowed: {refused.message}")
    outcome = responses.parse_call_response(
        response.status, response.headers, response.body, now=datetime.now(UTC)
    )
    if is_dev() or isinstance(outcome, responses.NotFromSdk | responses.Unauthorized):
        return outcome
    signature = response.headers.get(signing.SIGNATURE_HEADER.lower())
    if not signing.verify_response(response.body, signature, signing_keys()):
        mode = responses.app_mode(response.headers)
        hint = " (the app runs in dev mode: set INNGEST_DEV=0 there)" if mode == "dev" else ""
        return Untrusted(response.status, f"the app's answer is not signed with our key{hint}")
    return outcome


def describe_failure(outcome: Outcome) -> tuple[dict[str, str], bool, datetime | None]:
    """A failed call as (our error dict, retriable, retry at): what a run or step records."""
    if isinstance(outcome, responses.FunctionError):
        return error_of(outcome.error), outcome.retriable, outcome.retry_at
    if isinstance(outcome, Unreachable):
        return named("SdkUnreachableError", outcome.reason), True, None
    if isinstance(outcome, Untrusted):
        return named("SdkUntrustedResponseError", outcome.reason), True, None
    if isinstance(outcome, responses.Unauthorized):
        message = f"the app refused our signature ({outcome.message}): are the keys the same?"
        return named("SdkUnauthorizedError", message), True, None
    if isinstance(outcome, responses.NotFromSdk):
        message = f"HTTP {outcome.status} from something other than the SDK: {outcome.body_excerpt}"
        return named("SdkNotFoundError", message), True, None
    if isinstance(outcome, responses.InvalidResponse):
        message = f"HTTP {outcome.status}: {outcome.reason}"
        return named("SdkInvalidResponseError", message), True, None
    return named("SdkUnexpectedResponseError", repr(outcome)[:500]), True, None


def error_of(error: SdkError) -> dict[str, str]:
    found = named(error.name, error.message)
    if error.stack:
        found["stack"] = error.stack
    return found


def named(name: str, message: str) -> dict[str, str]:
    """Our error shape (``control.error_dict``): what runs and steps store, and the REST
    API and ``inngest/function.failed`` show."""
    return {"error": f"{name}: {message}" if message else name, "message": message, "name": name}
