"""What the scraper may connect to when a URL comes from a feed (a link, its redirects, their robots.txt).

Such URLs are untrusted: a feed can point the scraper at the machine's own services, the cluster's private
network or a cloud metadata address. :func:`checked_url` refuses anything but a well-formed http(s) URL;
:func:`checked_address` resolves the host with the event loop's ``getaddrinfo`` and refuses it when any of its
addresses is not public (unless it lies in an allowed network). :class:`PinnedTransport` then connects to that very
address (the name is not resolved a second time, so DNS cannot change between the check and the connection), while
the request keeps the host name for its ``Host`` header and TLS SNI / certificate checks.
"""

from __future__ import annotations

import asyncio
import ipaddress
import logging
import socket
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from contextvars import ContextVar
from typing import Any
from urllib.parse import urlsplit

import httpcore
import httpx

from finpulse.streams.sources.exceptions import BadLinkError, FetchError, UnsafeAddressError

logger = logging.getLogger(__name__)

IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address
IPNetwork = ipaddress.IPv4Network | ipaddress.IPv6Network

SCHEMES = ("http", "https")
MAX_CONNECTIONS, MAX_KEEPALIVE = 100, 20  # httpx's own defaults
NAT64 = ipaddress.ip_network("64:ff9b::/96")

# (host, port, address) of the request running in this task: the one connection it may open.
_PIN: ContextVar[tuple[str, int, str] | None] = ContextVar("finpulse_scrape_pin", default=None)


def checked_url(url: str) -> httpx.URL:
    """``url`` parsed, or :class:`BadLinkError` when it is not an http(s) URL with a host and a valid port."""
    try:
        parsed = httpx.URL(url)
        port = parsed.port
        urlsplit(url).port  # noqa: B018 - what canonical_url will read: must not raise either
    except (httpx.InvalidURL, ValueError, TypeError) as exc:
        raise BadLinkError(url, f"not a valid URL ({exc})") from exc
    if parsed.scheme not in SCHEMES:
        raise BadLinkError(url, f"scheme {parsed.scheme or 'none'!r} is not http(s)")
    if not parsed.raw_host:
        raise BadLinkError(url, "no host")
    if port is not None and not 0 < port < 65536:
        raise BadLinkError(url, f"port {port} out of range")
    return parsed


def _stands_for(address: ipaddress.IPv6Address) -> list[IPAddress]:
    """What connecting to ``address`` reaches: the IPv4 address of a mapped or NAT64 one; both addresses of a 6to4 or
    Teredo one (relayed to its IPv4 part); else the address itself."""
    if address.ipv4_mapped is not None:
        return [address.ipv4_mapped]
    if address in NAT64:
        return [ipaddress.IPv4Address(int(address) & 0xFFFFFFFF)]
    if address.sixtofour is not None:
        return [address, address.sixtofour]
    if address.teredo is not None:
        return [address, address.teredo[1]]
    return [address]


def _public(address: IPAddress) -> bool:
    return not (
        address.is_loopback
        or address.is_private
        or address.is_link_local
        or address.is_multicast
        or address.is_reserved
        or address.is_unspecified
        or not address.is_global
    )


def blocked(address: IPAddress, allowed: Sequence[IPNetwork] = ()) -> bool:
    """True when a URL found in a feed must not reach ``address``: not public and in none of ``allowed``."""
    candidates = _stands_for(address) if isinstance(address, ipaddress.IPv6Address) else [address]
    for candidate in candidates:
        if any(candidate in network for network in allowed):
            continue
        if not _public(candidate):
            return True
    return False


async def checked_address(url: httpx.URL, allowed: Sequence[IPNetwork]) -> str:
    """The address to connect to for ``url``: its host resolved, every answer checked (:func:`blocked`)."""
    host = url.raw_host.decode("ascii")
    port = url.port or (443 if url.scheme == "https" else 80)
    try:
        addresses: list[IPAddress] = [ipaddress.ip_address(host)]
    except ValueError:
        loop = asyncio.get_running_loop()
        try:
            answers = await loop.getaddrinfo(host, port, type=socket.SOCK_STREAM)
        except (OSError, UnicodeError) as exc:
            raise FetchError(str(url), f"cannot resolve {host}: {exc}") from exc
        addresses = list(dict.fromkeys(ipaddress.ip_address(str(answer[4][0])) for answer in answers))
        if not addresses:
            raise FetchError(str(url), f"{host} has no address") from None
    for address in addresses:
        if blocked(address, allowed):
            raise UnsafeAddressError(str(url), f"{host} is {address}, not a public address")
    return str(addresses[0])


@contextmanager
def pinned(url: httpx.URL, address: str) -> Iterator[None]:
    """Within the block, the current task's connection to ``url``'s host goes to ``address`` (see PinnedTransport)."""
    port = url.port or (443 if url.scheme == "https" else 80)
    token = _PIN.set((url.raw_host.decode("ascii"), port, address))
    try:
        yield
    finally:
        _PIN.reset(token)


class _PinnedBackend(httpcore.AsyncNetworkBackend):
    """An httpcore network backend that opens only the connection pinned for the current task."""

    def __init__(self) -> None:
        self._inner = httpcore.AnyIOBackend()

    async def connect_tcp(self, host: str, port: int, timeout: float | None = None, local_address: str | None = None,
                          socket_options: Any = None) -> httpcore.AsyncNetworkStream:
        pin = _PIN.get()
        if pin is None or pin[:2] != (host, port):
            raise httpcore.ConnectError(f"{host}:{port} was not resolved and checked for this request")
        return await self._inner.connect_tcp(pin[2], port, timeout=timeout, local_address=local_address,
                                             socket_options=socket_options)

    async def connect_unix_socket(self, path: str, timeout: float | None = None,
                                  socket_options: Any = None) -> httpcore.AsyncNetworkStream:
        raise httpcore.ConnectError("unix sockets are never used for URLs found in feeds")

    async def sleep(self, seconds: float) -> None:
        await self._inner.sleep(seconds)


class PinnedTransport(httpx.AsyncHTTPTransport):
    """httpx's transport over a connection pool whose connections go only to the pinned address (:func:`pinned`).

    httpx has no option for a network backend, so the pool it built is replaced by one with ours. Environment
    proxies are ignored: a proxy would resolve the name again.
    """

    def __init__(self) -> None:
        super().__init__(trust_env=False)
        if not isinstance(getattr(self, "_pool", None), httpcore.AsyncConnectionPool):
            raise RuntimeError("httpx.AsyncHTTPTransport no longer keeps its pool in _pool; PinnedTransport needs updating")
        self._pool = httpcore.AsyncConnectionPool(
            ssl_context=httpx.create_ssl_context(trust_env=False),
            max_connections=MAX_CONNECTIONS,
            max_keepalive_connections=MAX_KEEPALIVE,
            network_backend=_PinnedBackend(),
        )
