"""The database django_inngest's tables live in, for the statements and transactions the engine
writes itself.

Django routes ORM queries through ``DATABASE_ROUTERS`` model by model; hand-written statements
and ``transaction.atomic()`` do not, so every one of ours asks this module. System check E011
refuses a router that would split our tables across databases: a run and its steps must commit
in one transaction.
"""

from __future__ import annotations

from collections.abc import Callable

from django.apps import apps
from django.db import DEFAULT_DB_ALIAS, connections, router, transaction
from django.db.backends.base.base import BaseDatabaseWrapper
from django.db.transaction import Atomic

APP_LABEL = "django_inngest"


def alias() -> str:
    """The alias our models are written to (``DATABASE_ROUTERS`` decide, as for the ORM)."""
    if not apps.ready:
        return DEFAULT_DB_ALIAS
    return router.db_for_write(apps.get_model(APP_LABEL, "FunctionRun")) or DEFAULT_DB_ALIAS


def connection() -> BaseDatabaseWrapper:
    return connections[alias()]


def atomic(*, savepoint: bool = True) -> Atomic:
    """``transaction.atomic`` on our database."""
    return transaction.atomic(using=alias(), savepoint=savepoint)


def on_commit(callback: Callable[[], None]) -> None:
    """Run ``callback`` once our database's current transaction commits (now, in autocommit)."""
    transaction.on_commit(callback, using=alias())


def in_transaction() -> bool:
    return connection().in_atomic_block


def aliases_in_use() -> dict[str, set[str]]:
    """Each of our models' read and write aliases (for system check E011)."""
    found: dict[str, set[str]] = {}
    for model in apps.get_app_config(APP_LABEL).get_models():
        read = router.db_for_read(model) or DEFAULT_DB_ALIAS
        write = router.db_for_write(model) or DEFAULT_DB_ALIAS
        found[model.__name__] = {read, write}
    return found
