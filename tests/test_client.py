"""The ``Inngest`` client: inngest-py's public API, ``create_function`` validation and sending."""

from __future__ import annotations

import datetime
from typing import Any

import pytest
from asgiref.sync import async_to_sync

from django_inngest import Context, Inngest
from django_inngest.definitions import Cancel, TriggerCron, TriggerEvent
from django_inngest.definitions import EventValue as Event
from django_inngest.exceptions import ConfigurationError
from django_inngest.ids import is_ulid
from django_inngest.ingest.triggers import functions_triggered_by
from django_inngest.models import Event as StoredEvent
from django_inngest.models import FunctionRun, RunStatus
from django_inngest.registry import FunctionRegistry


def handler(ctx: Context) -> None:
    return None


def other_handler(ctx: Context) -> None:
    return None


# -- public API ------------------------------------------------------------------------------


def test_public_api_imports() -> None:
    import django_inngest
    from django_inngest import (
        Cancel,
        Context,
        Event,
        Inngest,
        NonRetriableError,
        RetryAfterError,
        TriggerCron,
        TriggerEvent,
    )

    assert Inngest is django_inngest.client.Inngest
    assert TriggerEvent is django_inngest.definitions.TriggerEvent
    assert TriggerCron is django_inngest.definitions.TriggerCron
    assert Cancel is django_inngest.definitions.Cancel
    assert Event is django_inngest.definitions.EventValue
    assert Context is django_inngest.engine.context.Context
    assert issubclass(NonRetriableError, Exception)
    assert issubclass(RetryAfterError, Exception)
    for name in (
        "Inngest",
        "TriggerEvent",
        "TriggerCron",
        "Cancel",
        "Event",
        "Context",
        "NonRetriableError",
        "RetryAfterError",
    ):
        assert name in django_inngest.__all__


def test_exception_signatures_match_inngest_py() -> None:
    from django_inngest import NonRetriableError, RetryAfterError

    error = NonRetriableError("nope", quiet=True)
    assert (error.message, error.quiet) == ("nope", True)
    retry = RetryAfterError("later", 1500)
    assert retry.retry_after == 1500
    assert retry.delay_seconds(datetime.datetime.now(tz=datetime.UTC)) == 1.5


def test_event_model_matches_inngest_py() -> None:
    event = Event(name="app/x", data={"a": 1}, id="sender-1", ts=1_700_000_000_000)
    assert event.to_dict() == {
        "name": "app/x",
        "data": {"a": 1},
        "id": "sender-1",
        "ts": 1_700_000_000_000,
    }
    # Empty optional fields are left out, so the server defaults them.
    assert Event(name="app/x").to_dict() == {"name": "app/x", "data": {}}


def test_connection_options_are_accepted(isolated_registry: FunctionRegistry) -> None:
    # A ported constructor with inngest-py's connection options still works.
    client = Inngest(app_id="app", event_key="k", signing_key="s", is_production=False)
    assert client.app_id == "app"


@pytest.mark.parametrize("app_id", ["", "   ", None, 5])
def test_app_id_must_be_a_non_empty_string(app_id: Any) -> None:
    with pytest.raises(ConfigurationError, match="app_id"):
        Inngest(app_id=app_id)


# -- function IDs ----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("app_id", "fn_id", "expected"),
    [
        ("newsletter-app", "import-all-contacts", "newsletter-app-import-all-contacts"),
        ("My App", "Import_All", "My App-Import_All"),
        ("django_example", "fn%$^&*(_+{|:<?☃️", "django_example-fn%$^&*(_+{|:<?☃️"),
    ],
)
def test_function_id_is_app_id_dash_fn_id_verbatim(
    isolated_registry: FunctionRegistry, app_id: str, fn_id: str, expected: str
) -> None:
    client = Inngest(app_id=app_id)
    function = client.create_function(fn_id=fn_id, trigger=TriggerEvent(event="t/x"))(handler)
    assert function.id == expected
    assert function.fn_id == fn_id
    assert function.app_id == app_id
    assert isolated_registry.get(expected) is function
    assert function.name == fn_id  # name defaults to fn_id
    assert function.config()["id"] == expected


