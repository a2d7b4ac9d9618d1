"""Runs advanced in batches: several runs per worker task, claimed together, advanced on a
worker's threads (PostgreSQL), and completed runs ended together in one statement."""

from __future__ import annotations

import threading
import time
from typing import Any

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.utils import timezone

from django_inngest import Context, Event, Inngest, TriggerEvent, cancel_run, executor
from django_inngest.engine import worker
from django_inngest.engine.completions import Completions
from django_inngest.engine.worker_pool import threads_for
from django_inngest.models import Completion, FunctionRun, Listener, RunStatus, StepRun
from django_inngest.models import Event as StoredEvent
from django_inngest.sql import insert_rows
from tests.helpers import claim_again

pytestmark = pytest.mark.django_db(transaction=True)


def queued_runs(
    client: Inngest, name: str, count: int, monkeypatch: pytest.MonkeyPatch
) -> list[str]:
    """``count`` runs started by one send and not dispatched: a worker task's batch."""
    with monkeypatch.context() as patched:
        patched.setattr("django_inngest.executor.dispatch", lambda run_ids: None)
        client.send_sync([Event(name=name, data={"i": i}) for i in range(count)])
    runs = FunctionRun.objects.filter(status=RunStatus.QUEUED).select_related("event")
    # In the order of the events' `i`: ULIDs made within one millisecond are not ordered.
    return [run.run_id for run in sorted(runs, key=lambda run: run.event.data["i"])]


def noop_function(inngest: Inngest) -> None:
    """A function on ``b/one`` whose runs only need to exist and end."""

    @inngest.create_function(fn_id="one", trigger=TriggerEvent(event="b/one"))
    def one(ctx: Context) -> None:
        return None


def statements(queries: CaptureQueriesContext, verb: str) -> list[str]:
    return [
        q["sql"] for q in queries.captured_queries if q["sql"].lstrip().upper().startswith(verb)
    ]


# -- dispatch ------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("count", "size", "workers", "sizes"),
    [
        (1, 25, 4, [1]),
        (3, 25, 4, [1, 1, 1]),  # fewer runs than workers: one each
        (10, 25, 4, [3, 3, 2, 2]),  # a small batch is spread over every worker
        (100, 25, 2, [25, 25, 25, 25]),
        (101, 25, 2, [21, 20, 20, 20, 20]),  # never more than `size` in one task
        (7, 0, 1, [1] * 7),  # a size below 1 counts as 1
    ],
)
def test_dispatch_chunks(count: int, size: int, workers: int, sizes: list[int]) -> None:
    ids = [f"run-{i}" for i in range(count)]
    chunks = executor._chunks(ids, size, workers)
    assert [len(c) for c in chunks] == sizes
    assert [i for c in chunks for i in c] == ids  # every run once, in order


def test_one_send_enqueues_few_tasks(
    inngest: Inngest, monkeypatch: pytest.MonkeyPatch, settings: Any
) -> None:
    from django_q.conf import Conf

    noop_function(inngest)

    settings.DJANGO_INNGEST_DISPATCH_BATCH_SIZE = 10
    monkeypatch.setattr(Conf, "WORKERS", 2)
    tasks: list[tuple[str, list[str]]] = []
    monkeypatch.setattr(
        executor, "async_task", lambda name, ids, q_options: tasks.append((name, ids))
    )
    inngest.send_sync([Event(name="b/one", data={"i": i}) for i in range(35)])
    runs = set(FunctionRun.objects.values_list("run_id", flat=True))
    assert len(runs) == 35
    assert [len(ids) for _, ids in tasks] == [9, 9, 9, 8]
    assert {name for name, _ in tasks} == {executor.TASK}
    assert {i for _, ids in tasks for i in ids} == runs


