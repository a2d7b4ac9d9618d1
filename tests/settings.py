"""Test settings: SQLite (WAL, IMMEDIATE transactions) by default, PostgreSQL when DATABASE_URL is set."""

from __future__ import annotations

import os
from pathlib import Path

import dj_database_url

from django_inngest.sqlite import sqlite_database

BASE_DIR = Path(__file__).resolve().parent.parent
SECRET_KEY = "django-inngest-tests"
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
    "tests.testapp",
    "tests.portapp",  # inngest-py's documented examples, ported by changing the import
]

MIDDLEWARE = [
    "django.middleware.security.SecurityMiddleware",
    "django.contrib.sessions.middleware.SessionMiddleware",
    "django.middleware.common.CommonMiddleware",
    "django.middleware.csrf.CsrfViewMiddleware",
    "django.contrib.auth.middleware.AuthenticationMiddleware",
    "django.contrib.messages.middleware.MessageMiddleware",
]
ROOT_URLCONF = "tests.urls"
TEMPLATES = [
    {
        "BACKEND": "django.template.backends.django.DjangoTemplates",
        "DIRS": [],
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

DATABASE_URL = os.environ.get("DATABASE_URL", "")
# Lets concurrent test runs on one machine keep their databases apart.
_SUFFIX = os.environ.get("INNGEST_TEST_DB_SUFFIX", "")
if DATABASE_URL:
    DATABASES = {
        "default": dj_database_url.parse(DATABASE_URL, conn_max_age=600, conn_health_checks=True)
    }
    DATABASES["default"].setdefault("TEST", {})["NAME"] = "test_django_inngest" + _SUFFIX
else:
    # A file, not :memory:, so that live servers, threads and worker subprocesses share it.
    test_db = BASE_DIR / f".test-db{_SUFFIX}.sqlite3"
    DATABASES = {"default": {**sqlite_database(test_db), "TEST": {"NAME": str(test_db)}}}

DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"

# PBKDF2 is slow on purpose: the admin and REST tests took 24 s with it, 5 s with this. The
# tests check permissions, not password strength.
PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]

# Unit tests run django-q2 in sync mode; integration tests start real qcluster processes with
# their own settings module (tests/integration_settings.py).
Q_CLUSTER = {
    "name": "tests" + _SUFFIX,  # the integration clusters' name (tests/integration_settings.py)
    "orm": "default",
    "sync": True,
    "save_limit": -1,
    "timeout": 60,
    "retry": 120,
}

DJANGO_INNGEST_EVENT_KEYS = ["test-event-key"]
DJANGO_INNGEST_SIGNING_KEY = "signkey-test-0123456789abcdef0123456789abcdef"

LOGGING = {
    "version": 1,
    "disable_existing_loggers": False,
    "handlers": {"console": {"class": "logging.StreamHandler"}},
    "loggers": {"django_inngest": {"handlers": ["console"], "level": "WARNING"}},
}
