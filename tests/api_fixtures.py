"""Helpers for the event API and REST API tests (``isolated_registry`` comes from conftest)."""

from __future__ import annotations

import copy
import hashlib
from datetime import datetime, timedelta
from typing import Any

import jsonschema
from django.contrib.auth.models import Permission, User
from django.test import Client
from django.utils import timezone
from rest_framework.test import APIClient

from django_inngest import Inngest, TriggerEvent
from django_inngest.function import Function
from django_inngest.ids import new_ulid
from django_inngest.ingest.events import send_events
from django_inngest.models import Event, FunctionRegistration, FunctionRun, RunStatus

SIGNING_KEY = "signkey-test-0123456789abcdef0123456789abcdef"
EVENT_KEY = "test-event-key"
APP_ID = "api-tests"


def hashed_key(key: str = SIGNING_KEY, *, keep_prefix: bool = True) -> str:
    """inngest-py's ``hash_signing_key``: SHA-256 of the hex body, prefix kept (newer SDKs)."""
    prefix = "signkey-test-"
    digest = hashlib.sha256(bytes.fromhex(key.removeprefix(prefix))).hexdigest()
    return prefix + digest if keep_prefix else digest


def bearer_client(token: str = SIGNING_KEY) -> APIClient:
    """A client sending ``Authorization: Bearer <token>`` (default: the raw signing key)."""
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION=f"Bearer {token}")
    return client


def user_client(*perms: str, csrf: bool = False, username: str = "u") -> APIClient:
    """A session-authenticated client whose user has ``perms`` (``app_label.codename``)."""
    user = User.objects.create_user(username, password="pw")
    for perm in perms:
        app_label, codename = perm.split(".")
        user.user_permissions.add(
            Permission.objects.get(content_type__app_label=app_label, codename=codename)
        )
    client = APIClient(enforce_csrf_checks=csrf)
    client.force_login(user)
    return client


def define_function(fn_id: str, event: str) -> Function:
    def handler(ctx: Any) -> str:
        return "done"

    return Inngest(app_id=APP_ID).create_function(fn_id=fn_id, trigger=TriggerEvent(event=event))(
        handler
    )


def make_event(name: str = "test/created", **fields: Any) -> Event:
    [internal_id] = send_events([{"name": name, **fields}])
    return Event.objects.get(pk=internal_id)


def make_registration(fn_id: str = "fn") -> FunctionRegistration:
    registration, _ = FunctionRegistration.objects.get_or_create(
        function_id=f"{APP_ID}-{fn_id}", defaults={"app_id": APP_ID, "fn_id": fn_id, "name": fn_id}
    )
    return registration


def make_run(
    event: Event | None = None,
    *,
    fn_id: str = "fn",
    status: str = RunStatus.QUEUED,
    created_at: datetime | None = None,
    **fields: Any,
) -> FunctionRun:
    """A run row made directly (nothing dispatches it)."""
    created_at = created_at or timezone.now()
    return FunctionRun.objects.create(
        run_id=new_ulid(int(created_at.timestamp() * 1000)),
        function=make_registration(fn_id),
        event=event or make_event(),
        status=status,
        created_at=created_at,
        ready_at=created_at,
        **fields,
    )


def iso(moment: datetime) -> str:
    return moment.isoformat().replace("+00:00", "Z")


def ago(**delta: float) -> datetime:
    return timezone.now() - timedelta(**delta)


# -- OpenAPI conformance ---------------------------------------------------------------------


def openapi_schema() -> dict[str, Any]:
    response = Client().get("/v1/openapi.json")
    assert response.status_code == 200, response.content
    schema: dict[str, Any] = response.json()
    return schema


def _strict(node: Any, components: dict[str, Any]) -> Any:
    """OpenAPI 3.0 → JSON Schema: inline $refs, turn ``nullable`` into a null type, and make
    every documented object exact (all documented keys present, no others)."""
    if isinstance(node, list):
        return [_strict(item, components) for item in node]
    if not isinstance(node, dict):
        return node
    if "$ref" in node:
        return _strict(components[node["$ref"].rsplit("/", 1)[1]], components)
    node = {key: _strict(value, components) for key, value in node.items()}
    if "properties" in node:
        node["required"] = sorted(node["properties"])
        node["additionalProperties"] = False
    if node.pop("nullable", False):
        node = {"anyOf": [node, {"type": "null"}]}
    return node


def response_schema(schema: dict[str, Any], path: str, method: str, status: int) -> dict[str, Any]:
    operation = schema["paths"][path][method.lower()]
    documented = operation["responses"][str(status)]["content"]["application/json"]["schema"]
    components = copy.deepcopy(schema["components"]["schemas"])
    result: dict[str, Any] = _strict(documented, components)
    return result


def assert_documented(
    schema: dict[str, Any], path: str, method: str, response: Any, status: int | None = None
) -> None:
    """The response's body matches exactly what the OpenAPI document says for its status."""
    status = status or response.status_code
    assert response.status_code == status, response.content
    jsonschema.validate(response.json(), response_schema(schema, path, method, status))
