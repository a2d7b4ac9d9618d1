"""Output serializers: inngest-py's ``Serializer`` protocol and ``PydanticSerializer``.

A client made with ``Inngest(serializer=...)`` turns step and function outputs that are not
JSON (a pydantic model, say) into JSON before they are stored, and back into Python objects when
they are returned to the handler. The type to turn them back into is the ``output_type=`` given to
``step.run`` or ``create_function``; without an ``output_type`` (or without a serializer) values
pass through untouched, exactly as in inngest-py (``client_lib/client.py`` ``_serialize`` and
``_deserialize``).

Where the engine applies them (see ``docs/porting-notes.md``):

- ``step.run``: ``serialize_output`` on the handler's return value before the memo is stored;
  ``deserialize_output`` on the memo every time ``step.run`` returns it, including the first time.
- the function's return value: ``serialize_output`` with ``create_function(output_type=...)``.
- ``step.invoke``: ``deserialize_output`` of the child's output with the child's ``output_type``.
"""

from __future__ import annotations

import threading
from collections import OrderedDict
from collections.abc import Hashable
from typing import Any, Protocol, runtime_checkable

from django_inngest.exceptions import ConfigurationError


class _Unset:
    """The default ``output_type``: no type given, so nothing is (de)serialized."""

    _instance: _Unset | None = None

    def __new__(cls) -> _Unset:
        if cls._instance is None:
            cls._instance = super().__new__(cls)
        return cls._instance

    def __repr__(self) -> str:
        return "OUTPUT_TYPE_UNSET"


#: inngest-py's ``types.EmptySentinel`` in the role of "no output_type".
OUTPUT_TYPE_UNSET: Any = _Unset()


@runtime_checkable
class Serializer(Protocol):
    """Turns Python objects into JSON values and back (inngest-py ``serializer_lib.py``)."""

    def serialize(self, obj: object, typ: object) -> object:
        """Serialize a Python object into a JSON value (dict, list, str, None, ...)."""
        ...

    def deserialize(self, obj: object, typ: object) -> object:
        """Turn a JSON value back into an object of type ``typ``."""
        ...


class PydanticSerializer:
    """Serializes with pydantic ``TypeAdapter``s: models, dataclasses, datetimes, ``list[Model]``.

    pydantic is not a dependency of django_inngest; it is imported when first needed.
    """

    _CACHE_SIZE = 512

    def __init__(self) -> None:
        # TypeAdapter registers each type globally in pydantic, so build one per type, bounded.
        self._adapters: OrderedDict[Hashable, Any] = OrderedDict()
        self._lock = threading.Lock()

    def serialize(self, obj: object, typ: object) -> object:
        return self._adapter(typ).dump_python(obj, mode="json")

    def deserialize(self, obj: object, typ: object) -> object:
        return self._adapter(typ).validate_python(obj)

    def _adapter(self, typ: object) -> Any:
        try:
            from pydantic import TypeAdapter
        except ImportError:  # pragma: no cover - pydantic is installed with the test extras
            raise ConfigurationError(
                "PydanticSerializer needs pydantic: pip install pydantic"
            ) from None
        try:
            key: Hashable = typ
            hash(key)
        except TypeError:  # e.g. Annotated[...] with unhashable metadata
            key = ("id", id(typ))
        with self._lock:
            entry = self._adapters.get(key)
            if entry is None:
                # The type is kept alongside its adapter so an id()-based key stays valid.
                entry = (TypeAdapter(typ), typ)  # type: ignore[arg-type]
                self._adapters[key] = entry
                if len(self._adapters) > self._CACHE_SIZE:
                    self._adapters.popitem(last=False)
            else:
                self._adapters.move_to_end(key)
            return entry[0]


def _is_unset(typ: object) -> bool:
    # None counts as unset too: our Step.run historically defaulted output_type to None.
    return typ is OUTPUT_TYPE_UNSET or typ is None


def serialize_output(serializer: Serializer | None, obj: object, typ: object) -> object:
    """The JSON value to store for ``obj``; ``obj`` itself without a serializer or a type."""
    if serializer is None or _is_unset(typ):
        return obj
    return serializer.serialize(obj, typ)


def deserialize_output(serializer: Serializer | None, obj: object, typ: object) -> object:
    """The Python value to hand back for the stored ``obj``; ``obj`` itself when unset."""
    if serializer is None or _is_unset(typ):
        return obj
    return serializer.deserialize(obj, typ)


def check_serializer(value: object) -> Serializer | None:
    """Validate ``Inngest(serializer=...)``: None or an object with serialize/deserialize."""
    if value is None:
        return None
    if not isinstance(value, Serializer):
        raise ConfigurationError(
            "Inngest(serializer=...) must have serialize(obj, typ) and deserialize(obj, typ) "
            f"methods, got {type(value).__name__}"
        )
    return value
