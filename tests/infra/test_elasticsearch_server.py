"""How the embedded osmem server is started: its garbage-collection target comes from the settings."""

from __future__ import annotations

from pathlib import Path

import pytest

from finpulse.infra.stack.elasticsearch import ElasticsearchServer
from finpulse.settings import StackSettings


def test_gogc_from_settings_overrides_the_environment(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("GOGC", "50")
    server = ElasticsearchServer(StackSettings(state_dir=tmp_path, elasticsearch_gogc=300))
    assert server.environment()["GOGC"] == "300"


def test_default_gogc_is_200(tmp_path: Path) -> None:
    assert ElasticsearchServer(StackSettings(state_dir=tmp_path)).environment()["GOGC"] == "200"


def test_no_gogc_setting_leaves_the_environment_alone(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("GOGC", raising=False)
    assert "GOGC" not in ElasticsearchServer(StackSettings(state_dir=tmp_path, elasticsearch_gogc=None)).environment()
    monkeypatch.setenv("GOGC", "150")
    assert ElasticsearchServer(StackSettings(state_dir=tmp_path, elasticsearch_gogc=None)).environment()["GOGC"] == "150"


def test_gogc_must_be_positive(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="elasticsearch_gogc"):
        StackSettings(state_dir=tmp_path, elasticsearch_gogc=0)
