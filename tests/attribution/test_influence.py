"""EK-FAC influence against the exact-Fisher reference, its sign, and bad inputs."""

import copy

import numpy as np
import pytest
import torch

from workbench.attribution.ekfac import sequence_loss
from workbench.attribution.influence import compare, ekfac_influence, exact_influence
from workbench.attribution.measures import MEASURES
from workbench.attribution.shim import HeadView
from workbench.attribution.window import window_batch

WINDOW, HEAD = (10, 20), (1, 0)  # as in conftest


@pytest.fixture(scope="module")
def case(dense_run):
    """Head L1H0 of the tiny run at checkpoint 20, the window's 160 sequences, a 32-sequence measure set."""
    view = HeadView(dense_run.load_model(WINDOW[1]), *HEAD)
    return view, window_batch(dense_run.data, *WINDOW), dense_run.data.eval_batch("seen", 32, seed_offset=1)


@pytest.mark.slow  # EK-FAC fits: 10-40 s each
@pytest.mark.parametrize("measure", ["attention", "logit"])
def test_with_dominant_damping_ekfac_is_the_exact_gradient_product(case, measure):
    """(F + λI)⁻¹ ≈ I/λ for λ ≫ F, in both: the scores must agree exactly, scale included."""
    view, train, measure_batch = case
    ek = ekfac_influence(view, MEASURES[measure](), train, measure_batch, damping=1e6, fisher="empirical")
    ex = exact_influence(view, MEASURES[measure](), train, measure_batch, damping=1e6, fisher="empirical")
    assert compare(ex, ek)["spearman"] > 0.999
    assert np.allclose(ek, ex, rtol=1e-3, atol=1e-3 * np.abs(ex).max())


@pytest.mark.slow
@pytest.mark.parametrize("measure", ["attention", "logit"])
def test_with_the_heuristic_damping_ekfac_ranks_like_the_exact_influence(case, measure):
    """The Kronecker approximation is not exact: rank agreement clearly above chance, and the same
    magnitude (measured values in analysis/NOTES.md)."""
    view, train, measure_batch = case
    ek = ekfac_influence(view, MEASURES[measure](), train, measure_batch, fisher="empirical")
    ex = exact_influence(view, MEASURES[measure](), train, measure_batch, fisher="empirical")
    agreement = compare(ex, ek)
    assert agreement["spearman"] > 0.3 and agreement["top_overlap"] > 0.1
    assert 0.2 < np.median(np.abs(ek)) / np.median(np.abs(ex)) < 5


@pytest.mark.slow
def test_a_gradient_step_on_the_top_promoters_raises_the_measure_more_than_on_the_bottom(case):
    """The sign convention: influence > 0 means training on the sequence raises the measure."""
    view, train, measure_batch = case
    measure = MEASURES["attention"]()
    influence = exact_influence(view, measure, train, measure_batch, fisher="empirical")
    order = np.argsort(-influence)

    def measure_after_step(rows) -> float:
        v = copy.deepcopy(view)
        batch = train[torch.as_tensor(rows)]
        sequence_loss(v(batch.tokens), batch).sum().backward()
        with torch.no_grad():
            for p in v.qk.parameters():
                p -= 1e-3 * p.grad
            return measure(v, measure_batch).mean().item()

    assert measure_after_step(order[:16]) > measure_after_step(order[-16:])


@pytest.mark.slow
def test_fit_size_subsets_the_fit_batch_not_the_scored_one(dense_run, case):
    """With both `fit` and `fit_size`, the factors are fitted on a seeded subset of `fit` (it took `train`'s rows)."""
    view, train, measure_batch = case
    fit, scored = window_batch(dense_run.data, 20, 30), train[:8]
    rows = torch.randperm(len(fit), generator=torch.Generator().manual_seed(0))[:32].sort().values
    kw = {"damping": 1e-3, "fisher": "empirical"}
    got = ekfac_influence(view, MEASURES["attention"](), scored, measure_batch, fit=fit, fit_size=32, **kw)
    want = ekfac_influence(view, MEASURES["attention"](), scored, measure_batch, fit=fit[rows], **kw)
    other = ekfac_influence(view, MEASURES["attention"](), scored, measure_batch, fit=train[:32], **kw)
    assert np.allclose(got, want, rtol=1e-5, atol=1e-12) and not np.allclose(got, other, rtol=1e-3)


@pytest.mark.parametrize("kw, message", [({"fisher": "diagonal"}, "fisher"), ({"damping": -1.0}, "damping")])
def test_bad_arguments_raise_before_any_compute(case, kw, message):
    view, train, measure_batch = case
    for fn in (ekfac_influence, exact_influence):
        with pytest.raises(ValueError, match=message):
            fn(view, MEASURES["attention"](), train, measure_batch, **kw)


def test_compare_known_answers():
    a = np.arange(10.0)
    assert compare(a, a) == pytest.approx({"spearman": 1.0, "top_overlap": 1.0})
    assert compare(a, -a) == pytest.approx({"spearman": -1.0, "top_overlap": 0.0})
    assert compare(a, np.r_[a[:9], -1.0], top=0.2)["top_overlap"] == 0.5  # 9 left the top 2
    assert compare(a, np.r_[a[:5], a[:5]])["spearman"] == pytest.approx(
        np.corrcoef(  # ties: average ranks
            [1, 2, 3, 4, 5, 6, 7, 8, 9, 10], [1.5, 3.5, 5.5, 7.5, 9.5, 1.5, 3.5, 5.5, 7.5, 9.5]
        )[0, 1]
    )
    with pytest.raises(ValueError, match="a, b"):
        compare(a, a[:5])


