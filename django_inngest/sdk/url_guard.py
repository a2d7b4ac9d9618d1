"""Which serve URLs our workers may POST signed bodies to (SSRF protection).

Whoever holds the signing key can sync an app, and a sync names the URLs our workers then call.
So a URL is allowed only if:

1. its scheme is http or https, it has a host and no ``user:password@``;
2. its host matches the allowlist: ``app.example.com`` (exactly), ``*.example.com`` (any
   subdomain), ``.example.com`` (the domain and its subdomains, as Django's ``ALLOWED_HOSTS``),
   ``*`` (any host), each optionally with ``:port`` (without one, any port); IP literals such
   as ``127.0.0.1:8000`` or ``[::1]:8000``;
3. **every** address the host resolves to is public, unless it is explicitly allowed: the URL's
   host is that very IP literal and an allowlist pattern names it, or the address is inside one
   of ``allowed_networks`` (CIDRs such as ``10.0.0.0/8``). Loopback, private, link-local,
   unspecified, multicast, reserved and shared (CGNAT) addresses are not public.

Resolving at sync time is not enough (DNS can change before the call), so ``UrlGuard`` also
gives the transport the vetted addresses to connect to (``addresses_for``), re-checked at each
new connection. Pure: the allowlist is an argument; the lead wires the settings.
"""

from __future__ import annotations

import ipaddress
import socket
import urllib.parse
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass

from django_inngest.sdk.errors import SdkProtocolError

IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address
IPNetwork = ipaddress.IPv4Network | ipaddress.IPv6Network
#: ``(host, port) -> IP address strings``; the default asks the system resolver.
Resolver = Callable[[str, int], Sequence[str]]
_DEFAULT_PORTS = {"http": 80, "https": 443}


class UrlRefused(SdkProtocolError):
    """The URL is not one our workers may call; the message says why."""


def system_resolver(host: str, port: int) -> list[str]:
    infos = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)
    return list(dict.fromkeys(str(info[4][0]) for info in infos))


@dataclass(frozen=True)
class HostPattern:
    host: str
    port: int | None
    ip: IPAddress | None

    @classmethod
    def parse(cls, text: str, *, field: str = "allowed hosts") -> HostPattern:
        if not isinstance(text, str) or not text.strip():
            raise SdkProtocolError(field, f"holds an empty or non-string pattern: {text!r}")
        raw = text.strip().lower()
        host, port = _split_host_port(raw, field=field, pattern=text)
        body = host.removeprefix("*.").removeprefix(".")
        if host != "*" and (not body or "*" in body or "/" in body):
            raise SdkProtocolError(
                field, f"pattern {text!r} must be a host, '*.domain', '.domain' or '*'"
            )
        return cls(host=host, port=port, ip=_ip_or_none(host))

    def matches(self, host: str, port: int) -> bool:
        if self.port is not None and self.port != port:
            return False
        if self.host == "*":
            return True
        if self.ip is not None:
            return self.ip == _ip_or_none(host)
        if self.host.startswith("*."):
            return host.endswith(self.host[1:])
        if self.host.startswith("."):
            return host == self.host[1:] or host.endswith(self.host)
        return host == self.host


@dataclass(frozen=True)
class VettedUrl:
    url: str
    scheme: str
    host: str
    port: int
    addresses: tuple[str, ...]


