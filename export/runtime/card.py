"""The model card written beside exported artefacts (``card.json``) and its verification.

The card says what the files are (labels, max length, inputs, tokenizer files, sha256 of every file), where
they came from (base model, data sets and licenses, export versions) and how good they are (metrics of each
variant). The runtime refuses artefacts whose sha256 differ from the card.
"""

from __future__ import annotations

import hashlib
import json
import logging
from dataclasses import dataclass
from pathlib import Path
from typing import Any, ClassVar, Self

from finpulse.export.runtime.exceptions import ArtefactCorruptError, ArtefactMissingError, CardError

logger = logging.getLogger(__name__)

CARD_FILE = "card.json"
CARD_SCHEMA_VERSION = 1
VARIANT_FILES = {"fp32": "model.fp32.onnx", "int8": "model.int8.onnx"}


def sha256_of(path: Path, chunk: int = 1 << 20) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as handle:
        while block := handle.read(chunk):
            digest.update(block)
    return digest.hexdigest()


@dataclass(frozen=True)
class Card:
    """A parsed ``card.json``: the files of an artefact directory with their sha256, and what made them.

    Subclasses name the keys their card must have and the errors they raise; reading and verification are shared.
    """

    path: Path
    data: dict[str, Any]

    REQUIRED: ClassVar[tuple[str, ...]] = ("model_version", "files")
    BUILD_HINT: ClassVar[str] = "finpulse model build"
    MISSING: ClassVar[str] = "no model card at {path}: run `{hint}`"
    missing_error: ClassVar[type[Exception]] = ArtefactMissingError
    invalid_error: ClassVar[type[Exception]] = CardError
    corrupt_error: ClassVar[type[Exception]] = ArtefactCorruptError

    @property
    def directory(self) -> Path:
        return self.path.parent

    @property
    def model_version(self) -> str:
        return str(self.data["model_version"])

    @property
    def files(self) -> dict[str, str]:
        return dict(self.data["files"])

    @classmethod
    def read(cls, directory: Path) -> Self:
        path = directory / CARD_FILE
        if not path.is_file():
            raise cls.missing_error(cls.MISSING.format(path=path, directory=directory, hint=cls.BUILD_HINT))
        try:
            data = json.loads(path.read_text(encoding="utf-8"))
        except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
            raise cls.invalid_error(f"{path}: unreadable model card ({exc})") from exc
        missing = [key for key in cls.REQUIRED if not isinstance(data, dict) or key not in data]
        if missing:
            raise cls.invalid_error(f"{path}: model card lacks {', '.join(missing)}")
        cls.check(path, data)
        return cls(path=path, data=data)

    @classmethod
    def check(cls, path: Path, data: dict[str, Any]) -> None:
        """Further checks of a card's content (none here)."""

    def verify(self, names: list[str] | None = None) -> None:
        """Check that the named files (default: all) exist and have the sha256 the card records."""
        files = self.files
        for name in names if names is not None else list(files):
            expected = files.get(name)
            if expected is None:
                raise self.invalid_error(f"{self.path}: card has no sha256 for {name}")
            target = self.directory / name
            if not target.is_file():
                raise self.missing_error(f"{target} is named by the model card but missing")
            actual = sha256_of(target)
            if actual != expected:
                raise self.corrupt_error(
                    f"{target}: sha256 {actual[:16]}… differs from the model card's {expected[:16]}… "
                    f"(corrupt or replaced file; re-run `{self.BUILD_HINT}`)"
                )
        logger.debug("verified %d files against %s", len(files), self.path)


@dataclass(frozen=True)
class ModelCard(Card):
    """The card of the exported sentiment model: labels, max length, inputs, tokenizer and ONNX variants."""

    REQUIRED: ClassVar[tuple[str, ...]] = (
        "schema_version", "labels", "max_length", "model_version", "files", "tokenizer", "inputs", "variants")
    BUILD_HINT: ClassVar[str] = "finpulse model export sentiment"

    @property
    def labels(self) -> tuple[str, ...]:
        return tuple(self.data["labels"])

    @property
    def topic_labels(self) -> tuple[str, ...] | None:
        """The topics of the topic head, in its output order (None: a card of a model without one)."""
        value = self.data.get("topic_labels")
        return tuple(value) if value else None

    @property
    def topic_slugs(self) -> tuple[str, ...] | None:
        """The short key of each topic of :attr:`topic_labels`, in the same order."""
        value = self.data.get("topic_slugs")
        return tuple(value) if value else None

    @property
    def max_length(self) -> int:
        return int(self.data["max_length"])

    @property
    def tokenizer_file(self) -> str:
        return str(self.data["tokenizer"]["file"])

    @property
    def input_names(self) -> list[str]:
        return list(self.data["inputs"])

    def model_file(self, variant: str) -> str:
        try:
            return str(self.data["variants"][variant])
        except KeyError:
            raise CardError(f"{self.path}: no {variant!r} variant (has {sorted(self.data.get('variants', {}))})") from None

    @classmethod
    def check(cls, path: Path, data: dict[str, Any]) -> None:
        if data["schema_version"] != CARD_SCHEMA_VERSION:
            raise CardError(f"{path}: card schema {data['schema_version']} is not {CARD_SCHEMA_VERSION}")
