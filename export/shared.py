"""One encoder pass for both tasks: training the recommender over the sentiment model's encoder.

``finpulse model train recommend --shared-encoder`` trains only the user tower over the frozen encoder of the
trained sentiment model (``<artifacts_dir>/sentiment/train/model``), whose exported graph yields each article's
embedding in the pass that scores it. :func:`link_shared_encoder` then checks that the *exported* sentiment model
is that very encoder (its ``embedding`` output against the trained torch encoder on sample texts) and records the
sentiment model's version in the training metrics; the export copies it into the recommendation card, and a worker
with ``FINPULSE_RECOMMEND__SHARED_ENCODER`` on refuses any other pairing
(:func:`finpulse.export.runtime.recommend.check_shared_encoder`).
"""

from __future__ import annotations

import json
import logging
from collections.abc import Sequence
from pathlib import Path

from finpulse.export.runtime.exceptions import SharedEncoderMismatchError
from finpulse.export.runtime.recommend import SHARED_SENTIMENT_KEY
from finpulse.settings import Settings

logger = logging.getLogger(__name__)

#: Smallest cosine between the exported sentiment graph's fp32 embedding and the trained torch encoder's.
MIN_LINK_COSINE = 0.999
#: Smallest cosine between the embedding of the variant the worker serves (int8 by default) and the trained one.
MIN_SERVED_COSINE = 0.95


def sentiment_encoder_dir(settings: Settings) -> Path:
    """The trained sentiment model (torch) whose encoder the shared recommender is trained over."""
    path = settings.model.artifacts_dir / "sentiment" / "train" / "model"
    if not (path / "config.json").is_file():
        raise SharedEncoderMismatchError(f"no trained sentiment model at {path}: run finpulse model train sentiment first")
    return path


def link_shared_encoder(settings: Settings, train_dir: Path, texts: Sequence[str]) -> str:
    """Check the exported sentiment model embeds ``texts`` as the recommender's frozen encoder does; record its
    version in ``train_dir``'s metrics and return it."""
    from finpulse.export.runtime import SentimentRuntime
    from finpulse.models.train_recommend import METRICS_FILE, embed_all, load_trained, tokenize_titles

    runtime = SentimentRuntime.load(None, "fp32", settings.model, warmup=False)
    if runtime.embedding_dim is None:
        raise SharedEncoderMismatchError(f"the sentiment model {runtime.card.model_version} has no embedding output: "
                                         "re-export it (finpulse model export sentiment)")
    tower, tokenizer, _, metrics = load_trained(train_dir)
    if int(metrics["config"]["trainable_layers"]) != 0:
        raise SharedEncoderMismatchError(f"{train_dir}: the recommender's encoder was fine-tuned; a shared encoder must stay frozen")
    exported = runtime.probabilities_and_embeddings(texts)[1]
    ids, mask = tokenize_titles(tokenizer, texts, runtime.max_length)
    trained = embed_all(tower, ids, mask).numpy()
    cosine = float((exported * trained).sum(-1).min()) if len(texts) else 1.0
    if not cosine >= MIN_LINK_COSINE:
        raise SharedEncoderMismatchError(
            f"the exported sentiment model {runtime.card.model_version} is not the encoder the recommender was trained "
            f"over (cosine {cosine:.4f} < {MIN_LINK_COSINE}): export the trained sentiment model again")
    variant = settings.model.sentiment_variant
    if variant != "fp32":
        served = SentimentRuntime.load(None, variant, settings.model, warmup=False).probabilities_and_embeddings(texts)[1]
        low = float((served * trained).sum(-1).min()) if len(texts) else 1.0
        if not low >= MIN_SERVED_COSINE:
            raise SharedEncoderMismatchError(
                f"the {variant} variant of sentiment model {runtime.card.model_version} moves an embedding too far "
                f"from the trained encoder's (cosine {low:.4f} < {MIN_SERVED_COSINE}): serve fp32 "
                "(FINPULSE_MODEL__SENTIMENT_VARIANT=fp32) or train the sentiment model with --embedding-distill-weight")
        logger.info("shared encoder: %s embeddings within cosine %.4f of the trained encoder's", variant, low)
    metrics[SHARED_SENTIMENT_KEY] = runtime.card.model_version
    (train_dir / METRICS_FILE).write_text(json.dumps(metrics, indent=2), encoding="utf-8")
    logger.info("shared encoder: sentiment model %s (embedding cosine to the trained encoder >= %.5f)",
                runtime.card.model_version, cosine)
    return runtime.card.model_version
