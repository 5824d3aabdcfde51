"""The recommendation model at serving time: ONNX news encoder + numpy user tower (never torch).

The artefact directory (``export/recommend.py`` writes it) holds ``card.json``, ``news_encoder.onnx``
(``input_ids``, ``attention_mask`` → ``embedding``: mean-pooled last hidden state, L2-normalised),
``tokenizer.json``, ``user_tower.npz`` and, for a model trained with categories, ``news_categories.npz``.
File digests are checked against the card before loading.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, ClassVar

import numpy as np

from finpulse.export.runtime.card import CARD_FILE, Card
from finpulse.export.runtime.card import sha256_of as sha256_of  # the exporter's import
from finpulse.export.runtime.categories import CATEGORIES_FILE, NewsCategories
from finpulse.export.runtime.exceptions import ModelArtefactError, SharedEncoderMismatchError
from finpulse.export.runtime.ranking import UserTower, l2_normalise
from finpulse.export.runtime.sessions import worker_session_options
from finpulse.tagging.sectors import article_categories

if TYPE_CHECKING:
    from finpulse.settings import Settings

logger = logging.getLogger(__name__)

#: Card key naming the sentiment model whose frozen encoder the news tower is (shared encoder), if any.
SHARED_SENTIMENT_KEY = "shared_sentiment_model"
ENCODER_FILE = "news_encoder.onnx"
TOKENIZER_FILE = "tokenizer.json"
TOWER_FILE = "user_tower.npz"


@dataclass(frozen=True)
class RecommendCard(Card):
    """The card of the exported recommender: dimension, max length and the files of both towers."""

    REQUIRED: ClassVar[tuple[str, ...]] = ("model_version", "dim", "max_length", "files")
    BUILD_HINT: ClassVar[str] = "finpulse model build recommend"
    MISSING: ClassVar[str] = "no recommendation model at {directory} (card.json missing): run `{hint}`"
    missing_error = invalid_error = corrupt_error = ModelArtefactError  # one error for every card problem

    @property
    def dim(self) -> int:
        return int(self.data["dim"])


class NewsEncoder:
    """``embed(texts)`` → unit vectors ``(n, dim)`` from the exported news tower."""

    def __init__(self, session: Any, tokenizer: Any, dim: int, max_length: int, batch_size: int = 32) -> None:
        self._session = session
        self._tokenizer = tokenizer
        self.dim = dim
        self.max_length = max_length
        self.batch_size = batch_size
        self._inputs = {i.name for i in session.get_inputs()}

    @classmethod
    def load(cls, directory: Path, card: RecommendCard, threads: int = 0) -> NewsEncoder:
        import onnxruntime as ort
        from tokenizers import Tokenizer

        tokenizer = Tokenizer.from_file(str(directory / TOKENIZER_FILE))
        tokenizer.no_padding()
        tokenizer.enable_truncation(max_length=int(card.data["max_length"]))
        # Spinning always off (this encoder runs in the worker, beside the sentiment model) and flush-to-zero always
        # on: the reasons are in worker_session_options.
        options = worker_session_options(threads, allow_spinning=False, denormal_as_zero=True)
        try:
            session = ort.InferenceSession(str(directory / ENCODER_FILE), sess_options=options, providers=["CPUExecutionProvider"])
        except Exception as exc:  # onnxruntime raises its own untyped errors
            raise ModelArtefactError(f"cannot load {directory / ENCODER_FILE}: {exc}") from exc
        return cls(session, tokenizer, card.dim, int(card.data["max_length"]))

    def embed(self, texts: Sequence[str]) -> np.ndarray:
        out = np.zeros((len(texts), self.dim), np.float32)
        if not texts:
            return out
        encodings = self._tokenizer.encode_batch([t[: self.max_length * 32] for t in texts])
        lengths = np.asarray([max(1, len(e.ids)) for e in encodings])
        order = np.argsort(lengths, kind="stable")
        for start in range(0, len(texts), self.batch_size):
            idx = order[start : start + self.batch_size]
            width = int(lengths[idx].max())
            ids = np.zeros((len(idx), width), np.int64)
            for row, i in enumerate(idx.tolist()):
                ids[row, : len(encodings[i].ids)] = encodings[i].ids
            mask = (np.arange(width)[None, :] < lengths[idx][:, None]).astype(np.int64)
            feeds = {"input_ids": ids, "attention_mask": mask}
            if "token_type_ids" in self._inputs:
                feeds["token_type_ids"] = np.zeros_like(ids)
            out[idx] = self._session.run(["embedding"], feeds)[0]
        return l2_normalise(out)


@dataclass(frozen=True)
class RecommendModel:
    version: str
    dim: int
    encoder: NewsEncoder | None
    tower: UserTower
    categories: NewsCategories | None = None

    def news_vector(self, embedding: np.ndarray, tickers: Sequence[str], text: str) -> np.ndarray:
        """The unit vector an article is ranked by: its text embedding, plus the vectors of its category and
        subcategory (:func:`~finpulse.tagging.sectors.article_categories`) when the model learned them."""
        return self.news_vectors(np.asarray(embedding, dtype=np.float32)[None], [(tickers, text)])[0]

    def news_vectors(self, embeddings: np.ndarray, articles: Sequence[tuple[Sequence[str], str]]) -> np.ndarray:
        """:meth:`news_vector` of many articles at once (rows of ``embeddings``; each article's tickers and text):
        one matrix operation per batch instead of one per article."""
        vectors = np.asarray(embeddings, dtype=np.float32).reshape(len(articles), self.dim)
        if self.categories is None:
            return l2_normalise(vectors)
        names = [article_categories(tickers, text) for tickers, text in articles]
        return self.categories.apply(vectors, [c for c, _ in names], [s for _, s in names])


def load_model(directory: Path, threads: int = 0, verify: bool = True, with_encoder: bool = True) -> RecommendModel:
    """The model at ``directory``; without ``with_encoder`` (shared encoder: articles arrive embedded by the sentiment
    pass) the news encoder is not loaded, and an article that arrives without an embedding is no candidate."""
    card = RecommendCard.read(directory)
    if verify:
        card.verify()
    tower = UserTower.load(directory / TOWER_FILE)
    if tower.dim != card.dim:
        raise ModelArtefactError(f"{directory}: user tower is {tower.dim}-d, card says {card.dim}")
    categories = NewsCategories.load(directory / CATEGORIES_FILE) if CATEGORIES_FILE in card.data["files"] else None
    if categories is not None and categories.dim != card.dim:
        raise ModelArtefactError(f"{directory}: category vectors are {categories.dim}-d, card says {card.dim}")
    encoder = NewsEncoder.load(directory, card, threads) if with_encoder else None
    logger.info("recommendation model %s (%d-d%s) from %s", card.model_version, card.dim,
                ", category-aware" if categories is not None else "", directory)
    return RecommendModel(card.model_version, card.dim, encoder, tower, categories)


def check_shared_encoder(directory: Path, sentiment_version: str, embedding_dim: int | None) -> None:
    """Raise :class:`SharedEncoderMismatchError` unless the embeddings of the sentiment model ``sentiment_version``
    can feed the recommendation model at ``directory`` (trained over that very encoder, same width).

    No recommendation model yet is fine: the stream then ranks by mean pooling over those embeddings.
    """
    if embedding_dim is None:
        raise SharedEncoderMismatchError(
            f"the sentiment model {sentiment_version} has no embedding output: re-export it (finpulse model export "
            "sentiment) or set FINPULSE_RECOMMEND__SHARED_ENCODER=false")
    if not (directory / CARD_FILE).is_file():
        logger.info("shared encoder: no recommendation model at %s yet; ranking by mean pooling", directory)
        return
    card = RecommendCard.read(directory)
    shared = card.data.get(SHARED_SENTIMENT_KEY)
    if shared != sentiment_version or card.dim != embedding_dim:
        trained_over = f"the encoder of sentiment model {shared}" if shared else "its own encoder"
        raise SharedEncoderMismatchError(
            f"FINPULSE_RECOMMEND__SHARED_ENCODER is on, but the recommendation model {card.model_version} at {directory} "
            f"was trained over {trained_over} ({card.dim}-d), not over sentiment model {sentiment_version} "
            f"({embedding_dim}-d): run finpulse model train recommend --shared-encoder, or set "
            "FINPULSE_RECOMMEND__SHARED_ENCODER=false to serve it with its own encoder")
    logger.info("shared encoder: articles are embedded in the sentiment pass of %s", sentiment_version)


def check_shared_pairing(recommend_dir: Path, sentiment_dir: Path) -> None:
    """:func:`check_shared_encoder` for the sentiment model exported at ``sentiment_dir`` (its card's version and
    embedding width)."""
    from finpulse.export.runtime.card import ModelCard

    card = ModelCard.read(sentiment_dir)
    dim = card.data.get("embedding_dim")
    check_shared_encoder(recommend_dir, card.model_version, int(dim) if dim else None)


def rebuild_reason(settings: Settings) -> str | None:
    """Why ``finpulse model build recommend`` must train and export again, or ``None`` when the exported model is
    intact and fits the settings (with a shared encoder: trained over the current sentiment model)."""
    from finpulse.export.runtime.exceptions import ModelRuntimeError

    directory = settings.recommend_model_path()
    try:
        RecommendCard.read(directory).verify()
        if settings.recommend.shared_encoder:
            check_shared_pairing(directory, settings.model.sentiment_path())
    except ModelRuntimeError as exc:
        return str(exc)
    return None


def model_or_fallback(directory: Path, dim: int = 384, threads: int = 0, with_encoder: bool = True) -> RecommendModel:
    """The exported model, or (no artefact yet) mean pooling over embeddings the articles carry themselves."""
    if not (directory / CARD_FILE).is_file():
        logger.warning("no recommendation model at %s: only articles that carry an embedding become candidates", directory)
        return RecommendModel("mean-pooling-no-encoder", dim, None, UserTower.mean_pooling(dim))
    return load_model(directory, threads, with_encoder=with_encoder)
