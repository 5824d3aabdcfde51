"""Sentiment scoring with onnxruntime: the hot path of the streaming workers.

Texts are tokenized together (``encode_batch``, in Rust, parallel), sorted by token length and run in
micro-batches padded to the longest text of each micro-batch (not to ``max_length``); results come back in
input order. On CUDA the inputs and outputs go through IO binding.

A graph with a ``topic_logits`` output (a model trained with the topic head) gives each text's topic from the same
pass: :class:`Prediction` then carries ``topic`` (the slug of the card's ``topic_slugs``) and ``topic_probabilities``;
an older graph has neither, and its predictions carry None.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

import numpy as np

from finpulse.export.runtime.card import ModelCard
from finpulse.export.runtime.exceptions import CardError, InferenceError
from finpulse.export.runtime.sessions import worker_session_options
from finpulse.export.runtime.vectors import rounded_rows

if TYPE_CHECKING:
    from finpulse.settings import ModelSettings

logger = logging.getLogger(__name__)

Variant = Literal["int8", "fp32"]
PROVIDER_NAMES = {
    "tensorrt": "TensorrtExecutionProvider",
    "cuda": "CUDAExecutionProvider",
    "cpu": "CPUExecutionProvider",
}
#: Characters kept per text before tokenizing: far beyond what ``max_length`` tokens can span in real text,
#: it only bounds the tokenizer's work on pathological inputs (a 100k-character body).
CHARS_PER_TOKEN_CAP = 64
#: The graph output holding each text's unit embedding (see ``finpulse.export.sentiment``).
EMBEDDING_OUTPUT = "embedding"
#: The graph output holding each text's topic logits (a model trained with the topic head).
TOPIC_OUTPUT = "topic_logits"


@dataclass(frozen=True, slots=True)
class Prediction:
    """Sentiment (and, with a topic head, topic) of one text."""

    label: str
    probabilities: dict[str, float]
    model_version: str
    #: The article's unit embedding from the same pass (``score(..., embed=True)`` on a graph with that output).
    embedding: list[float] | None = None
    #: The most probable topic's slug (``fed-central-banks``, ...; the card's ``topic_slugs``); None without a topic head.
    topic: str | None = None
    #: Probability of every topic by slug, in the card's order; None without a topic head.
    topic_probabilities: dict[str, float] | None = None

    @property
    def negative_score(self) -> float:
        return self.probabilities.get("negative", 0.0)

    @property
    def topic_probability(self) -> float | None:
        """The probability of :attr:`topic`."""
        if self.topic is None or self.topic_probabilities is None:
            return None
        return self.topic_probabilities[self.topic]


@dataclass(frozen=True, slots=True)
class Outputs:
    """The arrays of one scoring pass over texts, in input order: class probabilities, topic probabilities (None
    without a topic head) and unit embeddings (None unless asked for)."""

    probabilities: np.ndarray
    topic_probabilities: np.ndarray | None
    embeddings: np.ndarray | None


def choose_providers(wanted: Sequence[str], available: Sequence[str]) -> list[str]:
    """The onnxruntime providers to use: those asked for, in order, that this build has; CPU always last."""
    chosen = [PROVIDER_NAMES[name] for name in wanted if name in PROVIDER_NAMES and PROVIDER_NAMES[name] in available]
    if "CPUExecutionProvider" not in chosen:
        chosen.append("CPUExecutionProvider")
    return chosen


def _topics(card: ModelCard, session: Any) -> tuple[tuple[str, ...] | None, tuple[str, ...] | None]:
    """The card's topic slugs and names when the graph has topic logits; a card that does not name the graph's topics
    is refused (its topics could be misread)."""
    output = [o for o in session.get_outputs() if o.name == TOPIC_OUTPUT]
    if not output:
        return None, None
    slugs, labels = card.topic_slugs, card.topic_labels
    width = output[0].shape[-1]
    if not slugs or not labels or len(slugs) != len(labels) or (isinstance(width, int) and width != len(slugs)):
        raise CardError(f"{card.path}: the graph has a {TOPIC_OUTPUT!r} output of width {width}, but the card names "
                        f"{len(slugs or ())} topic slugs and {len(labels or ())} topic labels")
    return slugs, labels


def softmax(logits: np.ndarray) -> np.ndarray:
    shifted = logits - logits.max(axis=-1, keepdims=True)
    exp = np.exp(shifted)
    return exp / exp.sum(axis=-1, keepdims=True)


class SentimentRuntime:
    """A loaded sentiment model: ``score(texts)`` returns one :class:`Prediction` per text, in order."""

    def __init__(self, session: Any, tokenizer: Any, card: ModelCard, variant: Variant, batch_size: int,
                 max_length: int) -> None:
        self._session = session
        self._tokenizer = tokenizer
        self.card = card
        self.variant = variant
        self.batch_size = batch_size
        self.max_length = max_length
        self.labels = card.labels
        self.model_version = f"{card.model_version}+{variant}"
        self.providers: list[str] = list(session.get_providers())
        self._input_names = [i.name for i in session.get_inputs()]
        self._output_name = session.get_outputs()[0].name
        #: The graph's outputs, in its order.
        self.output_names: list[str] = [o.name for o in session.get_outputs()]
        #: The topic slugs and names of the graph's ``topic_logits``, in its order; None for a graph without them.
        self.topic_slugs, self.topic_labels = _topics(card, session)
        embedding = [o for o in session.get_outputs() if o.name == EMBEDDING_OUTPUT]
        #: Width of the graph's ``embedding`` output; None for a graph that only has the logits (older exports).
        self.embedding_dim: int | None = None
        if embedding:
            width = embedding[0].shape[-1]
            self.embedding_dim = int(width) if isinstance(width, int) else int(card.data.get("embedding_dim") or 0) or None
        self._pad_id = int(card.data["tokenizer"].get("pad_id", 0))
        self._char_cap = max_length * CHARS_PER_TOKEN_CAP
        self._use_iobinding = "CUDAExecutionProvider" in self.providers or "TensorrtExecutionProvider" in self.providers
        self._device_id = 0

    @classmethod
    def load(
        cls,
        path: Path | None,
        variant: Variant | None,
        settings: ModelSettings,
        batch_size: int = 32,
        warmup: bool = True,
        verify: bool = True,
    ) -> SentimentRuntime:
        """Load the ``variant`` (default: the settings') from ``path`` (default: the settings' sentiment dir).

        Raises :class:`~finpulse.export.runtime.exceptions.ArtefactMissingError`, ``CardError`` or
        ``ArtefactCorruptError`` (sha256 differs from the card) instead of loading a doubtful model.
        """
        import onnxruntime as ort
        from tokenizers import Tokenizer

        directory = Path(path) if path is not None else settings.sentiment_path()
        chosen_variant: Variant = variant or settings.sentiment_variant
        card = ModelCard.read(directory)
        model_file = card.model_file(chosen_variant)
        if verify:
            card.verify([model_file, card.tokenizer_file])
        max_length = min(settings.max_length, card.max_length)
        if max_length < 2:
            raise CardError(f"{card.path}: max_length {card.max_length} is too small")

        tokenizer = Tokenizer.from_file(str(directory / card.tokenizer_file))
        tokenizer.no_padding()
        tokenizer.enable_truncation(max_length=max_length)

        options = worker_session_options(settings.intra_op_threads, allow_spinning=settings.allow_spinning,
                                         denormal_as_zero=settings.denormal_as_zero)
        options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
        options.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
        available = ort.get_available_providers()
        providers = choose_providers(settings.providers, available)
        try:
            session = ort.InferenceSession(str(directory / model_file), sess_options=options, providers=providers)
        except Exception as exc:  # onnxruntime raises its own untyped errors (Fail, InvalidGraph, ...)
            raise InferenceError(f"cannot load {directory / model_file}: {exc}") from exc
        logger.info(
            "sentiment model %s (%s) on %s (asked %s, available %s), %s intra-op threads, max_length %d",
            card.model_version, chosen_variant, session.get_providers(), settings.providers, available,
            settings.intra_op_threads or "default", max_length,
        )
        runtime = cls(session, tokenizer, card, chosen_variant, batch_size, max_length)
        if warmup:
            runtime.warm_up()
        return runtime

    def warm_up(self) -> None:
        """Run a short and a full-length batch once so the first real batch does not pay for allocation."""
        started = time.perf_counter()
        self.score(["warm-up", "warm " * self.max_length])
        logger.debug("warm-up took %.3f s", time.perf_counter() - started)

    def _run(self, feeds: dict[str, np.ndarray], outputs: list[str]) -> list[np.ndarray]:
        if self._use_iobinding:
            return self._run_iobinding(feeds, outputs)
        try:
            return [np.asarray(o) for o in self._session.run(outputs, feeds)]
        except Exception as exc:  # onnxruntime's errors are untyped
            raise InferenceError(f"onnxruntime failed on a batch of shape {feeds['input_ids'].shape}: {exc}") from exc

    def _run_iobinding(self, feeds: dict[str, np.ndarray], outputs: list[str]) -> list[np.ndarray]:
        """Inputs copied to the GPU once, outputs allocated there and copied back once (no per-op copies)."""
        import onnxruntime as ort

        binding = self._session.io_binding()
        keep = []
        for name, array in feeds.items():
            value = ort.OrtValue.ortvalue_from_numpy(np.ascontiguousarray(array), "cuda", self._device_id)
            keep.append(value)
            binding.bind_ortvalue_input(name, value)
        for name in outputs:
            binding.bind_output(name, "cuda", self._device_id)
        try:
            self._session.run_with_iobinding(binding)
        except Exception as exc:  # onnxruntime's errors are untyped
            raise InferenceError(f"onnxruntime (IO binding) failed on shape {feeds['input_ids'].shape}: {exc}") from exc
        return [np.asarray(o) for o in binding.copy_outputs_to_cpu()]

    def probabilities(self, texts: Sequence[str]) -> np.ndarray:
        """Class probabilities, shape (len(texts), len(labels)), in input order."""
        return self.infer(texts).probabilities

    def probabilities_and_embeddings(self, texts: Sequence[str]) -> tuple[np.ndarray, np.ndarray]:
        """Class probabilities and unit embeddings ``(len(texts), embedding_dim)`` of one pass, in input order."""
        outputs = self.infer(texts, embed=True)
        assert outputs.embeddings is not None
        return outputs.probabilities, outputs.embeddings

    def topic_probabilities(self, texts: Sequence[str]) -> np.ndarray:
        """Topic probabilities, shape (len(texts), len(topic_slugs)), in input order."""
        if self.topic_slugs is None:
            raise InferenceError(f"model {self.model_version} has no {TOPIC_OUTPUT!r} output; train it with the topic head")
        outputs = self.infer(texts)
        assert outputs.topic_probabilities is not None
        return outputs.topic_probabilities

    def infer(self, texts: Sequence[str], embed: bool = False) -> Outputs:
        """Every output of one pass over ``texts``: class and (with a topic head) topic probabilities and, with
        ``embed``, unit embeddings; in input order."""
        if embed and self.embedding_dim is None:
            raise InferenceError(f"model {self.model_version} has no {EMBEDDING_OUTPUT!r} output; re-export it")
        n = len(texts)
        out = np.empty((n, len(self.labels)), dtype=np.float32)
        topics = np.empty((n, len(self.topic_slugs)), dtype=np.float32) if self.topic_slugs is not None else None
        embeddings = np.empty((n, self.embedding_dim or 0), dtype=np.float32) if embed else None
        outputs = [self._output_name, *([TOPIC_OUTPUT] if topics is not None else []), *([EMBEDDING_OUTPUT] if embed else [])]
        if n == 0:
            return Outputs(out, topics, embeddings)
        cap = self._char_cap
        encodings = self._tokenizer.encode_batch([t if len(t) <= cap else t[:cap] for t in texts])
        lengths = np.fromiter((len(e.ids) for e in encodings), dtype=np.int64, count=n)
        order = np.argsort(lengths, kind="stable")
        for start in range(0, n, self.batch_size):
            idx = order[start : start + self.batch_size]
            results = iter(self._run(self._feeds(encodings, idx, lengths[idx]), outputs))
            out[idx] = softmax(next(results).astype(np.float32))
            if topics is not None:
                topics[idx] = softmax(next(results).astype(np.float32))
            if embeddings is not None:
                embeddings[idx] = next(results)
        return Outputs(out, topics, embeddings)

    def _feeds(self, encodings: Sequence[Any], idx: np.ndarray, batch_lengths: np.ndarray) -> dict[str, np.ndarray]:
        """The inputs of one micro-batch, padded to its longest text."""
        width = int(batch_lengths.max())
        ids = np.full((len(idx), width), self._pad_id, dtype=np.int64)
        for row, i in enumerate(idx.tolist()):
            ids[row, : batch_lengths[row]] = encodings[i].ids
        mask = (np.arange(width)[None, :] < batch_lengths[:, None]).astype(np.int64)
        feeds = {"input_ids": ids, "attention_mask": mask}
        if "token_type_ids" in self._input_names:
            feeds["token_type_ids"] = np.zeros_like(ids)
        return feeds

    def score(self, texts: Sequence[str], embed: bool = False) -> list[Prediction]:
        """Label, probabilities by label and model version of each text, in input order; with a topic head its topic
        and topic probabilities by slug; with ``embed``, also each text's embedding from the same pass."""
        outputs = self.infer(texts, embed)
        labels, slugs = self.labels, self.topic_slugs
        best = outputs.probabilities.argmax(axis=1).tolist()
        version = self.model_version
        vectors: Sequence[list[float] | None] = (
            rounded_rows(outputs.embeddings) if outputs.embeddings is not None else [None] * len(best)
        )
        topic_rows: Sequence[list[float] | None] = (
            outputs.topic_probabilities.tolist() if outputs.topic_probabilities is not None else [None] * len(best)
        )
        return [
            Prediction(labels[b], dict(zip(labels, row, strict=True)), version, vector,
                       *_topic_fields(slugs, topic_row))
            for b, row, vector, topic_row in zip(best, outputs.probabilities.tolist(), vectors, topic_rows, strict=True)
        ]


def _topic_fields(slugs: tuple[str, ...] | None, row: list[float] | None) -> tuple[str | None, dict[str, float] | None]:
    """(topic, topic probabilities by slug) of one text's topic probabilities, or (None, None) without a topic head."""
    if slugs is None or row is None:
        return None, None
    return slugs[max(range(len(row)), key=row.__getitem__)], dict(zip(slugs, row, strict=True))
