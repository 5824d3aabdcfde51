"""What trend viewing expects of the ``<prefix>-recommendations`` index (built by the recommendations work).

The Kibana "Recommendations" dashboard and the live page read these fields. When
``infra/templates/recommendations.json`` lands, ``tests/trends/test_kibana_objects.py`` checks the
dashboard against it instead of this contract; the live page also reads documents that carry a list
``items`` of recommendations per user.
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
