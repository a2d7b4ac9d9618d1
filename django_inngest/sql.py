"""Hand-written SQL for the hot path, as generic helpers the models' QuerySets build on.

The ORM costs a few hundred microseconds of Python per query to compile, and its PostgreSQL
bulk insert (``UNNEST`` of arrays) is slow to adapt with client-side binding. On a worker that
is most of a short step's CPU. Statements here are built once per model and database vendor and
take their parameters through each field's own ``get_db_prep_save``, so values are adapted
exactly as the ORM adapts them. They use only SQL that PostgreSQL and SQLite (3.35 or newer)
both understand, and run on the connection of the database our models route to.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from django.db.backends.base.base import BaseDatabaseWrapper
from django.db.models import Field, Model

from django_inngest import database

#: Rows per INSERT: far below SQLite's 32,766 parameters for our widest table.
INSERT_CHUNK = 500


def quote(connection: BaseDatabaseWrapper, name: str | None) -> str:
    assert name is not None  # a concrete field's column, a model's table
    return connection.ops.quote_name(name)


def insert_fields(model: type[Model]) -> tuple[Field[Any, Any], ...]:
    """The columns an INSERT sets: our keys are ours to set (ULIDs) or auto-increment (left out)."""
    return tuple(
        f
        for f in model._meta.concrete_fields
        if not (f.primary_key and f.get_internal_type() in ("AutoField", "BigAutoField"))
    )


def params(
    connection: BaseDatabaseWrapper, obj: Model, fields: Sequence[Field[Any, Any]]
) -> list[Any]:
    return [f.get_db_prep_save(getattr(obj, f.attname), connection) for f in fields]


_insert_sql_cache: dict[tuple[type[Model], str], tuple[str, str, tuple[Field[Any, Any], ...]]] = {}


def _insert_sql(
    model: type[Model], connection: BaseDatabaseWrapper
) -> tuple[str, str, tuple[Field[Any, Any], ...]]:
    """``INSERT INTO t (columns) VALUES ``, one row's placeholders, and the fields in order;
    built once per model and database vendor."""
    key = (model, connection.vendor)
    if key not in _insert_sql_cache:
        fields = insert_fields(model)
        columns = ", ".join(quote(connection, f.column) for f in fields)
        head = f"INSERT INTO {quote(connection, model._meta.db_table)} ({columns}) VALUES "
        _insert_sql_cache[key] = (head, "(" + ", ".join(["%s"] * len(fields)) + ")", fields)
    return _insert_sql_cache[key]


def insert_rows(objs: Sequence[Model]) -> None:
    """``bulk_create`` for our tables with client-set keys, as multi-row ``INSERT ... VALUES``."""
    if not objs:
        return
    connection = database.connection()
    head, row, fields = _insert_sql(type(objs[0]), connection)
    with connection.cursor() as cursor:
        for start in range(0, len(objs), INSERT_CHUNK):
            chunk = objs[start : start + INSERT_CHUNK]
            values = [p for obj in chunk for p in params(connection, obj, fields)]
            cursor.execute(head + ", ".join([row] * len(chunk)), values)
    for obj in objs:
        obj._state.adding = False
        obj._state.db = connection.alias
