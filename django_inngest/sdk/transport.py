"""HTTP to SDK apps: signed call requests and the sync PUT, over ``http.client``.

Connections are kept alive and reused per ``(scheme, host, port)`` *per thread* (an
``http.client`` connection is not thread-safe; worker threads each get their own). Every
failure to get a complete answer (refused, reset, timed out, TLS, a body over the limit) is
raised as one ``TransportError``; any HTTP status, even 500, is a response, not an error.

Timeouts: ``connect_timeout`` bounds connecting; ``timeout`` bounds each wait for bytes, which
in practice is how long a step may run (the Django adapter sends nothing until the step ends).
It must exceed the longest step, or the step runs again on the retry.

With ``addresses_for`` (``UrlGuard.addresses_for``) each new connection goes to an address
vetted at that moment, not to whatever DNS says by then; TLS still verifies the host name.
"""

from __future__ import annotations

import http.client
import socket
import ssl
import threading
import urllib.parse
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass

from django_inngest.sdk import signing
from django_inngest.sdk.sync import SyncPut
from django_inngest.sdk.wire import CallRequest, ServerKind, call_headers

AddressProvider = Callable[[str, int], Sequence[str]]
_Key = tuple[str, str, int]
#: Errors that mean "the server closed the idle keep-alive connection": safe to retry once on
#: a fresh connection, because the request cannot have been read (Go and urllib3 do the same).
_STALE = (http.client.RemoteDisconnected, ConnectionResetError, BrokenPipeError)


class TransportError(Exception):
    """No complete HTTP response: the message names the URL and what went wrong."""

    def __init__(self, url: str, reason: str, *, timed_out: bool = False) -> None:
        self.url = url
        self.reason = reason
        self.timed_out = timed_out
        super().__init__(f"{url}: {reason}")


@dataclass(frozen=True)
class HttpResponse:
    status: int
    headers: dict[str, str]  # lower-cased names; repeated headers joined with ", "
    body: bytes


