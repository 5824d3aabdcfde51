"""Undoing a response's ``Content-Encoding`` as it streams, a bounded piece at a time.

httpx decodes each network chunk in one call, through every stacked encoding, before the caller sees a byte:
a few hundred bytes of ``gzip, gzip`` become tens of MiB at once. Here each zlib call yields at most
``PIECE_BYTES``; the caller stops pulling once it has enough, so no more than that is ever inflated.
"""

from __future__ import annotations

import zlib
from collections.abc import Iterator

from finpulse.streams.sources.exceptions import FetchError

PIECE_BYTES = 64 * 1024
MAX_LAYERS = 4  # stacked encodings accepted at most
_IDENTITY = {"", "identity"}
_GZIP = {"gzip", "x-gzip"}


class _Inflater:
    """One encoding layer: gzip, or deflate (zlib-wrapped as RFC 9110 says, or raw as some servers send it)."""

    def __init__(self, coding: str) -> None:
        self.coding = coding
        self._zlib: zlib._Decompress | None = zlib.decompressobj(16 + zlib.MAX_WBITS) if coding in _GZIP else None

    def decompress(self, data: bytes) -> bytes:
        if self._zlib is None:  # deflate: a zlib header is 2 bytes whose big-endian value is a multiple of 31
            wrapped = len(data) >= 2 and data[0] & 0x0F == 8 and int.from_bytes(data[:2], "big") % 31 == 0
            self._zlib = zlib.decompressobj(zlib.MAX_WBITS if wrapped else -zlib.MAX_WBITS)
        return self._zlib.decompress(data, PIECE_BYTES)

    @property
    def unconsumed_tail(self) -> bytes:
        return self._zlib.unconsumed_tail if self._zlib is not None else b""


class BodyDecoder:
    """Decodes ``Content-Encoding: content_encoding`` incrementally; :meth:`feed` yields pieces of decoded bytes."""

    def __init__(self, url: str, content_encoding: str) -> None:
        codings = [c.strip().lower() for c in content_encoding.split(",")]
        codings = [c for c in codings if c not in _IDENTITY]
        unknown = [c for c in codings if c not in _GZIP and c != "deflate"]
        if unknown:
            raise FetchError(url, f"unsupported Content-Encoding {', '.join(unknown)}")
        if len(codings) > MAX_LAYERS:
            raise FetchError(url, f"{len(codings)} stacked content encodings (at most {MAX_LAYERS})")
        self.url = url
        self._layers = [_Inflater(c) for c in reversed(codings)]  # the last encoding applied is undone first

    def feed(self, data: bytes) -> Iterator[bytes]:
        """The decoded bytes of the next network chunk, ``PIECE_BYTES`` at most per piece, produced as pulled."""
        try:
            yield from self._through(0, data)
        except zlib.error as exc:
            raise FetchError(self.url, f"body does not decode as {', '.join(i.coding for i in self._layers)}: {exc}") from exc

    def _through(self, index: int, data: bytes) -> Iterator[bytes]:
        if index == len(self._layers):
            if data:
                yield data
            return
        layer = self._layers[index]
        while True:
            out = layer.decompress(data)
            if out:
                yield from self._through(index + 1, out)
            data = layer.unconsumed_tail
            # a full piece may leave output pending inside zlib even when all input was taken: ask again
            if not data and len(out) < PIECE_BYTES:
                return
