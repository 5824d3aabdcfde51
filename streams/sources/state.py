"""What the scraper remembers between polls and restarts: the article ids it sent and each feed's validators.

Kept as one JSON file, written atomically (temporary file + rename). The seen ids are bounded: the oldest
are forgotten first once there are more than ``max_seen``.
"""

from __future__ import annotations

import json
import logging
import os
import tempfile
from collections import OrderedDict
from dataclasses import dataclass
from pathlib import Path

logger = logging.getLogger(__name__)

STATE_VERSION = 1


@dataclass
class FeedValidators:
    etag: str | None = None
    last_modified: str | None = None


class ScrapeState:
    def __init__(self, path: Path | None, max_seen: int = 100_000) -> None:
        self.path = path
        self.max_seen = max_seen
        self._seen: OrderedDict[str, None] = OrderedDict()
        self.feeds: dict[str, FeedValidators] = {}

    @classmethod
    def load(cls, path: Path | None, max_seen: int = 100_000) -> ScrapeState:
        """The state saved at ``path``; an empty one when there is none (or it is unreadable, which is logged)."""
        state = cls(path, max_seen)
        if path is None or not path.is_file():
            return state
        try:
            data = json.loads(path.read_text(encoding="utf-8"))
            if data.get("version") != STATE_VERSION:
                raise ValueError(f"version {data.get('version')!r}, expected {STATE_VERSION}")
            for article in data.get("seen", []):
                state.add(str(article))
            for url, validators in data.get("feeds", {}).items():
                state.feeds[url] = FeedValidators(validators.get("etag"), validators.get("last_modified"))
        except (OSError, ValueError, AttributeError, TypeError) as exc:
            logger.error("scrape state %s unreadable (%r); starting with an empty one", path, exc)
            return cls(path, max_seen)
        return state

    def __contains__(self, article_id: object) -> bool:
        return article_id in self._seen

    def __len__(self) -> int:
        return len(self._seen)

    def add(self, article_id: str) -> None:
        self._seen[article_id] = None
        self._seen.move_to_end(article_id)
        while len(self._seen) > self.max_seen:
            self._seen.popitem(last=False)

    def save(self) -> None:
        if self.path is None:
            return
        data = {
            "version": STATE_VERSION,
            "seen": list(self._seen),
            "feeds": {url: {"etag": v.etag, "last_modified": v.last_modified} for url, v in self.feeds.items()},
        }
        self.path.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(prefix=self.path.name, suffix=".tmp", dir=self.path.parent)
        try:
            with os.fdopen(fd, "w", encoding="utf-8") as handle:
                json.dump(data, handle)
            os.replace(tmp, self.path)
        except BaseException:
            Path(tmp).unlink(missing_ok=True)
            raise
