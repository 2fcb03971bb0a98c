"""Shared fixtures: small populations and tokenizers, a biography parser, and statistical tolerances.

Everything here is sized to run in well under a second on one CPU core.
"""

from __future__ import annotations

# Runtime checking of the jaxtyping annotations (shapes and dtypes) of the tensor-heavy modules, with
# beartype, for the whole test session. It must be installed before any of them is imported.
from jaxtyping import install_import_hook

CHECKED_MODULES = (
    "workbench.metrics",
    "workbench.data.batch",
    "workbench.attention",
    "workbench.stability",
    "workbench.patching.hooks",
    "workbench.patching.sources",
    "workbench.patching.ablations",
    "workbench.probes.sites",
    "workbench.probes.keyvalue",
    "workbench.probes.linear",
    "workbench.probes.localisation",
    "workbench.probes.toy_memory",
    "workbench.attribution.shim",
    "workbench.attribution.measures",
    "workbench.attribution.influence",
    "workbench.attribution.ekfac",
)
install_import_hook(CHECKED_MODULES, "beartype.beartype")

import math  # noqa: E402
import time  # noqa: E402
from dataclasses import dataclass
from statistics import NormalDist

import numpy as np
import pytest
import rayproc  # noqa: E402,F401  (tags this session's processes before any is started: leak guards count only ours)
import torch

import workbench.experiment  # noqa: F401  (TransformerLens & co. imported at collection, not in a test's call)
from workbench.config import DataConfig, PoolSizes, RunConfig, preset
from workbench.data.biography_data import BiographyData
from workbench.data.kinds import NAME, PAD, TEXT, VALUE
from workbench.data.templates import TEMPLATES
from workbench.data.tokenizer import template_pieces

# Tiny models run faster on one thread (less OpenMP overhead), and one setting for the whole session
# keeps exact-equality comparisons between runs meaningful.
torch.set_num_threads(1)

# False-positive rate of every statistical check. The checks are seeded (deterministic), so this
# only sets how far from the expectation a correct implementation may land.
ALPHA = 1e-6


# ---------------------------------------------------------------------------------------------
# statistics (stdlib only: scipy is not a dependency of the package)


def chi2_critical(df: int, alpha: float = ALPHA) -> float:
    """Upper alpha-quantile of chi-square(df), Wilson-Hilferty approximation.

    At alpha=1e-6 it overestimates the exact quantile slightly for small df (df=5: 37.5 vs 35.9;
    df=49: 111.6 vs 111.1), i.e. it errs towards not failing a correct implementation.
    """
    z = NormalDist().inv_cdf(1.0 - alpha)
    h = 2.0 / (9.0 * df)
    return df * (1.0 - h + z * math.sqrt(h)) ** 3


def chi2_stat(counts: np.ndarray, probs: np.ndarray) -> float:
    counts = np.asarray(counts, dtype=np.float64)
    expected = np.asarray(probs, dtype=np.float64) * counts.sum()
    keep = expected > 0
    assert counts[~keep].sum() == 0, "draws landed where the probability is zero"
    return float((((counts - expected) ** 2)[keep] / expected[keep]).sum())


def binomial_tolerance(p: float, n: int, alpha: float = ALPHA) -> float:
    """Two-sided tolerance on an empirical frequency of n Bernoulli(p) draws."""
    z = NormalDist().inv_cdf(1.0 - alpha / 2.0)
    return z * math.sqrt(p * (1.0 - p) / n)


class Stats:
    chi2_critical = staticmethod(chi2_critical)
    chi2_stat = staticmethod(chi2_stat)
    binomial_tolerance = staticmethod(binomial_tolerance)

    @staticmethod
    def assert_matches(counts, probs) -> None:
        """Chi-square goodness of fit of observed counts to a categorical distribution."""
        probs = np.asarray(probs, dtype=np.float64)
        df = int((probs > 0).sum()) - 1
        stat = chi2_stat(counts, probs)
        crit = chi2_critical(max(df, 1))
        assert stat < crit, f"chi-square {stat:.1f} >= critical {crit:.1f} (df={df}, n={int(np.sum(counts))})"


