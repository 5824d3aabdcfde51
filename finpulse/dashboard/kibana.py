"""Kibana saved objects of ``infra/kibana/*.ndjson`` and loading them through Kibana's ``_import`` API.

The files name the default index prefix ``finpulse`` (they stay importable through Kibana's UI as they
are); :func:`load_saved_objects` rewrites the data-view titles for another prefix. The import sends
every object in one request (``overwrite=true``) so references between files resolve.
"""

from __future__ import annotations

import importlib.resources
import json
import logging
from dataclasses import dataclass, field
from typing import Any

import httpx

from finpulse.dashboard.exceptions import KibanaImportError, KibanaObjectsError
from finpulse.settings import KibanaSettings

logger = logging.getLogger(__name__)

DEFAULT_PREFIX = "finpulse"
# Index data the data views read, by the data-view id: (index suffix, whether it has a shipped template).
DATA_VIEW_INDEX = {"finpulse-news": "news", "finpulse-alerts": "alerts", "finpulse-recommendations": "recommendations"}


def object_files() -> list[tuple[str, str]]:
    """(file name, text) of every shipped ``infra/kibana/*.ndjson``, sorted by name."""
    folder = importlib.resources.files("finpulse.infra").joinpath("kibana")
    try:
        entries = sorted((entry for entry in folder.iterdir() if entry.name.endswith(".ndjson")), key=lambda e: e.name)
    except (FileNotFoundError, NotADirectoryError):
        raise KibanaObjectsError("no infra/kibana folder in finpulse.infra (is the package installed with its data?)") from None
    if not entries:
        raise KibanaObjectsError("no infra/kibana/*.ndjson saved-object files")
    return [(entry.name, entry.read_text(encoding="utf-8")) for entry in entries]


def parse_ndjson(name: str, text: str) -> list[dict[str, Any]]:
    """The saved objects of one ndjson file (the export summary line, if any, is dropped)."""
    objects = []
    for number, line in enumerate(text.splitlines(), start=1):
        if not line.strip():
            continue
        try:
            obj = json.loads(line)
        except json.JSONDecodeError as exc:
            raise KibanaObjectsError(f"{name}:{number}: not JSON ({exc.msg})") from None
        if not isinstance(obj, dict):
            raise KibanaObjectsError(f"{name}:{number}: not a JSON object")
        if "exportedCount" in obj:
            continue
        missing = [key for key in ("type", "id", "attributes") if key not in obj]
        if missing:
            raise KibanaObjectsError(f"{name}:{number}: saved object without {', '.join(missing)}")
        objects.append(obj)
    return objects


def load_saved_objects(index_prefix: str = DEFAULT_PREFIX) -> list[dict[str, Any]]:
    """Every shipped saved object, data-view titles rewritten for ``index_prefix``."""
    objects = [obj for name, text in object_files() for obj in parse_ndjson(name, text)]
    if index_prefix != DEFAULT_PREFIX:
        for obj in objects:
            if obj["type"] == "index-pattern":
                title = str(obj["attributes"]["title"])
                if title.startswith(DEFAULT_PREFIX + "-"):
                    obj["attributes"]["title"] = index_prefix + title[len(DEFAULT_PREFIX):]
    return objects


def to_ndjson(objects: list[dict[str, Any]]) -> bytes:
    return "".join(json.dumps(obj, sort_keys=True) + "\n" for obj in objects).encode("utf-8")


def auth_headers(settings: KibanaSettings) -> tuple[dict[str, str], tuple[str | bytes, str | bytes] | None]:
    """Headers and basic auth for Kibana from ``settings`` (API key wins; both set is an error)."""
    headers = {"kbn-xsrf": "true"}
    if settings.api_key is not None and settings.username:
        raise KibanaImportError("set either FINPULSE_KIBANA__API_KEY or FINPULSE_KIBANA__USERNAME/PASSWORD, not both")
    if settings.api_key is not None:
        headers["Authorization"] = f"ApiKey {settings.api_key.get_secret_value()}"
        return headers, None
    if settings.username:
        if settings.password is None:
            raise KibanaImportError("FINPULSE_KIBANA__USERNAME is set without FINPULSE_KIBANA__PASSWORD")
        return headers, (settings.username, settings.password.get_secret_value())
    if settings.password is not None:
        raise KibanaImportError("FINPULSE_KIBANA__PASSWORD is set without FINPULSE_KIBANA__USERNAME")
    return headers, None


def import_url(settings: KibanaSettings) -> str:
    space = settings.space.strip().strip("/")
    base = f"{settings.url}/s/{space}" if space and space != "default" else settings.url
    return f"{base}/api/saved_objects/_import"


@dataclass(frozen=True)
class ImportResult:
    success_count: int
    objects: list[tuple[str, str]] = field(default_factory=list)  # (type, id) of what Kibana imported


def import_saved_objects(
    settings: KibanaSettings, index_prefix: str = DEFAULT_PREFIX, timeout_s: float = 60.0,
    objects: list[dict[str, Any]] | None = None, transport: httpx.BaseTransport | None = None,
) -> ImportResult:
    """POST the saved objects to Kibana's ``_import`` API (overwrite); raise :class:`KibanaImportError` on any failure."""
    objects = load_saved_objects(index_prefix) if objects is None else objects
    headers, auth = auth_headers(settings)
    url = import_url(settings)
    files = {"file": ("finpulse.ndjson", to_ndjson(objects), "application/ndjson")}
    try:
        with httpx.Client(timeout=timeout_s, transport=transport) as client:
            response = client.post(
                url, params={"overwrite": "true"}, headers=headers, files=files, auth=auth if auth is not None else httpx.USE_CLIENT_DEFAULT
            )
    except httpx.HTTPError as exc:
        raise KibanaImportError(f"Kibana at {settings.url} is unreachable: {type(exc).__name__}: {exc}") from None
    if response.status_code in (401, 403):
        raise KibanaImportError(
            f"Kibana refused the credentials ({response.status_code}): check FINPULSE_KIBANA__USERNAME/PASSWORD or API_KEY"
        )
    if response.status_code != 200:
        raise KibanaImportError(f"Kibana import failed with HTTP {response.status_code}: {_message(response)}")
    try:
        body = response.json()
    except ValueError:
        raise KibanaImportError(f"Kibana answered 200 without JSON from {url}: {response.text[:200]!r}") from None
    errors = body.get("errors") or []
    if not body.get("success", False) or errors:
        raise KibanaImportError(f"Kibana rejected {len(errors)} saved object(s): " + "; ".join(_describe(e) for e in errors[:10]))
    imported = [(str(r.get("type")), str(r.get("id"))) for r in body.get("successResults", [])]
    logger.info("imported %s saved objects into Kibana at %s", body.get("successCount"), url)
    return ImportResult(success_count=int(body.get("successCount", 0)), objects=imported)


def _message(response: httpx.Response) -> str:
    try:
        body = response.json()
    except ValueError:
        return response.text[:300] or response.reason_phrase
    if isinstance(body, dict):
        return str(body.get("message") or body.get("error") or body)[:300]
    return str(body)[:300]


def _describe(error: dict[str, Any]) -> str:
    detail = error.get("error", {})
    kind = detail.get("type", "error")
    what = f"{error.get('type')} {error.get('id')} ({error.get('title') or error.get('meta', {}).get('title', '')})"
    if kind == "missing_references":
        refs = ", ".join(f"{r.get('type')} {r.get('id')}" for r in detail.get("references", []))
        return f"{what}: missing references {refs}"
    return f"{what}: {kind} {detail.get('message', '')}".strip()
