"""A run reaching a worker that does not know its function (a rolling deploy): handed back with a
growing delay and a WARNING, failed only after ``FUNCTION_NOT_FOUND_GRACE_SECONDS``; and, with
real clusters, a run of a new function surviving a deploy that is half done."""

from __future__ import annotations

import contextlib
import logging
from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
from django.utils import timezone

from django_inngest import Context, Event, Inngest, TriggerEvent
from django_inngest.engine import worker
from django_inngest.models import FunctionRun, RunStatus, WaitKind
from django_inngest.registry import registry
from tests.helpers import make_due
from tests.qcluster import QCluster, wait_until
from tests.testapp.inngest_functions import inngest_client

pytestmark = pytest.mark.django_db(transaction=True)


@pytest.fixture
def run(inngest: Inngest, monkeypatch: pytest.MonkeyPatch) -> FunctionRun:
    """A run of a function, created (by a process that has it) but not yet advanced."""
    monkeypatch.setattr("django_inngest.executor.dispatch", lambda ids: None)

    @inngest.create_function(fn_id="shiny", trigger=TriggerEvent(event="t/shiny"))
    def fn(ctx: Context) -> str:
        return ctx.step.run("work", lambda: "done")  # type: ignore[no-any-return]

    (event_id,) = inngest.send_sync(Event(name="t/shiny"))
    return FunctionRun.objects.get(event_id=event_id)


@contextlib.contextmanager
def old_worker() -> Iterator[None]:
    """This process plays a worker whose code predates the function."""
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(registry, "get", lambda function_id: None)
        yield


def test_an_unknown_function_hands_the_run_back_with_a_warning(
    run: FunctionRun, caplog: pytest.LogCaptureFixture
) -> None:
    with old_worker(), caplog.at_level(logging.WARNING, logger="django_inngest"):
        before = timezone.now()
        assert worker.advance(run.run_id) == "awaiting function"
    run.refresh_from_db()
    assert (run.status, run.lease_owner, run.wait_kind) == (RunStatus.RUNNING, "", WaitKind.RETRY)
    assert run.function_missing_since is not None and run.function_missing_since >= before
    assert run.ready_at is not None and run.ready_at >= before + timedelta(seconds=1)
    (warning,) = [r for r in caplog.records if r.levelno >= logging.WARNING]
    assert warning.levelno == logging.WARNING
    assert "test-app-shiny is not defined in this worker" in warning.getMessage()
    assert run.run_id in warning.getMessage() and not warning.exc_info
    assert worker.advance(run.run_id) == "skipped"  # not due yet: nobody takes it early


def test_a_worker_that_has_the_function_then_runs_it(run: FunctionRun) -> None:
    with old_worker():
        worker.advance(run.run_id)
        first_missing = FunctionRun.objects.get(pk=run.pk).function_missing_since
        make_due(run)
        assert worker.advance(run.run_id) == "awaiting function"  # another old worker
    run.refresh_from_db()
    assert run.function_missing_since == first_missing  # the grace counts from the first
    make_due(run)
    assert worker.advance(run.run_id) == "completed"  # a new worker
    run.refresh_from_db()
    assert (run.status, run.output, run.function_missing_since) == (
        RunStatus.COMPLETED,
        "done",
        None,
    )


def test_the_delay_grows_with_the_time_missing_and_ends_with_the_grace(
    run: FunctionRun, settings: Any
) -> None:
    settings.DJANGO_INNGEST_FUNCTION_NOT_FOUND_GRACE_SECONDS = 120

    def delay_after_missing_for(seconds: float) -> float:
        FunctionRun.objects.filter(pk=run.pk).update(
            function_missing_since=timezone.now() - timedelta(seconds=seconds)
        )
        make_due(run)
        with old_worker():
            assert worker.advance(run.run_id) == "awaiting function"
        current = FunctionRun.objects.get(pk=run.pk)
        assert current.ready_at is not None
        return (current.ready_at - timezone.now()).total_seconds()

    assert 3.5 < delay_after_missing_for(4) <= 4.5  # as long as it has been missing
    assert 25 < delay_after_missing_for(40) <= 30  # at most MAX_DELAY_SECONDS
    assert 2 < delay_after_missing_for(116) <= 4  # never past the end of the grace period