class Transport:
    def __init__(
        self,
        *,
        timeout: float = 600.0,
        connect_timeout: float = 10.0,
        max_response_bytes: int = 32 * 1024 * 1024,
        addresses_for: AddressProvider | None = None,
        ssl_context: ssl.SSLContext | None = None,
        user_agent: str = "django-inngest",
    ) -> None:
        self._timeout = timeout
        self._connect_timeout = connect_timeout
        self._max_response_bytes = max_response_bytes
        self._addresses_for = addresses_for
        self._ssl_context = ssl_context or ssl.create_default_context()
        self._user_agent = user_agent
        self._local = threading.local()

    # --- the two requests of the protocol ----------------------------------------------------

    def post_call(
        self,
        url: str,
        request: CallRequest,
        signing_key: str,
        *,
        server_kind: ServerKind = "cloud",
        request_id: str | None = None,
    ) -> HttpResponse:
        """POST a call request to ``url`` (``wire.call_url``), JCS-encoded and signed."""
        signed = signing.sign_payload(request.to_payload(), signing_key)
        headers = call_headers(
            signed.signature,
            run_id=request.ctx.run_id,
            server_kind=server_kind,
            request_id=request_id,
        )
        return self.request("POST", url, signed.body, headers)

    def put_sync(self, put: SyncPut) -> HttpResponse:
        """Send a sync PUT built by ``sync.build_sync_put``."""
        return self.request("PUT", put.url, put.body, put.headers)

    # --- plumbing --------------------------------------------------------------------------

    def request(
        self, method: str, url: str, body: bytes, headers: Mapping[str, str]
    ) -> HttpResponse:
        parts = urllib.parse.urlsplit(url)
        scheme = parts.scheme.lower()
        if scheme not in ("http", "https") or not parts.hostname:
            raise TransportError(url, "not an absolute http(s) URL")
        try:
            port = parts.port or (443 if scheme == "https" else 80)
        except ValueError as error:
            raise TransportError(url, "invalid port") from error
        key = (scheme, parts.hostname, port)
        target = (parts.path or "/") + (f"?{parts.query}" if parts.query else "")
        sent_headers = {"User-Agent": self._user_agent, **headers}
        for attempt in (1, 2):
            connection, reused = self._connection(key)
            try:
                if connection.sock is None:
                    connection.connect()
                    assert connection.sock is not None
                    # Connect had its own bound; now wait as long as a step may take.
                    connection.sock.settimeout(self._timeout)
                    # http.client sends a body over 2 kB after the headers, in a second
                    # segment: with Nagle on, it waits for the server's delayed ACK (~40 ms).
                    connection.sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
                connection.request(method, target, body=body, headers=sent_headers)
                return self._read(connection, key, url)
            except _STALE as error:
                self._discard(key)
                if reused and attempt == 1:
                    continue
                raise TransportError(url, f"connection closed: {error!r}") from error
            except TimeoutError as error:
                self._discard(key)
                raise TransportError(url, "timed out", timed_out=True) from error
            except (OSError, http.client.HTTPException) as error:
                self._discard(key)
                raise TransportError(url, f"{type(error).__name__}: {error}") from error
        raise AssertionError("unreachable")  # pragma: no cover

    def close(self) -> None:
        """Close this thread's connections."""
        for connection in self._pool().values():
            connection.close()
        self._pool().clear()

    def _read(self, connection: http.client.HTTPConnection, key: _Key, url: str) -> HttpResponse:
        response = connection.getresponse()
        body = response.read(self._max_response_bytes + 1)
        if len(body) > self._max_response_bytes:
            self._discard(key)  # the rest of the body is still on the wire
            raise TransportError(url, f"response larger than {self._max_response_bytes} bytes")
        headers: dict[str, str] = {}
        for name, value in response.getheaders():
            lowered = name.lower()
            headers[lowered] = f"{headers[lowered]}, {value}" if lowered in headers else value
        if response.will_close or not response.isclosed():
            # Closing, or bytes of this answer still unread: the connection cannot carry another.
            self._discard(key)
        return HttpResponse(status=response.status, headers=headers, body=body)

    def _pool(self) -> dict[_Key, http.client.HTTPConnection]:
        pool: dict[_Key, http.client.HTTPConnection] | None = getattr(self._local, "pool", None)
        if pool is None:
            pool = self._local.pool = {}
        return pool

    def _connection(self, key: _Key) -> tuple[http.client.HTTPConnection, bool]:
        pool = self._pool()
        existing = pool.get(key)
        if existing is not None:
            return existing, existing.sock is not None
        scheme, host, port = key
        connection: http.client.HTTPConnection
        if scheme == "https":
            connection = http.client.HTTPSConnection(
                host, port, timeout=self._connect_timeout, context=self._ssl_context
            )
        else:
            connection = http.client.HTTPConnection(host, port, timeout=self._connect_timeout)
        if self._addresses_for is not None:
            # http.client dials through this attribute; TLS then wraps the socket with
            # server_hostname=host, so certificates are still checked against the name.
            connection._create_connection = self._pinned_dialer(host, port)  # type: ignore[attr-defined]
        pool[key] = connection
        return connection, False

    def _pinned_dialer(self, host: str, port: int) -> Callable[..., socket.socket]:
        provider = self._addresses_for
        assert provider is not None

        def dial(
            address: tuple[str, int],
            timeout: float | None = None,
            source_address: tuple[str, int] | None = None,
        ) -> socket.socket:
            last_error: OSError | None = None
            for ip in provider(host, port):
                try:
                    return socket.create_connection((ip, port), timeout, source_address)
                except OSError as error:
                    last_error = error
            raise last_error or OSError(f"no address for {host}")

        return dial

    def _discard(self, key: _Key) -> None:
        connection = self._pool().pop(key, None)
        if connection is not None:
            connection.close()
