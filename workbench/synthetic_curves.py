"""Synthetic attribute-loss curves with a known escape: the positive control of the plateau rule (`workbench.phases`).

A curve, relative to the no-knowledge baseline b (log L/b at step t), is the sum of three terms with the shapes the
measured runs show (analysis/NOTES.md, "The plateau rule, redone" and "Choosing max_slope"):

    first phase   log(1 + a exp(-t / tau))               from ~3.3 b at step 0 to ~1.15 b at step ~150
    approach      log(1 + c (t0 / max(t, t0))^p)         the plateau settles from ~(1 + c) b towards b
    drift         -drift log(max(t, t0) / t0)            and may sink slowly (local slope -drift)
    escape        -rate (w / E) softplus((t - E) / w)    from the escape step E on, the loss falls at `rate` per E

and the evaluation set's sequences scatter around it: a fixed factor per sequence (hard and easy biographies), a
factor per evaluation shared by all sequences (the training's own noise: the wiggles of a measured curve) and one
per sequence and evaluation. A `straight` curve has no plateau: its escape starts while the first phase ends, so
the loss passes through the baseline band falling (like N = 1,000 at cpu-sweep scale). The escape step E is the
truth an estimator is scored against; the rule's end lags it by ~0.1 E / rate, a constant share of E, so exponents
of E against N are recovered without bias when the rule detects the plateau.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np


@dataclass(frozen=True)
class CurveShape:
    """One curve's parameters (module docstring); `escape` in steps."""

    escape: float
    rate: float = 0.8  # log-loss lost per E steps after the escape (cpu-quick ~0.8, a slow cpu-sweep run ~0.2)
    approach: float = 0.1  # c: how far above b the plateau starts (cpu-quick: 1.13 b at step 200, 1.03 b at 400)
    power: float = 1.0  # p: how fast it settles
    drift: float = 0.0  # a lasting log-log slope: small, else long plateaus sink 10% below their level before E
    width: float = 0.1  # the escape's onset width, a share of E
    a: float = 2.3
    tau: float = 50.0
    t0: float = 150.0

    def log_ratio(self, steps: np.ndarray) -> np.ndarray:
        """log(L / b) of the noiseless curve at `steps`."""
        t = np.asarray(steps, dtype=float)
        w = self.width * self.escape
        first = np.log1p(self.a * np.exp(-t / self.tau))
        late = np.maximum(t, self.t0) / self.t0
        approach = np.log1p(self.approach * late**-self.power)
        drift = -self.drift * np.log(late)
        escape = -self.rate * (w / self.escape) * np.logaddexp(0.0, (t - self.escape) / w)
        return first + approach + drift + escape


def per_sequence_losses(
    shape: CurveShape,
    steps: np.ndarray,
    rng: np.random.Generator,
    n_sequences: int = 64,
    baseline: float = 1.0,
    spread: float = 0.15,
    common: float = 0.02,
    jitter: float = 0.05,
) -> np.ndarray:
    """[n_evals, n_sequences] attribute losses around `shape` (log-normal factors: per sequence `spread`, per
    evaluation `common`, per both `jitter`; measured per-sequence spread at a plateau 0.12-0.2)."""
    steps = np.asarray(steps, dtype=float)
    noise = (
        spread * rng.standard_normal((1, n_sequences))
        + common * rng.standard_normal((len(steps), 1))
        + jitter * rng.standard_normal((len(steps), n_sequences))
    )
    return baseline * np.exp(shape.log_ratio(steps)[:, None] + noise)


def random_shape(
    escape: float, rng: np.random.Generator, straight: bool = False, max_drift: float = 0.03
) -> CurveShape:
    """A curve escaping at `escape` with nuisance parameters drawn from the measured ranges: rate U[0.2, 1.5],
    approach U[0.05, 0.2], power U[0.5, 1.5], drift U[0, max_drift] (cpu/scaling's N = 8,000 plateaus stayed within
    10% of their level over a 25-fold span of steps, so a lasting drift there is below ~0.03). `straight`: no
    plateau; the escape starts at step 150-250 with rate U[0.3, 1.0] (at 0.3 the loss crosses the band at a
    log-log slope of about -0.3; N = 1,000 at cpu-sweep scale did at -0.35)."""
    if straight:
        return CurveShape(escape=float(rng.uniform(150, 250)), rate=float(rng.uniform(0.3, 1.0)), approach=0.0)
    return CurveShape(
        escape=escape,
        rate=float(rng.uniform(0.2, 1.5)),
        approach=float(rng.uniform(0.05, 0.2)),
        power=float(rng.uniform(0.5, 1.5)),
        drift=float(rng.uniform(0.0, max_drift)),
    )


def eval_steps(escape: float, every: int = 25, minimum: int = 1000) -> np.ndarray:
    """Evaluation steps of a run long enough to see the escape (2.5 E, at least `minimum`), as the adaptive budgets
    of the scaling sweeps give."""
    return np.arange(0, max(minimum, 2.5 * escape) + every, every, dtype=float)
