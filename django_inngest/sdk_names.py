"""inngest-py 0.5.19's public names, and what django_inngest does with each: the porting table.

``tests/test_inngest_surface.py`` checks every name of ``dir(inngest)`` against these tables, so
the tables (and README's "Porting from inngest-py") cannot drift from the code.
"""

from __future__ import annotations

#: Every public name of ``inngest`` 0.5.19: ``dir(inngest)`` without underscores (= ``__all__``).
INNGEST_PY_NAMES: tuple[str, ...] = (
    "Batch",
    "Cancel",
    "Concurrency",
    "Context",
    "ContextSync",
    "Debounce",
    "Event",
    "Function",
    "Inngest",
    "JSON",
    "Middleware",
    "MiddlewareSync",
    "NonRetriableError",
    "ParallelMode",
    "Priority",
    "PydanticSerializer",
    "RateLimit",
    "RetryAfterError",
    "SendEventsResult",
    "Serializer",
    "Singleton",
    "Step",
    "StepError",
    "StepMemos",
    "StepSync",
    "Streaming",
    "Throttle",
    "Timeouts",
    "TransformOutputResult",
    "TriggerCron",
    "TriggerEvent",
)

#: Names django_inngest does not provide, with the reason. Everything else is importable from
#: ``django_inngest`` with inngest-py's meaning.
DOES_NOT_APPLY: dict[str, str] = {
    "Streaming": (
        "Enum for serve(streaming=...): keeps an HTTP response to the Inngest server alive with "
        "spaces while a step runs. Runs here are not HTTP requests, so there is nothing to stream."
    ),
}

#: Flow-control option classes; they come from ``django_inngest.flow_control.options`` (another branch).
FROM_FLOW_OPTIONS: tuple[str, ...] = (
    "Batch",
    "Concurrency",
    "Debounce",
    "Priority",
    "RateLimit",
    "Singleton",
    "Throttle",
    "Timeouts",
)

#: Parts of provided names that do not apply, with the reason.
PARTS_THAT_DO_NOT_APPLY: dict[str, str] = {
    "Inngest(api_base_url, app_version, env, event_api_base_url, event_key, is_production, "
    "request_timeout, signing_key)": (
        "They configure inngest-py's HTTP client and its Inngest server; accepted and ignored so "
        "a ported constructor still works. Keys for our HTTP event API are Django settings."
    ),
    "Inngest.api_origin, .app_version, .env, .event_api_origin, .event_key, .signing_key, "
    ".signing_key_fallback": "Read-only views of those connection options.",
    "Function.get_config(app_url)": (
        "Builds the sync payload sent to an Inngest server; Function.config() is ours."
    ),
    "Function.call, Function.call_sync": "inngest-py's request entry points (internal).",
    "Step.ai / StepSync.ai (experimental step.ai.infer)": (
        "Offloads an AI call to the Inngest server's AI gateway; there is no server here."
    ),
}

#: inngest-py's ``Inngest(...)`` keywords accepted through ``**kwargs`` and ignored.
IGNORED_CLIENT_OPTIONS: tuple[str, ...] = (
    "api_base_url",
    "app_version",
    "env",
    "event_api_base_url",
    "event_key",
    "is_production",
    "request_timeout",
    "signing_key",
)

#: Subpackages of ``inngest`` (not in ``dir(inngest)`` until imported) that do not apply.
SUBPACKAGES_THAT_DO_NOT_APPLY: dict[str, str] = {
    "inngest.django, .flask, .fast_api, .tornado, .digital_ocean": (
        "serve(client, functions): HTTP endpoints the Inngest server calls. Here functions are "
        "found by autodiscovery and executed by django-q2 workers; include django_inngest.urls "
        "for the event API and REST API instead."
    ),
    "inngest.connect": "Outbound WebSocket workers for Inngest Cloud; no server here.",
    "inngest.experimental": (
        "Unstable add-ons (ai, realtime, dev_server, mocked, remote_state_middleware, "
        "sentry_middleware). The two middleware are plain MiddlewareSync subclasses and port "
        "as is; the rest need an Inngest server."
    ),
}

#: Known differences a porter must know about, in provided names.
KNOWN_DIFFERENCES: dict[str, str] = {
    "StepError": (
        "Positional order: inngest-py StepError(message, name, stack), ours StepError(name, "
        "message, stack, step_id). Construct it with keywords (it is rarely constructed by hand)."
    ),
}
