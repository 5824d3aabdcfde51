"""The Faust app takes its producer and consumer settings from finpulse's settings (no connection made)."""

from __future__ import annotations

from pathlib import Path

from finpulse.settings import Settings
from finpulse.streams.app import create_app


def test_producer_linger_comes_from_the_kafka_settings(tmp_path: Path) -> None:
    settings = Settings.model_validate(
        {"kafka": {"producer_linger_s": 0.05, "consumer_group": "linger-test"}, "stream": {"data_dir": str(tmp_path)}}
    )
    app = create_app(settings).app
    assert app.conf.producer_linger == 0.05
    assert app.conf.producer_acks == -1


def test_the_default_linger_is_five_milliseconds() -> None:
    assert Settings().kafka.producer_linger_s == 0.005
