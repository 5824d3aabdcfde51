"""The Kibana saved objects of infra/kibana/*.ndjson against the index templates they read.

Every file parses; ids are unique; every reference resolves to an object of the files; every field a
visualisation, saved search or data view uses exists in the mapping of the index behind its data view,
with a type the operation can aggregate (date histogram on a date, terms on keyword/number, average
on a number, ...); the generator script and the committed files agree. Without a Kibana server this
cannot prove that Kibana renders them: see the report in docs/deploy.md.
"""

from __future__ import annotations

import importlib.util
import json
import re
from pathlib import Path
from typing import Any

import pytest

from finpulse.dashboard.kibana import DEFAULT_PREFIX, load_saved_objects, object_files, parse_ndjson
from finpulse.dashboard.recommendations import RECOMMENDATION_FIELDS
from finpulse.streams.sinks.templates import load_template

ROOT = Path(__file__).resolve().parents[2]
TEMPLATES = ROOT / "infra" / "templates"

NUMERIC = {"long", "integer", "short", "byte", "double", "float", "half_float", "scaled_float", "unsigned_long"}
AGGREGATABLE = NUMERIC | {"keyword", "date", "date_nanos", "boolean", "ip", "constant_keyword"}
# Lens operation -> mapping types it can use.
OPERATION_TYPES: dict[str, set[str]] = {
    "date_histogram": {"date", "date_nanos"},
    "terms": {"keyword", "ip", "boolean", "constant_keyword"} | NUMERIC,
    "average": NUMERIC, "sum": NUMERIC, "min": NUMERIC | {"date"}, "max": NUMERIC | {"date"},
    "median": NUMERIC, "percentile": NUMERIC, "percentile_rank": NUMERIC, "standard_deviation": NUMERIC,
    "unique_count": AGGREGATABLE, "last_value": AGGREGATABLE, "range": NUMERIC, "count": AGGREGATABLE,
}
VIEW_INDEX = {"finpulse-news": "news", "finpulse-alerts": "alerts", "finpulse-recommendations": "recommendations"}
_KQL_FIELD = re.compile(r"([A-Za-z_][\w.]*)\s*:")


def flatten(properties: dict[str, Any], prefix: str = "") -> dict[str, str]:
    """field path -> mapping type, including object sub-properties and multi-fields (title.raw)."""
    fields: dict[str, str] = {}
    for name, mapping in properties.items():
        path = prefix + name
        if "properties" in mapping:
            fields.update(flatten(mapping["properties"], path + "."))
            continue
        fields[path] = mapping.get("type", "object")
        for sub, sub_mapping in mapping.get("fields", {}).items():
            fields[f"{path}.{sub}"] = sub_mapping["type"]
    return fields


def mapping_of(view_id: str) -> dict[str, str]:
    name = VIEW_INDEX[view_id]
    if (TEMPLATES / f"{name}.json").is_file():
        return flatten(load_template(name, DEFAULT_PREFIX)["template"]["mappings"]["properties"])
    assert name == "recommendations", f"no index template for data view {view_id}"
    return flatten(RECOMMENDATION_FIELDS)  # the contract until the recommendations template lands


@pytest.fixture(scope="module")
def objects() -> list[dict[str, Any]]:
    return load_saved_objects()


@pytest.fixture(scope="module")
def by_key(objects: list[dict[str, Any]]) -> dict[tuple[str, str], dict[str, Any]]:
    return {(o["type"], o["id"]): o for o in objects}


def lens_objects(objects: list[dict[str, Any]]) -> list[dict[str, Any]]:
    return [o for o in objects if o["type"] == "lens"]


def layers(obj: dict[str, Any]) -> dict[str, Any]:
    return dict(obj["attributes"]["state"]["datasourceStates"]["formBased"]["layers"])


def view_of_layer(obj: dict[str, Any], layer_id: str) -> str:
    names = {r["name"]: r["id"] for r in obj["references"]}
    ref = f"indexpattern-datasource-layer-{layer_id}"
    assert ref in names, f"{obj['id']}: layer {layer_id} has no data-view reference {ref}"
    return str(names[ref])


def kql_fields(query: str) -> list[str]:
    return _KQL_FIELD.findall(query or "")


