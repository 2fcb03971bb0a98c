"""Widgets for JupyterLab (ipywidgets): explore by choosing, not by editing literals.

    AblationExplorer   patching ablations of one biography (below)
    AttentionExplorer  attention across checkpoints: step slider (plateau marked), layer, head, highlighted text
    GridComparer       patched-training learning curves of chosen reference steps

`AblationExplorer(run)`: checkpoint step, individual (searchable by name), attribute, corruption (another
individual's name of the same token length), and component (resid_pre / resid_mid / resid_post / attn_out /
mlp_out per layer x position; q / k / v / z / pattern per head; zero or mean ablation of heads and MLPs). Any
change recomputes with the same public functions the scripts use (`workbench.patching.make_pair`,
`activation_patching`, `ablate`) and redraws the heatmap; `explorer.result` is the DataFrame, `explorer.figure`
the figure, `explorer.set(...)` changes values from code. Displayed where no widget frontend exists (nbconvert,
a static viewer), each explorer's output carries its current figure as a PNG beside the widget view, so it
degrades to a static figure.
"""

from __future__ import annotations

from workbench.patching.ablations import HEAD_COMPONENTS, POSITION_COMPONENTS, ablate, activation_patching, make_pair
from workbench.viz.attention_views import biography_html
from workbench.viz.figures import png_base64, png_bytes
from workbench.viz.patching import plot_heads, plot_layer_position

ABLATIONS = ("zero ablation", "mean ablation")
COMPONENTS = (*POSITION_COMPONENTS, *HEAD_COMPONENTS, *ABLATIONS)
AUTO = -1  # corruption: the individual's name partner (`Biographer.name_partner`)


def show(output, fig) -> None:
    """Draw `fig` into a widget Output as a palette PNG: the Output's state is saved in the notebook."""
    from IPython.display import Image, display

    output.clear_output(wait=True)
    with output:
        display(Image(png_bytes(fig)))


def static_bundle(explorer, **kw) -> dict:
    """The widget view plus its current figure as a PNG, shown where no widget frontend exists."""
    bundle = dict(explorer.widget._repr_mimebundle_(**kw) or {})
    bundle["image/png"] = png_base64(explorer.figure, dpi=72)
    return bundle


