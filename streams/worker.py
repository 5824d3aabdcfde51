"""Runs the finpulse Faust worker in this process (``finpulse worker``)."""

from __future__ import annotations

import logging

from finpulse.settings import Settings, check_pseudonym_key
from finpulse.streams.app import StreamApp, create_app

logger = logging.getLogger(__name__)


def prepare(settings: Settings) -> None:
    """Create the topics and the index templates the agents need (both idempotent)."""
    from finpulse.infra.topics_admin import create_topics
    from finpulse.streams.sinks.elasticsearch import make_es_client
    from finpulse.streams.sinks.templates import install_templates

    create_topics(settings)
    client = make_es_client(settings.elasticsearch)
    try:
        install_templates(client, settings.elasticsearch)
    finally:
        client.close()


def preflight(settings: Settings) -> None:
    """Refuse, with a named error and before any connection, a guessable pseudonym key and settings whose models
    cannot work together."""
    check_pseudonym_key(settings.pseudonym_key)
    if settings.recommend.shared_encoder and "recommend" in settings.stream.roles:
        from finpulse.export.runtime.recommend import check_shared_pairing

        check_shared_pairing(settings.recommend_model_path(), settings.model.sentiment_path())


def limit_blas_threads(threads: int) -> None:
    """Cap the BLAS threads of this process's numpy (``stream.blas_threads``; 0 leaves the library's default)."""
    if threads <= 0:
        return
    from threadpoolctl import threadpool_limits

    threadpool_limits(limits=threads, user_api="blas")
    logger.info("numpy BLAS limited to %d thread(s)", threads)


def run_worker(settings: Settings, stream_app: StreamApp | None = None) -> None:
    """Start the worker and block until it is stopped (SIGTERM/SIGINT stop it gracefully)."""
    from faust.worker import Worker

    preflight(settings)
    limit_blas_threads(settings.stream.blas_threads)
    prepare(settings)
    stream_app = stream_app or create_app(settings)
    stream_app.metrics.serve(settings.stream.metrics_port, settings.stream.web_host)
    logger.info(
        "worker %s starting (%s): brokers %s, Elasticsearch %s", settings.worker_app_id(),
        ", ".join(settings.stream.roles), settings.kafka.bootstrap_servers, settings.elasticsearch.url,
    )
    worker = Worker(
        stream_app.app,
        loglevel=settings.log_level.lower(),
        quiet=True,
        redirect_stdouts=False,
        override_logging=False,
    )
    worker.execute_from_commandline()