def test_past_the_grace_period_the_run_fails_with_one_error_line(
    run: FunctionRun, settings: Any, caplog: pytest.LogCaptureFixture
) -> None:
    settings.DJANGO_INNGEST_FUNCTION_NOT_FOUND_GRACE_SECONDS = 30
    with old_worker():
        worker.advance(run.run_id)
    FunctionRun.objects.filter(pk=run.pk).update(
        function_missing_since=timezone.now() - timedelta(seconds=31)
    )
    make_due(run)
    with old_worker(), caplog.at_level(logging.DEBUG):
        assert worker.advance(run.run_id) == "failed"
    run.refresh_from_db()
    assert run.status == RunStatus.FAILED
    assert run.error["name"] == "FunctionNotFoundError"
    assert "test-app-shiny" in run.error["message"]
    assert "FUNCTION_NOT_FOUND_GRACE_SECONDS" in run.error["message"]
    errors = [r for r in caplog.records if r.levelno >= logging.ERROR]
    assert len(errors) == 1 and run.run_id in errors[0].getMessage()
    assert not any(r.exc_info for r in caplog.records)


def test_a_grace_of_zero_fails_at_once(run: FunctionRun, settings: Any) -> None:
    settings.DJANGO_INNGEST_FUNCTION_NOT_FOUND_GRACE_SECONDS = 0
    with old_worker():
        assert worker.advance(run.run_id) == "failed"
    run.refresh_from_db()
    assert (run.status, run.error["name"]) == (RunStatus.FAILED, "FunctionNotFoundError")


# -- a rolling deploy with real workers ------------------------------------------------------------


@pytest.fixture
def real_dispatch(monkeypatch: pytest.MonkeyPatch) -> None:
    from django_q.conf import Conf

    monkeypatch.setattr(Conf, "SYNC", False)
    monkeypatch.setattr("django_inngest.executor._brokers", {})


@pytest.mark.integration
def test_a_run_survives_a_rolling_deploy(real_dispatch: None, tmp_path: Path) -> None:
    """The web process (this one) has the new function; the old workers do not, and hand its run
    back until a new worker, started later, runs it."""
    markers = tmp_path / "markers.log"
    base = {"INNGEST_TEST_MARKERS": str(markers), "INNGEST_TEST_LIBRARY_TIMING": "1"}
    old = QCluster(
        "tests.integration_settings", {**base, "INNGEST_TEST_OLD_CODE": "1"}, "inngest_worker"
    )
    new: QCluster | None = None
    try:
        old.wait_ready(workers=2)
        (event_id,) = inngest_client.send_sync(Event(name="testapp/new-feature"))
        run = FunctionRun.objects.get(event_id=event_id)
        wait_until(
            lambda: (
                FunctionRun.objects.filter(pk=run.pk, function_missing_since__isnull=False)
                .exclude(lease_owner__gt="")
                .exists()
            ),
            30,
            f"an old worker to hand the run back:\n{old.output()}",
        )
        assert "testapp-new-in-this-deploy is not defined in this worker" in old.output()
        new = QCluster("tests.integration_settings", base, "inngest_worker")
        new.wait_ready(workers=2)
        done = wait_until(
            lambda: FunctionRun.objects.filter(pk=run.pk, status=RunStatus.COMPLETED).first(),
            60,
            f"a new worker to run it:\n{new.output()}",
        )
        assert done.output.startswith("new code, pid ")
        assert done.function_missing_since is None
        assert "ERROR" not in old.output() and "Traceback" not in old.output()
    finally:
        old.stop()
        if new is not None:
            new.stop()
