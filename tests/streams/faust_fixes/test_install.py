"""``faust_fixes.check_targets``: every attribute the patches replace exists on the installed classes, or the
worker refuses to start naming what is missing."""

from __future__ import annotations

import pytest

from finpulse.streams import faust_fixes
from finpulse.streams.exceptions import FaustFixError


def test_every_patch_target_exists_on_the_installed_faust_and_aiokafka() -> None:
    assert faust_fixes.missing_targets() == []
    faust_fixes.check_targets()


def test_a_missing_target_is_refused_by_name(monkeypatch: pytest.MonkeyPatch) -> None:
    """A Faust release without a patched method (here: a target no release has) stops the start."""
    gone = ("faust.transport.drivers.aiokafka", "Consumer", "_renamed_by_a_new_release")
    monkeypatch.setattr(faust_fixes, "TARGETS", (*faust_fixes.TARGETS, gone))
    with pytest.raises(FaustFixError, match=r"Consumer\._renamed_by_a_new_release"):
        faust_fixes.check_targets()


def test_an_attribute_set_in_init_counts_as_present() -> None:
    targets = {attribute for _, _, attribute in faust_fixes.TARGETS}
    assert "_fetch_max_wait_ms" in targets  # aiokafka's Fetcher sets it in __init__, not on the class
    assert not [m for m in faust_fixes.missing_targets() if m.endswith("_fetch_max_wait_ms")]
