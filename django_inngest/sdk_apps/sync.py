"""Syncing an SDK app: storing what it registered, and asking it to register.

``store_sync`` is what ``POST /fn/register`` (and an in-band sync) does with a parsed config:
refuse what the engine cannot run, with a message naming it; then, in one transaction, upsert
the app and one ``FunctionRegistration`` per function, and deactivate the app's functions the
sync no longer lists (their runs are kept; no new run starts). An unchanged config (same
checksum) changes nothing and answers ``modified: false``.

``request_sync`` is what ``manage.py inngest_sync_app`` and the admin's "Sync app" button do:
a signed ``PUT`` to the app's serve URL. It asks for an *in-band* sync, in which the app
answers with its config directly (no call back into this server, so no self-call deadlock);
an app in dev mode ignores that and syncs out-of-band through ``POST /fn/register``, relaying
our reply, which is read from the body (the SDK answers 200 even when the sync failed).
"""

from __future__ import annotations

import hashlib
import logging
from dataclasses import dataclass

from django.utils import timezone

from django_inngest import database, expressions
from django_inngest.exceptions import ConfigurationError, ExpressionError
from django_inngest.ids import new_ulid
from django_inngest.models import CronSchedule, FunctionRegistration, SdkApp
from django_inngest.registrations import sync_schedules
from django_inngest.registry import registry
from django_inngest.sdk import signing, sync
from django_inngest.sdk.errors import SdkProtocolError
from django_inngest.sdk.registration import AppSync
from django_inngest.sdk.transport import TransportError
from django_inngest.sdk.url_guard import UrlRefused
from django_inngest.sdk_apps.catalog import catalog
from django_inngest.sdk_apps.function import SdkFunction, from_synced
from django_inngest.sdk_apps.http import (
    SELF_CALL_HINT,
    is_dev,
    server_kind,
    signing_keys,
    sync_transport,
    url_guard,
)

logger = logging.getLogger(__name__)

#: Function options an SDK app may not use: a sync in which any function uses one fails with a
#: 400 naming the function and the option (names as the SDK spells them). Flow control and cron
#: triggers are all honoured now, so it is empty; it stays the one place to list what is not.
UNSUPPORTED_OPTIONS: frozenset[str] = frozenset()


#: Signs nothing real: only used to build a PUT whose signature is then removed.
_NO_KEY = "signkey-dev-00"


class SyncRefused(Exception):
    """The sync is refused; the message (shown to the app's operator) says why."""


@dataclass(frozen=True)
class Stored:
    app: SdkApp
    modified: bool
    functions: int
    deactivated: int


def check_sync(app: AppSync) -> list[SdkFunction]:
    """Everything but the database: options, IDs, CEL, URLs. ``SyncRefused`` names the fault."""
    unsupported = [
        f"{fn.id!r} uses {', '.join(used)}"
        for fn in app.functions
        if (used := [option for option in fn.options_present if option in UNSUPPORTED_OPTIONS])
    ]
    if unsupported:
        raise SyncRefused(
            f"unsupported function options: {'; '.join(unsupported)} (this server does not "
            "run them yet)"
        )
    functions: list[SdkFunction] = []
    for index, (fn, raw) in enumerate(zip(app.functions, app.raw_functions, strict=True)):
        where = f"functions[{index}] ({fn.id})"
        try:
            function = from_synced(app.app_id, fn, raw, where=where)
        except ConfigurationError as error:
            raise SyncRefused(str(error)) from error
        code = registry.get(fn.id)
        if code is not None and not isinstance(code, SdkFunction):
            raise SyncRefused(f"{where}.id: {fn.id!r} is a function defined in this project's code")
        _check_expressions(function, where)
        functions.append(function)
    guard = url_guard()
    for url in app.urls():
        try:
            guard.check(url)
        except UrlRefused as refused:
            raise SyncRefused(f"{refused.message} (url {url!r})") from refused
    return functions


def _check_expressions(function: SdkFunction, where: str) -> None:
    sources: list[tuple[str, str | None, tuple[str, ...]]] = [
        (f"{where}.triggers[{i}].expression", t.expression, ("event",))
        for i, t in enumerate(function.triggers)
    ]
    sources += [
        (f"{where}.cancel[{i}].if", c.expression, ("event", "async"))
        for i, c in enumerate(function.cancel)
    ]
    for field, expression, variables in sources:
        if expression:
            try:
                expressions.validate(expression, variables=variables)
            except ExpressionError as error:
                raise SyncRefused(f"{field} is not valid CEL: {error.message}") from error


def config_checksum(app: AppSync) -> str:
    """What decides ``modified``: the app's URL, SDK and functions, however they were sent
    (an in-band answer and a ``/fn/register`` body of one app differ in their other keys)."""
    config = {
        "url": app.url,
        "sdk": app.sdk,
        "framework": app.framework,
        "app_version": app.app_version,
        "functions": list(app.raw_functions),
    }
    return hashlib.sha256(signing.canonical_json(config)).hexdigest()


