"""The hand-written statement behind ``FunctionRunQuerySet.end_completed``: many runs
completed in one round trip, each only while it is Running under its own owner's lease (the
ORM has no multi-row conditional UPDATE)."""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

from django.db import models

from django_inngest import database, sql
from django_inngest.models.choices import RunStatus

if TYPE_CHECKING:
    from django_inngest.models.run_transitions import Completion


_complete_sql_cache: dict[tuple[str, int, tuple[str, ...]], str] = {}


def _complete_sql(model: type[models.Model], vendor: str, rows: int, same: tuple[str, ...]) -> str:
    key = (vendor, rows, same)
    if key in _complete_sql_cache:
        return _complete_sql_cache[key]
    connection = database.connection()

    def q(name: str | None) -> str:
        return sql.quote(connection, name)

    fields = {f.attname: f for f in model._meta.concrete_fields}
    table = q(model._meta.db_table)
    # PostgreSQL types a VALUES list from its literals: say what the two columns are.
    ended, output = ("%s::timestamptz", "%s::jsonb") if vendor == "postgresql" else ("%s", "%s")
    values = ", ".join([f"(%s, %s, {ended}, {output})"] * rows)
    assignments = ", ".join(
        [f"{q('ended_at')} = done.ended_at", f"{q('output')} = done.output"]
        + [f"{q(fields[name].column)} = %s" for name in same]
    )
    statement = (
        f"WITH done (run_id, owner, ended_at, output) AS (VALUES {values}) "
        f"UPDATE {table} SET {assignments} FROM done "
        f"WHERE {table}.{q('run_id')} = done.run_id AND {table}.{q('status')} = %s "
        f"AND {table}.{q('lease_owner')} = done.owner "
        f"RETURNING {table}.{q('run_id')}"
    )
    _complete_sql_cache[key] = statement
    return statement


def complete_if_owned(
    model: type[models.Model], done: Sequence[Completion], same: dict[str, Any]
) -> set[str]:
    """The hand-written ``WITH ... UPDATE ... FROM (VALUES ...) RETURNING`` behind
    ``end_completed``: one round trip for a batch (the ORM has no multi-row conditional UPDATE)."""
    connection = database.connection()
    fields = {f.attname: f for f in model._meta.concrete_fields}
    ended_field, output_field = fields["ended_at"], fields["output"]
    params: list[Any] = []
    for completion in done:
        params += [
            completion.run_id,
            completion.owner,
            ended_field.get_db_prep_save(completion.ended_at, connection),
            output_field.get_db_prep_save(completion.output, connection),
        ]
    names = tuple(same)
    params += [fields[name].get_db_prep_save(same[name], connection) for name in names]
    params.append(str(RunStatus.RUNNING))
    with connection.cursor() as cursor:
        cursor.execute(_complete_sql(model, connection.vendor, len(done), names), params)
        return {row[0] for row in cursor.fetchall()}