@pytest.fixture(scope="session")
def stats() -> type[Stats]:
    return Stats


# ---------------------------------------------------------------------------------------------
# configs and data


@pytest.fixture(scope="session")
def tiny_config() -> RunConfig:
    return preset("tiny")


@pytest.fixture(scope="session")
def tiny_data(tiny_config) -> BiographyData:
    """The tiny preset's population, tokenizer and sampler (treat as read-only)."""
    return BiographyData(tiny_config)


@pytest.fixture(scope="session")
def full_pool_data() -> BiographyData:
    """Every shipped pool entry in use (default pool sizes and vocabulary), few individuals."""
    cfg = RunConfig(data=DataConfig(n_individuals=256, n_heldout=64, n_finetune=64), train=preset("tiny").train)
    return BiographyData(cfg)


@pytest.fixture(scope="session")
def small_pools() -> PoolSizes:
    return PoolSizes(first_names=30, last_names=30, cities=12, universities=8, majors=6, companies=9, years=5)


# ---------------------------------------------------------------------------------------------
# reading biographies back from tokens


@dataclass
class Sentence:
    attribute: int  # index into config.attributes
    template: int  # index into TEMPLATES[attribute name]
    kinds: list[int]
    name_tokens: list[int]
    value_tokens: list[int]
    value_start_positions: list[int]  # positions (in the row) where value_start is True
    first_value_position: int  # position (in the row) of the first VALUE token
    tokens: list[int]


def _runs(labels: list[int]) -> list[tuple[int, int, int]]:
    """Maximal runs of equal labels: (label, start, stop)."""
    runs, start = [], 0
    for i in range(1, len(labels) + 1):
        if i == len(labels) or labels[i] != labels[start]:
            runs.append((labels[start], start, i))
            start = i
    return runs


class BiographyParser:
    """Recovers, from tokens and labels alone, which template each sentence of a biography used.

    A sentence is a maximal run of tokens labelled with one attribute. Its TEXT tokens before the
    name, between name and value, and after the value are compared with every template's pieces
    encoded on their own (`template_pieces` + `encode_segment`); exactly one template must match.
    """

    def __init__(self, data: BiographyData):
        self.data = data
        tok, cfg = data.tokenizer, data.config.data
        self.attributes = cfg.attributes
        self.lookup: list[dict[tuple, int]] = []
        for a in cfg.attributes:
            table: dict[tuple, int] = {}
            for t, template in enumerate(TEMPLATES[a][: cfg.n_templates]):
                key = tuple(tuple(tok.encode_segment(p)) if p else () for p in template_pieces(template))
                assert key not in table, f"{a}: templates {table[key]} and {t} tokenize identically"
                table[key] = t
            self.lookup.append(table)

    def row(self, batch, r: int) -> list[Sentence]:
        tokens = batch.tokens[r].tolist()
        kinds = batch.kind[r].tolist()
        attrs = batch.attribute[r].tolist()
        vstart = batch.value_start[r].tolist()
        n = sum(k != PAD for k in kinds)
        sentences = []
        for attr, start, stop in _runs(attrs[1:n]):
            start, stop = start + 1, stop + 1
            k = kinds[start:stop]
            t = tokens[start:stop]
            name_pos = [i for i, x in enumerate(k) if x == NAME]
            value_pos = [i for i, x in enumerate(k) if x == VALUE]
            assert name_pos and value_pos, f"row {r}: sentence without name or value: {k}"
            n0, n1 = name_pos[0], name_pos[-1] + 1
            v0, v1 = value_pos[0], value_pos[-1] + 1
            assert all(x == TEXT for x in k[:n0] + k[n1:v0] + k[v1:]), f"row {r}: bad kind pattern {k}"
            key = (tuple(t[:n0]), tuple(t[n1:v0]), tuple(t[v1:]))
            template = self.lookup[attr].get(key)
            assert template is not None, f"row {r}: sentence matches no template of {self.attributes[attr]}"
            sentences.append(
                Sentence(
                    attribute=attr,
                    template=template,
                    kinds=k,
                    name_tokens=t[n0:n1],
                    value_tokens=t[v0:v1],
                    value_start_positions=[start + i for i in range(len(k)) if vstart[start + i]],
                    first_value_position=start + v0,
                    tokens=t,
                )
            )
        return sentences


