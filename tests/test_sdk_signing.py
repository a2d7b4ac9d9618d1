"""Signing (django_inngest.sdk.signing), checked against inngest-py's own functions and against
a served inngest-py app that must accept our signatures and refuse forged ones."""

from __future__ import annotations

import json
import time
from typing import Any

import pytest
from inngest._internal import net, transforms

from django_inngest.sdk import responses, signing
from django_inngest.sdk.errors import SdkProtocolError
from django_inngest.sdk.responses import Completed, Unauthorized
from tests.sdkapp.capture import CaptureServer
from tests.sdkapp.fixtures import SdkApp, make_sdk_app
from tests.sdkapp.functions import SIGNING_KEY
from tests.sdkapp.harness import Answer, Driver, event, fn_id, post

OTHER_KEY = "signkey-prod-" + "ab" * 32
CHILD = f"/api/inngest?fnId={fn_id('child')}&stepId=step"


def child_payload(sdk_app: SdkApp) -> dict[str, Any]:
    return Driver(sdk_app.http, fn_id("child"), event("sdk/child", {"n": 2})).request().to_payload()


# --- keys -------------------------------------------------------------------------------------


def test_valid_signing_keys() -> None:
    assert signing.validate_signing_key(SIGNING_KEY) == SIGNING_KEY
    assert signing.validate_signing_key("signkey-branch_1-ABcd") == "signkey-branch_1-ABcd"


@pytest.mark.parametrize(
    ("key", "reason"),
    [
        ("", "non-empty"),
        (None, "non-empty"),
        ("0123abcd", "must start with 'signkey-<env>-'"),
        ("signkey-test-abc", "even length"),
        ("signkey-test-zz00", "hexadecimal"),
        ("signkey-test-", "hexadecimal"),
    ],
)
def test_invalid_signing_keys_are_named_but_not_echoed(key: Any, reason: str) -> None:
    with pytest.raises(SdkProtocolError, match=reason) as caught:
        signing.validate_signing_key(key, field="DJANGO_INNGEST_SIGNING_KEY")
    assert caught.value.field == "DJANGO_INNGEST_SIGNING_KEY"
    assert not key or key not in str(caught.value)


def test_hashed_key_is_the_sdks_bearer_token() -> None:
    assert signing.key_body(SIGNING_KEY) == "0123456789abcdef0123456789abcdef"
    assert signing.hashed_signing_key(SIGNING_KEY) == transforms.hash_signing_key(SIGNING_KEY)
    with pytest.raises(SdkProtocolError):
        signing.hashed_signing_key("signkey-test-nothex")


def test_bearer_token_matches_raw_and_hashed_forms_of_any_key() -> None:
    digest = signing.hashed_signing_key(SIGNING_KEY)
    keys = [OTHER_KEY, SIGNING_KEY]  # a primary and a fallback
    for token in (digest, f"signkey-test-{digest}", SIGNING_KEY, OTHER_KEY):
        assert signing.bearer_token_matches(token, keys), token
    for token in ("", digest[:-1] + "0", "signkey-test-0123", signing.key_body(SIGNING_KEY)):
        assert not signing.bearer_token_matches(token, keys), token
    assert signing.bearer_token_matches("signkey-x-notHex", ["signkey-x-notHex", ""])


# --- canonical JSON and signatures --------------------------------------------------------------


def test_canonical_json_is_what_the_sdk_verifies() -> None:
    value = {"z": [1, 2.0, 2**64, "é", None], "a": {"c": True, "b": 1.5}}
    ours = signing.canonical_json(value)
    assert ours == transforms.canonicalize(json.dumps(value, indent=2).encode())
    # The documented side effects, shared with Inngest's Go server.
    assert ours == b'{"a":{"b":1.5,"c":true},"z":[1,2,18446744073709552000,"\xc3\xa9",null]}'
    for bad in (float("nan"), {"x": float("inf")}, {1: "non-string key"}, {"x": object()}):
        with pytest.raises(SdkProtocolError, match="body"):
            signing.canonical_json(bad)


def test_signatures_match_the_sdks_own_signing() -> None:
    body = signing.canonical_json({"b": 1, "a": 2})
    ours = signing.signature_header(body, SIGNING_KEY, timestamp=1_700_000_000)
    assert ours == net.sign_request(body, SIGNING_KEY, 1_700_000_000)
    assert ours == net.sign_response(body, SIGNING_KEY, 1_700_000_000)
    signed = signing.sign_payload({"b": 1, "a": 2}, SIGNING_KEY, timestamp=1_700_000_000)
    assert (signed.body, signed.signature) == (body, ours)
    assert signing.verify_request(b'{ "a": 2, "b": 1 }', ours, [SIGNING_KEY])


def test_response_verification() -> None:
    body = b'{"ok": 1}'  # raw, not canonical: responses are verified as sent
    header = net.sign_response(body, SIGNING_KEY)
    assert isinstance(header, str)
    assert signing.verify_response(body, header, [SIGNING_KEY])
    assert signing.verify_response(body, header, [OTHER_KEY, SIGNING_KEY])  # via the fallback
    assert signing.matching_key(body, header, [OTHER_KEY, SIGNING_KEY]) == SIGNING_KEY
    assert not signing.verify_response(body, header, [OTHER_KEY])
    assert not signing.verify_response(b'{"ok": 2}', header, [SIGNING_KEY])
    assert not signing.verify_response(body, None, [SIGNING_KEY])
    assert not signing.verify_response(body, header, [])
    old = signing.signature_header(body, SIGNING_KEY, timestamp=int(time.time()) - 600)
    assert signing.verify_response(body, old, [SIGNING_KEY])
    assert not signing.verify_response(body, old, [SIGNING_KEY], max_age_seconds=300)


