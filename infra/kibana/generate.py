"""Writes the Kibana saved objects of finpulse (``infra/kibana/*.ndjson``, Kibana 8.x export format).

The ndjson files are the deliverable (``finpulse kibana import`` loads them; they can also be
imported through Kibana's UI); this script is how they were written. Edit here, run
``python infra/kibana/generate.py``, commit both. ``tests/dashboard/test_kibana_objects.py`` checks the
result against the index templates. Objects name the default index prefix ``finpulse``;
``finpulse kibana import`` rewrites data-view titles for another prefix.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
CORE = "8.8.0"
RECORDS = "___records___"

NEWS_VIEW = "finpulse-news"
ALERTS_VIEW = "finpulse-alerts"
RECS_VIEW = "finpulse-recommendations"


def data_view(view_id: str, title: str, name: str, time_field: str, formats: dict[str, Any]) -> dict[str, Any]:
    return {
        "type": "index-pattern",
        "id": view_id,
        "attributes": {
            "title": title,
            "name": name,
            "timeFieldName": time_field,
            "fieldFormatMap": json.dumps(formats),
            "allowNoIndex": True,
        },
        "references": [],
        "coreMigrationVersion": CORE,
        "typeMigrationVersion": "8.0.0",
        "managed": False,
    }


def count(label: str, kql: str | None = None) -> dict[str, Any]:
    column: dict[str, Any] = {
        "label": label, "dataType": "number", "operationType": "count", "isBucketed": False, "scale": "ratio",
        "sourceField": RECORDS, "params": {"emptyAsNull": True}, "customLabel": True,
    }
    if kql:
        column["filter"] = {"query": kql, "language": "kuery"}
    return column


def date_histogram(field: str, label: str) -> dict[str, Any]:
    return {
        "label": label, "dataType": "date", "operationType": "date_histogram", "sourceField": field, "isBucketed": True,
        "scale": "interval", "params": {"interval": "auto", "includeEmptyRows": True, "dropPartials": False},
        "customLabel": True,
    }


def terms(field: str, label: str, size: int, order_column: str) -> dict[str, Any]:
    return {
        "label": label, "dataType": "string", "operationType": "terms", "sourceField": field, "isBucketed": True,
        "scale": "ordinal", "customLabel": True,
        "params": {
            "size": size, "orderBy": {"type": "column", "columnId": order_column}, "orderDirection": "desc",
            "otherBucket": False, "missingBucket": False, "parentFormat": {"id": "terms"},
        },
    }


def metric(operation: str, field: str, label: str, data_type: str = "number") -> dict[str, Any]:
    return {
        "label": label, "dataType": data_type, "operationType": operation, "sourceField": field, "isBucketed": False,
        "scale": "ratio", "params": {"emptyAsNull": True}, "customLabel": True,
    }


def negative_share_columns(prefix: str) -> dict[str, dict[str, Any]]:
    """A Lens formula column ``count(kql='label : "negative"') / count()`` with its hidden parts."""
    formula = "count(kql='label : \"negative\"') / count()"
    return {
        prefix: {
            "label": "Negative share", "dataType": "number", "operationType": "formula", "isBucketed": False,
            "scale": "ratio", "customLabel": True, "references": [f"{prefix}X2"],
            "params": {"formula": formula, "isFormulaBroken": False, "format": {"id": "percent", "params": {"decimals": 0}}},
        },
        f"{prefix}X0": {**count("Part of Negative share", 'label : "negative"'), "params": {"emptyAsNull": False}},
        f"{prefix}X1": {**count("Part of Negative share"), "params": {"emptyAsNull": False}},
        f"{prefix}X2": {
            "label": "Part of Negative share", "dataType": "number", "operationType": "math", "isBucketed": False,
            "scale": "ratio", "customLabel": True, "references": [f"{prefix}X0", f"{prefix}X1"],
            "params": {"tinymathAst": {"type": "function", "name": "divide", "args": [f"{prefix}X0", f"{prefix}X1"],
                                       "location": {"min": 0, "max": len(formula)}, "text": formula}},
        },
    }


def lens(obj_id: str, title: str, view_id: str, columns: dict[str, dict[str, Any]], order: list[str],
         visualization_type: str, visualization: dict[str, Any], query: str = "", description: str = "") -> dict[str, Any]:
    return {
        "type": "lens",
        "id": obj_id,
        "attributes": {
            "title": title,
            "description": description,
            "visualizationType": visualization_type,
            "state": {
                "datasourceStates": {
                    "formBased": {"layers": {"layer1": {"columns": columns, "columnOrder": order, "incompleteColumns": {}}}}
                },
                "visualization": visualization,
                "query": {"query": query, "language": "kuery"},
                "filters": [],
                "adHocDataViews": {},
                "internalReferences": [],
            },
        },
        "references": [
            {"type": "index-pattern", "id": view_id, "name": "indexpattern-datasource-current-indexpattern"},
            {"type": "index-pattern", "id": view_id, "name": "indexpattern-datasource-layer-layer1"},
        ],
        "coreMigrationVersion": CORE,
        "typeMigrationVersion": "8.9.0",
        "managed": False,
    }


def xy(series: str, x: str, accessors: list[str], split: str | None = None) -> dict[str, Any]:
    layer: dict[str, Any] = {"layerId": "layer1", "layerType": "data", "seriesType": series, "xAccessor": x,
                             "accessors": accessors}
    if split:
        layer["splitAccessor"] = split
    return {"legend": {"isVisible": True, "position": "right"}, "valueLabels": "hide", "preferredSeriesType": series,
            "fittingFunction": "None", "layers": [layer]}


def table(columns: list[str]) -> dict[str, Any]:
    return {"layerId": "layer1", "layerType": "data", "columns": [{"columnId": c, "isTransposed": False} for c in columns]}


def saved_search(obj_id: str, title: str, view_id: str, columns: list[str], sort_field: str, query: str) -> dict[str, Any]:
    source = {"query": {"query": query, "language": "kuery"}, "filter": [],
              "indexRefName": "kibanaSavedObjectMeta.searchSourceJSON.index"}
    return {
        "type": "search",
        "id": obj_id,
        "attributes": {
            "title": title,
            "description": "",
            "columns": columns,
            "sort": [[sort_field, "desc"]],
            "grid": {},
            "hideChart": True,
            "isTextBasedQuery": False,
            "kibanaSavedObjectMeta": {"searchSourceJSON": json.dumps(source)},
        },
        "references": [{"type": "index-pattern", "id": view_id, "name": "kibanaSavedObjectMeta.searchSourceJSON.index"}],
        "coreMigrationVersion": CORE,
        "typeMigrationVersion": "8.0.0",
        "managed": False,
    }


def dashboard(obj_id: str, title: str, description: str, panels: list[tuple[dict[str, Any], int, int, int, int]]) -> dict[str, Any]:
    panel_json = []
    references = []
    for n, (obj, x, y, w, h) in enumerate(panels, start=1):
        index = f"p{n}"
        panel_json.append({"type": obj["type"], "panelIndex": index, "gridData": {"x": x, "y": y, "w": w, "h": h, "i": index},
                           "embeddableConfig": {"enhancements": {}}, "panelRefName": f"panel_{index}"})
        references.append({"type": obj["type"], "id": obj["id"], "name": f"{index}:panel_{index}"})
    return {
        "type": "dashboard",
        "id": obj_id,
        "attributes": {
            "title": title,
            "description": description,
            "panelsJSON": json.dumps(panel_json),
            "optionsJSON": json.dumps({"useMargins": True, "syncColors": False, "syncCursor": True, "syncTooltips": False,
                                       "hidePanelTitles": False}),
            "timeRestore": True,
            "timeFrom": "now-24h",
            "timeTo": "now",
            "refreshInterval": {"pause": False, "value": 30000},
            "kibanaSavedObjectMeta": {"searchSourceJSON": json.dumps({"query": {"query": "", "language": "kuery"}, "filter": []})},
            "version": 1,
        },
        "references": references,
        "coreMigrationVersion": CORE,
        "typeMigrationVersion": "8.9.0",
        "managed": False,
    }


def objects() -> dict[str, list[dict[str, Any]]]:
    """Every saved object, by the ndjson file it goes to."""
    return {
        "data-views": data_views(),
        "market-sentiment": market_sentiment(),
        "recommendations": recommendations(),
    }


def data_views() -> list[dict[str, Any]]:
    """The data views of the news, alerts and recommendations indices."""
    url_format = {"url": {"id": "url", "params": {"type": "a", "urlTemplate": None, "labelTemplate": None, "openLinkInCurrentTab": False}},
                  "negative_score": {"id": "number", "params": {"pattern": "0.00"}}}
    return [
        data_view("finpulse-news", NEWS_VIEW, "finpulse news", "published_at", url_format),
        data_view("finpulse-alerts", ALERTS_VIEW, "finpulse alerts", "created_at",
                  {"share": {"id": "percent", "params": {}}, "baseline": {"id": "percent", "params": {}}}),
        data_view("finpulse-recommendations", RECS_VIEW, "finpulse recommendations", "recommended_at",
                  {"url": {"id": "url", "params": {"type": "a", "openLinkInCurrentTab": False}}}),
    ]


def market_sentiment() -> list[dict[str, Any]]:
    """The market sentiment dashboard's panels, then the dashboard."""
    share_per_ticker = lens(
        "finpulse-negative-share-per-ticker", "Negative share over time, top tickers", "finpulse-news",
        {"c1": date_histogram("published_at", "Published"), "c2": terms("tickers", "Ticker", 8, "c4"),
         "c4": count("Articles"), **negative_share_columns("c3")},
        ["c2", "c1", "c3", "c3X0", "c3X1", "c3X2", "c4"], "lnsXY", xy("line", "c1", ["c3"], "c2"),
        description="count(label: negative) / count() per ticker; the 8 tickers with most articles.",
    )
    volume_by_label = lens(
        "finpulse-volume-by-label", "Article volume by label", "finpulse-news",
        {"c1": date_histogram("published_at", "Published"), "c2": terms("label", "Label", 3, "c3"), "c3": count("Articles")},
        ["c2", "c1", "c3"], "lnsXY", xy("bar_stacked", "c1", ["c3"], "c2"),
    )
    alert_timeline = lens(
        "finpulse-alert-timeline", "Alert timeline (raised spikes by key)", "finpulse-alerts",
        {"c1": date_histogram("window_start", "Window start"), "c2": terms("key", "Ticker / market", 10, "c3"),
         "c3": count("Alerts raised"), "c4": metric("max", "share", "Max negative share")},
        ["c2", "c1", "c3", "c4"], "lnsXY", xy("bar_stacked", "c1", ["c3"], "c2"), query='status : "raise"',
    )
    by_source = lens(
        "finpulse-sentiment-by-source", "Sentiment by source", "finpulse-news",
        {"c1": terms("source", "Source", 15, "c3"), "c2": terms("label", "Label", 3, "c3"), "c3": count("Articles"),
         "c4": metric("average", "negative_score", "Mean negative score")},
        ["c1", "c2", "c3", "c4"], "lnsXY", xy("bar_horizontal_percentage_stacked", "c1", ["c3"], "c2"),
    )
    latest_negative = saved_search(
        "finpulse-latest-negative-headlines", "Latest negative headlines", "finpulse-news",
        ["title", "tickers", "source", "negative_score", "url"], "published_at", 'label : "negative"',
    )
    market = dashboard(
        "finpulse-market-sentiment", "Market sentiment",
        "Negative share per ticker, article volume by label, raised alerts, latest negative headlines, sentiment by source.",
        [(share_per_ticker, 0, 0, 32, 15), (volume_by_label, 32, 0, 16, 15), (alert_timeline, 0, 15, 24, 13),
         (by_source, 24, 15, 24, 13), (latest_negative, 0, 28, 48, 18)],
    )
    return [share_per_ticker, volume_by_label, alert_timeline, by_source, latest_negative, market]


