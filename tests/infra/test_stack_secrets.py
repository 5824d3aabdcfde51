"""``finpulse stack up`` writes a random pseudonym key into its env file: kept across ups, one per state dir."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from finpulse.settings import load_settings
from tests.conftest import _read_env_file

pytestmark = [pytest.mark.integration]


def test_stack_env_file_holds_a_random_pseudonym_key(stack: Any, tmp_path: Path) -> None:
    env = _read_env_file(stack.env_file)
    key = env["FINPULSE_PSEUDONYM_KEY"]
    from finpulse.settings import check_pseudonym_key

    check_pseudonym_key(load_settings(stack.env_file).pseudonym_key)
    assert stack.env_file.stat().st_mode & 0o077 == 0, "the env file holds secrets: owner only"
    if stack.manager is None:  # a stack named by FINPULSE_TEST_STACK_ENV: not ours to restart
        return
    again = stack.manager.up()  # every server kept, the env file written again
    assert {s.action for s in again} == {"kept"}
    assert _read_env_file(stack.env_file)["FINPULSE_PSEUDONYM_KEY"] == key, "the key survives a second up"

    from finpulse.infra.stack.manager import Stack

    other = Stack(stack.manager.settings.model_copy(update={"state_dir": tmp_path / "other"}))
    assert other.pseudonym_key() != key, "each state dir has its own key"
