"""The worker's hot statements, written by hand.

The ORM costs a few hundred microseconds of Python per query to compile, and its PostgreSQL
bulk insert (``UNNEST`` of arrays) is slow to adapt with client-side binding. On a worker
that is most of a short step's CPU. These statements are built once per database vendor and
take their parameters through each field's own ``get_db_prep_save``, so values are adapted
exactly as the ORM adapts them. They use only SQL that PostgreSQL and SQLite (3.35 or newer)
both understand.
"""

from __future__ import annotations

from collections.abc import Sequence
from contextlib import nullcontext
from datetime import datetime
from functools import cache
from typing import Any

from django.db import IntegrityError, connection, transaction
from django.db.models import Field, Model

from django_inngest.models import FunctionRun, Listener, RunStatus, StepRun

#: Rows per INSERT: far below SQLite's 32,766 parameters for our widest table.
INSERT_CHUNK = 500


def _quote(name: str | None) -> str:
    assert name is not None  # a concrete field's column, a model's table
    return connection.ops.quote_name(name)


def _insert_fields(model: type[Model]) -> list[Field[Any, Any]]:
    # Our tables' primary keys are either ours to set (ULIDs) or auto-increment (left out).
    return [
        f
        for f in model._meta.concrete_fields
        if not (f.primary_key and f.get_internal_type() in ("AutoField", "BigAutoField"))
    ]


def _params(obj: Model, fields: Sequence[Field[Any, Any]]) -> list[Any]:
    return [f.get_db_prep_save(getattr(obj, f.attname), connection) for f in fields]


@cache
def _insert_sql(model: type[Model], vendor: str) -> tuple[str, str, tuple[Field[Any, Any], ...]]:
    """``INSERT INTO t (columns) VALUES ``, one row's placeholders, and the fields in order."""
    fields = tuple(_insert_fields(model))
    columns = ", ".join(_quote(f.column) for f in fields)
    head = f"INSERT INTO {_quote(model._meta.db_table)} ({columns}) VALUES "
    return head, "(" + ", ".join(["%s"] * len(fields)) + ")", fields


def insert_rows(objs: Sequence[Model]) -> None:
    """``bulk_create`` for our tables with client-set keys, as multi-row ``INSERT ... VALUES``."""
    if not objs:
        return
    head, row, fields = _insert_sql(type(objs[0]), connection.vendor)
    with connection.cursor() as cursor:
        for start in range(0, len(objs), INSERT_CHUNK):
            chunk = objs[start : start + INSERT_CHUNK]
            params = [p for obj in chunk for p in _params(obj, fields)]
            cursor.execute(head + ", ".join([row] * len(chunk)), params)
    for obj in objs:
        obj._state.adding = False
        obj._state.db = connection.alias


@cache
def _step_insert_sql(vendor: str, returning: bool) -> tuple[str, tuple[Field[Any, Any], ...]]:
    fields = tuple(_insert_fields(StepRun))
    run_table = FunctionRun._meta
    sql = (
        f"INSERT INTO {_quote(StepRun._meta.db_table)} "
        f"({', '.join(_quote(f.column) for f in fields)}) "
        f"SELECT {', '.join(['%s'] * len(fields))} WHERE EXISTS ("
        f"SELECT 1 FROM {_quote(run_table.db_table)} WHERE {_quote(run_table.pk.column)} = %s "
        f"AND {_quote('status')} = %s AND {_quote('lease_owner')} = %s)"
        + (" RETURNING id" if returning else "")
    )
    return sql, fields


def insert_step_if_owner(step: StepRun, owner: str) -> bool:
    """Insert a new step's row only while its run is Running under ``owner``'s lease; the
    condition and the write are one statement. Returns whether the row was written."""
    returning = connection.features.can_return_columns_from_insert
    sql, fields = _step_insert_sql(connection.vendor, returning)
    params = [*_params(step, fields), step.run_id, str(RunStatus.RUNNING), owner]
    # In autocommit (a worker) the statement is its own transaction; inside a caller's
    # transaction a savepoint keeps a conflict from aborting it.
    guard = transaction.atomic() if connection.in_atomic_block else nullcontext()
    try:
        with guard, connection.cursor() as cursor:
            cursor.execute(sql, params)
            row = cursor.fetchone() if returning else None
            written = cursor.rowcount == 1 or row is not None
    except IntegrityError:
        return False  # a worker that took over the run wrote this step first
    if row is not None:
        step.pk = row[0]
    return written