def test_name_is_kept(inngest: Inngest) -> None:
    function = inngest.create_function(
        fn_id="imp", name="Import contacts", trigger=TriggerEvent(event="t/x")
    )(handler)
    assert function.name == "Import contacts"
    assert function.config()["name"] == "Import contacts"


def test_decorated_function_keeps_its_handler(inngest: Inngest) -> None:
    function = inngest.create_function(fn_id="h", trigger=TriggerEvent(event="t/x"))(handler)
    assert function.handler is handler
    assert "test_client.handler" in function.source


# -- create_function options -----------------------------------------------------------------


def test_unknown_option_raises_naming_it(inngest: Inngest) -> None:
    with pytest.raises(ConfigurationError, match="retry_count"):
        inngest.create_function(fn_id="f", trigger=TriggerEvent(event="t/x"), retry_count=3)
    assert inngest.registry.all() == []


@pytest.mark.parametrize(
    "option",
    [
        "batch_events",
        "concurrency",
        "debounce",
        "idempotency",
        "priority",
        "rate_limit",
        "throttle",
        "timeouts",
        "singleton",
    ],
)
def test_a_flow_option_of_the_wrong_type_raises_naming_it(inngest: Inngest, option: str) -> None:
    with pytest.raises(ConfigurationError) as excinfo:
        inngest.create_function(fn_id="f", trigger=TriggerEvent(event="t/x"), **{option: object()})
    assert option in str(excinfo.value) and "'f'" in str(excinfo.value)
    assert inngest.registry.all() == []


def test_output_type_is_accepted(inngest: Inngest) -> None:
    function = inngest.create_function(
        fn_id="f", trigger=TriggerEvent(event="t/x"), output_type=str
    )(handler)
    assert function.id == "test-app-f"


@pytest.mark.parametrize("fn_id", ["", None, 3])
def test_fn_id_must_be_a_non_empty_string(inngest: Inngest, fn_id: Any) -> None:
    with pytest.raises(ConfigurationError, match="fn_id"):
        inngest.create_function(fn_id=fn_id, trigger=TriggerEvent(event="t/x"))


@pytest.mark.parametrize("retries", [-1, 21, "3", True, 2.0])
def test_retries_out_of_bounds_or_wrong_type_raise(inngest: Inngest, retries: Any) -> None:
    with pytest.raises(ConfigurationError, match="retries"):
        inngest.create_function(fn_id="f", trigger=TriggerEvent(event="t/x"), retries=retries)


@pytest.mark.parametrize("retries", [0, 1, 20])
def test_retries_within_bounds_are_kept(inngest: Inngest, retries: int) -> None:
    function = inngest.create_function(
        fn_id="f", trigger=TriggerEvent(event="t/x"), retries=retries
    )(handler)
    assert function.retries == retries
    assert function.retry_limit == retries
    assert function.config()["steps"] == {"step": {"retries": {"attempts": retries}}}


def test_retries_default_to_the_setting(inngest: Inngest, settings: Any) -> None:
    function = inngest.create_function(fn_id="f", trigger=TriggerEvent(event="t/x"))(handler)
    assert function.retries is None
    assert function.retry_limit == 4
    settings.DJANGO_INNGEST_DEFAULT_RETRIES = 2
    assert function.retry_limit == 2


def test_non_callable_handler_raises(inngest: Inngest) -> None:
    decorator = inngest.create_function(fn_id="f", trigger=TriggerEvent(event="t/x"))
    with pytest.raises(ConfigurationError, match="callable"):
        decorator("not a function")  # type: ignore[arg-type]


# -- triggers --------------------------------------------------------------------------------


def test_trigger_cron_sits_beside_event_triggers(inngest: Inngest) -> None:
    cron = TriggerCron(cron="TZ=Europe/Paris 0 3 * * *", jitter="30s")
    function = inngest.create_function(fn_id="f", trigger=[TriggerEvent(event="t/x"), cron])(
        handler
    )
    assert function.crons == (cron,) and [t.event for t in function.triggers] == ["t/x"]
    assert function.config()["triggers"] == [
        {"event": "t/x"},
        {"cron": "TZ=Europe/Paris 0 3 * * *", "jitter": "30s"},
    ]


