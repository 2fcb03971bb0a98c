"""Figures and views of runs: the one home of plotting (matplotlib figures, circuitsvis views, offline HTML).

Compute modules (attention, stability, patching, probes) return DataFrames; the figures of those
DataFrames live here.
"""

from workbench.viz.attention import plot_attention_over_training
from workbench.viz.attention_views import (
    attention_view,
    load_circuitsvis,
    phase_steps,
    phase_views,
    plot_pattern,
    save_offline_html,
    token_labels,
    views_html,
)
from workbench.viz.attribution import plot_exact_vs_ekfac, plot_head_scores, plot_influence, plot_retrains
from workbench.viz.explorers import AblationExplorer, AttentionExplorer, GridComparer
from workbench.viz.figures import plot_per_attribute, plot_phases
from workbench.viz.patching import plot_grid, plot_heads, plot_layer_position
from workbench.viz.probes import plot_localisation, plot_probes, plot_toy_memory
from workbench.viz.retrieval import plot_retrieval
from workbench.viz.stability import plot_stability
from workbench.viz.sweeps import plot_curves, plot_finetune_drops, plot_finetune_summary, plot_scaling, plot_tradeoff

__all__ = [
    "attention_view",
    "load_circuitsvis",
    "phase_steps",
    "phase_views",
    "plot_pattern",
    "save_offline_html",
    "token_labels",
    "views_html",
    "plot_attention_over_training",
    "plot_per_attribute",
    "plot_phases",
    "plot_grid",
    "plot_heads",
    "plot_layer_position",
    "plot_localisation",
    "plot_probes",
    "plot_toy_memory",
    "plot_stability",
    "plot_curves",
    "plot_finetune_drops",
    "plot_finetune_summary",
    "plot_scaling",
    "plot_tradeoff",
    "AblationExplorer",
    "AttentionExplorer",
    "GridComparer",
    "plot_exact_vs_ekfac",
    "plot_head_scores",
    "plot_influence",
    "plot_retrains",
    "plot_retrieval",
]