def test_one_send_inserts_its_runs_and_cancel_rules_with_one_statement_each(
    inngest: Inngest, monkeypatch: pytest.MonkeyPatch
) -> None:
    from django_inngest import Cancel

    @inngest.create_function(
        fn_id="c",
        trigger=TriggerEvent(event="b/c"),
        cancel=[Cancel(event="b/stop", match="data.i")],
    )
    def c(ctx: Context) -> None:
        return None

    monkeypatch.setattr("django_inngest.executor.dispatch", lambda run_ids: None)
    with CaptureQueriesContext(connection) as queries:
        inngest.send_sync([Event(name="b/c", data={"i": i}) for i in range(20)])
    inserts = statements(queries, "INSERT")
    for model in (FunctionRun, Listener):
        table = connection.ops.quote_name(model._meta.db_table)
        assert sum(f"INTO {table}" in q for q in inserts) == 1
    assert FunctionRun.objects.count() == 20
    # The rows are whole: each run's cancel rule matches its own event only.
    inngest.send_sync(Event(name="b/stop", data={"i": 7}))
    cancelled = FunctionRun.objects.get(status=RunStatus.CANCELLED)
    assert cancelled.event.data == {"i": 7}


@pytest.fixture
def orm_broker(monkeypatch: pytest.MonkeyPatch) -> None:
    """Enqueue to django-q2's ORM broker, as a web process does (tests run in sync mode)."""
    from django_q.conf import Conf

    monkeypatch.setattr(Conf, "SYNC", False)
    monkeypatch.setattr("django_inngest.executor._brokers", {})


def queued_tasks() -> list[list[str]]:
    from django_q.models import OrmQ
    from django_q.signing import SignedPackage

    return [SignedPackage.loads(task.payload)["args"][0] for task in OrmQ.objects.all()]


def test_the_orm_broker_wake_up_commits_with_the_runs(inngest: Inngest, orm_broker: None) -> None:
    """An outbox: the wake-up is a row of the sender's own transaction, so no crash between
    commit and enqueue can lose it, and a rollback takes it back with the runs."""
    from django.db import transaction

    noop_function(inngest)

    with transaction.atomic():
        inngest.send_sync([Event(name="b/one", data={"i": i}) for i in range(3)])
        inside = queued_tasks()  # written already, visible to this transaction only
        runs = set(FunctionRun.objects.values_list("run_id", flat=True))
        transaction.set_rollback(True)
    assert len(runs) == 3
    assert sorted(i for ids in inside for i in ids) == sorted(runs)
    assert queued_tasks() == [] and not FunctionRun.objects.exists()
    inngest.send_sync(Event(name="b/one", data={"i": 9}))
    (run,) = FunctionRun.objects.all()
    assert queued_tasks() == [[run.run_id]]


def test_a_broker_outside_the_database_is_enqueued_after_commit(
    inngest: Inngest, orm_broker: None, monkeypatch: pytest.MonkeyPatch
) -> None:
    from django.db import transaction

    noop_function(inngest)

    class Remote:  # stands for Redis: not a table of our database
        pass

    monkeypatch.setattr("django_inngest.executor._broker", lambda: Remote())
    enqueued: list[tuple[list[str], bool]] = []
    monkeypatch.setattr(
        executor,
        "async_task",
        lambda name, ids, q_options: enqueued.append((ids, connection.in_atomic_block)),
    )
    with transaction.atomic():
        inngest.send_sync(Event(name="b/one"))
        assert enqueued == []
    (run,) = FunctionRun.objects.all()
    assert enqueued == [([run.run_id], False)]


# -- advance_many --------------------------------------------------------------------------


def test_a_batch_is_claimed_with_one_update_and_ended_with_one(
    inngest: Inngest, monkeypatch: pytest.MonkeyPatch, settings: Any
) -> None:
    settings.DJANGO_INNGEST_THREADS_PER_WORKER = 1  # count this thread's queries only

    @inngest.create_function(fn_id="one", trigger=TriggerEvent(event="b/one"))
    def one(ctx: Context) -> int:
        return ctx.step.run("s", lambda: ctx.event.data["i"] * 2)  # type: ignore[no-any-return]

    ids = queued_runs(inngest, "b/one", 6, monkeypatch)
    with CaptureQueriesContext(connection) as queries:
        outcomes = worker.advance_many(ids)
    assert outcomes == dict.fromkeys(ids, "completed")
    updates = statements(queries, "UPDATE") + statements(queries, "WITH")
    assert len(updates) == 2  # the claim of all six, and their end
    for run in FunctionRun.objects.all():
        assert run.status == RunStatus.COMPLETED
        assert run.output == run.event.data["i"] * 2
        assert run.lease_owner == "" and run.ended_at is not None
    finished = StoredEvent.objects.filter(name="inngest/function.finished")
    assert sorted(e.data["run_id"] for e in finished) == sorted(ids)
    assert all(e.data["result"] == e.data["event"]["data"]["i"] * 2 for e in finished)