@cache
def _run_fields() -> dict[str, Field[Any, Any]]:
    return {f.attname: f for f in FunctionRun._meta.concrete_fields}


@cache
def _complete_sql(vendor: str, rows: int, same: tuple[str, ...]) -> str:
    table = _quote(FunctionRun._meta.db_table)
    # PostgreSQL types a VALUES list from its literals: say what the two columns are.
    ended, output = ("%s::timestamptz", "%s::jsonb") if vendor == "postgresql" else ("%s", "%s")
    values = ", ".join([f"(%s, %s, {ended}, {output})"] * rows)
    assignments = ", ".join(
        [f"{_quote('ended_at')} = done.ended_at", f"{_quote('output')} = done.output"]
        + [f"{_quote(_run_fields()[name].column)} = %s" for name in same]
    )
    return (
        f"WITH done (run_id, owner, ended_at, output) AS (VALUES {values}) "
        f"UPDATE {table} SET {assignments} FROM done "
        f"WHERE {table}.{_quote('run_id')} = done.run_id AND {table}.{_quote('status')} = %s "
        f"AND {table}.{_quote('lease_owner')} = done.owner "
        f"RETURNING {table}.{_quote('run_id')}"
    )


def complete_runs_if_owner(
    done: Sequence[tuple[str, str, datetime, Any]], same: dict[str, Any]
) -> set[str]:
    """End runs in one statement, each only while it is Running under its owner's lease.

    ``done`` holds (run_id, owner, ended_at, output) per run; ``same`` the other ended columns,
    by attname, equal for all (``lifecycle.ended_values``). Returns the runs written.
    """
    if not done:
        return set()
    fields = _run_fields()
    ended_field, output_field = fields["ended_at"], fields["output"]
    params: list[Any] = []
    for run_id, owner, ended_at, output in done:
        params += [
            run_id,
            owner,
            ended_field.get_db_prep_save(ended_at, connection),
            output_field.get_db_prep_save(output, connection),
        ]
    names = tuple(same)
    params += [fields[name].get_db_prep_save(same[name], connection) for name in names]
    params.append(str(RunStatus.RUNNING))
    with connection.cursor() as cursor:
        cursor.execute(_complete_sql(connection.vendor, len(done), names), params)
        return {row[0] for row in cursor.fetchall()}


@cache
def _listener_select(vendor: str) -> tuple[str, list[str], list[tuple[int, Any, list[Any]]]]:
    """The SELECT of every Listener column, their attnames, and per column needing it (on
    SQLite, datetimes come back as text) the ORM's converters."""
    meta = Listener._meta
    fields = meta.concrete_fields
    select = f"SELECT {', '.join(_quote(f.column) for f in fields)} FROM {_quote(meta.db_table)} "
    converters = []
    for index, field in enumerate(fields):
        col = field.get_col(meta.db_table)
        found = connection.ops.get_db_converters(col) + col.get_db_converters(connection)
        if found:
            converters.append((index, col, found))
    return select, [f.attname for f in fields], converters


def candidate_listeners(names: set[str], keys: set[str], now: datetime) -> list[Listener]:
    """Pending listeners for these event names whose match key is one of ``keys`` or none,
    oldest first: the indexed lookup every send makes (``inngest_listener_match``)."""
    select, attnames, converters = _listener_select(connection.vendor)
    name_list, key_list = sorted(names), sorted(keys)

    def placeholders(values: list[str]) -> str:
        return ", ".join(["%s"] * len(values))

    key_test = f"{_quote('match_key')} IN ({placeholders(key_list)}) OR " if key_list else ""
    sql = (
        f"{select}WHERE {_quote('event_name')} IN ({placeholders(name_list)}) "
        f"AND {_quote('expires_at')} > %s "
        f"AND ({key_test}{_quote('match_key')} IS NULL) "
        f"ORDER BY {_quote('created_at')}, {_quote('id')}"
    )
    expires = Listener._meta.get_field("expires_at").get_db_prep_value(now, connection)
    with connection.cursor() as cursor:
        cursor.execute(sql, [*name_list, expires, *key_list])
        rows = cursor.fetchall()
    found = []
    for row in rows:
        values = list(row)
        for index, col, column_converters in converters:
            for convert in column_converters:
                values[index] = convert(values[index], col, connection)
        found.append(Listener.from_db(connection.alias, attnames, values))
    return found
