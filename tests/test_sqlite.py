"""SQLite, the embedded default, is configured so that web and worker processes can share it."""

from __future__ import annotations

import pytest
from django.db import connection

from django_inngest.sqlite import sqlite_database


def test_recommended_options() -> None:
    config = sqlite_database("/tmp/x.sqlite3", busy_timeout_seconds=12)
    assert config["OPTIONS"]["transaction_mode"] == "IMMEDIATE"
    assert config["OPTIONS"]["timeout"] == 12
    assert "journal_mode=WAL" in config["OPTIONS"]["init_command"]


@pytest.mark.django_db
@pytest.mark.skipif(connection.vendor != "sqlite", reason="checks the live SQLite connection")
def test_the_test_database_runs_in_wal_mode_with_a_busy_timeout() -> None:
    with connection.cursor() as cursor:
        cursor.execute("PRAGMA journal_mode")
        assert cursor.fetchone()[0] == "wal"
        cursor.execute("PRAGMA busy_timeout")
        assert cursor.fetchone()[0] == 30_000
