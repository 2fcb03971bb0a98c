"""Figures and views of runs: matplotlib figures, circuitsvis attention views, offline HTML."""

from workbench.viz.attention_views import (
    attention_view,
    phase_steps,
    phase_views,
    plot_pattern,
    save_offline_html,
    token_labels,
    views_html,
)

__all__ = ["attention_view", "phase_steps", "phase_views", "plot_pattern", "save_offline_html", "token_labels",
           "views_html"]