def test_every_file_is_ndjson_of_saved_objects() -> None:
    files = object_files()
    assert {name for name, _ in files} >= {"data-views.ndjson", "market-sentiment.ndjson", "recommendations.ndjson"}
    for name, text in files:
        assert text.endswith("\n"), name
        for line in text.splitlines():
            obj = json.loads(line)
            assert set(obj) >= {"type", "id", "attributes", "references"}, name
            assert obj["coreMigrationVersion"].startswith("8."), name
        assert parse_ndjson(name, text)


def test_ids_are_unique(objects: list[dict[str, Any]]) -> None:
    keys = [(o["type"], o["id"]) for o in objects]
    assert len(keys) == len(set(keys))


def test_every_reference_resolves(objects: list[dict[str, Any]], by_key: dict[tuple[str, str], Any]) -> None:
    for obj in objects:
        for ref in obj["references"]:
            assert (ref["type"], ref["id"]) in by_key, f"{obj['type']} {obj['id']}: dangling reference {ref}"


def test_dashboard_panels_match_their_references(objects: list[dict[str, Any]]) -> None:
    dashboards = {o["attributes"]["title"]: o for o in objects if o["type"] == "dashboard"}
    assert set(dashboards) == {"Market sentiment", "Recommendations"}
    for dash in dashboards.values():
        panels = json.loads(dash["attributes"]["panelsJSON"])
        refs = {r["name"]: r for r in dash["references"]}
        assert len(panels) == len(refs)
        for panel in panels:
            ref = refs[f"{panel['panelIndex']}:{panel['panelRefName']}"]
            assert ref["type"] == panel["type"]
            grid = panel["gridData"]
            assert grid["x"] + grid["w"] <= 48 and grid["i"] == panel["panelIndex"]
        json.loads(dash["attributes"]["kibanaSavedObjectMeta"]["searchSourceJSON"])


def test_market_dashboard_has_the_required_panels(objects: list[dict[str, Any]], by_key: dict[tuple[str, str], Any]) -> None:
    dash = next(o for o in objects if o["type"] == "dashboard" and o["attributes"]["title"] == "Market sentiment")
    titles = {by_key[(r["type"], r["id"])]["attributes"]["title"] for r in dash["references"]}
    assert titles == {"Negative share over time, top tickers", "Article volume by label", "Alert timeline (raised spikes by key)",
                      "Latest negative headlines", "Sentiment by source"}
    recs = next(o for o in objects if o["type"] == "dashboard" and o["attributes"]["title"] == "Recommendations")
    rec_titles = {by_key[(r["type"], r["id"])]["attributes"]["title"] for r in recs["references"]}
    assert {"Recommendation feed volume", "Distinct users", "Most recommended articles"} <= rec_titles


def test_data_views_name_the_template_aliases_and_a_date_time_field(objects: list[dict[str, Any]]) -> None:
    views = {o["id"]: o for o in objects if o["type"] == "index-pattern"}
    assert set(views) == set(VIEW_INDEX)
    for view_id, view in views.items():
        name = VIEW_INDEX[view_id]
        attributes = view["attributes"]
        if (TEMPLATES / f"{name}.json").is_file():
            template = load_template(name, DEFAULT_PREFIX)
            assert attributes["title"] in template["template"]["aliases"], f"{view_id} does not read the template's alias"
        else:
            assert attributes["title"] == f"{DEFAULT_PREFIX}-{name}"
        fields = mapping_of(view_id)
        assert fields.get(attributes["timeFieldName"]) == "date", view_id
        for field in json.loads(attributes.get("fieldFormatMap") or "{}"):
            assert field in fields, f"{view_id}: field format for unknown field {field}"


def test_every_lens_column_uses_a_field_its_operation_can_aggregate(objects: list[dict[str, Any]]) -> None:
    checked = 0
    for obj in lens_objects(objects):
        for layer_id, layer in layers(obj).items():
            fields = mapping_of(view_of_layer(obj, layer_id))
            columns = layer["columns"]
            assert sorted(layer["columnOrder"]) == sorted(columns), f"{obj['id']}: columnOrder and columns differ"
            for column_id, column in columns.items():
                for ref in column.get("references", []):
                    assert ref in columns, f"{obj['id']}.{column_id}: references missing column {ref}"
                for field in kql_fields(column.get("filter", {}).get("query", "")):
                    assert field in fields, f"{obj['id']}.{column_id}: filter on unknown field {field}"
                operation = column["operationType"]
                if operation in {"formula", "math"}:
                    continue
                source = column.get("sourceField")
                if operation == "count" and source == "___records___":
                    continue
                assert source in fields, f"{obj['id']}.{column_id}: {operation} on {source}, not in the mapping"
                allowed = OPERATION_TYPES[operation]
                assert fields[source] in allowed, f"{obj['id']}.{column_id}: {operation} on {source} of type {fields[source]}"
                expected_data_type = {"date_histogram": "date"}.get(operation)
                if expected_data_type:
                    assert column["dataType"] == expected_data_type
                if operation == "terms":
                    assert column["params"]["orderBy"].get("columnId", column_id) in columns
                checked += 1
            for field in kql_fields(obj["attributes"]["state"]["query"]["query"]):
                assert field in fields, f"{obj['id']}: query on unknown field {field}"
    assert checked >= 15