@pytest.mark.parametrize(
    ("cron", "jitter", "message"),
    [
        ("0 * * *", None, "TriggerCron.cron"),
        ("@daily", None, "descriptor"),
        ("0 0 * * 7", None, "TriggerCron.cron"),
        ("TZ=Mars/Olympus 0 * * * *", None, "TriggerCron.cron"),
        ("0 * * * *", "10m", "TriggerCron.jitter"),
    ],
)
def test_a_bad_cron_trigger_raises_naming_the_field(cron: str, jitter: Any, message: str) -> None:
    with pytest.raises(ConfigurationError, match=message):
        TriggerCron(cron=cron, jitter=jitter)


def test_one_cron_expression_twice_is_refused(inngest: Inngest) -> None:
    with pytest.raises(ConfigurationError, match="listed twice"):
        inngest.create_function(
            fn_id="f",
            trigger=[TriggerCron(cron="0 * * * *"), TriggerCron(cron="0 * * * *", jitter="5s")],
        )


@pytest.mark.parametrize(
    "trigger", ["t/x", {"event": "t/x"}, None, 5, [TriggerEvent(event="t/x"), "t/y"]]
)
def test_bad_trigger_types_raise(inngest: Inngest, trigger: Any) -> None:
    with pytest.raises(ConfigurationError, match="TriggerEvent or TriggerCron"):
        inngest.create_function(fn_id="f", trigger=trigger)


def test_empty_trigger_list_raises(inngest: Inngest) -> None:
    with pytest.raises(ConfigurationError, match="at least one"):
        inngest.create_function(fn_id="f", trigger=[])


def test_up_to_ten_triggers(inngest: Inngest) -> None:
    ten = [TriggerEvent(event=f"t/e{i}") for i in range(10)]
    function = inngest.create_function(fn_id="ten", trigger=ten)(handler)
    assert len(function.triggers) == 10
    assert function.config()["triggers"] == [{"event": f"t/e{i}"} for i in range(10)]
    eleven = [*ten, TriggerEvent(event="t/e10")]
    with pytest.raises(ConfigurationError, match="at most 10 triggers, got 11"):
        inngest.create_function(fn_id="eleven", trigger=eleven)


def test_single_trigger_and_tuple_are_accepted(inngest: Inngest) -> None:
    one = inngest.create_function(fn_id="one", trigger=TriggerEvent(event="t/a"))(handler)
    two = inngest.create_function(
        fn_id="two",
        trigger=(TriggerEvent(event="t/a"), TriggerEvent(event="t/b", expression="true")),
    )(handler)
    assert one.triggers == (TriggerEvent(event="t/a"),)
    assert two.config()["triggers"] == [{"event": "t/a"}, {"event": "t/b", "expression": "true"}]


@pytest.mark.parametrize("name", ["app/user.*", "app/*", "app.*", "a/b/c.*"])
def test_trailing_wildcard_is_accepted(name: str) -> None:
    assert TriggerEvent(event=name).event == name


@pytest.mark.parametrize("name", ["app/*user", "*", "app/user.*.x", "app/us*", "*/user", "app/**"])
def test_misplaced_wildcard_is_rejected(name: str) -> None:
    with pytest.raises(ConfigurationError, match="wildcard"):
        TriggerEvent(event=name)


@pytest.mark.parametrize("event", ["", "  ", None, 3])
def test_trigger_event_needs_a_name(event: Any) -> None:
    with pytest.raises(ConfigurationError, match=r"TriggerEvent\.event"):
        TriggerEvent(event=event)


def test_trigger_expression_must_be_a_string() -> None:
    with pytest.raises(ConfigurationError, match="expression"):
        TriggerEvent(event="t/x", expression=True)  # type: ignore[arg-type]


def test_wildcard_matches_names() -> None:
    trigger = TriggerEvent(event="app/user.*")
    assert trigger.matches_name("app/user.created")
    assert trigger.matches_name("app/user.deleted")
    assert not trigger.matches_name("app/users.x")
    assert not trigger.matches_name("app/user")
    assert TriggerEvent(event="app/user.created").matches_name("app/user.created")
    assert not TriggerEvent(event="app/user.created").matches_name("app/user.created2")


