"""Stable article ids and canonical URLs."""

from __future__ import annotations

import hashlib
from urllib.parse import parse_qsl, urlencode, urlsplit, urlunsplit

_TRACKING_PREFIXES = ("utm_", "mc_", "icid", "cmpid", "fbclid", "gclid", "ref", "guccounter", "ocid")


def canonical_url(url: str) -> str:
    """Lower-case scheme and host, drop default ports, fragments and tracking parameters, sort the query."""
    parts = urlsplit(url.strip())
    scheme = parts.scheme.lower() or "https"
    host = (parts.hostname or "").lower()
    if host.startswith("www."):
        host = host[4:]
    port = parts.port
    if ":" in host:  # an IPv6 address keeps its brackets, or the result would not parse again
        host = f"[{host}]"
    netloc = host if port is None or (scheme, port) in {("http", 80), ("https", 443)} else f"{host}:{port}"
    query = sorted(
        (k, v) for k, v in parse_qsl(parts.query, keep_blank_values=True) if not k.lower().startswith(_TRACKING_PREFIXES)
    )
    path = parts.path or "/"
    if len(path) > 1 and path.endswith("/"):
        path = path.rstrip("/")
    return urlunsplit((scheme, netloc, path, urlencode(query), ""))


def article_id(url: str | None, source: str = "", title: str = "") -> str:
    """sha256 of the canonical URL, or of ``source`` + title when there is no URL (first 32 hex chars)."""
    if url:
        basis = "url:" + canonical_url(url)
    else:
        basis = "st:" + source.strip().lower() + "\x1f" + " ".join(title.split()).lower()
    return hashlib.sha256(basis.encode("utf-8")).hexdigest()[:32]
