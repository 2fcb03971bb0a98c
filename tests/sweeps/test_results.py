"""The sweep analyses on synthetic tables whose answer is known, and on a tiny sweep's run directories."""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
import pytest

from workbench import experiment
from workbench.sweeps.results import (
    drops,
    finetune_summary,
    over_seeds,
    power_law_fit,
    replay_verdict,
    sweep_table,
)


def table(ns, ends, seeds=(0, 1), rel_ci=0.05, **cols) -> pd.DataFrame:
    rows = []
    for n, end in zip(ns, ends):
        for s in seeds:
            rows.append(
                {
                    "trial": f"N{n}-seed{s}",
                    "data.n_individuals": n,
                    "seed": s,
                    "status": "finished",
                    "plateau_end": end,
                    "plateau_end_lo": end * (1 - rel_ci),
                    "plateau_end_hi": end * (1 + rel_ci),
                    "has_plateau": True,
                    "censored": False,
                    "final_attribute_loss": 1.0,
                    "final_attribute_accuracy": 0.5,
                    "steps": 10_000,
                    **cols,
                }
            )
    return pd.DataFrame(rows)


def test_exact_power_law_recovered():
    ns = np.array([1000, 2000, 4000, 8000])
    fit = power_law_fit(table(ns, 0.43 * ns**0.81, rel_ci=0.0))
    assert fit.b == pytest.approx(0.81, abs=1e-9) and fit.a == pytest.approx(0.43, rel=1e-6)
    assert fit.b_ci[0] == pytest.approx(0.81, abs=1e-6) and fit.b_ci[1] == pytest.approx(0.81, abs=1e-6)
    assert fit.n == 8 and fit.excluded == ()


def test_interval_widens_with_seed_spread_and_covers_the_truth():
    rng = np.random.default_rng(1)
    ns = np.repeat([1000, 2000, 4000, 8000], 2)
    t = table([1000, 2000, 4000, 8000], [1.0] * 4)
    t["plateau_end"] = 2.0 * ns**0.5 * np.exp(rng.normal(0, 0.15, len(ns)))
    t["plateau_end_lo"], t["plateau_end_hi"] = t["plateau_end"] * 0.9, t["plateau_end"] * 1.1
    fit = power_law_fit(t)
    assert fit.b_ci[0] < 0.5 < fit.b_ci[1]
    assert fit.b_ci[1] - fit.b_ci[0] > 0.05


def test_flat_curve_gives_an_exponent_near_zero():
    fit = power_law_fit(table([1000, 2000, 4000, 8000], [500.0] * 4))
    assert abs(fit.b) < 0.05 and fit.b_ci[0] <= 0 <= fit.b_ci[1] + 1e-9


def test_runs_without_plateau_or_escape_are_excluded_and_named():
    t = table([1000, 2000, 4000], [100.0, 180.0, 320.0])
    t.loc[t["trial"] == "N1000-seed0", "has_plateau"] = False
    t.loc[t["trial"] == "N4000-seed1", "censored"] = True
    fit = power_law_fit(t)
    assert fit.n == 4
    assert fit.excluded == ("N1000-seed0: no plateau", "N4000-seed1: censored (never escaped)")
    only_one = t[t["data.n_individuals"] == 1000]
    with pytest.raises(ValueError, match="1 value"):
        power_law_fit(only_one)


def test_interval_open_above_is_capped_at_the_run_length():
    t = table([1000, 2000, 4000], [100.0, 180.0, 320.0])
    t.loc[t["data.n_individuals"] == 4000, ["plateau_end_hi", "steps"]] = (np.inf, 400)
    fit = power_law_fit(t)
    assert np.isfinite(fit.b_ci).all() and fit.b_ci[0] < fit.b < fit.b_ci[1]
    s = over_seeds(t).set_index("data.n_individuals")
    assert s.loc[4000, "plateau_end_hi"] <= 400


def test_over_seeds_means_and_interval():
    t = table([1000, 2000], [100.0, 200.0])
    t.loc[t["seed"] == 1, ["plateau_end", "plateau_end_lo", "plateau_end_hi"]] *= 1.5
    s = over_seeds(t).set_index("data.n_individuals")
    assert s.loc[1000, "plateau_end"] == pytest.approx(125.0) and s.loc[2000, "runs"] == 2
    assert s.loc[1000, "plateau_end_lo"] < 125.0 < s.loc[1000, "plateau_end_hi"]


def test_over_seeds_final_accuracy_interval_is_the_t_interval_over_seeds():
    t = table([1000, 2000], [100.0, 200.0])
    t["final_attribute_accuracy"] = np.where(t["seed"] == 0, 0.4, 0.6)
    s = over_seeds(t).set_index("data.n_individuals")
    half = 12.7062047 * np.std([0.4, 0.6], ddof=1) / np.sqrt(2)  # t(0.975, 1 df) x sd / sqrt(n)
    assert s.loc[1000, "final_attribute_accuracy"] == pytest.approx(0.5)
    lo, hi = s.loc[1000, ["final_attribute_accuracy_lo", "final_attribute_accuracy_hi"]]
    assert (lo, hi) == pytest.approx((0.5 - half, 0.5 + half))


