"""Fixtures of the recommendation tests."""

from __future__ import annotations

from pathlib import Path

import pytest


@pytest.fixture(scope="session")
def tiny_sentiment_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A tiny random sentiment model exported to ONNX (the worker's scoring agent needs one to start)."""
    from finpulse.models.testing import export_tiny

    return export_tiny(tmp_path_factory.mktemp("tiny-sentiment"))
