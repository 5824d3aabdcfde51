"""Fixtures of the streaming integration tests: per-test settings and a small trained sentiment model."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from finpulse.settings import Settings

from .harness import free_port


def with_overrides(settings: Settings, **groups: dict[str, Any]) -> Settings:
    """A copy of ``settings`` with some fields of some groups replaced (validated again)."""
    data = settings.model_dump()
    for group, values in groups.items():
        data[group].update(values)
    return Settings.model_validate(data)


@pytest.fixture
def pipeline_settings(stack: Any, unique_name: str, tiny_sentiment_model: Path) -> Settings:
    """Settings of one test's pipeline: its own topics, group, indices, ports and a 60 s spike window."""
    return with_overrides(
        stack.settings,
        kafka={"topic_prefix": f"{unique_name}.", "consumer_group": unique_name},
        elasticsearch={"index_prefix": unique_name},
        model={"sentiment_dir": tiny_sentiment_model, "sentiment_variant": "fp32", "intra_op_threads": 1},
        stream={"web_port": free_port(), "metrics_port": free_port(), "batch_wait_s": 0.05, "index_wait_s": 0.1},
        spike={"window_s": 60.0, "min_count": 5, "cooldown_s": 0.0, "alpha": 0.001, "prior_share": 0.1},
        alerts={"sinks": ["alerta", "log"]},
    )
