"""System checks: one test per ID, through Django's check framework."""

from __future__ import annotations

from io import StringIO
from typing import Any

import pytest
from django.apps import apps
from django.core.checks import Error, Warning, run_checks
from django.core.management import call_command

from django_inngest import Cancel, Context, Inngest, TriggerEvent
from django_inngest.checks import check_functions, check_integration, check_settings
from django_inngest.exceptions import ConfigurationError, FunctionAlreadyRegisteredError
from django_inngest.registry import FunctionRegistry


def handler(ctx: Context) -> None:
    return None


def messages() -> list[Any]:
    return list(run_checks(tags=["django_inngest"]))


def ids() -> list[str]:
    return [m.id for m in messages()]


def only(check_id: str) -> Any:
    found = [m for m in messages() if m.id == check_id]
    assert len(found) == 1, [m.id for m in messages()]
    return found[0]


# The check command runs the database checks too (Django >= 6.1 does by default, on every
# alias), so it needs the test database; run_checks(tags=...) above does not.
@pytest.mark.django_db
def test_real_configuration_passes_every_check() -> None:
    assert messages() == []
    out = StringIO()
    call_command("check", stdout=out)
    assert "System check identified no issues" in out.getvalue()


@pytest.mark.django_db
def test_check_command_fails_on_an_inngest_error(settings: Any) -> None:
    from django.core.management.base import SystemCheckError

    settings.DJANGO_INNGEST_MAX_EVENT_BYTES = "big"
    with pytest.raises(SystemCheckError, match=r"django_inngest\.E001"):
        call_command("check", stdout=StringIO(), stderr=StringIO())


# -- E001, E002: settings --------------------------------------------------------------------


def test_e001_wrong_type_setting(settings: Any) -> None:
    settings.DJANGO_INNGEST_MAX_EVENT_BYTES = "big"
    error = only("django_inngest.E001")
    assert isinstance(error, Error)
    assert "DJANGO_INNGEST_MAX_EVENT_BYTES must be int, not str" in error.msg
    assert error.hint


@pytest.mark.parametrize(
    ("name", "value"),
    [
        ("MAX_EVENTS_PER_REQUEST", True),  # a bool is not an int here
        ("LEASE_SECONDS", "30"),
        ("AUTODISCOVER_MODULE", 1),
        ("EVENT_KEYS", "test-event-key"),  # a bare string, not a list
        ("SIGNING_KEY", None),
        ("STOP_GRACE_SECONDS", "1"),
        ("FUNCTION_NOT_FOUND_GRACE_SECONDS", None),
    ],
)
def test_e001_each_setting_is_type_checked(settings: Any, name: str, value: Any) -> None:
    setattr(settings, f"DJANGO_INNGEST_{name}", value)
    errors = [m for m in check_settings() if m.id == "django_inngest.E001"]
    assert len(errors) == 1
    assert f"DJANGO_INNGEST_{name}" in errors[0].msg


@pytest.mark.parametrize(
    ("name", "value"),
    [
        ("LEASE_SECONDS", 10),
        ("LEASE_SECONDS", 2.5),
        ("Q_CLUSTER_NAME", "q"),
        ("EVENT_KEYS", ("k",)),
    ],
)
def test_e001_accepts_allowed_types(settings: Any, name: str, value: Any) -> None:
    setattr(settings, f"DJANGO_INNGEST_{name}", value)
    assert check_settings() == []


@pytest.mark.parametrize("keys", [["ok", 3], ["ok", ""], [None]])
def test_e002_event_keys_must_be_strings(settings: Any, keys: list[Any]) -> None:
    settings.DJANGO_INNGEST_EVENT_KEYS = keys
    error = only("django_inngest.E002")
    assert isinstance(error, Error)
    assert "EVENT_KEYS" in error.msg
    assert "django_inngest.E001" not in ids()