def recommendations() -> list[dict[str, Any]]:
    """The recommendations dashboard's panels, then the dashboard."""
    feed_volume = lens(
        "finpulse-recommendation-volume", "Recommendation feed volume", "finpulse-recommendations",
        {"c1": date_histogram("recommended_at", "Recommended"), "c2": count("Recommendations")},
        ["c1", "c2"], "lnsXY", xy("bar", "c1", ["c2"]),
    )
    distinct_users = lens(
        "finpulse-recommendation-users", "Distinct users", "finpulse-recommendations",
        {"c1": metric("unique_count", "user_id", "Distinct users")},
        ["c1"], "lnsMetric", {"layerId": "layer1", "layerType": "data", "metricAccessor": "c1"},
    )
    users_over_time = lens(
        "finpulse-recommendation-users-over-time", "Distinct users over time", "finpulse-recommendations",
        {"c1": date_histogram("recommended_at", "Recommended"), "c2": metric("unique_count", "user_id", "Distinct users")},
        ["c1", "c2"], "lnsXY", xy("line", "c1", ["c2"]),
    )
    top_articles = lens(
        "finpulse-most-recommended-articles", "Most recommended articles", "finpulse-recommendations",
        {"c1": terms("article_id", "Article id", 20, "c3"), "c2": terms("title.raw", "Title", 1, "c3"),
         "c3": count("Times recommended"), "c4": metric("unique_count", "user_id", "Users"),
         "c5": metric("average", "score", "Mean score")},
        ["c1", "c2", "c3", "c4", "c5"], "lnsDatatable", table(["c1", "c2", "c3", "c4", "c5"]),
    )
    recs = dashboard(
        "finpulse-recommendations-overview", "Recommendations",
        "Feed volume, distinct (pseudonymised) users and the most recommended articles.",
        [(feed_volume, 0, 0, 32, 14), (distinct_users, 32, 0, 16, 14), (users_over_time, 0, 14, 24, 13),
         (top_articles, 24, 14, 24, 13)],
    )
    return [feed_volume, distinct_users, users_over_time, top_articles, recs]


def main() -> None:
    for name, objs in objects().items():
        text = "".join(json.dumps(obj, sort_keys=True) + "\n" for obj in objs)
        (HERE / f"{name}.ndjson").write_text(text, encoding="utf-8")


if __name__ == "__main__":
    main()