def test_duplicate_ids_in_a_batch_advance_once(
    inngest: Inngest, monkeypatch: pytest.MonkeyPatch
) -> None:
    calls: list[int] = []

    @inngest.create_function(fn_id="one", trigger=TriggerEvent(event="b/one"))
    def one(ctx: Context) -> None:
        ctx.step.run("s", lambda: calls.append(1))

    (run_id,) = queued_runs(inngest, "b/one", 1, monkeypatch)
    assert worker.advance_many([run_id, run_id]) == {run_id: "completed"}
    assert calls == [1]


def test_a_duplicate_task_for_a_batch_does_nothing(
    inngest: Inngest, monkeypatch: pytest.MonkeyPatch
) -> None:
    noop_function(inngest)

    ids = queued_runs(inngest, "b/one", 3, monkeypatch)
    assert worker.advance_many(ids) == dict.fromkeys(ids, "completed")
    assert worker.advance_many(ids) == dict.fromkeys(ids, "skipped")
    assert StoredEvent.objects.filter(name="inngest/function.finished").count() == 3


def test_one_runs_unexpected_error_does_not_stop_the_others(
    inngest: Inngest, monkeypatch: pytest.MonkeyPatch, settings: Any
) -> None:
    settings.DJANGO_INNGEST_THREADS_PER_WORKER = 1

    noop_function(inngest)

    ids = queued_runs(inngest, "b/one", 3, monkeypatch)
    real = worker.take_turn

    def broken(claimed: Any, owner: str, completions: Completions) -> str:
        if claimed.run.run_id == ids[1]:
            raise RuntimeError("a bug in the engine")
        return real(claimed, owner, completions)

    monkeypatch.setattr(worker, "take_turn", broken)
    outcomes = worker.advance_many(ids)
    assert outcomes == {ids[0]: "completed", ids[1]: "error", ids[2]: "completed"}
    # The broken run keeps its lease until it expires; then it is recovered like a crash.
    assert FunctionRun.objects.get(pk=ids[1]).status == RunStatus.RUNNING


def test_runs_waiting_their_turn_keep_their_leases(
    inngest: Inngest, monkeypatch: pytest.MonkeyPatch, settings: Any
) -> None:
    """The second run is claimed with the first, but starts only after the first's long step:
    the keeper extends its lease meanwhile, so another worker cannot take it for a dead one's."""
    settings.DJANGO_INNGEST_THREADS_PER_WORKER = 1
    settings.DJANGO_INNGEST_LEASE_SECONDS = 0.6
    taken: list[object] = []
    attempts: list[int] = []

    @inngest.create_function(fn_id="slow", trigger=TriggerEvent(event="b/slow"))
    def slow(ctx: Context) -> None:
        def work() -> None:
            if ctx.event.data["i"] == 0:
                threading.Event().wait(1.5)  # two and a half leases
                second = FunctionRun.objects.exclude(pk=ctx.run_id).get()
                taken.append(claim_again(second.run_id, "another worker"))
            attempts.append(ctx.attempt)

        ctx.step.run("s", work)

    ids = queued_runs(inngest, "b/slow", 2, monkeypatch)
    assert worker.advance_many(ids) == dict.fromkeys(ids, "completed")
    assert taken == [None]
    assert attempts == [0, 0]  # nothing was charged to a "crash"


