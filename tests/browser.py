"""Headless Chromium for rendering tests: the DOM after scripts ran, and a screenshot.

Uses Debian's chromium (installed by .ci/run). Flags keep it off the network: the pages under test
are self-contained files and must render without fetching anything.
"""

from __future__ import annotations

import re
import shutil
import subprocess
import tempfile
from pathlib import Path

import numpy as np

FLAGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-dev-shm-usage",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--disable-quic",
    "--hide-scrollbars",
    "--virtual-time-budget=10000",
]


def chromium() -> str:
    exe = shutil.which("chromium") or shutil.which("chromium-browser")
    assert exe, "chromium is not installed (.ci/run installs Debian's chromium package)"
    return exe


def _run(args: list[str], timeout: int = 120) -> subprocess.CompletedProcess:
    with tempfile.TemporaryDirectory() as profile:
        return subprocess.run(
            [chromium(), *FLAGS, f"--user-data-dir={profile}", *args], capture_output=True, text=True, timeout=timeout
        )


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


# Appended to a copy of a page: once its scripts ran (5 s of the browser's 10 s virtual-time budget),
# counts the images that decoded and the canvases holding at least one painted pixel, into the DOM.
PROBE = """<script>
setTimeout(function () {
  var images = Array.from(document.querySelectorAll("img"));
  var canvases = Array.from(document.querySelectorAll("canvas"));
  var painted = canvases.filter(function (c) {
    var px = c.getContext("2d").getImageData(0, 0, c.width, c.height).data;
    for (var i = 3; i < px.length; i += 4) { if (px[i] > 0) return true; }
    return false;
  });
  var probe = document.createElement("div");
  probe.id = "render-probe";
  probe.dataset.images = images.length;
  probe.dataset.decoded = images.filter(function (i) { return i.complete && i.naturalWidth > 0; }).length;
  probe.dataset.canvases = canvases.length;
  probe.dataset.painted = painted.length;
  document.body.appendChild(probe);
}, 5000);
</script>"""


def with_probe(page: Path, out: Path) -> Path:
    out.write_text(page.read_text(encoding="utf-8").replace("</body>", PROBE + "</body>"), encoding="utf-8")
    return out


def probe_counts(dom: str) -> dict[str, int]:
    tag = re.search(r'<div id="render-probe"[^>]*>', dom)
    assert tag, "the probe script did not run"
    return {k: int(v) for k, v in re.findall(r'data-(\w+)="(\d+)"', tag.group(0))}
