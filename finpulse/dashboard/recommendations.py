"""What trend viewing reads from the ``<prefix>-recommendations`` alias (written by the recommend agents).

``infra/templates/recommendations.json`` is the mapping; :data:`RECOMMENDATION_FIELDS` lists the fields the
Kibana "Recommendations" dashboard and the live page use (``tests/trends`` checks it against the
template). Each recommendation list is kept: one document per (user pseudonym, list time, rank). The
live page also reads documents that carry a list ``items`` of recommendations per user.
"""

from __future__ import annotations

from typing import Any

# One document per (user, recommended article).
RECOMMENDATION_FIELDS: dict[str, dict[str, Any]] = {
    "user_id": {"type": "keyword"},  # pseudonymised (keyed hash), never the raw id
    "article_id": {"type": "keyword"},
    "title": {"type": "text", "fields": {"raw": {"type": "keyword", "ignore_above": 1024}}},
    "url": {"type": "keyword"},
    "score": {"type": "float"},
    "rank": {"type": "integer"},
    "recommended_at": {"type": "date"},
    "tickers": {"type": "keyword"},
}


def recommendations_index(prefix: str) -> str:
    return f"{prefix}-recommendations"


def flatten_recommendations(source: dict[str, Any]) -> list[dict[str, Any]]:
    """The recommendations of one stored document: itself, or each entry of its ``items`` list."""
    items = source.get("items")
    if isinstance(items, list):
        shared = {k: v for k, v in source.items() if k != "items"}
        return [{**shared, **item} for item in items if isinstance(item, dict)]
    return [source]
