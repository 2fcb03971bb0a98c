"""Headless Chromium for rendering tests: the DOM after scripts ran, and a screenshot.

Uses Debian's chromium (installed by .ci/run). Flags keep it off the network: the pages under test
are self-contained files and must render without fetching anything.
"""

from __future__ import annotations

import shutil
import subprocess
import tempfile
from pathlib import Path

import numpy as np

FLAGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage", "--no-first-run",
         "--disable-background-networking", "--disable-component-update", "--disable-sync",
         "--disable-quic", "--hide-scrollbars", "--virtual-time-budget=10000"]


def chromium() -> str:
    exe = shutil.which("chromium") or shutil.which("chromium-browser")
    assert exe, "chromium is not installed (.ci/run installs Debian's chromium package)"
    return exe


def _run(args: list[str], timeout: int = 120) -> subprocess.CompletedProcess:
    with tempfile.TemporaryDirectory() as profile:
        return subprocess.run([chromium(), *FLAGS, f"--user-data-dir={profile}", *args],
                              capture_output=True, text=True, timeout=timeout)


def rendered_dom(page: Path) -> str:
    """The page's DOM after its scripts ran."""
    out = _run(["--dump-dom", Path(page).resolve().as_uri()])
    assert out.returncode == 0, out.stderr[-2000:]
    return out.stdout


def screenshot(page: Path, png: Path, size: tuple[int, int] = (1280, 2000)) -> np.ndarray:
    """A screenshot of the page as an RGB array."""
    from PIL import Image

    out = _run([f"--screenshot={png}", f"--window-size={size[0]},{size[1]}", Path(page).resolve().as_uri()])
    assert png.is_file(), out.stderr[-2000:]
    return np.asarray(Image.open(png).convert("RGB"))


def non_blank_fraction(image: np.ndarray) -> float:
    """Fraction of pixels that are not (near-)white."""
    return float((image.min(axis=-1) < 240).mean())