class AblationExplorer:
    """The ablation explorer (module docstring); `mean_size` evaluation biographies give the mean ablation."""

    def __init__(
        self,
        run,
        step: int | None = None,
        individual: int = 0,
        attribute: str | None = None,
        component: str = "resid_pre",
        mean_size: int = 64,
    ):
        import ipywidgets as w

        self.run, self.data = run, run.data
        population, attrs = self.data.population, self.data.config.data.attributes
        self._models: dict[int, object] = {}
        self._mean_batch = self.data.eval_batch("seen", mean_size)
        self._names = {f"{population.full_name(i)} ({i})": i for i in population.seen}
        steps = run.checkpoint_steps
        self.step = w.Dropdown(options=steps, value=steps[-1] if step is None else step, description="step")
        self.individual = w.Combobox(
            options=list(self._names),
            value=self._label(individual),
            description="individual",
            placeholder="type a name",
            ensure_option=True,
        )
        self.attribute = w.Dropdown(options=attrs, value=attribute or attrs[0], description="attribute")
        self.corruption = w.Dropdown(description="corrupt with")
        self.component = w.Dropdown(options=COMPONENTS, value=component, description="component")
        self.status = w.HTML()
        self.output = w.Output()
        self._fill_partners()
        self.result, self.figure = None, None
        self.widget = w.VBox(
            [
                w.HBox([self.step, self.attribute, self.component]),
                w.HBox([self.individual, self.corruption]),
                self.status,
                self.output,
            ]
        )
        for control in (self.step, self.attribute, self.corruption, self.component):
            control.observe(self._changed, names="value")
        self.individual.observe(self._individual_changed, names="value")
        self.update()

    # -- values --------------------------------------------------------------------------------------
    def _label(self, individual: int) -> str:
        return f"{self.data.population.full_name(int(individual))} ({int(individual)})"

    @property
    def individual_id(self) -> int:
        return self._names[self.individual.value]

    def _fill_partners(self) -> None:
        bio, me = self.data.biographer, self.individual_id
        n = len(bio.name_tokens(me))
        same = [i for i in self.data.population.seen if i != me and len(bio.name_tokens(i)) == n][:50]
        self.corruption.options = [("auto (name partner)", AUTO)] + [(self._label(i), i) for i in same]
        self.corruption.value = AUTO

    def set(self, **values) -> "AblationExplorer":
        """Change controls from code (step, individual (an id), attribute, corruption (an id), component)."""
        for name, value in values.items():
            if name == "individual":
                value = self._label(value)
            getattr(self, name).value = value
        return self

    def _individual_changed(self, change) -> None:
        if change["new"] in self._names:  # the Combobox also reports partial typing
            with self.corruption.hold_trait_notifications():
                self.corruption.unobserve(self._changed, names="value")
                self._fill_partners()
                self.corruption.observe(self._changed, names="value")
            self.update()

    def _changed(self, _change) -> None:
        self.update()

    # -- compute -------------------------------------------------------------------------------------
    def model(self, step: int):
        if step not in self._models:
            self._models[step] = self.run.load_model(step)
        return self._models[step]

    def compute(self):
        """(DataFrame, Figure) for the current values."""
        corrupt = None if self.corruption.value == AUTO else int(self.corruption.value)
        pair = make_pair(self.data, self.individual_id, self.attribute.value, corrupt_with=corrupt)
        model, component = self.model(self.step.value), self.component.value
        if component in ABLATIONS:
            kind = component.split()[0]
            df = ablate(
                model, pair.clean, pair.target, kind=kind, units="heads", mean_batch=self._mean_batch, progress=False
            )
            fig = plot_heads(df, "delta", f"{component} of each head: change in log p(value)")
        else:
            df = activation_patching(
                model, pair.clean, pair.corrupted, pair.target, component, labels=pair.labels, progress=False
            )
            plot = plot_layer_position if component in POSITION_COMPONENTS else plot_heads
            fig = plot(df, title=f"{component} patched clean -> corrupted, step {self.step.value}")
        df.attrs.update(
            step=self.step.value,
            individual=pair.individual,
            corrupt_with=pair.corrupt_with,
            attribute=pair.attribute,
            value=pair.value,
        )
        return df, fig

    def update(self) -> None:
        """Recompute and redraw (called on every change)."""
        self.result, self.figure = self.compute()
        a = self.result.attrs
        scores = f"clean log p = {a['clean_score']:.3f}" + (
            f", corrupted {a['corrupted_score']:.3f}" if "corrupted_score" in a else ""
        )
        self.status.value = (
            f"<b>{self._label(a['individual'])}</b>, {a['attribute']} = <b>{a['value']}</b>; "
            f"corrupted with {self._label(a['corrupt_with'])}; {scores}"
        )
        show(self.output, self.figure)

    def _repr_mimebundle_(self, **kw):
        return static_bundle(self, **kw)


