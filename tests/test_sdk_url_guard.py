"""Which serve URLs workers may call (django_inngest.sdk.url_guard). DNS is faked: a resolver
mapping host names to the addresses an attacker (or a misconfiguration) would give them."""

from __future__ import annotations

from collections.abc import Sequence

import pytest

from django_inngest.sdk.errors import SdkProtocolError
from django_inngest.sdk.url_guard import HostPattern, UrlGuard, UrlRefused, check_serve_url

DNS: dict[str, list[str]] = {
    "app.example.com": ["93.184.216.34"],
    "a.internal.example.com": ["10.0.0.5"],
    "b.internal.example.com": ["10.1.2.3"],
    "mixed.example.com": ["93.184.216.34", "127.0.0.1"],
    "rebound.example.com": ["169.254.169.254"],  # the cloud metadata service
    "v6.example.com": ["2606:4700::1111"],
    "mapped.example.com": ["::ffff:127.0.0.1"],
    "cgnat.example.com": ["100.64.0.1"],
    "multicast.example.com": ["224.0.0.1"],
    "localhost": ["127.0.0.1", "::1"],
    "empty.example.com": [],
}


def fake_dns(host: str, port: int) -> Sequence[str]:
    if host not in DNS:
        raise OSError("Name or service not known")
    return DNS[host]


def guard(hosts: Sequence[str], networks: Sequence[str] = ()) -> UrlGuard:
    return UrlGuard(hosts, networks, resolver=fake_dns)


def refusal(g: UrlGuard, url: str) -> str:
    with pytest.raises(UrlRefused) as caught:
        g.check(url)
    return caught.value.message


def test_allowed_urls_and_their_vetted_addresses() -> None:
    g = guard(["app.example.com", "127.0.0.1:8000", "[::1]:9000", "v6.example.com"])
    vetted = g.check("https://App.Example.com./api/inngest?fnId=x")
    assert (vetted.scheme, vetted.host, vetted.port, vetted.addresses) == (
        "https",
        "app.example.com",
        443,
        ("93.184.216.34",),
    )
    assert g.check("http://app.example.com:8080/x").port == 8080  # no port in the pattern: any
    assert g.check("http://127.0.0.1:8000/api/inngest").addresses == ("127.0.0.1",)
    assert g.check("http://[::1]:9000/").addresses == ("::1",)
    assert g.check("https://v6.example.com/").addresses == ("2606:4700::1111",)


@pytest.mark.parametrize(
    ("url", "reason"),
    [
        ("ftp://app.example.com/", "scheme must be http or https"),
        ("file:///etc/passwd", "scheme must be http or https"),
        ("//app.example.com/", "scheme must be http or https"),
        ("http://user:pw@app.example.com/", "must not carry credentials"),
        ("http://app.example.com:99999/", "invalid port"),
        ("http:///nohost", "has no host"),
        ("http://evil.example.org/", "not in the allowed hosts"),
        ("http://app.example.com.evil.org/", "not in the allowed hosts"),
        ("http://127.0.0.1:8001/", "not in the allowed hosts"),  # the pattern names port 8000
    ],
)
def test_refused_urls(url: str, reason: str) -> None:
    g = guard(["app.example.com", "127.0.0.1:8000"])
    assert reason in refusal(g, url)


def test_wildcards() -> None:
    g = guard(["*.example.com", ".example.net", "exact.example.org"])
    DNS.update({"x.example.com": ["93.184.216.34"], "example.net": ["93.184.216.34"]})
    DNS.update({"deep.x.example.net": ["93.184.216.34"], "example.com": ["93.184.216.34"]})
    try:
        assert g.check("http://x.example.com/").host == "x.example.com"
        assert "not in the allowed hosts" in refusal(g, "http://example.com/")  # "*." needs a label
        assert g.check("http://example.net/").host == "example.net"  # "." also takes the domain
        assert g.check("http://deep.x.example.net/").host == "deep.x.example.net"
        assert "not in the allowed hosts" in refusal(g, "http://badexample.net/")
    finally:
        for host in ("x.example.com", "example.net", "deep.x.example.net", "example.com"):
            del DNS[host]


@pytest.mark.parametrize(
    "host",
    [
        "a.internal.example.com",
        "mixed.example.com",  # one bad address is enough
        "rebound.example.com",
        "mapped.example.com",
        "cgnat.example.com",
        "multicast.example.com",
        "localhost",
    ],
)
def test_non_public_addresses_are_refused_even_for_allowed_hosts(host: str) -> None:
    assert "non-public address" in refusal(guard(["*"]), f"http://{host}/api/inngest")


@pytest.mark.parametrize(
    "url",
    [
        "http://127.0.0.1/",
        "http://0.0.0.0/",
        "http://[::]/",
        "http://10.0.0.1/",
        "http://2130706433/",
    ],
)
def test_ip_literals_under_a_wildcard_are_refused(url: str) -> None:
    DNS["2130706433"] = ["127.0.0.1"]  # what getaddrinfo makes of a decimal IPv4 literal
    try:
        assert "non-public address" in refusal(guard(["*"]), url)
    finally:
        del DNS["2130706433"]


def test_explicit_permission_for_private_addresses() -> None:
    g = guard(
        ["*.internal.example.com", "127.0.0.1", "localhost:8000"],
        networks=["10.0.0.0/16", "::1/128"],
    )
    assert g.check("http://a.internal.example.com/").addresses == ("10.0.0.5",)
    assert "10.1.2.3" in refusal(g, "http://b.internal.example.com/")  # outside 10.0.0.0/16
    assert g.check("http://127.0.0.1:1234/").addresses == ("127.0.0.1",)  # named literally
    # A host *name* is no permission for what it resolves to: 127.0.0.1 is not in the networks.
    assert "127.0.0.1" in refusal(g, "http://localhost:8000/")


def test_unresolvable_hosts_are_refused() -> None:
    g = guard(["*"])
    assert "cannot be resolved" in refusal(g, "http://nowhere.example.com/")
    assert "resolves to no address" in refusal(g, "http://empty.example.com/")


def test_addresses_for_re_resolves_at_connect_time() -> None:
    g = guard(["app.example.com"])
    assert g.addresses_for("app.example.com", 443) == ("93.184.216.34",)
    DNS["app.example.com"] = ["127.0.0.1"]  # DNS rebinding after the sync was vetted
    try:
        with pytest.raises(UrlRefused, match="non-public"):
            g.addresses_for("app.example.com", 443)
    finally:
        DNS["app.example.com"] = ["93.184.216.34"]
    with pytest.raises(UrlRefused, match="not allowed"):
        g.addresses_for("evil.example.org", 443)


@pytest.mark.parametrize(
    "pattern", ["", "  ", "*.", ".", "a*.example.com", "http://x/", "[::1", "host:0", "host:x"]
)
def test_bad_allowlist_patterns_are_named(pattern: str) -> None:
    with pytest.raises(SdkProtocolError) as caught:
        HostPattern.parse(pattern, field="DJANGO_INNGEST_SDK_ALLOWED_HOSTS")
    assert caught.value.field == "DJANGO_INNGEST_SDK_ALLOWED_HOSTS"


def test_bad_networks_are_named() -> None:
    with pytest.raises(SdkProtocolError, match="not a CIDR") as caught:
        UrlGuard(["*"], ["10.0.0.0/33"])
    assert caught.value.field == "allowed networks"


def test_the_one_shot_form() -> None:
    vetted = check_serve_url("https://app.example.com/x", ["app.example.com"], resolver=fake_dns)
    assert vetted.url == "https://app.example.com/x"
