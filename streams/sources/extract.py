"""Turning fetched bytes into text: charset decoding, HTML stripping, article extraction (trafilatura)."""

from __future__ import annotations

import codecs
import logging
import re
from dataclasses import dataclass
from datetime import UTC, datetime
from html import unescape
from html.parser import HTMLParser

logger = logging.getLogger(__name__)

_META_CHARSET = re.compile(rb"""<meta[^>]+charset\s*=\s*["']?\s*([A-Za-z0-9_.:-]+)""", re.IGNORECASE)
_XML_ENCODING = re.compile(rb"""^\s*<\?xml[^>]+encoding\s*=\s*["']([A-Za-z0-9_.:-]+)""", re.IGNORECASE)
# What browsers do (WHATWG Encoding): pages labelled latin-1/ascii are really windows-1252.
_ALIASES = {"iso-8859-1": "cp1252", "latin-1": "cp1252", "latin1": "cp1252", "ascii": "cp1252", "us-ascii": "cp1252"}


def charset_of(content_type: str) -> str | None:
    """The ``charset`` parameter of a Content-Type header."""
    for part in content_type.split(";")[1:]:
        name, _, value = part.partition("=")
        if name.strip().lower() == "charset" and value.strip():
            return value.strip().strip("\"'")
    return None


def _codec(label: str | None) -> str | None:
    if not label:
        return None
    label = label.strip().lower()
    label = _ALIASES.get(label, label)
    try:
        return codecs.lookup(label).name
    except LookupError:
        logger.debug("unknown charset %r", label)
        return None


def decode_text(content: bytes, content_type: str = "") -> str:
    """Decode a page: BOM, then the HTTP charset, then a ``<meta>``/XML declaration, then UTF-8, then a guess."""
    for bom, codec in ((codecs.BOM_UTF8, "utf-8"), (codecs.BOM_UTF16_LE, "utf-16"), (codecs.BOM_UTF16_BE, "utf-16")):
        if content.startswith(bom):
            return content.decode(codec, errors="replace").lstrip("\ufeff")
    head = content[:4096]
    declared = _codec(charset_of(content_type))
    if declared is None:
        match = _META_CHARSET.search(head) or _XML_ENCODING.search(head)
        declared = _codec(match.group(1).decode("ascii")) if match else None
    if declared is not None:
        return content.decode(declared, errors="replace")
    try:
        return content.decode("utf-8")
    except UnicodeDecodeError:
        pass
    from charset_normalizer import from_bytes

    best = from_bytes(content).best()
    if best is not None and not _single_byte(best.encoding):
        return str(best)  # e.g. an undeclared Shift_JIS or GBK page
    # Single-byte guesses on short texts are unreliable; like browsers, assume windows-1252 when it fits.
    try:
        return content.decode("cp1252")
    except UnicodeDecodeError:
        return str(best) if best is not None else content.decode("cp1252", errors="replace")


def _single_byte(encoding: str) -> bool:
    try:
        return len(bytes(range(0x80, 0x100)).decode(encoding, errors="replace")) == 0x80
    except LookupError:
        return False


class _TextOnly(HTMLParser):
    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.parts: list[str] = []
        self._skip = 0

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        if tag in {"script", "style"}:
            self._skip += 1
        elif tag in {"p", "br", "div", "li"}:
            self.parts.append(" ")

    def handle_endtag(self, tag: str) -> None:
        if tag in {"script", "style"} and self._skip:
            self._skip -= 1

    def handle_data(self, data: str) -> None:
        if not self._skip:
            self.parts.append(data)


def strip_html(fragment: str) -> str:
    """Plain text of an HTML fragment (feed summaries), whitespace collapsed."""
    if "<" not in fragment:
        return " ".join(unescape(fragment).split())
    parser = _TextOnly()
    parser.feed(fragment)
    parser.close()
    return " ".join("".join(parser.parts).split())


@dataclass(frozen=True)
class Extracted:
    """What was found in an article page."""

    title: str | None
    body: str
    description: str | None
    published_at: datetime | None
    language: str | None


def _date(value: str | None) -> datetime | None:
    if not value:
        return None
    try:
        parsed = datetime.fromisoformat(value)
    except ValueError:
        return None
    return parsed if parsed.tzinfo else parsed.replace(tzinfo=UTC)


def extract_article(html: str, url: str | None = None) -> Extracted | None:
    """Main text and metadata of an article page, or None when trafilatura finds no article in it."""
    import trafilatura
    from lxml.etree import LxmlError

    try:
        document = trafilatura.bare_extraction(
            html, url=url, with_metadata=True, include_comments=False, include_tables=False, favor_precision=True
        )
    except (LxmlError, ValueError, TypeError, AttributeError, LookupError, RecursionError) as exc:  # pathological markup
        logger.warning("extraction of %s failed: %r", url, exc)
        return None
    if document is None:
        return None
    data = document.as_dict() if hasattr(document, "as_dict") else dict(document)
    body = (data.get("text") or "").strip()
    title = (data.get("title") or "").strip() or None
    if not body and not title:
        return None
    return Extracted(
        title=title,
        body=body,
        description=(data.get("description") or "").strip() or None,
        published_at=_date(data.get("date")),
        language=data.get("language") or None,
    )