def store_sync(app: AppSync) -> Stored:
    """Check and store a sync (see the module's docstring); ``SyncRefused`` names the fault."""
    functions = check_sync(app)
    checksum = config_checksum(app)
    ids = [f.id for f in functions]
    now = timezone.now()
    with database.atomic():
        stored = SdkApp.objects.select_for_update().filter(app_id=app.app_id).first()
        taken = (
            FunctionRegistration.objects.filter(function_id__in=ids)
            .exclude(sdk_app__app_id=app.app_id)
            .filter(is_active=True)
            .values_list("function_id", "sdk_app__app_id")
        )
        for function_id, owner in taken:
            where = f"app {owner!r}" if owner else "this project's code"
            raise SyncRefused(f"function {function_id!r} is already served by {where}")
        if stored is not None and stored.checksum == checksum:
            SdkApp.objects.filter(pk=stored.pk).update(synced_at=now)
            return Stored(stored, modified=False, functions=len(ids), deactivated=0)
        if stored is None:
            stored = SdkApp(app_id=app.app_id, version=0)
        stored.url = app.url
        stored.sdk = app.sdk or ""
        stored.framework = app.framework or ""
        stored.app_version = app.app_version or ""
        stored.checksum = checksum
        stored.version += 1
        stored.generation = new_ulid()  # the stamp every process's catalog compares
        stored.synced_at = now
        stored.save()
        for function in functions:
            FunctionRegistration.objects.update_or_create(
                function_id=function.id,
                defaults={
                    "app_id": function.app_id,
                    "fn_id": function.fn_id,
                    "name": function.name,
                    "config": function.config(),
                    "is_active": True,
                    "sdk_app": stored,
                },
            )
        deactivated = (
            FunctionRegistration.objects.filter(sdk_app=stored, is_active=True)
            .exclude(function_id__in=ids)
            .update(is_active=False)
        )
        sync_schedules(functions, now, CronSchedule.objects.filter(function__sdk_app=stored))
        database.on_commit(catalog.invalidate)
    logger.info(
        "SDK app synced app_id=%s version=%s functions=%s deactivated=%s",
        stored.app_id,
        stored.version,
        len(ids),
        deactivated,
    )
    return Stored(stored, modified=True, functions=len(ids), deactivated=deactivated)


# -- asking an app to sync --------------------------------------------------------------------


@dataclass(frozen=True)
class SyncOutcome:
    ok: bool
    message: str
    in_band: bool = False
    modified: bool | None = None


def request_sync(url: str, *, in_band: bool = True, deploy_id: str | None = None) -> SyncOutcome:
    """PUT ``url`` (the app's serve URL) and report what happened; never raises for the app's
    answer, only returns it (``ok`` False with the reason)."""
    try:
        url_guard().check(url)
    except UrlRefused as refused:
        return SyncOutcome(False, f"refused to call {url!r}: {refused.message}")
    keys = signing_keys()
    if not keys and not is_dev():
        return SyncOutcome(False, "DJANGO_INNGEST_SIGNING_KEY is not set")
    put = sync.build_sync_put(
        url,
        keys[0] if keys else _NO_KEY,
        server_kind=server_kind(),
        # In-band needs a signature the app checks, which a dev-mode app never does.
        in_band=in_band and not is_dev(),
        deploy_id=deploy_id or new_ulid(),
    )
    if not keys:
        del put.headers[signing.SIGNATURE_HEADER]  # dev mode without a key: unsigned
    try:
        answer = sync_transport().put_sync(put)
    except TransportError as error:
        hint = SELF_CALL_HINT if error.timed_out else ""
        return SyncOutcome(False, f"could not reach {url}: {error.reason}{hint}")
    except UrlRefused as refused:
        return SyncOutcome(False, f"refused to call {url!r}: {refused.message}")
    result = sync.interpret_sync_response(
        answer.status, answer.headers, answer.body, signing_keys=keys
    )
    if not result.ok:
        return SyncOutcome(False, result.error or f"HTTP {answer.status}")
    if result.config is None:
        return SyncOutcome(True, _described(result.modified), modified=result.modified)
    try:
        stored = store_sync(result.config)
    except SyncRefused as refused:
        return SyncOutcome(False, str(refused), in_band=True)
    except SdkProtocolError as invalid:  # pragma: no cover - parsed already by interpret
        return SyncOutcome(False, str(invalid), in_band=True)
    return SyncOutcome(
        True, _described(stored.modified, stored.functions), in_band=True, modified=stored.modified
    )


def _described(modified: bool | None, functions: int | None = None) -> str:
    counted = f" ({functions} functions)" if functions is not None else ""
    if modified is None:
        return f"synced{counted}"
    return f"synced{counted}, " + ("configuration changed" if modified else "nothing changed")
