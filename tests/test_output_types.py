"""``Inngest(serializer=PydanticSerializer())`` with ``output_type=``: non-JSON outputs (pydantic
models) are stored as JSON and handed back as objects, in ``step.run`` (sync and async), the
function's own output, and ``step.invoke`` (with the child's ``output_type``), as in inngest-py.
"""

from __future__ import annotations

from typing import Any

import pydantic
import pytest

from django_inngest import Context, ContextSync, Event, Inngest, PydanticSerializer, TriggerEvent
from django_inngest.models import RunStatus
from django_inngest.registry import FunctionRegistry
from django_inngest.testing import drain
from tests.helpers import only_run

pytestmark = pytest.mark.django_db(transaction=True)


class User(pydantic.BaseModel):
    id: int
    name: str


@pytest.fixture
def client(isolated_registry: FunctionRegistry) -> Inngest:
    return Inngest(app_id="test-app", serializer=PydanticSerializer())


def test_step_run_and_function_outputs_round_trip_through_the_serializer(client: Inngest) -> None:
    seen: list[Any] = []

    async def load(user_id: int) -> User:
        return User(id=user_id, name="Ada")

    @client.create_function(fn_id="users", trigger=TriggerEvent(event="t/users"), output_type=User)
    async def fn(ctx: Context) -> User:
        user = await ctx.step.run("load", load, 1, output_type=User)
        seen.append(user)
        return user

    client.send_sync(Event(name="t/users"))
    run = only_run("test-app-users")
    assert run.status == RunStatus.COMPLETED, run.error
    assert run.steps.get().output == {"id": 1, "name": "Ada"}  # stored as JSON
    assert run.output == {"id": 1, "name": "Ada"}
    assert seen == [User(id=1, name="Ada")]  # handed back as the model


def test_invoke_returns_the_childs_output_type(client: Inngest) -> None:
    @client.create_function(fn_id="child", trigger=TriggerEvent(event="t/never"), output_type=User)
    def child(ctx: ContextSync) -> User:
        return User(id=ctx.event.data["id"], name="Grace")

    @client.create_function(fn_id="parent", trigger=TriggerEvent(event="t/parent"))
    def parent(ctx: ContextSync) -> str:
        user = ctx.step.invoke("get", function=child, data={"id": 7})
        assert isinstance(user, User)
        replayed = ctx.step.run("again", lambda: User(id=8, name="Lin"), output_type=User)
        return f"{user.name} {replayed.name}"

    client.send_sync(Event(name="t/parent"))
    drain()
    run = only_run("test-app-parent")
    assert (run.status, run.output) == (RunStatus.COMPLETED, "Grace Lin"), run.error
