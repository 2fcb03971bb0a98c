"""workbench.viz.report: contents, links to the run's files, one place per curve, the run's studies."""

from __future__ import annotations

import re

import pytest

from workbench.retrieval.study import RetrievalConfig, retrieve
from workbench.viz.figures import plot_phases
from workbench.viz.report import default_sections, write_report


@pytest.mark.slow  # every section of a run, a retrieval study and a BM25 index: 3-6 CPU-seconds, over the fast tier's 5
def test_report_has_contents_links_config_and_the_runs_retrieval(packed_run, tmp_path):
    retrieve(
        packed_run,
        RetrievalConfig(name="report", steps=(40,), modes=("none", "bm25"), votes=0, n_boot=20),
        progress=False,
    )
    titles = [t for t, _ in default_sections(packed_run)]
    assert "Retrieval and the compute multiplier" in titles and "Data attribution" not in titles
    page = write_report(packed_run, tmp_path / "report.html").read_text(encoding="utf-8")
    toc = re.search(r"<nav class='toc'>(.*?)</nav>", page, re.S).group(1)
    anchors = re.findall(r'<a href="#([^"]+)">', toc)
    assert len(anchors) == len(titles)
    for slug in anchors:  # every entry of the contents leads to a section
        assert f'<section id="{slug}">' in page
    assert 'class="error"' not in page
    assert "{&quot;run&quot;" not in page  # no raw JSON line under the title
    # links to the run's files, relative to the report, and the config
    for name in ("config.json", "manifest.json", "metrics.csv"):
        assert re.search(rf'<a href="[^"]*{name}">{name}</a>', page)
    assert "&quot;packing&quot;" in page and "retrieval/" in page
    # the biography the attention views show, its name and values highlighted
    block = re.search(r"<blockquote class='biography'>(.*?)</blockquote>", page, re.S).group(1)
    first = packed_run.data.eval_batch("seen", 256)[:1]
    name = packed_run.data.population.full_name(int(first.individuals[0]))
    assert name.split()[0] in block and block.count("background:#cfe3ff") >= len(packed_run.config.data.attributes)
    # no figure twice
    images = re.findall(r'src="data:image/png;base64,([^"]+)"', page)
    assert len(images) == len(set(images)) >= 5


def test_phases_figure_leaves_held_out_curves_to_the_hallucination_panel(tiny_run):
    def labels(fig) -> list[str]:
        return [line.get_label() for ax in fig.axes for line in ax.get_lines()]

    assert any("held-out" in x for x in labels(plot_phases(tiny_run)))
    assert not any("held-out" in x for x in labels(plot_phases(tiny_run, heldout=False)))


def test_log_step_axes_have_readable_plain_tick_labels(tiny_run):
    from matplotlib.backends.backend_agg import FigureCanvasAgg

    fig = plot_phases(tiny_run)
    FigureCanvasAgg(fig).draw()
    for ax in fig.axes:
        lo, hi = ax.get_xlim()
        shown = [t for t in ax.get_xticklabels() if lo <= t.get_position()[0] <= hi and t.get_text()]
        assert len(shown) >= 3, [t.get_text() for t in shown]  # 40 steps: 0, 10, 20
        assert all(re.fullmatch(r"\d+(\.\d+)?", t.get_text().replace("\u2212", "-")) for t in shown)
    loss_ticks = [t.get_text() for t in fig.axes[0].get_yticklabels() if t.get_text()]
    assert loss_ticks and not any("^" in t or "times" in t for t in loss_ticks)