@pytest.mark.parametrize("header", ["s=" + "a" * 64, "t=x&s=" + "a" * 64, "t=1", "t=1&s=XYZ", ""])
def test_malformed_signature_headers(header: str) -> None:
    with pytest.raises(SdkProtocolError) as caught:
        signing.parse_signature_header(header)
    assert caught.value.field == "X-Inngest-Signature"


# --- against the served SDK ---------------------------------------------------------------------


def test_a_correctly_signed_request_runs_and_its_answer_is_signed(sdk_app: SdkApp) -> None:
    signed = signing.sign_payload(child_payload(sdk_app), SIGNING_KEY)
    answer = post(sdk_app.http, CHILD, signed.body, signature=signed.signature)
    assert answer.outcome == Completed(output={"doubled": 4})
    header = answer.headers["x-inngest-signature"]
    assert signing.verify_response(answer.body, header, [SIGNING_KEY])
    assert not signing.verify_response(answer.body, header, [OTHER_KEY])


def refused(answer: Answer) -> bool:
    outcome = answer.outcome
    return isinstance(outcome, Unauthorized) and outcome.from_sdk and answer.status == 401


def test_unsigned_forged_and_tampered_requests_are_refused(sdk_app: SdkApp) -> None:
    payload = child_payload(sdk_app)
    signed = signing.sign_payload(payload, SIGNING_KEY)
    forged = signing.sign_payload(payload, OTHER_KEY)
    tampered = signed.body.replace(b'"n":2', b'"n":3')
    assert tampered != signed.body

    assert refused(post(sdk_app.http, CHILD, signed.body, signature=None))
    assert refused(post(sdk_app.http, CHILD, forged.body, signature=forged.signature))
    assert refused(post(sdk_app.http, CHILD, tampered, signature=signed.signature))
    unauthorized = post(sdk_app.http, CHILD, signed.body, signature=None)
    assert unauthorized.outcome == Unauthorized(message="Unauthorized", from_sdk=True)
    # The SDK's 401 carries no x-inngest-sdk header, only x-inngest-sdk-handled.
    assert "x-inngest-sdk" not in unauthorized.headers
    assert "x-inngest-signature" not in unauthorized.headers


def test_the_sdk_verifies_the_jcs_form_not_the_bytes(sdk_app: SdkApp) -> None:
    payload = child_payload(sdk_app)
    pretty = json.dumps(payload, indent=2).encode()
    signed_raw = signing.signature_header(pretty, SIGNING_KEY)
    assert refused(post(sdk_app.http, CHILD, pretty, signature=signed_raw))
    signed_jcs = signing.signature_header(signing.canonical_json(payload), SIGNING_KEY)
    assert post(sdk_app.http, CHILD, pretty, signature=signed_jcs).outcome == Completed(
        output={"doubled": 4}
    )


def test_the_sdk_does_not_check_signature_age(sdk_app: SdkApp) -> None:
    # So replay protection is ours (HTTPS, idempotent attempts), not the SDK's.
    body = signing.canonical_json(child_payload(sdk_app))
    two_hours_old = signing.signature_header(body, SIGNING_KEY, timestamp=int(time.time()) - 7200)
    assert isinstance(post(sdk_app.http, CHILD, body, signature=two_hours_old).outcome, Completed)


def test_an_app_holding_our_key_as_its_fallback(
    capture_server: CaptureServer, settings: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Key rotation: the app already has a new primary key; ours is its fallback."""
    app = make_sdk_app(
        capture_server.url,
        settings,
        monkeypatch,
        signing_key=OTHER_KEY,
        signing_key_fallback=SIGNING_KEY,
    )
    run = Driver(app.http, fn_id("child"), event("sdk/child", {"n": 5}))
    answer = run.call(key=SIGNING_KEY)
    assert answer.outcome == Completed(output={"doubled": 10})
    # Answered with the key that verified: ours, not the app's primary.
    header = answer.headers["x-inngest-signature"]
    assert signing.matching_key(answer.body, header, [OTHER_KEY, SIGNING_KEY]) == SIGNING_KEY


def test_a_dev_mode_app_runs_unsigned_requests_and_says_so(
    capture_server: CaptureServer, settings: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    cloud = make_sdk_app(capture_server.url, settings, monkeypatch)
    body = signing.canonical_json(child_payload(cloud))
    signed = post(cloud.http, CHILD, body, signature=signing.signature_header(body, SIGNING_KEY))
    assert responses.app_mode(signed.headers) == "cloud"

    dev = make_sdk_app(capture_server.url, settings, monkeypatch, is_production=False)
    unsigned = post(dev.http, CHILD, body, signature=None)
    assert unsigned.outcome == Completed(output={"doubled": 4})
    assert responses.app_mode(unsigned.headers) == "dev"
    assert "x-inngest-signature" not in unsigned.headers