@pytest.mark.parametrize(
    ("name", "value", "problem"),
    [
        ("THREADS_PER_WORKER", 0, "must be at least 1"),
        ("DISPATCH_BATCH_SIZE", -5, "must be at least 1"),
        ("LEASE_SECONDS", 0, "must be greater than 0"),
        ("TIMER_POLL_SECONDS", -0.5, "must be greater than 0"),
        ("DEFAULT_RETRIES", 21, "must be at most 20"),
        ("MAX_EVENT_BYTES", 0, "must be at least 1"),
        ("STOP_GRACE_SECONDS", -1, "must be at least 0"),
        ("STOP_GRACE_SECONDS", 3601, "must be at most 3600"),
        ("FUNCTION_NOT_FOUND_GRACE_SECONDS", -0.5, "must be at least 0"),
        ("FUNCTION_NOT_FOUND_GRACE_SECONDS", 604801, "must be at most 604800"),
    ],
)
def test_e003_numeric_setting_out_of_range(
    settings: Any, name: str, value: Any, problem: str
) -> None:
    setattr(settings, f"DJANGO_INNGEST_{name}", value)
    error = only("django_inngest.E003")
    assert f"DJANGO_INNGEST_{name} {problem}, not {value!r}." == error.msg
    assert error.hint
    assert "django_inngest.E001" not in ids()


@pytest.mark.parametrize(
    ("name", "value"),
    [
        ("THREADS_PER_WORKER", 1),
        ("DEFAULT_RETRIES", 0),
        ("DEFAULT_RETRIES", 20),
        ("LEASE_SECONDS", 0.5),
        ("STOP_GRACE_SECONDS", 0),
        ("STOP_GRACE_SECONDS", 3600),
        ("FUNCTION_NOT_FOUND_GRACE_SECONDS", 0),
        ("FUNCTION_NOT_FOUND_GRACE_SECONDS", 7 * 24 * 3600),
    ],
)
def test_e003_accepts_the_bounds(settings: Any, name: str, value: Any) -> None:
    setattr(settings, f"DJANGO_INNGEST_{name}", value)
    assert check_settings() == []


# -- E010, W001: integration -----------------------------------------------------------------


def test_e010_django_q_not_installed(monkeypatch: pytest.MonkeyPatch) -> None:
    is_installed = apps.is_installed
    monkeypatch.setattr(
        apps, "is_installed", lambda name: name != "django_q" and is_installed(name)
    )
    error = only("django_inngest.E010")
    assert isinstance(error, Error)
    assert "django_q" in error.msg
    assert [m.id for m in check_integration()] == ["django_inngest.E010"]


def test_w001_no_functions(isolated_registry: FunctionRegistry) -> None:
    warning = only("django_inngest.W001")
    assert isinstance(warning, Warning)
    assert "inngest_functions.py" in warning.hint


def test_w001_not_raised_when_a_duplicate_is_the_problem(
    isolated_registry: FunctionRegistry,
) -> None:
    isolated_registry.errors.append(FunctionAlreadyRegisteredError("dup"))
    assert "django_inngest.W001" not in ids()
    assert "django_inngest.E021" in ids()


def test_no_w001_once_a_function_exists(inngest: Inngest) -> None:
    inngest.create_function(fn_id="f", trigger=TriggerEvent(event="t/f"))(handler)
    assert ids() == []


# -- E020, E021, E022: functions -------------------------------------------------------------


def test_e020_invalid_trigger_expression(inngest: Inngest) -> None:
    function = inngest.create_function(
        fn_id="bad-trigger",
        trigger=[
            TriggerEvent(event="t/ok", expression="event.data.plan == 'pro'"),
            TriggerEvent(event="t/bad", expression="event.data.plan == "),
        ],
    )(handler)
    error = only("django_inngest.E020")
    assert isinstance(error, Error)
    assert "'test-app-bad-trigger'" in error.msg
    assert "trigger 't/bad' expression" in error.msg
    # Shows where parsing failed.
    assert "line 1, column" in error.msg
    assert "^" in error.msg
    assert error.obj == function.source


def test_e020_trigger_expression_may_not_use_async(inngest: Inngest) -> None:
    inngest.create_function(
        fn_id="f", trigger=TriggerEvent(event="t/f", expression="async.data.id == 'x'")
    )(handler)
    error = only("django_inngest.E020")
    assert "async" in error.msg


