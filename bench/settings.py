"""Settings for the benchmarks, parametrised by environment variables.

- ``BENCH_DATABASE_URL``: a database URL; unset means SQLite (WAL, IMMEDIATE) at
  ``BENCH_SQLITE_PATH`` (default ``bench/.data/bench.sqlite3``).
- ``BENCH_BROKER``: ``orm`` (default) or ``redis``; ``BENCH_REDIS_URL`` (default db 5).
- ``BENCH_SQLITE_CONN_MAX_AGE``: 0 by default, as in example_project.
- ``BENCH_WORKERS`` (2), ``BENCH_Q_POLL`` (0.05), ``BENCH_Q_NAME`` ("bench").
- ``BENCH_EXTRA_PATH`` / ``BENCH_EXTRA_APPS``: extra apps for what-if experiments.
- ``BENCH_TIMER_POLL``, ``BENCH_BUDGET``, ``BENCH_LEASE``: override the matching
  ``DJANGO_INNGEST_*`` settings; unset keeps the library's documented defaults.
- ``BENCH_RETENTION``: ``DJANGO_INNGEST_RETENTION`` in seconds, or ``none``; unset keeps the
  default (30 days).

Q_CLUSTER follows example_project/example_project/settings.py (production-like).
"""

from __future__ import annotations

import os
import sys
from pathlib import Path

import dj_database_url

from django_inngest.sqlite import sqlite_database

BASE_DIR = Path(__file__).resolve().parent.parent
SECRET_KEY = "django-inngest-bench"
DEBUG = False
USE_TZ = True
TIME_ZONE = "UTC"
ALLOWED_HOSTS = ["*"]

INSTALLED_APPS = [
    "django.contrib.admin",
    "django.contrib.auth",
    "django.contrib.contenttypes",
    "django.contrib.sessions",
    "django.contrib.messages",
    "django.contrib.staticfiles",
    "rest_framework",
    "django_q",
    "django_inngest",
    "bench.benchapp",
]
# What-if experiments: extra apps (e.g. one whose ready() patches the engine) from extra paths.
for _path in filter(None, os.environ.get("BENCH_EXTRA_PATH", "").split(os.pathsep)):
    sys.path.insert(0, _path)
INSTALLED_APPS += [a for a in os.environ.get("BENCH_EXTRA_APPS", "").split(",") if a]

MIDDLEWARE = [
    "django.middleware.security.SecurityMiddleware",
    "django.contrib.sessions.middleware.SessionMiddleware",
    "django.middleware.common.CommonMiddleware",
    "django.middleware.csrf.CsrfViewMiddleware",
    "django.contrib.auth.middleware.AuthenticationMiddleware",
    "django.contrib.messages.middleware.MessageMiddleware",
]
ROOT_URLCONF = "bench.urls"
TEMPLATES = [
    {
        "BACKEND": "django.template.backends.django.DjangoTemplates",
        "APP_DIRS": True,
        "OPTIONS": {
            "context_processors": [
                "django.template.context_processors.request",
                "django.contrib.auth.context_processors.auth",
                "django.contrib.messages.context_processors.messages",
            ]
        },
    }
]
STATIC_URL = "/static/"
DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"

DATABASE_URL = os.environ.get("BENCH_DATABASE_URL", "")
if DATABASE_URL:
    # Persistent connections: django-q2 workers otherwise reconnect around every task.
    DATABASES = {
        "default": dj_database_url.parse(DATABASE_URL, conn_max_age=600, conn_health_checks=True)
    }
else:
    # django_inngest's recommended SQLite entry (WAL, IMMEDIATE, busy timeout), as the example.
    DATABASES = {
        "default": sqlite_database(
            os.environ.get("BENCH_SQLITE_PATH", str(BASE_DIR / "bench" / ".data" / "bench.sqlite3"))
        )
    }
    # example_project keeps Django's default (0: a connection is closed after each request).
    DATABASES["default"]["CONN_MAX_AGE"] = int(os.environ.get("BENCH_SQLITE_CONN_MAX_AGE", "0"))

_BROKER = os.environ.get("BENCH_BROKER", "orm")
_broker: dict[str, object]
if _BROKER == "redis":
    _broker = {"redis": os.environ.get("BENCH_REDIS_URL", "redis://127.0.0.1:6379/5")}
elif _BROKER == "orm":
    _broker = {"orm": "default"}
else:
    raise ValueError(f"BENCH_BROKER must be orm or redis, not {_BROKER!r}")

Q_CLUSTER = {
    "name": os.environ.get("BENCH_Q_NAME", "bench"),
    "workers": int(os.environ.get("BENCH_WORKERS", "2")),
    "save_limit": -1,
    "timeout": 600,
    "retry": 660,
    "ack_failures": True,
    "max_attempts": 1,
    "poll": float(os.environ.get("BENCH_Q_POLL", "0.05")),
    "catch_up": False,
    **_broker,
}

for _env, _setting in (
    ("BENCH_TIMER_POLL", "DJANGO_INNGEST_TIMER_POLL_SECONDS"),
    ("BENCH_BUDGET", "DJANGO_INNGEST_INVOCATION_BUDGET_SECONDS"),
    ("BENCH_LEASE", "DJANGO_INNGEST_LEASE_SECONDS"),
):
    if os.environ.get(_env):
        globals()[_setting] = float(os.environ[_env])

# bench/sdk.py's SDK app is served on loopback by another process of this machine.
DJANGO_INNGEST_SDK_ALLOWED_HOSTS = ["127.0.0.1"]
DJANGO_INNGEST_SDK_ALLOWED_NETWORKS = ["127.0.0.0/8"]
SILENCED_SYSTEM_CHECKS = ["django_inngest.W031"]  # served by bench/serve.py, threaded

if os.environ.get("BENCH_RETENTION"):
    _retention = os.environ["BENCH_RETENTION"]
    DJANGO_INNGEST_RETENTION = None if _retention == "none" else float(_retention)

DJANGO_INNGEST_EVENT_KEYS = ["bench-event-key"]
DJANGO_INNGEST_SIGNING_KEY = "signkey-bench-0123456789abcdef0123456789abcdef"

LOGGING = {
    "version": 1,
    "disable_existing_loggers": False,
    "filters": {"quiet_tasks": {"()": "bench.benchapp.logfilters.DropPerTaskLines"}},
    "handlers": {
        "console": {"class": "logging.StreamHandler", "filters": ["quiet_tasks"]},
    },
    "loggers": {
        # "ready for work" (INFO) is how tests/qcluster.py knows the workers are up; the
        # per-task INFO lines are dropped so that logging costs the same for every variant.
        "django-q": {"handlers": ["console"], "level": "INFO", "propagate": False},
        "django_inngest": {"handlers": ["console"], "level": "WARNING", "propagate": False},
        "django.server": {"handlers": ["console"], "level": "WARNING", "propagate": False},
    },
}
