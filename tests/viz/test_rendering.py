"""The offline report and a circuitsvis view, rendered in headless Chromium (tests/browser.py).

What only a browser shows: the DOM after the pages' scripts ran (React builds each circuitsvis view from
the inlined bundle), whether the embedded figures decode and the canvases get painted, screenshots that
are not blank, and the requests a page makes while loading (none may go to the network).
"""

from __future__ import annotations

import html
import json
import re
import subprocess
import tempfile
from html.parser import HTMLParser
from pathlib import Path

import browser
import numpy as np
import pytest
from browser import non_blank_fraction, probe_counts, rendered_dom, screenshot, with_probe

from workbench.viz import attention_view, save_offline_html
from workbench.viz.report import default_sections, write_report

pytestmark = pytest.mark.browser

# Thresholds for screenshots (1280 x 2000 px). Measured on the tiny run: the report's text alone (its
# images and scripts removed) inks 2.7% of the pixels and has no coloured pixel at all (text, tables and
# rules are grey-scale); with its figures and views: 5.3% and ~14,000 coloured pixels. The view inks
# 17% (its zoomed 719 px pattern, masked upper triangle filled grey, is ~10% on its own) and 0.04%
# before its script ran. A page that did not render stays far below these floors.
MIN_INK_REPORT = 0.01
MIN_INK_VIEW = 0.05
MIN_COLOURED_PIXELS = 1000  # one matplotlib curve across a figure is about this many pixels
MIN_GREY_STD = 5.0  # a uniform image has 0


def coloured_pixels(image: np.ndarray) -> int:
    """Pixels whose channels differ by more than 60 (colour, not grey)."""
    image = image.astype(int)
    return int(((image.max(-1) - image.min(-1)) > 60).sum())


def assert_not_blank(image: np.ndarray, min_ink: float) -> None:
    assert non_blank_fraction(image) > min_ink
    assert image.mean(-1).std() > MIN_GREY_STD
    assert coloured_pixels(image) > MIN_COLOURED_PIXELS


class _ResourceRefs(HTMLParser):
    """URLs in attributes that make a browser fetch something (src, href, ...)."""

    ATTRS = {"src", "href", "srcset", "poster", "data", "action", "formaction", "xlink:href", "background"}

    def __init__(self):
        super().__init__()
        self.urls: list[str] = []

    def handle_starttag(self, tag, attrs):
        self.urls += [v.strip() for k, v in attrs if k in self.ATTRS and v]


REMOTE = re.compile(r"^(https?:)?//", re.I)
REMOTE_IN_CODE = re.compile(r"""(\bfrom\s*|\bimport\s*\(\s*|url\(\s*|@import\s*)["']?(https?:)?//""", re.I)


def remote_references(page: Path) -> list[str]:
    text = page.read_text(encoding="utf-8")
    parser = _ResourceRefs()
    parser.feed(text)
    return [u for u in parser.urls if REMOTE.match(u)] + [m.group(0) for m in REMOTE_IN_CODE.finditer(text)]


def page_requests(page: Path, log: Path) -> list[str]:
    """The http(s) URLs a page requested while Chromium loaded it, from the browser's net log. Requests
    of the page carry its file:// network isolation key; Chromium's own background requests do not."""
    with tempfile.TemporaryDirectory() as profile:
        subprocess.run(
            [
                browser.chromium(),
                *browser.FLAGS,
                f"--user-data-dir={profile}",
                f"--log-net-log={log}",
                "--dump-dom",
                page.resolve().as_uri(),
            ],
            capture_output=True,
            text=True,
            timeout=120,
        )
    events = json.loads(log.read_text())["events"]
    return sorted(
        {
            e["params"]["url"]
            for e in events
            if str(e.get("params", {}).get("url", "")).startswith(("http:", "https:"))
            and str(e["params"].get("network_isolation_key", "")).startswith("file://")
        }
    )