def test_finetune_drops_on_a_known_curve():
    steps = np.arange(0, 90, 10)
    acc = [0.9, 0.5, 0.3, 0.4, 0.6, 0.7, 0.7, 0.7, 0.8]
    d = drops(pd.DataFrame({"step": steps, "attribute_accuracy": acc, "new_attribute_accuracy": np.linspace(0, 1, 9)}))
    assert d["base_accuracy"] == 0.9
    assert d["initial_drop"] == pytest.approx(0.6)  # the minimum over steps <= 20
    assert d["final_drop"] == pytest.approx(0.1) and d["new_final_accuracy"] == 1.0


def test_finetune_summary_intervals_and_paired_replay_effect():
    """Three bases, two replay weights: replay lowers every base's final drop by 0.1 (paired: an exact interval)
    and leaves the initial drop as it was; the intervals are the t-intervals over the bases, computed by hand."""
    rows = []
    for base, (initial, final) in enumerate([(0.5, 0.3), (0.6, 0.2), (0.7, 0.4)]):
        for weight, cut in ((0.0, 0.0), (1.0, 0.1)):
            rows.append(
                {
                    "finetune.base_run": f"b{base}",
                    "finetune.n_new": 100,
                    "finetune.replay_weight": weight,
                    "initial_drop": initial,
                    "final_drop": final - cut,
                    "new_final_accuracy": 0.9,
                }
            )
    s = finetune_summary(pd.DataFrame(rows)).set_index("replay_weight")
    half = 4.302653 * 0.1 / math.sqrt(3)  # t(0.975, 2) x sd / sqrt(n), sd of (0.5, 0.6, 0.7) = 0.1
    assert s.loc[0.0, "initial_drop"] == pytest.approx(0.6)
    assert s.loc[0.0, "initial_drop_hi"] - 0.6 == pytest.approx(half, rel=1e-5)
    assert s.loc[1.0, "final_drop_vs_none"] == pytest.approx(-0.1)
    assert s.loc[1.0, "final_drop_vs_none_lo"] == pytest.approx(-0.1) == s.loc[1.0, "final_drop_vs_none_hi"]
    assert s.loc[1.0, "initial_drop_vs_none"] == pytest.approx(0.0) and s.loc[1.0, "seeds"] == 3
    verdict = replay_verdict(s.reset_index()).iloc[0]
    assert verdict["final_reduced"] and verdict["initial_unchanged"] and verdict["holds"]
    rows = pd.DataFrame(rows)
    rows.loc[rows["finetune.replay_weight"] == 1.0, "initial_drop"] -= [0.1, 0.2, 0.15]  # replay now helps early too
    assert not replay_verdict(finetune_summary(rows)).iloc[0]["holds"]


def test_sweep_table_reads_the_run_directories(tmp_path, local_ray):
    spec = {"name": "t", "preset": "tiny", "out": str(tmp_path / "t"), "grid": {"seed": [0, 1]}}
    experiment.sweep(spec, progress=False)
    t = sweep_table(tmp_path / "t", n_boot=20)
    assert list(t["trial"]) == ["seed0", "seed1"] and set(t["status"]) == {"finished"}
    for row in t.itertuples():
        run = experiment.load_run(row.run)
        m = run.metrics
        assert row.final_attribute_accuracy == m["attribute_accuracy"].iloc[-1]
        ph = run.phases(n_boot=20)
        assert row.has_plateau == ph.exists and (math.isnan(row.plateau_end) == math.isnan(ph.plateau_end))
    with_attention = sweep_table(tmp_path / "t", n_boot=5, attention=True)
    for row in with_attention.itertuples():  # the crossing lies between the two checkpoints around it
        steps = experiment.load_run(row.run).checkpoint_steps
        assert row.escape_attention50_lo in steps and row.escape_attention50_hi in steps
        assert row.escape_attention50_lo <= row.escape_attention50 <= row.escape_attention50_hi


def test_every_estimator_has_its_own_fit_and_exposures():
    from workbench.sweeps.results import exposures_at_escape

    ns = np.array([1000, 2000, 4000, 8000])
    t = table(ns, 0.43 * ns**0.81, rel_ci=0.0, exposures_per_step=0.0)
    t["exposures_per_step"] = 32 / t["data.n_individuals"]
    assert "attention50" not in set(exposures_at_escape(t)["estimator"])  # only when read with attention=True
    for name, law in (
        ("onset", 0.3 * t["data.n_individuals"] ** 0.9),
        ("accuracy10", 2.0 * t["data.n_individuals"] ** 0.7),
        ("attention50", 0.1 * t["data.n_individuals"] ** 1.2),
    ):
        t[f"escape_{name}"] = law
        t[f"escape_{name}_lo"] = t[f"escape_{name}_hi"] = law
    fits = {e: power_law_fit(t, estimator=e, n_boot=100) for e in ("rule", "onset", "accuracy10", "attention50")}
    assert [round(f.b, 9) for f in fits.values()] == [0.81, 0.9, 0.7, 1.2]
    ex = exposures_at_escape(t).set_index(["estimator", "data.n_individuals"])
    assert ex.loc[("rule", 2000), "exposures"] == pytest.approx(0.43 * 2000**0.81 * 32 / 2000)
    assert ex.loc[("onset", 8000), "runs"] == 2
    t.loc[t["trial"] == "N1000-seed0", "escape_onset"] = np.nan  # an onset not reached
    assert "N1000-seed0: onset not reached within the run" in power_law_fit(t, estimator="onset", n_boot=10).excluded
    with pytest.raises(ValueError, match="estimator='slope' is out of range"):
        power_law_fit(t, estimator="slope")