# -- cancel ----------------------------------------------------------------------------------


def test_cancel_if_exp_and_match_cannot_be_combined() -> None:
    with pytest.raises(ConfigurationError, match="cannot be combined"):
        Cancel(event="t/c", if_exp="event.data.id == async.data.id", match="data.id")


def test_cancel_match_becomes_an_expression() -> None:
    rule = Cancel(event="contacts/import.cancelled", match="data.importId")
    assert rule.expression == "event.data.importId == async.data.importId"
    assert rule.to_config() == {
        "event": "contacts/import.cancelled",
        "if": "event.data.importId == async.data.importId",
    }


@pytest.mark.parametrize(
    "match", ["", "data id", "1data", "data[0]", "event.data.id == 1", "data..id", "data."]
)
def test_cancel_bad_match_path_raises(match: str) -> None:
    with pytest.raises(ConfigurationError, match=r"Cancel\.match"):
        Cancel(event="t/c", match=match)


@pytest.mark.parametrize(
    "timeout", [-1, 0, datetime.timedelta(seconds=-5), datetime.timedelta(0), "1h", True]
)
def test_cancel_bad_timeout_raises(timeout: Any) -> None:
    with pytest.raises(ConfigurationError, match=r"Cancel\.timeout"):
        Cancel(event="t/c", timeout=timeout)


def test_cancel_timeout_is_milliseconds_or_timedelta() -> None:
    assert Cancel(event="t/c", timeout=90_000).window == datetime.timedelta(seconds=90)
    hour = Cancel(event="t/c", timeout=datetime.timedelta(hours=1))
    assert hour.window == datetime.timedelta(hours=1)
    assert hour.to_config() == {"event": "t/c", "timeout": "3600s"}
    # Without a timeout the listener lives 365 days, as Inngest's CancelTimeout.
    assert Cancel(event="t/c").window == datetime.timedelta(days=365)


@pytest.mark.parametrize("event", ["", None])
def test_cancel_needs_an_event(event: Any) -> None:
    with pytest.raises(ConfigurationError, match=r"Cancel\.event"):
        Cancel(event=event)


@pytest.mark.parametrize("cancel", [Cancel(event="t/c"), "t/c", [Cancel(event="t/c"), "t/d"]])
def test_cancel_must_be_a_list_of_cancel(inngest: Inngest, cancel: Any) -> None:
    with pytest.raises(ConfigurationError, match="cancel"):
        inngest.create_function(fn_id="f", trigger=TriggerEvent(event="t/x"), cancel=cancel)


def test_cancel_rules_appear_in_config(inngest: Inngest) -> None:
    function = inngest.create_function(
        fn_id="import-all-contacts",
        trigger=TriggerEvent(event="contacts/import.requested"),
        cancel=[
            Cancel(
                event="contacts/import.cancelled",
                if_exp="event.data.importId == async.data.importId",
                timeout=datetime.timedelta(minutes=30),
            )
        ],
    )(handler)
    assert function.config()["cancel"] == [
        {
            "event": "contacts/import.cancelled",
            "if": "event.data.importId == async.data.importId",
            "timeout": "1800s",
        }
    ]


# -- on_failure ------------------------------------------------------------------------------


def test_on_failure_registers_a_failure_function(inngest: Inngest) -> None:
    function = inngest.create_function(
        fn_id="import", trigger=TriggerEvent(event="t/import"), retries=3, on_failure=other_handler
    )(handler)
    failure = inngest.registry.get("test-app-import-failure")
    assert failure is not None
    assert function.on_failure is failure
    assert failure.handler is other_handler
    assert failure.failure_of == "test-app-import"
    assert failure.retries == 0
    assert failure.triggers == (
        TriggerEvent(
            event="inngest/function.failed",
            expression="event.data.function_id == 'test-app-import'",
        ),
    )
    assert sorted(f.id for f in inngest.registry.all()) == [
        "test-app-import",
        "test-app-import-failure",
    ]


