"""Which URLs and addresses a link found in a feed may reach (pure logic, no network)."""

from __future__ import annotations

from ipaddress import ip_address, ip_network

import pytest

from finpulse.contracts.ids import canonical_url
from finpulse.streams.sources.exceptions import BadLinkError
from finpulse.streams.sources.guard import blocked, checked_url


@pytest.mark.parametrize(
    "address",
    [
        "127.0.0.1", "127.1.2.3", "0.0.0.0", "10.0.0.5", "172.16.3.4", "192.168.1.1", "100.64.0.1", "169.254.169.254",
        "224.0.0.1", "240.0.0.1", "255.255.255.255", "::1", "::", "fe80::1", "fc00::1", "fd12:3456::1", "ff02::1",
        "::ffff:127.0.0.1", "::ffff:10.0.0.5", "64:ff9b::a00:5", "2002:7f00:1::1", "2001:db8::1",
    ],
)
def test_internal_addresses_are_blocked(address: str) -> None:
    assert blocked(ip_address(address))


@pytest.mark.parametrize("address", ["93.184.215.14", "8.8.8.8", "2606:4700:4700::1111", "::ffff:8.8.8.8", "64:ff9b::808:808"])
def test_public_addresses_are_not(address: str) -> None:
    assert not blocked(ip_address(address))


def test_allowed_networks_open_internal_ones() -> None:
    allowed = [ip_network("10.0.0.0/8"), ip_network("fd00::/8")]
    assert not blocked(ip_address("10.1.2.3"), allowed) and not blocked(ip_address("::ffff:10.1.2.3"), allowed)
    assert not blocked(ip_address("fd12::1"), allowed)
    assert blocked(ip_address("127.0.0.1"), allowed) and blocked(ip_address("192.168.0.1"), allowed)


@pytest.mark.parametrize(
    "url",
    ["http://x:99999/a", "http://256.0.0.1/", "javascript:alert(1)", "file:///etc/passwd", "ftp://example.com/a",
     "http:///no-host", "gopher://127.0.0.1:70/", "http://[::1", "data:text/html,hi"],
)
def test_bad_links(url: str) -> None:
    with pytest.raises(BadLinkError):
        checked_url(url)


@pytest.mark.parametrize("url", ["https://example.com/a?b=1", "http://[2606:4700::1111]:8080/x", "http://bücher.de/"])
def test_good_links_also_canonicalise(url: str) -> None:
    assert checked_url(url).scheme in {"http", "https"}
    assert canonical_url(canonical_url(url)) == canonical_url(url)
