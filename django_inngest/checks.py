"""System checks. IDs are stable: never reuse or renumber one (the README lists them)."""

from __future__ import annotations

from typing import Any

from django.apps import apps
from django.core.checks import CheckMessage, Error, Warning

from django_inngest import database, expressions
from django_inngest.conf import PREFIX, SETTINGS
from django_inngest.conf import settings as inngest_settings
from django_inngest.exceptions import ConfigurationError, ExpressionError
from django_inngest.function import Function
from django_inngest.handler_kinds import check_function_kinds
from django_inngest.registry import registry


def check_settings(app_configs: Any = None, **kwargs: Any) -> list[CheckMessage]:
    """E001: a DJANGO_INNGEST_* setting has the wrong type. E002: event keys are not strings.
    E003: a numeric setting is out of range."""
    messages: list[CheckMessage] = []
    for name, setting in SETTINGS.items():
        value = inngest_settings.raw(name)
        if (isinstance(value, bool) and bool not in setting.types) or not isinstance(
            value, setting.types
        ):
            allowed = " or ".join(
                t.__name__ if t is not type(None) else "None" for t in setting.types
            )
            messages.append(
                Error(
                    f"{PREFIX}{name} must be {allowed}, not {type(value).__name__}.",
                    hint=setting.doc,
                    id="django_inngest.E001",
                )
            )
            continue
        problem = setting.out_of_range(value)
        if problem:
            messages.append(
                Error(
                    f"{PREFIX}{name} {problem}, not {value!r}.",
                    hint=setting.doc,
                    id="django_inngest.E003",
                )
            )
    keys = inngest_settings.raw("EVENT_KEYS")
    if isinstance(keys, list | tuple) and not all(isinstance(k, str) and k for k in keys):
        messages.append(
            Error(
                f"{PREFIX}EVENT_KEYS must hold non-empty strings.",
                hint="Event keys appear in the URL POST /e/<event_key>.",
                id="django_inngest.E002",
            )
        )
    return messages


def check_integration(app_configs: Any = None, **kwargs: Any) -> list[CheckMessage]:
    """E010: django_q is not installed. E011: our models are routed to different databases.
    W001: no functions were discovered."""
    messages: list[CheckMessage] = []
    if not apps.is_installed("django_q"):
        messages.append(
            Error(
                "django_q is missing from INSTALLED_APPS.",
                hint="django_inngest runs functions on django-q2 workers: add 'django_q'.",
                id="django_inngest.E010",
            )
        )
    routes = database.aliases_in_use()
    used = set().union(*routes.values()) if routes else set()
    if len(used) > 1:
        detail = ", ".join(
            f"{model}: {sorted(aliases)}" for model, aliases in sorted(routes.items())
        )
        messages.append(
            Error(
                f"DATABASE_ROUTERS send django_inngest's models to several databases ({detail}).",
                hint="A run, its steps and its events commit in one transaction: route every "
                "django_inngest model, for reads and writes, to one database.",
                id="django_inngest.E011",
            )
        )
    if not registry.all() and not registry.errors:
        messages.append(
            Warning(
                "No django_inngest functions were discovered.",
                hint=f"Define functions in an app's {inngest_settings.AUTODISCOVER_MODULE}.py module.",
                id="django_inngest.W001",
            )
        )
    return messages


def check_functions(app_configs: Any = None, **kwargs: Any) -> list[CheckMessage]:
    """E020: invalid CEL expression (a trigger, a cancel rule, a flow-control key).
    E021: duplicate function ID. E030: sync and async do not fit (handler, on_failure,
    middleware). (E022, too many cancel rules, is now refused when the function is defined,
    with the other limits Inngest's sync enforces; its ID is not reused.)"""
    messages: list[CheckMessage] = [
        Error(str(error), hint="Give each function a unique fn_id.", id="django_inngest.E021")
        for error in registry.errors
    ]
    for function in registry.all():
        sources: list[tuple[str, str | None, tuple[str, ...]]] = [
            (f"trigger {t.event!r} expression", t.expression, ("event",)) for t in function.triggers
        ]
        sources += [
            (f"cancel rule {c.event!r} if_exp", c.expression, ("event", "async"))
            for c in function.cancel
        ]
        sources += [(where, key, ("event",)) for where, key in _flow_expressions(function)]
        for where, expression, variables in sources:
            if not expression:
                continue
            try:
                expressions.validate(expression, variables=variables)
            except ExpressionError as exc:
                messages.append(
                    Error(
                        f"Function {function.id!r}: {where} is not valid CEL: {exc.message}",
                        hint="Inngest expressions are CEL; string literals need quotes.",
                        obj=function.source,
                        id="django_inngest.E020",
                    )
                )
        kinds = _kinds_problem(function)
        if kinds:
            messages.append(
                Error(
                    f"Function {function.id!r}: {kinds}",
                    hint="inngest-py's rules: on_failure is async exactly when the handler is; "
                    "a sync function takes MiddlewareSync only.",
                    obj=function.source,
                    id="django_inngest.E030",
                )
            )
    return messages


def _kinds_problem(function: Function) -> str:
    """What ``create_function`` checked, again: client middleware added since
    (``add_middleware``) may be async while the function is sync."""
    try:
        check_function_kinds(
            function.fn_id,
            function.handler,
            function.on_failure.handler if function.on_failure is not None else None,
            function.middleware,
            function.client.middleware if function.client is not None else (),
        )
    except ConfigurationError as exc:
        return str(exc)
    return ""


def _flow_expressions(function: Function) -> list[tuple[str, str | None]]:
    """Every CEL expression of the function's flow control, named as the option is."""
    flow = function.flow
    found: list[tuple[str, str | None]] = [
        (f"concurrency[{i}].key", c.key) for i, c in enumerate(flow.concurrency or ())
    ]
    found += [
        ("throttle.key", flow.throttle.key if flow.throttle else None),
        ("rate_limit.key", flow.rate_limit.key if flow.rate_limit else None),
        ("debounce.key", flow.debounce.key if flow.debounce else None),
        ("batch_events.key", flow.batch_events.key if flow.batch_events else None),
        ("batch_events.if_exp", flow.batch_events.if_exp if flow.batch_events else None),
        ("singleton.key", flow.singleton.key if flow.singleton else None),
        ("priority.run", flow.priority.run if flow.priority else None),
        ("idempotency", flow.idempotency),
    ]
    return found