def test_a_cancel_after_the_handler_returned_wins_over_the_pending_completion(
    inngest: Inngest, monkeypatch: pytest.MonkeyPatch
) -> None:
    @inngest.create_function(fn_id="one", trigger=TriggerEvent(event="b/one"))
    def one(ctx: Context) -> str:
        return "done"

    ids = queued_runs(inngest, "b/one", 2, monkeypatch)
    real_flush = Completions.flush

    def cancel_first_then_flush(self: Completions) -> dict[str, str]:
        if FunctionRun.objects.filter(pk=ids[0], status=RunStatus.RUNNING).exists():
            cancel_run(ids[0], reason="between return and end")
        return real_flush(self)

    monkeypatch.setattr(Completions, "flush", cancel_first_then_flush)
    assert worker.advance_many(ids) == {ids[0]: "abandoned", ids[1]: "completed"}
    first, second = FunctionRun.objects.get(pk=ids[0]), FunctionRun.objects.get(pk=ids[1])
    assert (first.status, first.output) == (RunStatus.CANCELLED, None)
    assert (second.status, second.output) == (RunStatus.COMPLETED, "done")
    statuses = {
        e.data["run_id"]: e.data["_inngest"]["status"]
        for e in StoredEvent.objects.filter(name="inngest/function.finished")
    }
    assert statuses == {ids[0]: "Cancelled", ids[1]: "Completed"}  # one end each


def test_a_long_run_does_not_hold_back_the_end_of_a_completed_one(
    inngest: Inngest, monkeypatch: pytest.MonkeyPatch, settings: Any
) -> None:
    """Ends are written between runs, and by a timer while the worker is busy in a long run:
    the first run is Completed while the second is still in its step."""
    settings.DJANGO_INNGEST_THREADS_PER_WORKER = 1
    seen: list[str] = []

    @inngest.create_function(fn_id="one", trigger=TriggerEvent(event="b/one"))
    def one(ctx: Context) -> None:
        def step() -> None:
            if ctx.event.data["i"] == 1:
                first = FunctionRun.objects.exclude(pk=ctx.run_id).get()
                deadline = time.monotonic() + 3
                while first.status != RunStatus.COMPLETED and time.monotonic() < deadline:
                    threading.Event().wait(0.02)
                    first.refresh_from_db()
                seen.append(first.status)

        ctx.step.run("s", step)

    ids = queued_runs(inngest, "b/one", 2, monkeypatch)
    assert worker.advance_many(ids) == dict.fromkeys(ids, "completed")
    assert seen == [RunStatus.COMPLETED]


def test_a_task_does_not_return_while_a_late_end_is_being_written(
    inngest: Inngest, monkeypatch: pytest.MonkeyPatch, settings: Any
) -> None:
    """django-q2 may recycle a worker once its task returns: the timer's write in flight is
    waited for, not cut off."""
    settings.DJANGO_INNGEST_THREADS_PER_WORKER = 1
    real = Completions._write

    def slow_from_the_timer(self: Completions, pending: Any) -> None:
        if isinstance(threading.current_thread(), threading.Timer):
            threading.Event().wait(0.5)  # outside its transaction: it holds no lock meanwhile
        real(self, pending)

    monkeypatch.setattr(Completions, "_write", slow_from_the_timer)

    @inngest.create_function(fn_id="one", trigger=TriggerEvent(event="b/one"))
    def one(ctx: Context) -> None:
        if ctx.event.data["i"] == 1:
            ctx.step.run("s", lambda: threading.Event().wait(0.25))

    ids = queued_runs(inngest, "b/one", 2, monkeypatch)
    assert worker.advance_many(ids) == dict.fromkeys(ids, "completed")
    assert FunctionRun.objects.filter(status=RunStatus.COMPLETED).count() == 2


def test_a_run_that_cannot_end_does_not_keep_the_others_from_ending(
    inngest: Inngest, monkeypatch: pytest.MonkeyPatch, settings: Any
) -> None:
    from django_inngest.engine import completions

    settings.DJANGO_INNGEST_THREADS_PER_WORKER = 1

    @inngest.create_function(fn_id="one", trigger=TriggerEvent(event="b/one"))
    def one(ctx: Context) -> int:
        return int(ctx.event.data["i"])

    ids = queued_runs(inngest, "b/one", 3, monkeypatch)
    real = completions.after_runs_ended

    def fails_for_the_second(runs: list[FunctionRun], **kwargs: Any) -> None:
        if any(run.run_id == ids[1] for run in runs):
            raise RuntimeError("a receiver or trigger bug")
        real(runs, **kwargs)

    monkeypatch.setattr(completions, "after_runs_ended", fails_for_the_second)
    outcomes = worker.advance_many(ids)
    assert outcomes == {ids[0]: "completed", ids[1]: "error", ids[2]: "completed"}
    statuses = dict(FunctionRun.objects.values_list("run_id", "status"))
    # The failed end rolled back whole; the run keeps its lease and will be recovered.
    assert statuses == {ids[0]: "Completed", ids[1]: "Running", ids[2]: "Completed"}
    finished = StoredEvent.objects.filter(name="inngest/function.finished")
    assert sorted(e.data["run_id"] for e in finished) == sorted([ids[0], ids[2]])