@pytest.mark.parametrize("n, p, m", [(20, 300, 1), (40, 200, 3), (64, 48, 2)])
def test_woodbury_solve_equals_the_direct_solve(n, p, m):
    from workbench.attribution.influence import damped_solve, mean_eigenvalue

    g = torch.randn(n, p, generator=torch.Generator().manual_seed(n), dtype=torch.float64) * torch.linspace(0.1, 3, p)
    v = torch.randn(p, m, generator=torch.Generator().manual_seed(p), dtype=torch.float64).squeeze(-1)
    lam = 0.1 * mean_eigenvalue(g)
    assert lam == pytest.approx(0.1 * torch.linalg.eigvalsh(g.T @ g / n).mean().item(), rel=1e-10)
    direct = torch.linalg.solve(g.T @ g / n + lam * torch.eye(p, dtype=torch.float64), v)  # independent of the code
    for solver in ("woodbury", "direct", "auto"):
        x = damped_solve(g, lam, v, solver)
        assert torch.linalg.norm(x - direct) <= 1e-6 * torch.linalg.norm(direct), solver


def test_exact_influence_is_the_same_through_woodbury_and_the_direct_solve(case):
    view, train, measure_batch = case
    measure, train = MEASURES["attention"](), train[:24]  # 24 fitting sequences, far fewer than the head's parameters
    a = exact_influence(view, measure, train, measure_batch, fisher="empirical", solver="woodbury", batch_size=5)
    b = exact_influence(view, measure, train, measure_batch, fisher="empirical", solver="direct")
    assert np.allclose(a, b, rtol=1e-6, atol=1e-9 * np.abs(b).max())


def test_per_sequence_gradients_equal_autograd_one_sequence_at_a_time(case):
    """`sequence_grads` (taps: Σ_t g_t a_tᵀ per module, batched) against torch.autograd on each sequence alone."""
    from workbench.attribution.ekfac import sequence_grads

    view, train, _ = case
    batch = train[:6]
    got = sequence_grads(view, ("qk", "v"), batch, sample=False, batch_size=4)
    for i in range(len(batch)):
        view.zero_grad()
        sequence_loss(view(batch.tokens[i : i + 1]), batch[i : i + 1]).sum().backward()
        want = torch.cat(
            [torch.cat([m.weight.grad, m.bias.grad[:, None]], 1).flatten() for m in (view.qk, view.v)]
        ).double()
        assert torch.allclose(got[i], want, rtol=1e-5, atol=1e-7 * want.abs().max())


def test_exact_per_token_scores_add_up_to_the_sequence_scores(case):
    view, train, measure_batch = case
    total, per_token = exact_influence(view, MEASURES["logit"](), train[:16], measure_batch, per_token=True)
    assert per_token.shape[0] == 16 and np.allclose(per_token.sum(1), total) and np.abs(total).max() > 0


def test_separation_known_answers_and_an_independent_pairwise_count():
    from workbench.attribution.influence import separation

    planted = np.array([True, True, False, False, False])
    known = separation([5.0, 4, 3, 2, 1], planted)
    assert {k: known[k] for k in ("auroc", "top_precision", "base_rate", "lift")} == pytest.approx(
        {"auroc": 1.0, "top_precision": 1.0, "base_rate": 0.4, "lift": 2.5}
    )
    assert separation([1.0, 2, 3, 4, 5], planted)["auroc"] == 0.0
    assert separation([1.0, 1, 1, 1, 1], planted)["auroc"] == 0.5  # ties count half
    rng = np.random.default_rng(0)
    x, mask = rng.normal(size=300).round(1), rng.random(300) < 0.2  # rounded: ties
    pairs = [(a > b) + 0.5 * (a == b) for a in x[mask] for b in x[~mask]]
    assert separation(x, mask)["auroc"] == pytest.approx(np.mean(pairs))
    with pytest.raises(ValueError, match="planted"):
        separation(x, np.zeros(300, bool))


def test_group_z_finds_a_planted_group_its_members_do_not_reveal():
    """Noisy single scores with a small shared shift: members rank near chance, the group stands out; no shift, no
    group; group_z matches an independent Monte Carlo of random subsets' sums."""
    from workbench.attribution.influence import separation

    rng = np.random.default_rng(1)
    x, mask = rng.normal(size=20_000), np.arange(20_000) < 5_000
    shifted = separation(x + 0.1 * mask, mask)
    assert shifted["auroc"] < 0.56 and shifted["group_z"] > 4
    assert abs(separation(x, mask)["group_z"]) < 3
    sums = np.array([x[rng.choice(20_000, 5_000, replace=False)].sum() for _ in range(2_000)])
    z = (x[mask].sum() - sums.mean()) / sums.std()
    assert separation(x, mask)["group_z"] == pytest.approx(z, abs=0.1)
