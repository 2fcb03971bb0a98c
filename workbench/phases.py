"""Operational definition of the three phases (the study gives none; docs/method.md §2.4), with uncertainty.

With b the no-knowledge baseline and L the attribute loss on seen individuals (evaluation
templates) at the evaluation steps, a `PlateauRule` says:

* **near the baseline**: |L - b| <= level_tol * b;
* **flat**: the local slope |d log L / d log step|, fitted over the evaluations from a point to
  `span` times its step (at least `window` of them), is at most `max_slope` (a loss falling straight
  through the band is not flat; a fixed range in log-steps keeps late fits as robust as early ones);
* **plateau**: the first run of at least `min_evals` consecutive evaluations that are near the
  baseline and flat (one failing evaluation between two good ones does not break a run). Its start
  is the first of them; its level the median loss over the run;
* **end (escape)**: the first evaluation after the start from which the loss stays below
  (1 - escape) * level for `sustain` consecutive evaluations (one noisy dip does not end a
  plateau). Measured against the plateau's own level, so a plateau at 0.89 b escapes like one at b;
* **no plateau**: no such run (e.g. a straight descent); **censored**: a plateau that does not
  end within the run (its end is only known to lie beyond the last evaluation).

Uncertainty (95% intervals): a bootstrap over the fixed evaluation set's sequences (resampled with
replacement, boundaries recomputed), combined with the evaluation spacing: a boundary seen at an
evaluation lies somewhere after the previous one, so the interval's lower end is moved back to the
evaluation before the bootstrap's 2.5% value. Resamples without a plateau are counted (`p_plateau`);
censored resamples count as "later than the run", so the end's upper bound is infinite when more than
2.5% of them are censored. (Across seeds, when a sweep has several, is for the sweep analyses.)
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass, field

import numpy as np

from workbench.config import check_int, check_number


@dataclass(frozen=True)
class PlateauRule:
    """The thresholds of the plateau definition (module docstring); validated on construction."""

    level_tol: float = 0.2
    max_slope: float = 0.25  # the loss falls by less than 16% per doubling of steps (see analysis/NOTES.md)
    span: float = 1.5
    window: int = 3
    min_evals: int = 4
    escape: float = 0.1
    sustain: int = 2

    def __post_init__(self) -> None:
        check_number("rule.level_tol", self.level_tol, 0.0, 1.0, lo_open=True, hi_open=True)
        check_number("rule.max_slope", self.max_slope, 0.0, lo_open=True)
        check_number("rule.span", self.span, 1.0, lo_open=True)
        check_int("rule.window", self.window, 2)
        check_int("rule.min_evals", self.min_evals, 2)
        check_number("rule.escape", self.escape, 0.0, 1.0, lo_open=True, hi_open=True)
        check_int("rule.sustain", self.sustain, 1)

    def describe(self) -> str:
        """The rule in one paragraph, with its thresholds (the module docstring's definition): what the
        report shows under the plateau, so the two cannot disagree."""
        return (
            f"Plateau: the first run of at least {self.min_evals} consecutive evaluations whose attribute loss is "
            f"within {self.level_tol:.0%} of the no-knowledge baseline and flat (local slope |d log loss / d log "
            f"step| at most {self.max_slope:g}, fitted over the evaluations from a step to {self.span:g} times it, "
            f"at least {self.window}); one failing evaluation between two good ones does not break the run. "
            f"It starts at the first of them; it ends at the first later evaluation from which the loss stays "
            f"{self.escape:.0%} below the plateau's level (its median loss) for {self.sustain} consecutive "
            f"evaluations, and is censored when that does not happen within the run. 95% intervals: bootstrap "
            f"over the evaluation set's sequences, the lower end moved back to the evaluation before it."
        )


@dataclass(frozen=True)
class Phases:
    plateau_start: float  # step; nan when there is no plateau
    plateau_end: float  # step; nan when there is no plateau or it is censored (not escaped in the run)
    plateau_start_ci: tuple[float, float] = (math.nan, math.nan)
    plateau_end_ci: tuple[float, float] = (math.nan, math.nan)
    censored: bool = False  # a plateau that does not end within the run
    level: float = math.nan  # the plateau's median loss
    p_plateau: float = math.nan  # fraction of bootstrap resamples that have a plateau
    rule: PlateauRule = field(default_factory=PlateauRule)

    @property
    def exists(self) -> bool:
        return not math.isnan(self.plateau_start)

    @property
    def plateau_length(self) -> float:
        return self.plateau_end - self.plateau_start

    def describe(self) -> str:
        """One line: 'plateau 250-700 steps (95% CI ...)', 'no plateau' or '... not escaped (censored)'."""
        if not self.exists:
            return "no plateau"
        s = f"{self.plateau_start:.0f} (95% CI {_fmt_ci(self.plateau_start_ci)})"
        if self.censored:
            return f"plateau from step {s}, not escaped within the run (censored)"
        return f"plateau from step {s} to {self.plateau_end:.0f} (95% CI {_fmt_ci(self.plateau_end_ci)})"

    def to_dict(self) -> dict:
        return {**asdict(self), "plateau_length": self.plateau_length, "exists": self.exists}


def _fmt_ci(ci: tuple[float, float]) -> str:
    return "-".join("inf" if math.isinf(c) else "nan" if math.isnan(c) else f"{c:.0f}" for c in ci)


def local_slopes(
    steps: np.ndarray, loss: np.ndarray, span: float, window: int, where: np.ndarray | None = None
) -> np.ndarray:
    """d log L / d log step from each evaluation on: a robust (Theil-Sen) fit over the evaluations in
    [step, span * step] (at least `window` of them), so the fit covers the same range in log-steps
    early and late in a run; nan at step 0, where fewer than `window` evaluations remain, and where `where`
    (a boolean mask, default all) is False: the fit is quadratic in the evaluations it covers, so `plateau`
    asks only near the baseline."""
    x, y = np.log(np.maximum(steps, 1e-12)), np.log(np.maximum(loss, 1e-12))
    out = np.full(len(steps), np.nan)
    for i in range(len(steps)):
        if steps[i] <= 0 or (where is not None and not where[i]):
            continue
        stop = max(i + window, int(np.searchsorted(steps, span * steps[i], side="right")))
        if stop <= len(steps):
            xs, ys = x[i:stop], y[i:stop]
            dx, dy = xs[None, :] - xs[:, None], ys[None, :] - ys[:, None]
            out[i] = float(np.median(dy[dx > 0] / dx[dx > 0]))  # Theil-Sen: one outlier barely moves it
    return out


def plateau(steps, loss, baseline: float, rule: PlateauRule = PlateauRule()) -> tuple[float, float, bool, float]:
    """(start, end, censored, level) of one loss curve under `rule`; nan where not defined."""
    steps, loss = np.asarray(steps, dtype=float), np.asarray(loss, dtype=float)
    near = np.abs(loss - baseline) <= rule.level_tol * baseline
    flat = np.abs(local_slopes(steps, loss, rule.span, rule.window, where=near)) <= rule.max_slope  # only where near
    ok = near & flat
    ok[1:-1] |= ok[:-2] & ok[2:]  # a single failing evaluation between two good ones is noise
    run_start = None
    for i, good in enumerate(ok):
        if good and run_start is None:
            run_start = i
        if run_start is not None and (not good or i == len(ok) - 1):
            stop = i + 1 if good else i
            if stop - run_start >= rule.min_evals:
                level = float(np.median(loss[run_start:stop]))
                below = loss < (1 - rule.escape) * level
                for j in range(run_start + 1, len(loss) - rule.sustain + 1):
                    if below[j : j + rule.sustain].all():
                        return steps[run_start], steps[j], False, level
                return steps[run_start], math.nan, True, level
            run_start = None
    return math.nan, math.nan, False, math.nan


def boundaries(steps, loss, baseline: float, rule: PlateauRule = PlateauRule()) -> tuple[float, float]:
    """(plateau start, plateau end) of one loss curve; nan where there is no plateau or no escape."""
    start, end, _, _ = plateau(steps, loss, baseline, rule)
    return start, end


def detect_phases(
    steps, per_sequence_loss, baseline: float, rule: PlateauRule | None = None, n_boot: int = 200, seed: int = 0
) -> Phases:
    """The plateau of per-sequence attribute losses [n_evals, n_sequences], with 95% intervals."""
    rule = rule or PlateauRule()
    steps = np.asarray(steps, dtype=float)
    per_sequence_loss = np.asarray(per_sequence_loss, dtype=float)
    start, end, censored, level = plateau(steps, per_sequence_loss.mean(1), baseline, rule)
    rng = np.random.default_rng(seed)
    n = per_sequence_loss.shape[1]
    starts, ends = [], []
    for _ in range(n_boot):
        s, e, c, _ = plateau(steps, per_sequence_loss[:, rng.integers(n, size=n)].mean(1), baseline, rule)
        if not math.isnan(s):
            starts.append(s)
            ends.append(math.inf if c else e)

    def ci(values: list[float]) -> tuple[float, float]:
        """Bootstrap 2.5-97.5% range, its lower end moved back to the evaluation before it (spacing)."""
        if not values:
            return (math.nan, math.nan)
        lo, hi = (float(np.percentile(np.asarray(values), q, method=m)) for q, m in ((2.5, "lower"), (97.5, "higher")))
        earlier = steps[steps < lo]
        return (float(earlier[-1]) if len(earlier) and math.isfinite(lo) else lo, hi)

    return Phases(
        float(start),
        float(end),
        ci(starts),
        ci(ends),
        bool(censored),
        level,
        len(starts) / n_boot if n_boot else math.nan,
        rule,
    )
