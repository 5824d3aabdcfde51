"""Fixtures of the export tests: a tiny random BERT with a topic head beside its sentiment head, exported."""

from __future__ import annotations

from pathlib import Path

import pytest


@pytest.fixture(scope="session")
def tiny_topic_onnx_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A tiny random BERT with both heads, exported with three outputs (``<dir>/../model`` holds the torch model)."""
    from finpulse.export.testing import export_tiny

    return export_tiny(tmp_path_factory.mktemp("tiny-topic-export"), topics=True)


@pytest.fixture(scope="session")
def tiny_topic_artifacts(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """An artifacts dir laid out as the CLI expects, its sentiment model with a topic head."""
    from finpulse.export.testing import export_tiny

    root = tmp_path_factory.mktemp("topic-artifacts")
    export_tiny(root / "sentiment", topics=True)
    return root
