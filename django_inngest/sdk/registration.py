"""``POST /fn/register``: an SDK app tells us its functions. Parsed, validated, normalised.

inngest-py sends ``appname`` and ``deploy_type`` where Go's structs say ``appName`` and
``deployType``; Go decodes keys case-insensitively. So top-level keys are matched ignoring case
and underscores. Inside a function the keys are the SDK's exact camelCase.

Flow-control options (concurrency, throttle...) are kept as their raw config and listed in
``options_present``, so the caller can refuse those the engine lacks with a 400 naming them.
CEL in trigger expressions and cancel ``if`` is *not* compiled here (``expressions/`` owns
celpy), nor are URLs vetted (``url_guard``): ``AppSync.urls()`` lists every URL to vet.
"""

from __future__ import annotations

import hashlib
import json
import urllib.parse
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import timedelta
from typing import Any

from django_inngest.sdk._durations import parse_go_duration
from django_inngest.sdk.errors import SdkProtocolError
from django_inngest.sdk.signing import canonical_json
from django_inngest.sdk.wire import JSON

#: Options of a function config that are flow control, in the SDK's spelling.
FLOW_CONTROL_OPTIONS = (
    "batchEvents",
    "concurrency",
    "debounce",
    "idempotency",
    "priority",
    "rateLimit",
    "singleton",
    "throttle",
    "timeouts",
)
#: Named in ``options_present`` when a function has a cron trigger.
CRON_OPTION = "cron"
#: Inngest's limits: retries per step, cancel rules per function.
MAX_RETRIES = 20
MAX_CANCEL_RULES = 5


@dataclass(frozen=True)
class EventTrigger:
    event: str
    expression: str | None = None


@dataclass(frozen=True)
class CronTrigger:
    cron: str
    jitter: timedelta | None = None


Trigger = EventTrigger | CronTrigger


@dataclass(frozen=True)
class CancelRule:
    """Cancel the run when ``event`` arrives and ``if_exp`` holds. ``timeout`` None means the
    server default (Inngest: 365 days)."""

    event: str
    if_exp: str | None = None
    timeout: timedelta | None = None


@dataclass(frozen=True)
class SyncedFunction:
    """One entry of ``functions``. ``id`` is the composite ``<app id>-<fn id>`` the SDK routes
    on (``?fnId=``); ``step_url`` is where to POST call requests."""

    id: str
    name: str
    triggers: tuple[Trigger, ...]
    cancel: tuple[CancelRule, ...]
    retries: int | None
    step_url: str
    flow_control: Mapping[str, JSON]
    options_present: tuple[str, ...]

    def max_attempts(self, default_retries: int) -> int:
        """Attempts per step: ``retries.attempts`` counts *retries*, so one more than that."""
        return (default_retries if self.retries is None else self.retries) + 1


@dataclass(frozen=True)
class AppSync:
    """A whole sync. ``checksum`` is SHA-256 of the body's JCS form: the same config in any key
    order or spacing gives the same checksum, so an unchanged sync can answer
    ``modified: false``."""

    app_id: str
    url: str
    deploy_type: str
    framework: str | None
    sdk: str | None
    version: str | None
    app_version: str | None
    capabilities: Mapping[str, str]
    functions: tuple[SyncedFunction, ...]
    checksum: str
    #: ``functions`` as sent, in the same order: what a server stores, and shows people.
    raw_functions: tuple[Mapping[str, Any], ...] = ()

    @property
    def options_present(self) -> tuple[str, ...]:
        """Every flow-control option (and ``cron``) any function uses, sorted."""
        return tuple(sorted({option for fn in self.functions for option in fn.options_present}))

    def urls(self) -> tuple[str, ...]:
        """The app URL and every step URL: each must pass the URL guard before it is stored."""
        return (self.url, *dict.fromkeys(fn.step_url for fn in self.functions))


def parse_register_body(body: bytes) -> AppSync:
    """Parse the raw body of ``POST /fn/register``; ``SdkProtocolError`` names the bad field."""
    try:
        payload = json.loads(body)
    except (UnicodeDecodeError, ValueError) as error:
        raise SdkProtocolError("body", "is not valid JSON") from error
    return parse_register_payload(payload)


