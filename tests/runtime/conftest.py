from __future__ import annotations

from pathlib import Path

import pytest


@pytest.fixture(scope="session")
def tiny_onnx_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A tiny random BERT, exported (fp32 + int8 + tokenizer + card) once per session."""
    from finpulse.models.testing import export_tiny

    return export_tiny(tmp_path_factory.mktemp("tiny-export"))