@pytest.fixture(scope="session")
def parser_for():
    """parser_for(data) -> a BiographyParser (cached per BiographyData)."""
    cache: dict[int, BiographyParser] = {}

    def get(data: BiographyData) -> BiographyParser:
        if id(data) not in cache:
            cache[id(data)] = BiographyParser(data)
        return cache[id(data)]

    return get


# ---------------------------------------------------------------------------------------------
# trained runs (session-scoped: trained once, shared read-only)


@pytest.fixture(scope="session")
def tiny_run_dir(tmp_path_factory):
    """A seeded tiny run trained to completion (40 steps, a few seconds)."""
    from workbench.experiment import train

    path = tmp_path_factory.mktemp("runs") / "tiny"
    train(preset("tiny"), path, progress=False)
    return path


@pytest.fixture(scope="session")
def tiny_run(tiny_run_dir):
    from workbench.run import load_run

    return load_run(tiny_run_dir)


@pytest.fixture(scope="session")
def packed_run(tmp_path_factory):
    """A seeded tiny run, 40 steps, k=3 biographies per sequence, q_same=0.5, checkpoints every 10 steps
    (each at an evaluation step)."""
    from workbench.experiment import train
    from workbench.run import load_run

    path = tmp_path_factory.mktemp("runs") / "tiny-packed"
    train(preset("tiny", data={"packing": {"k": 3, "q_same": 0.5}}), path, progress=False)
    return load_run(path)


@pytest.fixture
def tiny_run_copy(tiny_run_dir, tmp_path):
    """A private copy of the tiny run, for tests whose analyses write their cache into the run directory;
    without any cache (<run>/analysis/) another test may have left in the shared run."""
    import shutil

    from workbench.run import load_run

    shutil.copytree(tiny_run_dir, tmp_path / "tiny", ignore=shutil.ignore_patterns("analysis"))
    return load_run(tmp_path / "tiny")


# ---------------------------------------------------------------------------------------------
# test tiers: `pytest -m "not slow"` is the fast tier (development), plain `pytest` the full suite (CI)

FAST_TIER_CPU_LIMIT_S = 5.0  # CPU seconds of this process (threads included) in an unmarked test's call


def pytest_collection_modifyitems(config, items):
    """A browser or Ray test (one using the `local_ray` fixture included) is slow too (so the fast tier is simply
    `-m "not slow"`)."""
    for item in items:
        if "local_ray" in getattr(item, "fixturenames", ()):
            item.add_marker(pytest.mark.ray)
        if item.get_closest_marker("browser") or item.get_closest_marker("ray"):
            item.add_marker(pytest.mark.slow)


def _cpu_seconds() -> float:
    """This process's CPU time. Children are left out: their times are counted when they are reaped, which may be
    in a later test (a test that runs heavy subprocesses is marked slow by hand)."""
    return time.process_time()


@pytest.hookimpl(wrapper=True)
def pytest_runtest_call(item):
    """The guard that keeps the fast tier fast: an unmarked test whose call takes more than
    FAST_TIER_CPU_LIMIT_S of CPU fails, naming the marker to add. CPU time, not wall time, so a loaded machine
    does not fail a test that is fast on its own."""
    start = _cpu_seconds()
    result = yield
    used = _cpu_seconds() - start
    if used > FAST_TIER_CPU_LIMIT_S and item.get_closest_marker("slow") is None:
        pytest.fail(
            f"{item.nodeid} used {used:.1f} s of CPU, over the fast tier's {FAST_TIER_CPU_LIMIT_S:g} s: "
            f"mark it @pytest.mark.slow (or make it faster)",
            pytrace=False,
        )
    return result
