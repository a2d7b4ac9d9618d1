"""Settings for real ``qcluster`` workers started by the integration tests.

They point at the test database pytest-django created, and turn django-q2's sync mode off.
"""

from __future__ import annotations

import os

from tests.settings import *  # noqa: F403
from tests.settings import DATABASES

DATABASES["default"]["NAME"] = DATABASES["default"]["TEST"]["NAME"]

Q_CLUSTER = {
    # The suffix keeps concurrent test runs' queues apart on a shared Redis.
    "name": "tests" + os.environ.get("INNGEST_TEST_DB_SUFFIX", ""),
    "orm": "default",
    "workers": 2,
    "poll": 0.05,
    "save_limit": -1,
    "timeout": 120,
    "retry": 180,
    "ack_failures": True,
    "max_attempts": 1,
    "catch_up": False,
}
if os.environ.get("INNGEST_TEST_REDIS_URL"):
    # The Redis broker has no acknowledgement: a task in flight when a worker dies is gone.
    del Q_CLUSTER["orm"]
    Q_CLUSTER["redis"] = os.environ["INNGEST_TEST_REDIS_URL"]

# Short leases and redispatch so crash recovery is observable within a test.
DJANGO_INNGEST_LEASE_SECONDS = 3
DJANGO_INNGEST_REDISPATCH_AFTER_SECONDS = 2
# The library's default is 0.25 s; a test may run its workers with that (or another) value.
DJANGO_INNGEST_TIMER_POLL_SECONDS = float(os.environ.get("INNGEST_TEST_TIMER_POLL", "0.1"))
# SDK apps served by the test process's live server (tests/test_sdkserve_qcluster.py).
DJANGO_INNGEST_SDK_ALLOWED_HOSTS = ["localhost", "127.0.0.1"]
DJANGO_INNGEST_SDK_ALLOWED_NETWORKS = ["127.0.0.0/8", "::1/128"]
DJANGO_INNGEST_SDK_HTTP_TIMEOUT_SECONDS = 60
DJANGO_INNGEST_RETRY_BACKOFF_SECONDS = 0.2
DJANGO_INNGEST_RETRY_BACKOFF_MAX_SECONDS = 1

LOGGING = {
    "version": 1,
    "disable_existing_loggers": False,
    "handlers": {"console": {"class": "logging.StreamHandler"}},
    "loggers": {
        "django_inngest": {"handlers": ["console"], "level": "INFO"},
        "django-q": {"handlers": ["console"], "level": "INFO", "propagate": False},
    },
}
