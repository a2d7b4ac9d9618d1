"""Keep ``FunctionRegistration`` rows in step with the code registry. (Rows of SDK apps'
functions are written by their syncs, ``app_sync``, and left alone here.)"""

from __future__ import annotations

import logging

from django_inngest import database
from django_inngest.function import Function
from django_inngest.models import FunctionRegistration
from django_inngest.registry import registry
from django_inngest.sdk_function import SdkFunction

logger = logging.getLogger(__name__)
_known: set[str] = set()


def _fields(function: Function) -> dict[str, object]:
    return {
        "app_id": function.app_id,
        "fn_id": function.fn_id,
        "name": function.name,
        "config": function.config(),
        "is_active": True,
        "sdk_app": None,  # code wins an ID an SDK app had (app_sync refuses the reverse)
    }


def sync_registrations() -> tuple[int, int]:
    """Upsert a row per registered function; deactivate rows whose function left the code
    (rows of SDK apps' functions are theirs). Returns (active, deactivated). Runs of
    deactivated functions are kept.
    """
    functions = registry.all()
    with database.atomic():
        for function in functions:
            FunctionRegistration.objects.update_or_create(
                function_id=function.id, defaults=_fields(function)
            )
        deactivated = (
            FunctionRegistration.objects.filter(is_active=True, sdk_app__isnull=True)
            .exclude(function_id__in=[f.id for f in functions])
            .update(is_active=False)
        )
    ids = [f.id for f in functions]
    database.on_commit(lambda: _known.update(ids))  # only rows that really exist
    logger.info("Synced functions active=%s deactivated=%s", len(functions), deactivated)
    return len(functions), deactivated


def ensure_registered(function: Function) -> None:
    """Make sure a run's foreign key has a row to point at (cheap after the first call)."""
    if function.id in _known or isinstance(function, SdkFunction):
        return  # an SDK app's function has its row from the sync that made it known
    FunctionRegistration.objects.update_or_create(
        function_id=function.id, defaults=_fields(function)
    )
    # Remembered only once the row is committed: a rolled-back send takes the row with it.
    database.on_commit(lambda: _known.add(function.id))


def forget_cache() -> None:
    """Tests flush the database between cases; the cache must not outlive the rows."""
    _known.clear()