def test_on_failure_function_is_triggered_only_by_its_function_failing(inngest: Inngest) -> None:
    inngest.create_function(fn_id="a", trigger=TriggerEvent(event="t/a"), on_failure=other_handler)(
        handler
    )
    inngest.create_function(fn_id="b", trigger=TriggerEvent(event="t/b"), on_failure=other_handler)(
        handler
    )

    def triggered(function_id: str) -> list[str]:
        payload = {"name": "inngest/function.failed", "data": {"function_id": function_id}}
        return [f.id for f in functions_triggered_by(payload)]

    assert triggered("test-app-a") == ["test-app-a-failure"]
    assert triggered("test-app-b") == ["test-app-b-failure"]
    assert triggered("test-app-c") == []


def test_on_failure_must_be_callable(inngest: Inngest) -> None:
    with pytest.raises(ConfigurationError, match="on_failure"):
        inngest.create_function(fn_id="f", trigger=TriggerEvent(event="t/x"), on_failure="nope")


def test_no_failure_function_without_on_failure(inngest: Inngest) -> None:
    function = inngest.create_function(fn_id="f", trigger=TriggerEvent(event="t/x"))(handler)
    assert function.on_failure is None
    assert "test-app-f-failure" not in inngest.registry


# -- sending ---------------------------------------------------------------------------------


@pytest.mark.django_db
def test_send_sync_returns_internal_event_ids(inngest: Inngest) -> None:
    ids = inngest.send_sync(
        [Event(name="t/one", data={"n": 1}, id="sender-1"), Event(name="t/two", data={"n": 2})]
    )
    assert len(ids) == 2
    assert all(is_ulid(i) for i in ids)
    assert "sender-1" not in ids
    stored = {e.internal_id: e for e in StoredEvent.objects.filter(internal_id__in=ids)}
    assert [stored[i].name for i in ids] == ["t/one", "t/two"]
    assert [stored[i].data for i in ids] == [{"n": 1}, {"n": 2}]
    assert stored[ids[0]].external_id == "sender-1"
    assert stored[ids[1]].external_id == ""


@pytest.mark.django_db
def test_send_sync_accepts_a_single_event_and_dicts(inngest: Inngest) -> None:
    (one,) = inngest.send_sync(Event(name="t/one"))
    (two,) = inngest.send_sync([{"name": "t/two", "data": {"x": 1}}])  # type: ignore[list-item]
    assert StoredEvent.objects.get(internal_id=one).name == "t/one"
    assert StoredEvent.objects.get(internal_id=two).data == {"x": 1}


def test_send_sync_rejects_other_types(inngest: Inngest) -> None:
    with pytest.raises(TypeError, match="Event"):
        inngest.send_sync(["t/x"])  # type: ignore[list-item]


@pytest.mark.django_db(transaction=True)
def test_async_send_stores_the_event_and_runs_the_function(inngest: Inngest) -> None:
    seen: list[Any] = []

    @inngest.create_function(fn_id="greet", trigger=TriggerEvent(event="t/greet"))
    def greet(ctx: Context) -> str:
        seen.append(dict(ctx.event.data))
        return f"hi {ctx.event.data['name']}"

    ids = async_to_sync(inngest.send)(Event(name="t/greet", data={"name": "ada"}))
    assert len(ids) == 1 and is_ulid(ids[0])
    event = StoredEvent.objects.get(internal_id=ids[0])
    (run,) = FunctionRun.objects.filter(function_id="test-app-greet")
    assert run.event_id == event.internal_id
    assert run.status == RunStatus.COMPLETED
    assert run.output == "hi ada"
    assert seen == [{"name": "ada"}]


def test_inngest_py_names_split_sync_and_async_as_inngest_py_does() -> None:
    import inspect

    import django_inngest as inngest

    assert inngest.ContextSync is not inngest.Context
    assert inspect.iscoroutinefunction(inngest.Step.run)
    assert not inspect.iscoroutinefunction(inngest.StepSync.run)
    assert inspect.iscoroutinefunction(inngest.Group.parallel)
    assert not inspect.iscoroutinefunction(inngest.GroupSync.parallel)
