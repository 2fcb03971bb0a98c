"""Attention-pattern patching (docs/method.md §4.3) and interactive causal analyses.

Sources of patterns:  ReferencePatterns(model), UniformPatterns(n_layers, n_heads), own_patterns_at(run, step)
Hooks:                patch_patterns(model, source, layers, heads, mix) (context manager), PatternPatcher
Training grids:       plan_grid(reference_run, reference_steps, start_steps) -> jobs, grid_summary, GridJob,
                      default_reference_steps(run), grid_curves(df), read_grid_csv(path)
                      (`workbench.patch_grid` trains a grid: the composition root runs the jobs)
One biography:        make_pair(data, individual, attribute) -> PatchingPair; activation_patching,
                      pattern_patching_scores, ablate
Figures of all of these live in workbench.viz (plot_grid, plot_layer_position, plot_heads).
Patched training itself (the twin model, `workbench.patching.twin`) is
`workbench.train(config.replace(patch=PatchConfig(...)), out)`.
"""

from workbench.patching.ablations import (
    PatchingPair,
    ValueTarget,
    ablate,
    activation_patching,
    make_pair,
    pattern_patching_scores,
)
from workbench.patching.grid import (
    GridJob,
    default_reference_steps,
    grid_curves,
    grid_summary,
    plan_grid,
    read_grid_csv,
)
from workbench.patching.hooks import PatternPatcher, patch_patterns
from workbench.patching.sources import PatternSource, ReferencePatterns, UniformPatterns, own_patterns_at

__all__ = [
    "PatternSource",
    "ReferencePatterns",
    "UniformPatterns",
    "own_patterns_at",
    "PatternPatcher",
    "patch_patterns",
    "GridJob",
    "plan_grid",
    "grid_summary",
    "default_reference_steps",
    "grid_curves",
    "read_grid_csv",
    "PatchingPair",
    "ValueTarget",
    "make_pair",
    "activation_patching",
    "pattern_patching_scores",
    "ablate",
]
