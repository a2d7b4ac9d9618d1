"""The process-wide registry of functions, filled by autodiscovering ``inngest_functions`` modules.

It has two sources: functions defined in code (registered at import), and an attached second
source for functions that SDK apps serve over HTTP (``sdk_apps.catalog``, attached when the app is
ready). ``all()`` lists code only (what ``registrations`` syncs and checks inspect); ``get()``
and ``triggerable()`` see both, code first.
"""

from __future__ import annotations

import threading
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from importlib import import_module
from typing import Protocol

from django.apps import apps
from django.utils.module_loading import module_has_submodule

from django_inngest.conf import settings
from django_inngest.exceptions import FunctionAlreadyRegisteredError
from django_inngest.function import Function


class FunctionSource(Protocol):
    """Functions defined outside code; ``version`` changes whenever they do."""

    version: int

    def get(self, function_id: str) -> Function | None: ...

    def active(self) -> Sequence[Function]: ...

    def refresh(self) -> None: ...


class FunctionRegistry:
    """Function ID → ``Function``. Rejects a second definition of an ID, naming both."""

    def __init__(self) -> None:
        self._functions: dict[str, Function] = {}
        self._lock = threading.Lock()
        #: Duplicates met during autodiscovery; reported by system check E021.
        self.errors: list[FunctionAlreadyRegisteredError] = []
        #: Bumped on every change so caches built from the registry know when to rebuild.
        self.version = 0
        self._source: FunctionSource | None = None

    def attach_source(self, source: FunctionSource | None) -> None:
        """Add the functions ``source`` knows (SDK apps') behind the code functions."""
        self._source = source

    def register(self, function: Function) -> None:
        with self._lock:
            existing = self._functions.get(function.id)
            # Re-importing the same module (autoreload, a test re-import) re-registers the
            # same definition; only a different definition is a conflict.
            if existing is not None and existing.source != function.source:
                raise FunctionAlreadyRegisteredError(
                    f"Function ID {function.id!r} is defined twice: by {existing.source} "
                    f"and by {function.source}"
                )
            self._functions[function.id] = function
            self.version += 1

    def get(self, function_id: str) -> Function | None:
        """A code function, else one from the attached source (an ID in code always wins)."""
        function = self._functions.get(function_id)
        if function is None and self._source is not None:
            function = self._source.get(function_id)
        return function

    def triggerable(self) -> list[Function]:
        """Every function events may start: code, plus the source's active ones."""
        functions = list(self._functions.values())
        if self._source is not None:
            functions += [f for f in self._source.active() if f.id not in self._functions]
        return functions

    def trigger_version(self) -> tuple[int, int]:
        """Changes whenever ``triggerable()`` may have (the source is checked for news)."""
        if self._source is None:
            return self.version, 0
        self._source.refresh()
        return self.version, self._source.version

    def all(self) -> list[Function]:
        return list(self._functions.values())

    def __contains__(self, function_id: object) -> bool:
        return function_id in self._functions

    def unregister(self, function_id: str) -> None:
        with self._lock:
            self._functions.pop(function_id, None)
            self.version += 1

    @contextmanager
    def all_or_nothing(self) -> Iterator[None]:
        """Registrations made in the block are kept only if it completes: a module that fails
        half-way leaves none of its functions behind."""
        with self._lock:
            saved, saved_errors = dict(self._functions), list(self.errors)
        try:
            yield
        except BaseException:
            with self._lock:
                self._functions, self.errors = saved, saved_errors
                self.version += 1
            raise

    @contextmanager
    def isolated(self) -> Iterator[FunctionRegistry]:
        """Swap in an empty registry for a block (tests), without SDK apps' functions either;
        restore the previous one after."""
        with self._lock:
            saved, saved_errors, saved_source = self._functions, self.errors, self._source
            self._functions, self.errors, self._source = {}, [], None
            self.version += 1
        try:
            yield self
        finally:
            with self._lock:
                self._functions, self.errors, self._source = saved, saved_errors, saved_source
                self.version += 1


registry = FunctionRegistry()


def autodiscover() -> None:
    """Import ``<app>.<module>`` for each installed app, as Django's admin autodiscovery does.

    Each module registers all its functions or none. A duplicate function ID is kept for system
    check E021 (which stops runserver, migrate and qcluster with a clear message) and discovery
    goes on; any other error propagates, noted with the module's name.
    """
    module = settings.AUTODISCOVER_MODULE
    if not module:
        return
    for app_config in apps.get_app_configs():
        if not module_has_submodule(app_config.module, module):
            continue
        name = f"{app_config.name}.{module}"
        try:
            with registry.all_or_nothing():
                import_module(name)
        except FunctionAlreadyRegisteredError as error:
            registry.errors.append(error)
        except Exception as error:
            error.add_note(
                f"django_inngest: while importing {name} (none of its functions are registered)"
            )
            raise