def test_e020_invalid_cancel_if_exp(inngest: Inngest) -> None:
    inngest.create_function(
        fn_id="bad-cancel",
        trigger=TriggerEvent(event="t/start"),
        cancel=[
            Cancel(event="t/ok", if_exp="event.data.id == async.data.id"),
            Cancel(event="t/stop", if_exp="event.data.id === async.data.id"),
        ],
    )(handler)
    error = only("django_inngest.E020")
    assert "cancel rule 't/stop' if_exp" in error.msg
    assert "line 1, column" in error.msg
    assert "^" in error.msg


def test_valid_expressions_pass(inngest: Inngest) -> None:
    inngest.create_function(
        fn_id="ok",
        trigger=TriggerEvent(event="t/start", expression="event.data.n > 1 && has(event.data.x)"),
        cancel=[Cancel(event="t/stop", match="data.id"), Cancel(event="t/stop2", if_exp="true")],
    )(handler)
    assert check_functions() == []


def test_e021_duplicate_function_id(isolated_registry: FunctionRegistry) -> None:
    isolated_registry.errors.append(
        FunctionAlreadyRegisteredError("Function ID 'app-x' is defined twice: by a.f and by b.g")
    )
    error = only("django_inngest.E021")
    assert isinstance(error, Error)
    assert error.msg == "Function ID 'app-x' is defined twice: by a.f and by b.g"


def test_more_than_five_cancel_rules_are_refused_at_definition(inngest: Inngest) -> None:
    """Formerly check E022: refused when the function is defined, as Inngest's sync does."""
    with pytest.raises(ConfigurationError, match=r"six: cancel has 6 rules.*at most 5"):
        inngest.create_function(
            fn_id="six",
            trigger=TriggerEvent(event="t/start"),
            cancel=[Cancel(event=f"t/stop{i}") for i in range(6)],
        )
    assert "django_inngest.E022" not in ids()


def test_e020_flow_control_keys_must_be_valid_cel_over_event(inngest: Inngest) -> None:
    from django_inngest.flow_control.options import Concurrency, Priority

    function = inngest.create_function(
        fn_id="flow-keys",
        trigger=TriggerEvent(event="t/f"),
        concurrency=[Concurrency(limit=1, key="event.data.account ==")],
        priority=Priority(run="async.data.level"),
    )(handler)
    errors = [m for m in messages() if m.id == "django_inngest.E020"]
    assert {e.msg.split(":")[1].strip() for e in errors} == {
        "concurrency[0].key is not valid CEL",
        "priority.run is not valid CEL",
    }
    key_error = next(e for e in errors if "concurrency[0].key" in e.msg)
    assert "line 1, column" in key_error.msg and "^" in key_error.msg  # where parsing failed
    assert "unknown variable 'async'" in next(e for e in errors if "priority" in e.msg).msg
    assert all(e.obj == function.source for e in errors)


class _SplitRouter:
    """Sends run rows to another database than the rest of django_inngest's tables."""

    def db_for_write(self, model: Any, **hints: Any) -> str | None:
        return "elsewhere" if model.__name__ == "FunctionRun" else None

    def db_for_read(self, model: Any, **hints: Any) -> str | None:
        return self.db_for_write(model)


def test_e011_our_models_split_across_databases(settings: Any) -> None:
    assert "django_inngest.E011" not in [m.id for m in check_integration()]
    settings.DATABASE_ROUTERS = [_SplitRouter()]
    (error,) = [m for m in check_integration() if m.id == "django_inngest.E011"]
    assert "FunctionRun: ['elsewhere']" in error.msg and "StepRun: ['default']" in error.msg
    assert "one transaction" in error.hint


def test_the_engine_writes_through_the_alias_our_models_route_to(settings: Any) -> None:
    from django_inngest import database

    assert database.alias() == "default"
    settings.DATABASE_ROUTERS = [_SplitRouter()]
    assert database.alias() == "elsewhere"  # hand-written SQL and transactions follow it
