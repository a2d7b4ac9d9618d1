"""Settings for the newsletter-app example.

Environment:
- DATABASE_URL: defaults to SQLite in WAL mode (db.sqlite3 beside manage.py).
- INNGEST_EVENT_KEY: event key for POST /e/<key>. Dev default: "dev-event-key".
- INNGEST_SIGNING_KEY: bearer key for the REST API. Dev default below. Set both in production.
- REDIS_URL: when set, django-q2 uses Redis as its broker instead of the database.
- INNGEST_BASE_URL: where the SDK app (newsletter_sdk) finds django-inngest. Dev default:
  runserver's http://127.0.0.1:8000.
"""

from __future__ import annotations

import os
from pathlib import Path

import dj_database_url

from django_inngest.sqlite import sqlite_database

BASE_DIR = Path(__file__).resolve().parent.parent
SECRET_KEY = os.environ.get("DJANGO_SECRET_KEY", "dev-only-secret-key-change-me")
DEBUG = os.environ.get("DJANGO_DEBUG", "1") == "1"
ALLOWED_HOSTS = ["*"]
USE_TZ = True
TIME_ZONE = "UTC"

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
    "newsletter",
]
MIDDLEWARE = [
    "django.middleware.security.SecurityMiddleware",
    "django.contrib.sessions.middleware.SessionMiddleware",
    "django.middleware.common.CommonMiddleware",
    "django.middleware.csrf.CsrfViewMiddleware",
    "django.contrib.auth.middleware.AuthenticationMiddleware",
    "django.contrib.messages.middleware.MessageMiddleware",
]
ROOT_URLCONF = "example_project.urls"
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

if os.environ.get("DATABASE_URL"):
    # Persistent connections: django-q2 workers otherwise reconnect around every task.
    DATABASES = {
        "default": dj_database_url.parse(
            os.environ["DATABASE_URL"], conn_max_age=600, conn_health_checks=True
        )
    }
else:
    # WAL, a busy timeout and IMMEDIATE transactions: see django_inngest.sqlite.
    DATABASES = {"default": sqlite_database(BASE_DIR / "db.sqlite3")}

_broker = {"redis": os.environ["REDIS_URL"]} if os.environ.get("REDIS_URL") else {"orm": "default"}
Q_CLUSTER = {
    "name": "newsletter",
    "workers": 2,
    # Our tables are the source of truth: django-q2 results are not needed, and saving them
    # with the default save_limit costs most of django-q2's throughput.
    "save_limit": -1,
    # A task only advances a run for INVOCATION_BUDGET_SECONDS (plus the step in flight);
    # duplicates are harmless (the run's lease decides), so a long retry lease is safe.
    "timeout": 600,
    "retry": 660,
    "ack_failures": True,
    "max_attempts": 1,
    "poll": 0.05,
    "catch_up": False,
    **_broker,
}

DJANGO_INNGEST_EVENT_KEYS = [os.environ.get("INNGEST_EVENT_KEY", "dev-event-key")]
DJANGO_INNGEST_SIGNING_KEY = os.environ.get(
    "INNGEST_SIGNING_KEY",
    "signkey-dev-0000000000000000000000000000000000000000000000000000000000000000",
)

# The SDK app newsletter_sdk is served by this project, on loopback: let workers call it.
# (Loopback and private addresses are refused unless allowed; in production list your hosts.)
DJANGO_INNGEST_SDK_ALLOWED_HOSTS = ["127.0.0.1", "localhost"]
DJANGO_INNGEST_SDK_ALLOWED_NETWORKS = ["127.0.0.0/8", "::1/128"]
INNGEST_SERVER_URL = os.environ.get("INNGEST_BASE_URL", "http://127.0.0.1:8000")
# W041: this project serves its own SDK app, which calls back into it (/fn/register, /e/).
# runserver and run_demo's server are threaded; with gunicorn use --threads or --workers > 1.
SILENCED_SYSTEM_CHECKS = ["django_inngest.W041"]

LOGGING = {
    "version": 1,
    "disable_existing_loggers": False,
    "formatters": {"plain": {"format": "%(asctime)s %(levelname)s %(name)s: %(message)s"}},
    "handlers": {"console": {"class": "logging.StreamHandler", "formatter": "plain"}},
    "loggers": {
        # Functions' ctx.logger lines show on the worker's console.
        "django_inngest.functions": {"handlers": ["console"], "level": "INFO", "propagate": False},
        "django_inngest": {"handlers": ["console"], "level": "WARNING"},
        # The SDK app's ctx.logger lines (shown where the app is served).
        "inngest": {"handlers": ["console"], "level": "INFO", "propagate": False},
    },
}