class UrlGuard:
    """An allowlist, the networks explicitly allowed, and a resolver."""

    def __init__(
        self,
        allowed_hosts: Iterable[str],
        allowed_networks: Iterable[str] = (),
        *,
        resolver: Resolver = system_resolver,
    ) -> None:
        self.patterns = tuple(HostPattern.parse(p) for p in allowed_hosts)
        self.networks = tuple(_network(n) for n in allowed_networks)
        self._resolve = resolver

    def check(self, url: str, *, field: str = "url") -> VettedUrl:
        """The vetted URL, or ``UrlRefused`` naming ``field`` and the reason."""
        if not isinstance(url, str):
            raise UrlRefused(field, "must be a string")
        parts = urllib.parse.urlsplit(url.strip())
        scheme = parts.scheme.lower()
        if scheme not in _DEFAULT_PORTS:
            raise UrlRefused(field, f"scheme must be http or https: {url!r}")
        if "@" in parts.netloc:
            raise UrlRefused(field, f"must not carry credentials: {url!r}")
        try:
            port = parts.port or _DEFAULT_PORTS[scheme]
        except ValueError as error:
            raise UrlRefused(field, f"has an invalid port: {url!r}") from error
        host = _normalise_host(parts.hostname or "", field=field, url=url)
        pattern = self._matching_pattern(host, port)
        if pattern is None:
            raise UrlRefused(
                field,
                f"host {_display(host, port)!r} is not in the allowed hosts; add it there to "
                "let workers call it",
            )
        return VettedUrl(
            url=url, scheme=scheme, host=host, port=port, addresses=self._vet(host, port, pattern)
        )

    def addresses_for(self, host: str, port: int) -> tuple[str, ...]:
        """Resolve again and vet again, for a new connection (DNS may have changed)."""
        normalised = _normalise_host(host, field="url", url=host)
        pattern = self._matching_pattern(normalised, port)
        if pattern is None:
            raise UrlRefused("url", f"host {_display(normalised, port)!r} is not allowed")
        return self._vet(normalised, port, pattern)

    def _matching_pattern(self, host: str, port: int) -> HostPattern | None:
        # An IP-literal pattern is an explicit permission, so prefer it to a wildcard.
        matches = [p for p in self.patterns if p.matches(host, port)]
        return next((p for p in matches if p.ip is not None), matches[0] if matches else None)

    def _vet(self, host: str, port: int, pattern: HostPattern) -> tuple[str, ...]:
        literal = _ip_or_none(host)
        if literal is not None:
            addresses = [str(literal)]
        else:
            try:
                addresses = list(self._resolve(host, port))
            except (OSError, UnicodeError) as error:
                raise UrlRefused("url", f"host {host!r} cannot be resolved: {error}") from error
            if not addresses:
                raise UrlRefused("url", f"host {host!r} resolves to no address")
        for text in addresses:
            address = ipaddress.ip_address(text.split("%", 1)[0])  # drop an IPv6 zone
            if _is_public(address):
                continue
            if pattern.ip is not None and pattern.ip == address:
                continue
            if any(address in network for network in self.networks):
                continue
            raise UrlRefused(
                "url",
                f"host {host!r} resolves to {address}, a non-public address; allow its network "
                "explicitly to let workers call it",
            )
        return tuple(addresses)


def check_serve_url(
    url: str,
    allowed_hosts: Iterable[str],
    allowed_networks: Iterable[str] = (),
    *,
    resolver: Resolver = system_resolver,
) -> VettedUrl:
    """One-shot form of ``UrlGuard(...).check(url)``."""
    return UrlGuard(allowed_hosts, allowed_networks, resolver=resolver).check(url)


def _is_public(address: IPAddress) -> bool:
    if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped is not None:
        return _is_public(address.ipv4_mapped)
    # is_global is False for private, loopback, link-local, unspecified, reserved, CGNAT;
    # multicast can be "global" yet is never a web server.
    return address.is_global and not address.is_multicast


def _split_host_port(raw: str, *, field: str, pattern: str) -> tuple[str, int | None]:
    if raw.startswith("["):
        end = raw.find("]")
        if end < 0:
            raise SdkProtocolError(field, f"pattern {pattern!r} has an unclosed '['")
        host, rest = raw[1:end], raw[end + 1 :]
        if rest and not rest.startswith(":"):
            raise SdkProtocolError(
                field, f"pattern {pattern!r} has text after ']' that is not ':port'"
            )
        port_text = rest[1:] if rest else None
    elif raw.count(":") == 1:
        host, port_text = raw.split(":")
    else:
        host, port_text = raw, None  # a bare IPv6 literal, or no port
    if port_text is None:
        return host, None
    if not port_text.isdigit() or not 0 < int(port_text) < 65536:
        raise SdkProtocolError(field, f"pattern {pattern!r} has an invalid port {port_text!r}")
    return host, int(port_text)


def _normalise_host(host: str, *, field: str, url: str) -> str:
    host = host.strip().lower().rstrip(".")
    if not host:
        raise UrlRefused(field, f"has no host: {url!r}")
    if _ip_or_none(host) is not None:
        return host
    try:
        return host.encode("idna").decode("ascii")
    except UnicodeError as error:
        raise UrlRefused(field, f"has an invalid host name: {url!r}") from error


def _ip_or_none(host: str) -> IPAddress | None:
    try:
        return ipaddress.ip_address(host)
    except ValueError:
        return None


def _network(text: str) -> IPNetwork:
    try:
        return ipaddress.ip_network(text, strict=False)
    except (TypeError, ValueError) as error:
        raise SdkProtocolError(
            "allowed networks", f"{text!r} is not a CIDR such as '10.0.0.0/8'"
        ) from error


def _display(host: str, port: int) -> str:
    return f"[{host}]:{port}" if ":" in host else f"{host}:{port}"
