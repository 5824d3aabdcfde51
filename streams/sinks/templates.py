"""Index templates shipped in ``infra/templates/*.json`` and installing them (idempotent).

Template files write the index prefix as ``{prefix}``. The embedded osmem server has no
``dense_vector`` type: :func:`adapt_for_embedded` maps such fields to a disabled object (kept in
``_source``, never parsed into the index; as unindexed floats, a 384-float vector had cost osmem
about a third of its CPU per document) and drops replicas (one node). :func:`index_template`
applies it when ``compat_json`` is set, which is the embedded server's setting.
"""

from __future__ import annotations

import copy
import importlib.resources
import json
import logging
from typing import TYPE_CHECKING, Any

from finpulse.settings import ElasticsearchSettings
from finpulse.streams.sinks.exceptions import TemplateError

if TYPE_CHECKING:
    from elasticsearch import Elasticsearch

logger = logging.getLogger(__name__)

TEMPLATES: tuple[str, ...] = ("news", "alerts", "recommendations")
EMBEDDED_VECTOR_MAPPING: dict[str, Any] = {"type": "object", "enabled": False}


def template_name(prefix: str, name: str) -> str:
    return f"{prefix}-{name}"


def news_alias(prefix: str) -> str:
    """The alias over every monthly news index."""
    return f"{prefix}-news"


def load_template(name: str, prefix: str) -> dict[str, Any]:
    """The template ``infra/templates/<name>.json`` with ``{prefix}`` filled in."""
    resource = importlib.resources.files("finpulse.infra").joinpath("templates", f"{name}.json")
    try:
        text = resource.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise TemplateError(f"no index template file {name}.json in finpulse.infra/templates") from None
    return _fill(json.loads(text), prefix)


def _fill(value: Any, prefix: str) -> Any:
    if isinstance(value, str):
        return value.replace("{prefix}", prefix)
    if isinstance(value, dict):
        return {_fill(k, prefix): _fill(v, prefix) for k, v in value.items()}
    if isinstance(value, list):
        return [_fill(v, prefix) for v in value]
    return value


def adapt_for_embedded(template: dict[str, Any]) -> dict[str, Any]:
    """A copy of ``template`` that osmem accepts: no ``dense_vector``, no replicas."""
    adapted = copy.deepcopy(template)
    body = adapted.setdefault("template", {})
    _replace_vectors(body.get("mappings", {}).get("properties", {}))
    body.setdefault("settings", {})["number_of_replicas"] = 0
    return adapted


def _replace_vectors(properties: dict[str, Any]) -> None:
    for field, mapping in properties.items():
        if mapping.get("type") == "dense_vector":
            properties[field] = dict(EMBEDDED_VECTOR_MAPPING)
        elif "properties" in mapping:
            _replace_vectors(mapping["properties"])


def index_template(name: str, settings: ElasticsearchSettings) -> dict[str, Any]:
    """The template ``name`` for ``settings`` (adapted for the embedded server when ``compat_json``)."""
    template = load_template(name, settings.index_prefix)
    return adapt_for_embedded(template) if settings.compat_json else template


def install_templates(client: Elasticsearch, settings: ElasticsearchSettings) -> list[str]:
    """Put every shipped index template (``PUT _index_template``, overwriting); returns their names."""
    from elasticsearch import ApiError

    installed = []
    for name in TEMPLATES:
        body = index_template(name, settings)
        full_name = template_name(settings.index_prefix, name)
        kwargs = {("meta" if key == "_meta" else key): value for key, value in body.items()}
        try:
            client.indices.put_index_template(name=full_name, **kwargs)
        except ApiError as exc:
            raise TemplateError(f"Elasticsearch refused index template {full_name}: {exc}") from exc
        logger.info("index template %s installed for %s", full_name, body["index_patterns"])
        installed.append(full_name)
    return installed
