"""``SdkFunction``: a function served by an app written with the official SDK, run over HTTP.

It is a ``Function`` like any other for the rest of the engine (triggers, cancel rules,
retries, the registry, invoke), built from the config the app sent to ``POST /fn/register``.
Its handler is never called: ``engine.run_handler`` hands its runs to ``engine.remote``, which
calls the app at ``step_url`` instead.

Pure: no models. ``sdk_apps.catalog`` loads these from the database.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from django_inngest.definitions import Cancel, TriggerCron, TriggerEvent
from django_inngest.exceptions import ConfigurationError
from django_inngest.flow_control.config import FlowOptions
from django_inngest.function import Function
from django_inngest.sdk.registration import EventTrigger, SyncedFunction, parse_function_config


def _served_over_http(ctx: Any) -> None:
    raise ConfigurationError(
        "an SDK app's function is run by calling the app over HTTP (engine.remote), never here"
    )


@dataclass(frozen=True, eq=False)
class SdkFunction(Function):
    """A function an SDK app serves. ``config()`` is the config exactly as the app sent it."""

    step_url: str = ""
    is_active: bool = True
    raw_config: Mapping[str, Any] = field(default_factory=dict)

    def config(self) -> dict[str, Any]:
        return dict(self.raw_config)


def local_id(app_id: str, function_id: str, *, where: str = "id") -> str:
    """The SDK's own function ID: the composite ``<app id>-<fn id>`` minus the app prefix."""
    prefix = f"{app_id}-"
    if not function_id.startswith(prefix) or len(function_id) == len(prefix):
        raise ConfigurationError(f"{where}: {function_id!r} must start with {prefix!r}")
    return function_id[len(prefix) :]


def from_synced(
    app_id: str,
    synced: SyncedFunction,
    raw: Mapping[str, Any],
    *,
    active: bool = True,
    where: str = "function",
) -> SdkFunction:
    """Build the engine's view of one synced function; ``ConfigurationError`` names what the
    engine cannot take (a wildcard in the wrong place, a zero timeout, flow-control options
    Inngest refuses together...)."""
    triggers: list[TriggerEvent] = []
    crons: list[TriggerCron] = []
    raw_triggers = list(raw.get("triggers") or [])
    for index, trigger in enumerate(synced.triggers):
        try:
            if isinstance(trigger, EventTrigger):
                triggers.append(TriggerEvent(event=trigger.event, expression=trigger.expression))
            else:
                # The jitter as the app wrote it (a duration string), not as parsed.
                jitter = raw_triggers[index].get("jitter") if index < len(raw_triggers) else None
                crons.append(TriggerCron(cron=trigger.cron, jitter=jitter or None))
        except ConfigurationError as error:
            raise ConfigurationError(f"{where}.triggers[{index}]: {error}") from error
    cancel: list[Cancel] = []
    for index, rule in enumerate(synced.cancel):
        try:
            cancel.append(Cancel(event=rule.event, if_exp=rule.if_exp, timeout=rule.timeout))
        except ConfigurationError as error:
            raise ConfigurationError(f"{where}.cancel[{index}]: {error}") from error
    fn_id = local_id(app_id, synced.id, where=f"{where}.id")
    try:
        flow = FlowOptions.from_config(raw)
        flow.validate(fn_id, cancel=cancel, cron_expressions=[c.cron for c in crons])
    except ConfigurationError as error:
        raise ConfigurationError(f"{where}: {error}") from error
    return SdkFunction(
        app_id=app_id,
        fn_id=fn_id,
        name=synced.name,
        handler=_served_over_http,
        triggers=tuple(triggers),
        cancel=tuple(cancel),
        retries=synced.retries,
        source=f"SDK app {app_id!r} at {synced.step_url}",
        step_url=synced.step_url,
        is_active=active,
        raw_config=dict(raw),
        crons=tuple(crons),
        flow=flow,
    )


def from_stored(app_id: str, config: Mapping[str, Any], *, active: bool) -> SdkFunction:
    """Rebuild a function from its stored config (``FunctionRegistration.config``)."""
    return from_synced(app_id, parse_function_config(config), config, active=active)
