"""The worker consumer's fetch wait, shortened for every role.

Faust asks the broker to hold empty fetches up to 1.5 s (hard-coded); the embedded Tansu broker does not answer a
waiting fetch when records arrive, so every quiet-to-busy edge cost up to 1.5 s per hop. Shorter waits bound that
(infra/stack/QUIRKS.md).
"""

from __future__ import annotations

import logging
from typing import Any

logger = logging.getLogger(__name__)

FETCH_MAX_WAIT_MS = 50


def register(app: Any) -> None:
    """Add the task that shortens the running consumer's fetch wait to ``app``."""

    @app.task
    async def shorten_fetch_wait() -> None:
        set_fetch_wait(app, FETCH_MAX_WAIT_MS)


def set_fetch_wait(app: Any, wait_ms: int) -> None:
    """Set the running aiokafka consumer's fetch wait (Faust exposes no setting for it)."""
    thread = getattr(app.consumer, "_thread", None)
    consumer = getattr(thread, "_consumer", None)
    fetcher = getattr(consumer, "_fetcher", None)
    if fetcher is None or not hasattr(fetcher, "_fetch_max_wait_ms"):
        logger.warning("cannot shorten the consumer's fetch wait (Faust/aiokafka internals changed)")
        return
    fetcher._fetch_max_wait_ms = wait_ms
    logger.info("consumer fetch wait set to %d ms", wait_ms)
