"""``finpulse kibana import``: the request Kibana's saved-objects _import API receives, and clear errors.

No Kibana server runs in the test environment: the HTTP exchange is checked against a transport that
answers like Kibana 8 does (documented responses), and the CLI against a closed port.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import httpx
import pytest
from typer.testing import CliRunner

from finpulse.dashboard.exceptions import KibanaImportError
from finpulse.dashboard.kibana import import_saved_objects, import_url, load_saved_objects
from finpulse.settings import KibanaSettings


def kibana(answer: tuple[int, dict[str, Any]], seen: list[httpx.Request]) -> httpx.MockTransport:
    def handle(request: httpx.Request) -> httpx.Response:
        seen.append(request)
        return httpx.Response(answer[0], json=answer[1])

    return httpx.MockTransport(handle)


def ok(n: int) -> tuple[int, dict[str, Any]]:
    return 200, {"success": True, "successCount": n, "successResults": [{"type": "dashboard", "id": "x"}] * n}


def test_posts_every_object_as_multipart_ndjson_with_overwrite_xsrf_and_basic_auth() -> None:
    seen: list[httpx.Request] = []
    settings = KibanaSettings.model_validate({"url": "http://kibana:5601/", "username": "finpulse", "password": "pw"})
    objects = load_saved_objects()
    result = import_saved_objects(settings, transport=kibana(ok(len(objects)), seen))
    assert result.success_count == len(objects)
    request = seen[0]
    assert request.method == "POST"
    assert str(request.url) == "http://kibana:5601/api/saved_objects/_import?overwrite=true"
    assert request.headers["kbn-xsrf"] == "true"
    assert request.headers["authorization"].startswith("Basic ")
    assert request.headers["content-type"].startswith("multipart/form-data; boundary=")
    body = request.read().decode()
    assert 'name="file"; filename="finpulse.ndjson"' in body
    lines = [json.loads(line) for line in body.replace("\r\n", "\n").split("\n") if line.startswith('{"attributes"')]
    assert len(lines) == len(objects)


def test_api_key_space_and_prefix() -> None:
    seen: list[httpx.Request] = []
    settings = KibanaSettings.model_validate({"url": "https://k.example", "api_key": "abc==", "space": "risk"})
    import_saved_objects(settings, index_prefix="acme", transport=kibana(ok(1), seen))
    assert seen[0].url.path == "/s/risk/api/saved_objects/_import"
    assert seen[0].headers["authorization"] == "ApiKey abc=="
    assert '"title": "acme-news"' in seen[0].read().decode()
    assert import_url(KibanaSettings.model_validate({"space": "default"})) == "http://127.0.0.1:5601/api/saved_objects/_import"  # type: ignore[call-arg]


@pytest.mark.parametrize(
    ("answer", "message"),
    [
        ((401, {"statusCode": 401, "error": "Unauthorized", "message": "[security_exception]"}), "refused the credentials"),
        ((400, {"statusCode": 400, "error": "Bad Request", "message": "Unexpected token"}), "HTTP 400: Unexpected token"),
        ((200, {"success": False, "successCount": 0, "errors": [
            {"id": "finpulse-alert-timeline", "type": "lens", "meta": {"title": "Alert timeline"},
             "error": {"type": "missing_references", "references": [{"type": "index-pattern", "id": "finpulse-alerts"}]}},
        ]}), "lens finpulse-alert-timeline (Alert timeline): missing references index-pattern finpulse-alerts"),
    ],
)
def test_failures_become_one_clear_error(answer: tuple[int, dict[str, Any]], message: str) -> None:
    with pytest.raises(KibanaImportError, match=message.replace("(", r"\(").replace(")", r"\)")):
        import_saved_objects(KibanaSettings.model_validate({}), transport=kibana(answer, []))


def test_conflicting_or_half_credentials_are_refused() -> None:
    with pytest.raises(KibanaImportError, match="not both"):
        import_saved_objects(KibanaSettings.model_validate({"api_key": "k", "username": "u", "password": "p"}))
    with pytest.raises(KibanaImportError, match="without FINPULSE_KIBANA__PASSWORD"):
        import_saved_objects(KibanaSettings.model_validate({"username": "u"}))


def test_cli_reports_an_unreachable_kibana_in_one_line(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    from finpulse.cli import app
    from finpulse.exceptions import FinpulseError

    (tmp_path / "empty.env").write_text("")
    monkeypatch.setenv("FINPULSE_ENV_FILE", str(tmp_path / "empty.env"))
    result = CliRunner().invoke(app, ["kibana", "import", "--url", "http://127.0.0.1:9", "--timeout", "2"])
    assert result.exit_code != 0
    assert isinstance(result.exception, FinpulseError)
    assert "Kibana at http://127.0.0.1:9 is unreachable" in str(result.exception)