def parse_register_payload(payload: object) -> AppSync:
    if not isinstance(payload, dict):
        raise SdkProtocolError("body", "must be a JSON object")
    top = _fold_keys(payload)
    app_id = _string(top.get("appname"), "appname")
    url = _http_url(top.get("url"), "url")
    deploy_type = _optional_string(top.get("deploytype"), "deploy_type") or "ping"
    functions_raw = top.get("functions")
    if not isinstance(functions_raw, list):
        raise SdkProtocolError("functions", "must be a list")
    functions = tuple(
        _function(raw, f"functions[{index}]") for index, raw in enumerate(functions_raw)
    )
    seen: dict[str, int] = {}
    for index, fn in enumerate(functions):
        if fn.id in seen:
            raise SdkProtocolError(
                f"functions[{index}].id", f"{fn.id!r} is also functions[{seen[fn.id]}].id"
            )
        seen[fn.id] = index
    return AppSync(
        app_id=app_id,
        url=url,
        deploy_type=deploy_type,
        framework=_optional_string(top.get("framework"), "framework"),
        sdk=_optional_string(top.get("sdk"), "sdk"),
        version=_optional_string(top.get("v"), "v"),
        app_version=_optional_string(top.get("appversion"), "appVersion"),
        capabilities=_capabilities(top.get("capabilities")),
        functions=functions,
        checksum=hashlib.sha256(canonical_json(payload)).hexdigest(),
        raw_functions=tuple(functions_raw),
    )


def parse_in_band_payload(payload: object) -> AppSync:
    """The body of an SDK's answer to an *in-band* sync PUT (``app_id``, ``sdk_language``...),
    read into the same shape. Verify the response signature before trusting it."""
    if not isinstance(payload, dict):
        raise SdkProtocolError("body", "must be a JSON object")
    language = _optional_string(payload.get("sdk_language"), "sdk_language")
    sdk_version = _optional_string(payload.get("sdk_version"), "sdk_version")
    inspection = payload.get("inspection")
    register_shape = {
        "appname": payload.get("app_id"),
        "url": payload.get("url"),
        "deploy_type": "ping",
        "framework": payload.get("framework"),
        "sdk": f"{language}:v{sdk_version}" if language and sdk_version else None,
        "appVersion": payload.get("appVersion"),
        "capabilities": inspection.get("capabilities") if isinstance(inspection, dict) else None,
        "functions": payload.get("functions"),
    }
    try:
        return parse_register_payload(register_shape)
    except SdkProtocolError as error:
        field = "app_id" if error.field == "appname" else error.field
        raise SdkProtocolError(field, error.message) from error


def parse_function_config(raw: object, where: str = "function") -> SyncedFunction:
    """One entry of ``functions`` (as stored after a sync), parsed and checked."""
    return _function(raw, where)


def _fold_keys(payload: dict[str, Any]) -> dict[str, Any]:
    folded: dict[str, Any] = {}
    original: dict[str, str] = {}
    for key, value in payload.items():
        norm = key.lower().replace("_", "")
        if norm in folded and folded[norm] != value:
            raise SdkProtocolError(key, f"conflicts with {original[norm]!r} given too")
        folded[norm] = value
        original[norm] = key
    return folded


def _function(raw: object, where: str) -> SyncedFunction:
    if not isinstance(raw, dict):
        raise SdkProtocolError(where, "must be an object")
    fn_id = _string(raw.get("id"), f"{where}.id")
    where = f"{where} ({fn_id})"
    name = _optional_string(raw.get("name"), f"{where}.name") or fn_id
    triggers_raw = raw.get("triggers")
    if not isinstance(triggers_raw, list) or not triggers_raw:
        raise SdkProtocolError(f"{where}.triggers", "must be a non-empty list")
    triggers = tuple(_trigger(t, f"{where}.triggers[{i}]") for i, t in enumerate(triggers_raw))
    cancel_raw = raw.get("cancel") or []
    if not isinstance(cancel_raw, list):
        raise SdkProtocolError(f"{where}.cancel", "must be a list")
    if len(cancel_raw) > MAX_CANCEL_RULES:
        raise SdkProtocolError(f"{where}.cancel", f"has more than {MAX_CANCEL_RULES} rules")
    cancel = tuple(_cancel(c, f"{where}.cancel[{i}]") for i, c in enumerate(cancel_raw))
    retries, step_url = _step(raw.get("steps"), f"{where}.steps")
    # Present means configured: the SDK sends `concurrency: []` for every on_failure function.
    flow_control = {
        key: raw[key] for key in FLOW_CONTROL_OPTIONS if raw.get(key) not in (None, [], {})
    }
    options = set(flow_control)
    if any(isinstance(trigger, CronTrigger) for trigger in triggers):
        options.add(CRON_OPTION)
    return SyncedFunction(
        id=fn_id,
        name=name,
        triggers=triggers,
        cancel=cancel,
        retries=retries,
        step_url=step_url,
        flow_control=flow_control,
        options_present=tuple(sorted(options)),
    )