class AttentionExplorer:
    """Attention across a run's checkpoints: a step slider (the plateau marked in its label), layer and head,
    the biography's text with name and value tokens highlighted, the head's pattern on it and the name-token
    attention metrics (`workbench.attention.attention_metrics`) at that step on `size` evaluation biographies."""

    def __init__(self, run, row: int = 0, layer: int | None = None, head: int = 0, size: int = 64):
        import ipywidgets as w

        self.run, self.data = run, run.data
        cfg = run.config.model
        self.batch = self.data.eval_batch("seen", size)
        self.row = row
        self._models: dict[int, object] = {}
        phases = run.phases()
        steps = run.checkpoint_steps

        def phase(s: int) -> str:
            if not phases.exists:
                return ""
            end = phases.plateau_end if not phases.censored else float("inf")
            return " (before)" if s < phases.plateau_start else " (plateau)" if s <= end else " (after)"

        self.step = w.SelectionSlider(
            options=[(f"{s}{phase(s)}", s) for s in steps],
            value=steps[-1],
            description="step",
            continuous_update=False,
            layout=w.Layout(width="60%"),
        )
        self.layer = w.Dropdown(
            options=list(range(cfg.n_layers)), value=cfg.n_layers - 1 if layer is None else layer, description="layer"
        )
        self.head = w.Dropdown(options=list(range(cfg.n_heads)), value=head, description="head")
        self.text = w.HTML(biography_html(self.data, self.batch, row))
        self.metrics_view, self.output = w.Output(), w.Output()
        self.metrics, self.figure = None, None
        self.widget = w.VBox(
            [w.HBox([self.step]), w.HBox([self.layer, self.head]), self.text, w.HBox([self.output, self.metrics_view])]
        )
        for control in (self.step, self.layer, self.head):
            control.observe(lambda _c: self.update(), names="value")
        self.update()

    def set(self, **values) -> "AttentionExplorer":
        for name, value in values.items():
            getattr(self, name).value = value
        return self

    def update(self) -> None:
        from IPython.display import display

        from workbench.attention import attention_metrics
        from workbench.data.kinds import token_labels
        from workbench.viz.attention_views import plot_pattern, row_pattern

        step, layer, head = self.step.value, self.layer.value, self.head.value
        if step not in self._models:
            self._models[step] = (self.run.load_model(step), None)
        model, metrics = self._models[step]
        if metrics is None:
            metrics = attention_metrics(model, self.batch)
            self._models[step] = (model, metrics)
        pattern, tokens, kinds = row_pattern(model, self.batch, self.row, layer)
        self.figure = plot_pattern(
            pattern[head], token_labels(self.data.tokenizer, tokens, kinds), f"step {step}: L{layer}H{head}"
        )
        self.metrics = metrics[(metrics["layer"] == layer) & (metrics["head"] == head)][["metric", "value"]]
        show(self.output, self.figure)
        self.metrics_view.clear_output(wait=True)
        with self.metrics_view:
            display(self.metrics.round(3).set_index("metric"))

    def _repr_mimebundle_(self, **kw):
        return static_bundle(self, **kw)


class GridComparer:
    """Patched-training curves of a grid (`experiment.patch_grid`'s summary table): pick reference steps and
    see their learning curves beside the unpatched reference (`plot_grid`, the figure the scripts use)."""

    def __init__(self, grid_df, no_knowledge_baseline: float | None = None):
        import ipywidgets as w

        from workbench.patching.grid import grid_curves

        self.grid, self.curves, self.baseline = grid_df, grid_curves(grid_df), no_knowledge_baseline
        steps = sorted(int(s) for s in grid_df["reference_step"].dropna().unique())
        self.reference_steps = w.SelectMultiple(
            options=steps, value=tuple(steps), description="reference steps", rows=min(len(steps), 8)
        )
        self.output, self.figure = w.Output(), None
        self.widget = w.HBox([self.reference_steps, self.output])
        self.reference_steps.observe(lambda _c: self.update(), names="value")
        self.update()

    def set(self, reference_steps) -> "GridComparer":
        self.reference_steps.value = tuple(reference_steps)
        return self

    def update(self) -> None:
        from workbench.viz.patching import plot_grid

        keep = self.grid["reference_step"].isna() | self.grid["reference_step"].isin(self.reference_steps.value)
        ckeep = self.curves["reference_step"].isna() | self.curves["reference_step"].isin(self.reference_steps.value)
        self.figure = plot_grid(self.grid[keep], self.curves[ckeep], self.baseline)
        show(self.output, self.figure)

    def _repr_mimebundle_(self, **kw):
        return static_bundle(self, **kw)
