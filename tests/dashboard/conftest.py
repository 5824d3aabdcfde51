"""Fixtures of the trend-viewing browser tests: the system Chromium (installed with apt when missing) under Playwright.

Playwright drives Debian's ``/usr/bin/chromium``; its own browser download (``playwright install``) is
never used. Screenshots go to ``test-output/`` (git-ignored).
"""

from __future__ import annotations

import logging
import os
import shutil
import subprocess
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

logger = logging.getLogger(__name__)

CHROMIUM = Path("/usr/bin/chromium")
CHROMIUM_ARGS = [
    "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run", "--disable-background-networking",
    "--disable-component-update", "--disable-sync",
]
ROOT = Path(__file__).resolve().parents[2]
OUTPUT = ROOT / "test-output"


def _install_chromium() -> str | None:
    """apt-get install chromium chromium-driver; None when it worked, else why not."""
    if shutil.which("apt-get") is None:
        return "no apt-get on this machine"
    sudo: list[str] = [] if os.geteuid() == 0 else ["sudo", "-n"]
    env = {**os.environ, "DEBIAN_FRONTEND": "noninteractive"}
    for command in (["apt-get", "update"], ["apt-get", "install", "-y", "chromium", "chromium-driver"]):
        try:
            done = subprocess.run([*sudo, *command], env=env, capture_output=True, text=True, timeout=900, check=False)
        except (OSError, subprocess.TimeoutExpired) as exc:
            return f"{' '.join(command)}: {exc}"
        if done.returncode != 0:
            return f"{' '.join(command)} exited {done.returncode}: {(done.stderr or done.stdout)[-500:]}"
    return None


@pytest.fixture(scope="session")
def chromium_path() -> Path:
    """/usr/bin/chromium, installed from Debian packages first when missing (skips only if that fails)."""
    if not CHROMIUM.exists():
        problem = _install_chromium()
        if problem or not CHROMIUM.exists():
            pytest.skip(f"Chromium is missing and could not be installed with apt-get: {problem or 'no /usr/bin/chromium after install'}")
    return CHROMIUM


@pytest.fixture(scope="module")
def browser(chromium_path: Path) -> Iterator[Any]:
    """A headless Chromium driven by Playwright (the system browser, never a downloaded one).

    Module scope: Playwright's sync API keeps an event loop running in the main thread while it is open, and every
    later test that calls ``asyncio.run`` would fail, so it closes once the module that uses it is done."""
    try:
        from playwright.sync_api import sync_playwright
    except ImportError:
        pytest.skip("the playwright package is not installed (pip install -e '.[dev]')")
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=str(chromium_path), args=CHROMIUM_ARGS, headless=True)
        try:
            yield browser
        finally:
            browser.close()


@pytest.fixture(scope="session")
def output_dir() -> Path:
    OUTPUT.mkdir(exist_ok=True)
    return OUTPUT