@pytest.fixture(scope="module")
def pages(tiny_run_dir, tmp_path_factory) -> dict[str, Path]:
    """The tiny run's report and one circuitsvis view (last layer, all heads) as offline HTML files.

    The report runs on a copy: its attention section caches under <run>/analysis/, and the shared run
    must stay as training left it (tests copy it and expect no cache)."""
    import shutil

    from workbench.run import load_run

    out = tmp_path_factory.mktemp("rendering")
    tiny_run = load_run(shutil.copytree(tiny_run_dir, out / "tiny"))
    batch = tiny_run.data.eval_batch("seen", 4)
    view = attention_view(tiny_run.load_model(), tiny_run.data, batch, row=0, layer="last")
    return {
        "report": write_report(tiny_run, out / "report.html"),
        "view": save_offline_html({"last layer": view}, out / "view.html", title="tiny run: attention"),
    }


def test_report_dom_after_scripts(pages, tiny_run, tmp_path):
    raw = pages["report"].read_text(encoding="utf-8")
    dom = rendered_dom(with_probe(pages["report"], tmp_path / "report.html"))
    for title, _ in default_sections():
        assert f"<h2>{html.escape(title, quote=False)}</h2>" in dom, f"section {title!r} missing"
    assert 'class="error"' not in dom, "a report section failed"
    images = re.findall(r"<img\b[^>]*>", dom)
    assert len(images) >= 2  # at least the three phases and the per-attribute figures
    assert all('class="figure"' in i and 'src="data:image/png;base64,' in i for i in images)
    counts = probe_counts(dom)
    assert counts["images"] == counts["decoded"] == len(images)  # every figure decoded
    n_views = raw.count("CircuitsVis.render(")  # circuitsvis views, when the report has some
    assert dom.count("Head Selector (hover to view, click to lock)</h3>") == n_views
    assert counts["canvases"] >= 2 * n_views and counts["painted"] == counts["canvases"]


def test_report_screenshot_is_not_blank(pages, tmp_path):
    assert_not_blank(screenshot(pages["report"], tmp_path / "report.png"), MIN_INK_REPORT)


def test_view_dom_is_built_by_its_script(pages, tiny_run, tmp_path):
    """What circuitsvis's AttentionHeads component creates: a head selector with one thumbnail canvas
    per head, and a zoomed canvas of the selected head; none of it is in the saved HTML."""
    markup = re.sub(r"<script\b.*?</script>", "", pages["view"].read_text(encoding="utf-8"), flags=re.S)
    last, n_heads = tiny_run.config.model.n_layers - 1, tiny_run.config.model.n_heads
    assert "<canvas" not in markup and "Zoomed" not in markup and "Head Selector" not in markup
    dom = rendered_dom(with_probe(pages["view"], tmp_path / "view.html"))
    assert "<h3" in dom and "Head Selector (hover to view, click to lock)</h3>" in dom
    assert f">L{last}H0 Zoomed</h3>" in dom
    assert all(f">L{last}H{h}</h4>" in dom for h in range(n_heads))
    counts = probe_counts(dom)
    assert counts["canvases"] == n_heads + 1 == counts["painted"]


def test_view_screenshot_is_not_blank(pages, tmp_path):
    assert_not_blank(screenshot(pages["view"], tmp_path / "view.png"), MIN_INK_VIEW)


def test_pages_fetch_nothing_from_the_network(pages, tmp_path):
    for name, page in pages.items():
        assert remote_references(page) == [], name
        assert page_requests(page, tmp_path / f"{name}.netlog.json") == [], name
    # the detectors do catch a remote resource
    control = tmp_path / "control.html"
    control.write_text('<html><body><img src="https://example.invalid/x.png"><p>x</p></body></html>')
    assert remote_references(control) == ["https://example.invalid/x.png"]
    assert page_requests(control, tmp_path / "control.netlog.json") == ["https://example.invalid/x.png"]
