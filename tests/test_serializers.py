"""``Serializer``/``PydanticSerializer`` and the output_type rules, against inngest-py's."""

from __future__ import annotations

import datetime
import json

import pydantic
import pytest

from django_inngest import PydanticSerializer, Serializer
from django_inngest.exceptions import ConfigurationError
from django_inngest.serializers import (
    OUTPUT_TYPE_UNSET,
    check_serializer,
    deserialize_output,
    serialize_output,
)


class Order(pydantic.BaseModel):
    id: int
    placed_at: datetime.datetime
    lines: list[str]


ORDER = Order(id=7, placed_at=datetime.datetime(2025, 1, 2, 3, 4, 5), lines=["a", "b"])


@pytest.mark.parametrize(
    ("value", "typ"),
    [(ORDER, Order), ([ORDER, ORDER], list[Order]), (datetime.date(2025, 1, 2), datetime.date)],
)
def test_pydantic_serializer_matches_inngest_py(value: object, typ: object) -> None:
    import inngest

    ours, theirs = PydanticSerializer(), inngest.PydanticSerializer()
    stored = ours.serialize(value, typ)
    assert stored == theirs.serialize(value, typ)
    json.dumps(stored)  # what is stored is plain JSON
    assert ours.deserialize(stored, typ) == value == theirs.deserialize(stored, typ)


def test_a_bad_value_fails_deserialization() -> None:
    with pytest.raises(pydantic.ValidationError):
        PydanticSerializer().deserialize({"id": "not a number"}, Order)


def test_values_pass_through_without_a_serializer_or_a_type() -> None:
    serializer = PydanticSerializer()
    assert serialize_output(None, ORDER, Order) is ORDER
    assert serialize_output(serializer, ORDER, OUTPUT_TYPE_UNSET) is ORDER
    assert serialize_output(serializer, ORDER, None) is ORDER
    assert deserialize_output(serializer, {"x": 1}, OUTPUT_TYPE_UNSET) == {"x": 1}
    assert deserialize_output(None, {"x": 1}, Order) == {"x": 1}
    stored = serialize_output(serializer, ORDER, Order)
    assert stored == {"id": 7, "placed_at": "2025-01-02T03:04:05", "lines": ["a", "b"]}
    assert deserialize_output(serializer, stored, Order) == ORDER


def test_any_object_with_both_methods_is_a_serializer() -> None:
    class Upper:
        def serialize(self, obj: object, typ: object) -> object:
            return str(obj).upper()

        def deserialize(self, obj: object, typ: object) -> object:
            return str(obj).lower()

    upper = check_serializer(Upper())
    assert isinstance(upper, Serializer)
    assert serialize_output(upper, "abc", str) == "ABC"
    assert check_serializer(None) is None
    with pytest.raises(ConfigurationError, match="must have serialize"):
        check_serializer(object())