def test_a_batch_hands_back_the_runs_it_has_no_time_for(
    inngest: Inngest, monkeypatch: pytest.MonkeyPatch, settings: Any
) -> None:
    """After INVOCATION_BUDGET_SECONDS a task starts no new run: the rest go back to Queued and
    are dispatched again, so a batch of long runs never outlives django-q2's timeout."""
    settings.DJANGO_INNGEST_THREADS_PER_WORKER = 1
    settings.DJANGO_INNGEST_INVOCATION_BUDGET_SECONDS = 0.2

    @inngest.create_function(fn_id="long", trigger=TriggerEvent(event="b/long"))
    def long(ctx: Context) -> None:
        ctx.step.run("s", lambda: threading.Event().wait(0.3))

    ids = queued_runs(inngest, "b/long", 3, monkeypatch)
    dispatched: list[str] = []
    monkeypatch.setattr("django_inngest.executor.dispatch", dispatched.extend)
    outcomes = worker.advance_many(ids)
    assert outcomes == {ids[0]: "completed", ids[1]: "deferred", ids[2]: "deferred"}
    assert dispatched == ids[1:]
    for run in FunctionRun.objects.filter(pk__in=ids[1:]):
        assert (run.status, run.lease_owner, run.started_at) == (RunStatus.QUEUED, "", None)
    # The next task takes them up as new runs.
    assert worker.advance_many(ids[1:]) == {ids[1]: "completed", ids[2]: "deferred"}
    assert worker.advance_many(ids[2:]) == {ids[2]: "completed"}
    assert FunctionRun.objects.filter(status=RunStatus.COMPLETED).count() == 3


# -- threads --------------------------------------------------------------------------------


def test_threads_for() -> None:
    from django.db import transaction

    if connection.vendor == "sqlite":
        assert threads_for(10) == 1  # SQLite serialises writers: one at a time
        return
    assert threads_for(1) == 1
    assert threads_for(3) == 3
    assert threads_for(50) == 4  # THREADS_PER_WORKER's default
    with transaction.atomic():
        assert threads_for(50) == 1  # other connections could not see this transaction


@pytest.mark.skipif("connection.vendor == 'sqlite'")
def test_a_worker_advances_several_runs_at_once_on_postgresql(
    inngest: Inngest, monkeypatch: pytest.MonkeyPatch, settings: Any
) -> None:
    settings.DJANGO_INNGEST_THREADS_PER_WORKER = 3
    inside = threading.Semaphore(0)
    together = threading.Barrier(3, timeout=10)
    threads: set[str] = set()

    @inngest.create_function(fn_id="meet", trigger=TriggerEvent(event="b/meet"))
    def meet(ctx: Context) -> int:
        def step() -> int:
            threads.add(threading.current_thread().name)
            if ctx.event.data["i"] < 3:
                together.wait()  # only passes if three runs are in their step at once
            inside.release()
            return int(ctx.event.data["i"])

        return ctx.step.run("s", step)  # type: ignore[no-any-return]

    ids = queued_runs(inngest, "b/meet", 6, monkeypatch)
    assert worker.advance_many(ids) == dict.fromkeys(ids, "completed")
    assert len(threads) == 3 and all(name.startswith("inngest-run") for name in threads)
    assert StepRun.objects.filter(status="Completed").count() == 6
    assert sorted(FunctionRun.objects.values_list("output", flat=True)) == list(range(6))


# -- hand-written statements ----------------------------------------------------------------