def _trigger(raw: object, where: str) -> Trigger:
    if not isinstance(raw, dict):
        raise SdkProtocolError(where, "must be an object")
    if "event" in raw and "cron" in raw:
        raise SdkProtocolError(where, "has both 'event' and 'cron'; a trigger is one or the other")
    if "cron" in raw:
        cron = _string(raw.get("cron"), f"{where}.cron")
        jitter_raw = raw.get("jitter")
        jitter = (
            None if jitter_raw is None else parse_go_duration(jitter_raw, field=f"{where}.jitter")
        )
        return CronTrigger(cron=cron, jitter=jitter)
    if "event" not in raw:
        raise SdkProtocolError(where, "needs 'event' or 'cron'")
    event = _string(raw.get("event"), f"{where}.event")
    expression = _optional_string(raw.get("expression"), f"{where}.expression")
    return EventTrigger(event=event, expression=expression)


def _cancel(raw: object, where: str) -> CancelRule:
    if not isinstance(raw, dict):
        raise SdkProtocolError(where, "must be an object")
    timeout_raw = raw.get("timeout")
    return CancelRule(
        event=_string(raw.get("event"), f"{where}.event"),
        if_exp=_optional_string(raw.get("if"), f"{where}.if"),
        timeout=None
        if timeout_raw is None
        else parse_go_duration(timeout_raw, field=f"{where}.timeout"),
    )


def _step(raw: object, where: str) -> tuple[int | None, str]:
    # Every SDK sends one step, keyed "step": the function's HTTP entry point.
    if not isinstance(raw, dict) or not raw:
        raise SdkProtocolError(where, "must be an object holding the 'step' entry")
    if "step" in raw:
        key = "step"
    elif len(raw) == 1:
        key = next(iter(raw))
    else:
        raise SdkProtocolError(where, f"has {len(raw)} entries and none is 'step'")
    step = raw[key]
    where = f"{where}.{key}"
    if not isinstance(step, dict):
        raise SdkProtocolError(where, "must be an object")
    runtime = step.get("runtime")
    if not isinstance(runtime, dict):
        raise SdkProtocolError(f"{where}.runtime", "must be an object")
    runtime_type = runtime.get("type", "http")
    if runtime_type != "http":
        raise SdkProtocolError(
            f"{where}.runtime.type",
            f"must be 'http' (got {runtime_type!r}; connect is unsupported)",
        )
    url = _http_url(runtime.get("url"), f"{where}.runtime.url")
    retries_raw = step.get("retries")
    if retries_raw is None:
        return None, url
    if not isinstance(retries_raw, dict):
        raise SdkProtocolError(f"{where}.retries", "must be an object like {'attempts': 3}")
    attempts = retries_raw.get("attempts")
    if isinstance(attempts, bool) or not isinstance(attempts, int):
        raise SdkProtocolError(f"{where}.retries.attempts", f"must be an integer, got {attempts!r}")
    if not 0 <= attempts <= MAX_RETRIES:
        raise SdkProtocolError(
            f"{where}.retries.attempts", f"must be between 0 and {MAX_RETRIES}, got {attempts}"
        )
    return attempts, url


def _capabilities(raw: object) -> dict[str, str]:
    if raw is None:
        return {}
    if not isinstance(raw, dict) or not all(
        isinstance(k, str) and isinstance(v, str) for k, v in raw.items()
    ):
        raise SdkProtocolError("capabilities", "must map names to version strings")
    return dict(raw)


def _string(value: object, field: str) -> str:
    if not isinstance(value, str) or not value.strip():
        raise SdkProtocolError(field, f"must be a non-empty string, got {value!r}")
    return value


def _optional_string(value: object, field: str) -> str | None:
    if value is None:
        return None
    if not isinstance(value, str):
        raise SdkProtocolError(field, f"must be a string, got {value!r}")
    return value


def _http_url(value: object, field: str) -> str:
    text = _string(value, field)
    parts = urllib.parse.urlsplit(text)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise SdkProtocolError(field, f"must be an absolute http(s) URL, got {text!r}")
    return text
