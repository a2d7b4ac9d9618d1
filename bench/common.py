"""Shared helpers: databases, Django setup, child processes, an HTTP server, statistics."""

from __future__ import annotations

import contextlib
import http.client
import json
import os
import socket
import statistics
import subprocess
import sys
import time
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
DATA_DIR = ROOT / "bench" / ".data"
DATA_DIR.mkdir(parents=True, exist_ok=True)  # a fresh clone has none
SETTINGS = "bench.settings"
PG_SERVER = os.environ.get("BENCH_PG", "postgres://postgres@127.0.0.1:5432")
REDIS_URL = os.environ.get("BENCH_REDIS_URL", "redis://127.0.0.1:6379/5")
EVENT_KEY = "bench-event-key"
RESULT_PREFIX = "BENCH-RESULT "

if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))


# -- databases -----------------------------------------------------------------------------


def pg_url(dbname: str) -> str:
    return f"{PG_SERVER}/{dbname}"


def recreate_pg(dbname: str) -> str:
    """Drop and create a PostgreSQL database; returns its URL."""
    import psycopg

    with psycopg.connect(pg_url("postgres"), autocommit=True) as conn:
        conn.execute(f'DROP DATABASE IF EXISTS "{dbname}" WITH (FORCE)')
        conn.execute(f'CREATE DATABASE "{dbname}"')
    return pg_url(dbname)


def drop_pg(dbname: str) -> None:
    import psycopg

    with psycopg.connect(pg_url("postgres"), autocommit=True) as conn:
        conn.execute(f'DROP DATABASE IF EXISTS "{dbname}" WITH (FORCE)')


def fresh_sqlite(name: str) -> Path:
    DATA_DIR.mkdir(parents=True, exist_ok=True)
    path = DATA_DIR / f"{name}.sqlite3"
    for suffix in ("", "-wal", "-shm", "-journal"):
        with contextlib.suppress(FileNotFoundError):
            Path(f"{path}{suffix}").unlink()
    return path


def db_env(kind: str, name: str) -> dict[str, str]:
    """Create an empty database of ``kind`` (sqlite or postgres); return the env selecting it."""
    if kind == "postgres":
        return {"BENCH_DATABASE_URL": recreate_pg(name)}
    if kind == "sqlite":
        return {"BENCH_DATABASE_URL": "", "BENCH_SQLITE_PATH": str(fresh_sqlite(name))}
    raise ValueError(f"unknown database kind {kind!r}")


def drop_db(kind: str, name: str) -> None:
    if kind == "postgres":
        drop_pg(name)
    else:
        fresh_sqlite(name)


def flush_redis() -> None:
    import redis

    redis.from_url(REDIS_URL).flushdb()


def child_env(extra: dict[str, str]) -> dict[str, str]:
    return {
        **os.environ,
        "DJANGO_SETTINGS_MODULE": SETTINGS,
        "PYTHONPATH": str(ROOT),
        "PYTHONUNBUFFERED": "1",
        **extra,
    }


def migrate(env: dict[str, str]) -> None:
    subprocess.run(
        [sys.executable, "-m", "django", "migrate", "--noinput", "-v", "0"],
        cwd=ROOT,
        env=child_env(env),
        check=True,
    )


def setup_django(env: dict[str, str]) -> None:
    """Configure this process (call before importing models); ``env`` picks the database."""
    os.environ.update(env)
    os.environ["DJANGO_SETTINGS_MODULE"] = SETTINGS
    import django

    django.setup()


# -- child processes -----------------------------------------------------------------------


def run_child(script: str, args: Sequence[str], env: dict[str, str]) -> Any:
    """Run ``bench/<script>`` with ``args`` and return the JSON it printed after RESULT_PREFIX."""
    proc = subprocess.run(
        [sys.executable, str(ROOT / "bench" / script), *args],
        cwd=ROOT,
        env=child_env(env),
        stdout=subprocess.PIPE,
        text=True,
    )
    result = None
    for line in proc.stdout.splitlines():
        if line.startswith(RESULT_PREFIX):
            result = json.loads(line[len(RESULT_PREFIX) :])
        else:
            print(line, flush=True)
    if proc.returncode != 0 or result is None:
        raise RuntimeError(f"{script} {' '.join(args)} failed with exit code {proc.returncode}")
    return result


def emit_result(value: Any) -> None:
    print(RESULT_PREFIX + json.dumps(value), flush=True)


# -- an HTTP server ------------------------------------------------------------------------


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


class Server:
    """Django's threaded dev server (HTTP/1.1 keep-alive) on 127.0.0.1, as a separate process.

    ``nodelay=True`` runs bench/serve.py (``runserver``'s server with ``TCP_NODELAY``, as
    production servers set it); ``False`` runs ``manage.py runserver --noreload`` itself.
    """

    def __init__(self, env: dict[str, str], *, nodelay: bool = True) -> None:
        self.port = free_port()
        self.log = open(DATA_DIR / f"server-{self.port}.log", "w")  # noqa: SIM115
        self.process = subprocess.Popen(
            [sys.executable, str(ROOT / "bench" / "serve.py"), str(self.port)]
            if nodelay
            else [
                sys.executable,
                "-m",
                "django",
                "runserver",
                "--noreload",
                "--skip-checks",
                f"127.0.0.1:{self.port}",
            ],
            cwd=ROOT,
            env=child_env(env),
            stdout=self.log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            with (
                contextlib.suppress(OSError),
                socket.create_connection(("127.0.0.1", self.port), 0.2),
            ):
                return
            if self.process.poll() is not None:
                break
            time.sleep(0.05)
        self.stop()
        raise RuntimeError(f"runserver did not start; see {self.log.name}")

    def client(self) -> Client:
        return Client(self.port)

    def stop(self) -> None:
        if self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait(timeout=10)
        self.log.close()
        with contextlib.suppress(FileNotFoundError):
            Path(self.log.name).unlink()


class Client:
    """One keep-alive HTTP/1.1 connection."""

    def __init__(self, port: int) -> None:
        self.conn = http.client.HTTPConnection("127.0.0.1", port, timeout=60)

    def post_json(self, path: str, body: Any) -> Any:
        data = json.dumps(body).encode()
        self.conn.request("POST", path, body=data, headers={"Content-Type": "application/json"})
        response = self.conn.getresponse()
        payload = response.read()
        if response.status != 200:
            raise RuntimeError(f"POST {path} answered {response.status}: {payload[:300]!r}")
        if response.getheader("Connection", "").lower() == "close":
            raise RuntimeError("the server closed the keep-alive connection")
        return json.loads(payload)

    def close(self) -> None:
        self.conn.close()


# -- statistics ------------------------------------------------------------------------------


def median(values: Sequence[float]) -> float:
    return statistics.median(values) if values else float("nan")


def percentile(values: Sequence[float], q: float) -> float:
    """Linear-interpolated percentile, q in [0, 100]."""
    if not values:
        return float("nan")
    ordered = sorted(values)
    k = (len(ordered) - 1) * q / 100
    lo, hi = int(k), min(int(k) + 1, len(ordered) - 1)
    return ordered[lo] + (ordered[hi] - ordered[lo]) * (k - lo)


def timed(fn: Callable[[], Any]) -> float:
    start = time.perf_counter()
    fn()
    return time.perf_counter() - start


@contextlib.contextmanager
def section(title: str) -> Iterator[None]:
    print(f"\n== {title} ==", flush=True)
    yield


def fmt_rate(value: float) -> str:
    return f"{value:,.0f}" if value >= 100 else f"{value:,.1f}"