def test_insert_rows_stores_what_the_orm_reads_back() -> None:
    now = timezone.now()
    events = [
        StoredEvent(
            internal_id=f"01JDJKGTGDVV4DTXHY6XYB7B{i:02d}",
            name=f"b/é{i}",
            data={"nested": {"list": [1, 2.5, None, True]}, "text": "quote ' \" \\ ✓"},
            user={"id": i},
            external_id="" if i else "sender-id",
            ts=1_700_000_000_000 + i,
            v="2024-01-01.1",
            received_at=now,
        )
        for i in range(3)
    ]
    insert_rows(events)
    for event in events:
        stored = StoredEvent.objects.get(pk=event.pk)
        assert stored.as_payload() == event.as_payload()
        assert stored.received_at == now
        assert stored.is_duplicate is False


def test_candidate_listeners_are_the_unexpired_ones_of_those_names_with_a_matching_or_no_key(
    inngest: Inngest, monkeypatch: pytest.MonkeyPatch
) -> None:
    from datetime import timedelta

    noop_function(inngest)

    (run_id,) = queued_runs(inngest, "b/one", 1, monkeypatch)
    now = timezone.now()
    for index, (name, key, ttl) in enumerate(
        [("a", "k1", 60), ("a", "k2", 60), ("a", None, 60), ("b", "k1", 60), ("c", "k1", 60),
         ("a", "k1", -1), ("b", None, 60)]
    ):  # fmt: skip
        Listener.objects.create(
            kind="cancel" if index % 2 else "wait",
            run_id=run_id,
            step_id=f"step-{index}",
            event_name=name,
            expression=f"async.data.n == {index}",
            match_key=key,
            trigger_event_id="01JDJKGTGDVV4DTXHY6XYB7BKK",
            expires_at=now + timedelta(seconds=ttl),
            created_at=now + timedelta(milliseconds=7 - index),  # newest first by id
        )
    rows = list(Listener.objects.all())
    for names, keys in [({"a", "b"}, {"k1"}), ({"a"}, set()), ({"c", "a"}, {"k1", "k2"})]:
        found = list(Listener.objects.candidates(names, keys, now))
        expected = sorted(
            (
                x
                for x in rows
                if x.event_name in names
                and x.expires_at > now
                and (x.match_key is None or x.match_key in keys)
            ),
            key=lambda x: (x.created_at, x.pk),
        )
        assert [x.pk for x in found] == [x.pk for x in expected]
        assert found  # each case finds something: the test is not vacuous


def test_end_completed_writes_only_runs_still_under_that_lease(
    inngest: Inngest, monkeypatch: pytest.MonkeyPatch
) -> None:
    noop_function(inngest)

    a, b, c = queued_runs(inngest, "b/one", 3, monkeypatch)
    FunctionRun.objects.filter(pk__in=[a, b]).update(status=RunStatus.RUNNING, lease_owner="me")
    FunctionRun.objects.filter(pk=c).update(status=RunStatus.RUNNING, lease_owner="someone else")
    now = timezone.now()
    written = FunctionRun.objects.end_completed(
        [
            Completion(a, "me", now, {"big": "x" * 1000}),
            Completion(b, "me", now, None),
            Completion(c, "me", now, 3),
        ],
        now,
    )
    assert written == {a, b}
    rows = {r.pk: r for r in FunctionRun.objects.all()}
    assert (rows[a].status, rows[a].output, rows[a].ended_at) == (
        "Completed",
        {"big": "x" * 1000},
        now,
    )
    assert (rows[b].status, rows[b].output, rows[b].lease_owner) == ("Completed", None, "")
    assert (rows[c].status, rows[c].output, rows[c].ended_at) == ("Running", None, None)


def test_a_run_whose_output_is_larger_than_an_event_still_ends(
    inngest: Inngest, settings: Any
) -> None:
    """function.finished carries the output; it is the engine's event, not held to the
    event-size limit that applies to senders."""
    settings.DJANGO_INNGEST_MAX_EVENT_BYTES = 1024

    @inngest.create_function(fn_id="big", trigger=TriggerEvent(event="b/big"))
    def big(ctx: Context) -> str:
        return "x" * 5000

    inngest.send_sync(Event(name="b/big"))
    run = FunctionRun.objects.get()
    assert (run.status, run.output) == (RunStatus.COMPLETED, "x" * 5000)
    finished = StoredEvent.objects.get(name="inngest/function.finished")
    assert finished.data["result"] == "x" * 5000
