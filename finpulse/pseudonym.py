"""Keyed pseudonyms of user ids: raw user ids never reach an index."""

from __future__ import annotations

import hashlib
import hmac

from pydantic import SecretStr


def pseudonymise(user_id: str, key: SecretStr) -> str:
    """HMAC-SHA256 of ``user_id`` under ``key``, hex (stable per key, not reversible without it)."""
    return hmac.new(key.get_secret_value().encode("utf-8"), user_id.encode("utf-8"), hashlib.sha256).hexdigest()