def test_every_visualisation_accessor_is_a_column(objects: list[dict[str, Any]]) -> None:
    for obj in lens_objects(objects):
        columns = {c for layer in layers(obj).values() for c in layer["columns"]}
        vis = obj["attributes"]["state"]["visualization"]
        used: list[str] = []
        for layer in vis.get("layers", []):
            used += [layer.get("xAccessor"), layer.get("splitAccessor"), *layer.get("accessors", [])]
        used += [c["columnId"] for c in vis.get("columns", [])]
        used.append(vis.get("metricAccessor"))
        for accessor in filter(None, used):
            assert accessor in columns, f"{obj['id']}: visualisation uses unknown column {accessor}"


def test_negative_share_formula_divides_negatives_by_all(objects: list[dict[str, Any]]) -> None:
    lens_obj = next(o for o in lens_objects(objects) if o["id"] == "finpulse-negative-share-per-ticker")
    columns = layers(lens_obj)["layer1"]["columns"]
    formula = next(c for c in columns.values() if c["operationType"] == "formula")
    assert formula["params"]["formula"] == "count(kql='label : \"negative\"') / count()"
    math_col = columns[formula["references"][0]]
    numerator, denominator = (columns[c] for c in math_col["params"]["tinymathAst"]["args"])
    assert numerator["filter"]["query"] == 'label : "negative"' and "filter" not in denominator


def test_saved_searches_use_mapped_fields(objects: list[dict[str, Any]]) -> None:
    searches = [o for o in objects if o["type"] == "search"]
    assert searches
    for search in searches:
        source = json.loads(search["attributes"]["kibanaSavedObjectMeta"]["searchSourceJSON"])
        ref = next(r for r in search["references"] if r["name"] == source["indexRefName"])
        fields = mapping_of(ref["id"])
        for column in search["attributes"]["columns"]:
            assert column in fields, f"{search['id']}: column {column} not in the mapping"
        for field, _direction in search["attributes"]["sort"]:
            assert fields[field] in AGGREGATABLE, f"{search['id']}: sort on {field} ({fields[field]})"
        for field in kql_fields(source["query"]["query"]):
            assert field in fields


def test_text_fields_are_never_aggregated(objects: list[dict[str, Any]]) -> None:
    """A regression guard for the checker itself: terms on the analysed `title` must be refused."""
    fields = mapping_of("finpulse-news")
    assert fields["title"] == "text" and fields["title.raw"] == "keyword"
    assert fields["title"] not in OPERATION_TYPES["terms"]


def test_prefix_rewrites_data_view_titles_only() -> None:
    objects = load_saved_objects("acme")
    titles = {o["id"]: o["attributes"]["title"] for o in objects if o["type"] == "index-pattern"}
    assert titles == {"finpulse-news": "acme-news", "finpulse-alerts": "acme-alerts",
                      "finpulse-recommendations": "acme-recommendations"}


def test_generator_and_committed_files_agree(tmp_path: Path) -> None:
    spec = importlib.util.spec_from_file_location("kibana_generate", ROOT / "infra" / "kibana" / "generate.py")
    assert spec and spec.loader
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    for name, objs in module.objects().items():
        expected = "".join(json.dumps(obj, sort_keys=True) + "\n" for obj in objs)
        assert (ROOT / "infra" / "kibana" / f"{name}.ndjson").read_text(encoding="utf-8") == expected, (
            f"{name}.ndjson is stale: run python infra/kibana/generate.py"
        )


def test_recommendation_contract_matches_the_template() -> None:
    template = flatten(load_template("recommendations", DEFAULT_PREFIX)["template"]["mappings"]["properties"])
    for field, kind in flatten(RECOMMENDATION_FIELDS).items():
        assert template.get(field) == kind, f"recommendations.{field}: expected {kind}, the template has {template.get(field)}"
