"""Start and stop real ``manage.py qcluster`` processes for integration tests and benchmarks."""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent


class QCluster:
    """A ``qcluster`` in its own process group, so that ``kill -9`` can take all of it."""

    def __init__(self, settings_module: str, env: dict[str, str] | None = None) -> None:
        self.lines: list[str] = []
        self.process = subprocess.Popen(
            [sys.executable, "-m", "django", "qcluster"],
            cwd=ROOT,
            env={
                **os.environ,
                "DJANGO_SETTINGS_MODULE": settings_module,
                "PYTHONPATH": str(ROOT),
                "PYTHONUNBUFFERED": "1",
                **(env or {}),
            },
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
            start_new_session=True,
        )
        self._pump_thread = threading.Thread(target=self._pump, daemon=True)
        self._pump_thread.start()

    def _pump(self) -> None:
        assert self.process.stdout is not None
        # Closed here at EOF (the cluster is gone), so no pipe outlives the test unclosed.
        with self.process.stdout as output:
            for line in output:
                self.lines.append(line.rstrip())

    def _reap(self) -> None:
        self.process.wait(timeout=10)
        self._pump_thread.join(timeout=10)

    def wait_ready(self, workers: int = 1, timeout: float = 60) -> None:
        wait_until(
            lambda: sum("ready for work" in line for line in self.lines) >= workers,
            timeout,
            f"qcluster start; output:\n{self.output()}",
        )

    def output(self) -> str:
        return "\n".join(self.lines[-60:])

    def kill9(self) -> None:
        """SIGKILL the whole cluster: main process, sentinel, pusher, monitor and workers."""
        if self.process.poll() is None:
            os.killpg(self.process.pid, signal.SIGKILL)
        self._reap()

    def stop(self) -> None:
        """SIGTERM the main process only (django-q2's stop procedure drains its children; a
        SIGTERM to every process at once kills the sentinel mid-handshake and hangs the stop),
        then SIGKILL whatever is left of the group."""
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            with contextlib.suppress(subprocess.TimeoutExpired):
                self.process.wait(timeout=15)
        with contextlib.suppress(ProcessLookupError):
            os.killpg(self.process.pid, signal.SIGKILL)
        self._reap()


def wait_until(condition: Callable[[], Any], timeout: float, what: str) -> Any:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = condition()
        if value:
            return value
        time.sleep(0.05)
    raise AssertionError(f"timed out after {timeout}s waiting for {what}")
