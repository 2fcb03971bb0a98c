"""The config schema: frozen, validated dataclasses for data, model, training and each feature's section.

Every config checks itself on construction, so bad input fails before any work starts, with an error that
names the field and the allowed range. A run is fully described by a `RunConfig` (saved as config.json);
`RunConfig.from_dict(cfg.to_dict())` rebuilds it exactly. A field added after runs were saved gets the default
that reproduces those runs, so an older config.json still loads (a missing section does not).
"""

from __future__ import annotations

import dataclasses
import math
import typing
from dataclasses import dataclass, field
from typing import Any

from workbench.config.checks import check, check_indices, check_int, check_number

# The six attributes of a biography (docs/method.md §1.2); workbench.data.templates holds their sentences.
ATTRIBUTES: tuple[str, ...] = ("birth_date", "birth_city", "university", "major", "company", "current_location")
SHIPPED_TEMPLATES = 25  # sentence templates per attribute in workbench.data.templates
SAMPLER_KINDS = ("uniform", "power_law", "celebrities", "warmup", "sequential")
MAX_STEPS = 100_000_000  # an upper bound on any step count: far past any run, small enough to catch a typo
PRECISIONS = ("auto", "bf16", "fp16", "fp32")  # train.precision


@dataclass(frozen=True)
class PoolSizes:
    """How many entries of each shipped pool to use (the first k). Shrink for small runs."""

    first_names: int = 900
    last_names: int = 1000
    cities: int = 800
    universities: int = 200
    majors: int = 100
    companies: int = 500
    years: int = 201  # birth years 1900 .. 1900 + years - 1

    def __post_init__(self) -> None:
        for f in dataclasses.fields(self):
            check_int(f"pool_sizes.{f.name}", getattr(self, f.name), 1, f.default)  # the defaults are the shipped sizes


@dataclass(frozen=True)
class SamplerConfig:
    """Which individual each training biography is about (docs/method.md §1.7).

    kind: uniform | power_law (P(i) ~ (i+1)^-alpha) | celebrities (the first n_celebrities are
    sampled weight_celebrities times more often) | warmup (the first indiv_warmup individuals for
    warmup_steps steps, or when that is 0 for epochs_warmup epochs of indiv_warmup / batch_size steps,
    then uniform; the study leaves the unit open, the config records which; `warmup_ids` names the warm-up
    individuals instead, e.g. the most influential ones of an attribution) | sequential
    (n_groups equal groups visited in order, the whole cycle n_repeats times over the run).
    """

    kind: str = "uniform"
    alpha: float = 1.0
    n_celebrities: int = 1000
    weight_celebrities: float = 10.0
    indiv_warmup: int = 1000
    epochs_warmup: float = 10.0
    warmup_steps: int = 0  # > 0: the warm-up length in steps (and epochs_warmup is not used); 0: in epochs
    warmup_ids: tuple[
        int, ...
    ] = ()  # the warm-up individuals by index (e.g. chosen by attribution); () = the first indiv_warmup
    n_groups: int = 4
    n_repeats: int = 1

    def __post_init__(self) -> None:
        check(self.kind in SAMPLER_KINDS, "sampler.kind", f"one of {SAMPLER_KINDS}", self.kind)
        check_number("sampler.alpha", self.alpha, 0.0, 10.0)
        check_int("sampler.n_celebrities", self.n_celebrities, 1)
        check_number("sampler.weight_celebrities", self.weight_celebrities, 0.0, lo_open=True)
        check_int("sampler.indiv_warmup", self.indiv_warmup, 1)
        check_number("sampler.epochs_warmup", self.epochs_warmup, 0.0)
        check_int("sampler.warmup_steps", self.warmup_steps, 0, MAX_STEPS)
        check_int("sampler.n_groups", self.n_groups, 1)
        check_int("sampler.n_repeats", self.n_repeats, 1, MAX_STEPS)
        object.__setattr__(self, "warmup_ids", tuple(self.warmup_ids))
        check_indices("sampler.warmup_ids", self.warmup_ids)


@dataclass(frozen=True)
class PackingConfig:
    """Training sequences that hold several biographies (retrieval's analogue of web text, docs/method.md §6.2).

    k biographies per training sequence, each starting with BOS; with probability q_same one of the k-1
    others is about the same individual as the first (its templates and sentence order drawn afresh), the
    rest come from the sampler. k=1 (the default) is the study's single-biography sequence: runs without
    packing are unchanged. Evaluation sets stay single biographies.

    Context-only individuals (q_ctx > 0): a pool of n_context individuals, disjoint from every other group and
    never sampled otherwise; with probability q_ctx a packed sequence holds one of them twice, at two random
    slots (each biography's templates and order drawn afresh), so only reading its first mention predicts the
    second: training then rewards reading facts from the context (docs/method.md §6.2).
    """

    k: int = 1
    q_same: float = 0.0
    q_ctx: float = 0.0
    n_context: int = 0

    def __post_init__(self) -> None:
        check_int("packing.k", self.k, 1, 16)
        check_number("packing.q_same", self.q_same, 0.0, 1.0)
        check(
            self.k > 1 or self.q_same == 0.0,
            "packing.q_same",
            "0 when packing.k=1 (no other biography to repeat the individual in)",
            self.q_same,
        )
        check_number("packing.q_ctx", self.q_ctx, 0.0, 1.0)
        check(
            self.k > 1 or self.q_ctx == 0.0,
            "packing.q_ctx",
            "0 when packing.k=1 (a context-only individual needs two slots)",
            self.q_ctx,
        )
        check_int("packing.n_context", self.n_context, 0, 1 << 40)
        check(
            self.q_ctx == 0.0 or self.n_context > 0,
            "packing.n_context",
            "> 0 when packing.q_ctx > 0 (the pool the context-only individuals come from)",
            self.n_context,
        )


@dataclass(frozen=True)
class DataConfig:
    """The synthetic-biography world: populations, pools, templates, tokenizer size, sampler."""

    n_individuals: int = 64_000
    n_heldout: int = 16_000
    n_finetune: int = 0  # new individuals generated after the held-out ones (fine-tuning)
    attributes: tuple[str, ...] = ATTRIBUTES
    n_templates: int = 25
    n_train_templates: int = 20
    pool_sizes: PoolSizes = field(default_factory=PoolSizes)
    vocab_size: int = 8192  # saturates: whole words (names, most values) become single tokens
    sampler: SamplerConfig = field(default_factory=SamplerConfig)
    packing: PackingConfig = field(default_factory=PackingConfig)
    # a planted sub-population (workbench.data.planted): the first n_planted seen individuals carry one of
    # planted_names reserved first names and values that follow from it; 0 = none
    n_planted: int = 0
    planted_names: int = 10

    def __post_init__(self) -> None:
        for name, cls in (("pool_sizes", PoolSizes), ("sampler", SamplerConfig), ("packing", PackingConfig)):
            if isinstance(getattr(self, name), dict):
                object.__setattr__(self, name, _from_dict(cls, getattr(self, name)))
        check(
            not isinstance(self.attributes, str),
            "data.attributes",
            f"a list of names from {ATTRIBUTES}, not one string",
            self.attributes,
        )
        object.__setattr__(self, "attributes", tuple(self.attributes))
        for a in self.attributes:
            check(a in ATTRIBUTES, "data.attributes", f"a subset of {ATTRIBUTES}", a)
        check(
            len(self.attributes) > 0 and len(set(self.attributes)) == len(self.attributes),
            "data.attributes",
            f"a non-empty list of distinct names from {ATTRIBUTES}",
            self.attributes,
        )
        check_int("data.n_templates", self.n_templates, 2, SHIPPED_TEMPLATES)
        check_int("data.n_train_templates", self.n_train_templates, 1, self.n_templates - 1)
        check_int("data.vocab_size", self.vocab_size, 512, 65_536)
        p = self.pool_sizes
        max_names = p.first_names * p.first_names * p.last_names
        check_int("data.n_individuals", self.n_individuals, 1, max_names)
        check_int("data.n_heldout", self.n_heldout, 0, max_names - self.n_individuals)
        check_int("data.n_finetune", self.n_finetune, 0, max_names - self.n_individuals - self.n_heldout)
        check_int(
            "data.packing.n_context",
            self.packing.n_context,
            0,
            max_names - self.n_individuals - self.n_heldout - self.n_finetune,
        )
        check_int("data.n_planted", self.n_planted, 0, self.n_individuals)
        if self.n_planted:  # reserved first names: the others keep at least one
            check_int("data.planted_names", self.planted_names, 1, p.first_names - 1)
        s = self.sampler
        if s.kind == "celebrities":
            check_int("sampler.n_celebrities", s.n_celebrities, 1, self.n_individuals)
        if s.kind == "warmup":
            if s.warmup_ids:  # they replace the first indiv_warmup individuals
                check_indices("sampler.warmup_ids", s.warmup_ids, 0, self.n_individuals - 1)
            else:
                check_int("sampler.indiv_warmup", s.indiv_warmup, 1, self.n_individuals)
        if s.kind == "sequential":
            check_int("sampler.n_groups", s.n_groups, 1, self.n_individuals)

    @property
    def n_values(self) -> dict[str, int]:
        """Number of possible values per attribute (the no-knowledge baseline's ingredients)."""
        p = self.pool_sizes
        sizes = {
            "birth_date": p.years * 12 * 31,
            "birth_city": p.cities,
            "university": p.universities,
            "major": p.majors,
            "company": p.companies,
            "current_location": p.cities,
        }
        return {a: sizes[a] for a in self.attributes}

    @property
    def no_knowledge_baseline(self) -> float:
        """Mean over attribute types of log(#possible values), in nats (docs/method.md §2.3)."""
        return sum(math.log(n) for n in self.n_values.values()) / len(self.attributes)


@dataclass(frozen=True)
class ModelConfig:
    """A decoder-only HookedTransformer. n_ctx=0 means: fit the longest possible biography."""

    n_layers: int = 8
    d_model: int = 512
    n_heads: int = 8
    d_head: int = 64
    d_mlp: int = 2048
    n_ctx: int = 0
    act_fn: str = "gelu"
    positional_embedding_type: str = "standard"

    def __post_init__(self) -> None:
        check_int("model.n_layers", self.n_layers, 1, 96)
        check_int("model.d_model", self.d_model, 8, 16_384)
        check_int("model.n_heads", self.n_heads, 1, 256)
        check_int("model.d_head", self.d_head, 1, 1024)
        check_int("model.d_mlp", self.d_mlp, 1, 65_536)
        check_int("model.n_ctx", self.n_ctx, 0, 8192)
        acts = ("gelu", "relu", "silu", "gelu_new")
        check(self.act_fn in acts, "model.act_fn", f"one of {acts}", self.act_fn)
        pos = ("standard", "rotary")
        check(
            self.positional_embedding_type in pos,
            "model.positional_embedding_type",
            f"one of {pos}",
            self.positional_embedding_type,
        )


@dataclass(frozen=True)
class TrainConfig:
    """AdamW + cosine schedule without warm-up (docs/method.md §3); evaluation and checkpoint cadence.

    Checkpoints: `checkpoint_steps` lists them explicitly (and wins); otherwise `n_checkpoints` > 0 spaces that
    many intervals evenly over the run (so they follow `steps`); both empty/0 means the study's
    schedule (every 125 steps up to 2,000, plus 32 evenly spaced), scaled to the run's length.
    """

    steps: int = 16_000
    batch_size: int = 128
    lr: float = 4e-4
    final_lr: float = 1e-7
    weight_decay: float = 0.1
    beta1: float = 0.9
    beta2: float = 0.95
    schedule: str = "cosine"  # cosine | constant (fine-tuning)
    eval_every: int = 250
    eval_size: int = 512  # sequences in the fixed evaluation sets (seen and held-out)
    checkpoint_steps: tuple[int, ...] = ()
    n_checkpoints: int = 0  # evenly spaced intervals over the run; 0 = the study's schedule
    device: str = "auto"  # auto | cpu | cuda
    grad_clip: float = 1.0  # max global gradient norm (clip_grad_norm_); 0 = no clipping
    # How the loop runs (README "On a GPU"); none changes a CPU run's numbers at its default.
    precision: str = "auto"  # auto (bf16 on a CUDA GPU that has it, else fp16; fp32 on CPU) | bf16 | fp16 | fp32
    tf32: bool = True  # TF32 matmuls for fp32 work on CUDA (no effect on CPU)
    compile: bool = False  # torch.compile the training forward+backward
    pad_multiple: int = 0  # pad training batches to a multiple of this (capped at n_ctx); 0 = 8 on CUDA, 1 on CPU
    prefetch: int = 2  # training batches built ahead on a background thread; 0 = on the training thread
    optimizer_every: int = 1  # optimizer state with every k-th scheduled checkpoint (and the last); 0 = the last only

    def __post_init__(self) -> None:
        for s in self.checkpoint_steps:  # steps past the end of the run are ignored (a schedule outlives a run)
            check_int("train.checkpoint_steps[]", s, 0, MAX_STEPS)
        object.__setattr__(self, "checkpoint_steps", tuple(int(s) for s in self.checkpoint_steps))
        check_int("train.steps", self.steps, 1, MAX_STEPS)
        check_int("train.batch_size", self.batch_size, 1, 65_536)
        check_number("train.lr", self.lr, 0.0, 1.0, lo_open=True)
        check_number("train.final_lr", self.final_lr, 0.0, self.lr)
        check_number("train.weight_decay", self.weight_decay, 0.0, 10.0)
        check_number("train.beta1", self.beta1, 0.0, 1.0, hi_open=True)  # AdamW needs beta < 1
        check_number("train.beta2", self.beta2, 0.0, 1.0, hi_open=True)
        check(self.schedule in ("cosine", "constant"), "train.schedule", "cosine | constant", self.schedule)
        check_int("train.eval_every", self.eval_every, 1, MAX_STEPS)
        check_int("train.eval_size", self.eval_size, 1, 1_000_000)
        check_int("train.n_checkpoints", self.n_checkpoints, 0, MAX_STEPS)
        check_number("train.grad_clip", self.grad_clip, 0.0)
        check(self.device in ("auto", "cpu", "cuda"), "train.device", "auto | cpu | cuda", self.device)
        check(self.precision in PRECISIONS, "train.precision", " | ".join(PRECISIONS), self.precision)
        check(isinstance(self.tf32, bool), "train.tf32", "true | false", self.tf32)
        check(isinstance(self.compile, bool), "train.compile", "true | false", self.compile)
        check_int("train.pad_multiple", self.pad_multiple, 0, 1024)
        check_int("train.prefetch", self.prefetch, 0, 64)
        check_int("train.optimizer_every", self.optimizer_every, 0, MAX_STEPS)


@dataclass(frozen=True)
class PatchConfig:
    """Attention-pattern patching during training (docs/method.md §4.3): the reference run and step."""

    reference_run: str = ""
    reference_step: int = 0
    start_step: int = 0
    layers: tuple[int, ...] = ()  # () = all layers
    heads: tuple[int, ...] = ()  # () = all heads
    mix: float = 1.0  # a * reference + (1 - a) * own
    # the study's twin model shares the reference's seed (same initial weights, same batches);
    # True records that another seed was chosen on purpose
    allow_other_seed: bool = False

    def __post_init__(self) -> None:
        object.__setattr__(self, "layers", tuple(self.layers))
        object.__setattr__(self, "heads", tuple(self.heads))
        check(
            isinstance(self.reference_run, str) and bool(self.reference_run),
            "patch.reference_run",
            "a run directory",
            self.reference_run,
        )
        check_indices("patch.layers", self.layers)
        check_indices("patch.heads", self.heads)
        check(isinstance(self.allow_other_seed, bool), "patch.allow_other_seed", "true | false", self.allow_other_seed)
        check_int("patch.reference_step", self.reference_step, 0, MAX_STEPS)
        check_int("patch.start_step", self.start_step, 0, MAX_STEPS)
        check_number("patch.mix", self.mix, 0.0, 1.0)


@dataclass(frozen=True)
class FinetuneConfig:
    """Fine-tuning on new individuals from a pre-trained checkpoint, with optional replay (docs/method.md §4.7)."""

    base_run: str = ""
    base_step: int = 0
    n_new: int = 1000
    replay_weight: float = 0.0  # weight of each pre-training individual vs 1 per new individual

    def __post_init__(self) -> None:
        check(
            isinstance(self.base_run, str) and bool(self.base_run),
            "finetune.base_run",
            "a run directory",
            self.base_run,
        )
        check_int("finetune.base_step", self.base_step, 0, MAX_STEPS)
        check_int("finetune.n_new", self.n_new, 1)
        check_number("finetune.replay_weight", self.replay_weight, 0.0)


EDIT_SELECTIONS = ("top", "bottom", "random", "matched", "planted")


@dataclass(frozen=True)
class EditConfig:
    """Retrain the attributed run's twin with some of its training sequences removed or duplicated
    (data attribution's causal test, docs/method.md §6.1; `workbench.attribution.retrain`).

    From the attribution's scores over its window of steps: selection `top` takes the `percent`% most
    promoting sequences, `bottom` the most demoting, `random` as many at random (seeded by
    selection_seed), `matched` random ones with the top set's count per individual, `planted` every sequence of
    the run's planted individuals (data.n_planted, or a celebrities run's celebrities: the positive control's
    oracle; percent unused). unit `individual` ranks individuals by summed influence instead and edits all their
    sequences of the window.
    """

    attribution: str = ""  # an attribution directory (under its run's attribution/)
    selection: str = "top"
    action: str = "remove"  # remove | duplicate
    percent: float = 10.0  # k, percent of the window's sequences (or individuals)
    unit: str = "sequence"  # sequence | individual
    selection_seed: int = 0

    def __post_init__(self) -> None:
        check(
            isinstance(self.attribution, str) and bool(self.attribution),
            "edit.attribution",
            "an attribution directory",
            self.attribution,
        )
        check(self.selection in EDIT_SELECTIONS, "edit.selection", " | ".join(EDIT_SELECTIONS), self.selection)
        check(self.action in ("remove", "duplicate"), "edit.action", "remove | duplicate", self.action)
        check_number("edit.percent", self.percent, 0.0, 100.0, lo_open=True, hi_open=True)
        check(self.unit in ("sequence", "individual"), "edit.unit", "sequence | individual", self.unit)
        check(
            self.unit == "sequence" or self.selection != "matched",
            "edit.selection",
            "top | bottom | random with edit.unit='individual' (matched pairs individuals)",
            self.selection,
        )
        check_int("edit.selection_seed", self.selection_seed, 0, 2**63 - 1)


@dataclass(frozen=True)
class RunConfig:
    """Everything that defines a run; one seed derives population, tokenizer, init and batches."""

    data: DataConfig = field(default_factory=DataConfig)
    model: ModelConfig = field(default_factory=ModelConfig)
    train: TrainConfig = field(default_factory=TrainConfig)
    seed: int = 0
    preset: str = "custom"
    patch: PatchConfig | None = None
    finetune: FinetuneConfig | None = None
    edit: EditConfig | None = None

    def __post_init__(self) -> None:
        check_int("seed", self.seed, 0, 2**63 - 1)
        check(isinstance(self.preset, str) and bool(self.preset), "preset", "a non-empty name", self.preset)
        for name, cls in (
            ("data", DataConfig),
            ("model", ModelConfig),
            ("train", TrainConfig),
            ("patch", PatchConfig),
            ("finetune", FinetuneConfig),
            ("edit", EditConfig),
        ):
            value = getattr(self, name)
            check(
                isinstance(value, cls) or (value is None and name in ("patch", "finetune", "edit")),
                name,
                f"a {cls.__name__}",
                type(value).__name__,
            )
        check(
            self.patch is None or self.finetune is None,
            "patch",
            "None in a fine-tuning run (patching and fine-tuning are separate experiments)",
            self.patch,
        )
        check(
            self.edit is None or (self.patch is None and self.finetune is None),
            "edit",
            "None in a patching or fine-tuning run (an edit retrains a pre-training twin)",
            self.edit,
        )
        if self.finetune is not None:
            check_int("finetune.n_new", self.finetune.n_new, 1, self.data.n_finetune)
        p = self.data.packing
        if p.q_ctx > 0:  # each context-only individual about once per run at most, so only reading predicts it
            need = math.ceil(p.q_ctx * self.train.batch_size * self.train.steps)
            check(
                p.n_context >= need,
                "data.packing.n_context",
                f">= {need} (packing.q_ctx x train.batch_size x "
                f"train.steps: the expected context-only sequences of the run)",
                p.n_context,
            )

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> "RunConfig":
        return _from_dict(cls, d)

    def replace(self, **sections: Any) -> "RunConfig":
        """Copy with whole sections or nested fields replaced: replace(train={"steps": 10})."""
        return _replace(self, sections)


def _replace(obj: Any, changes: dict[str, Any]) -> Any:
    """dataclasses.replace, recursing into nested dataclass fields given as dicts."""
    names = {f.name for f in dataclasses.fields(obj)}
    unknown = set(changes) - names
    if unknown:
        raise ValueError(f"{type(obj).__name__}: unknown field(s) {sorted(unknown)}; allowed {sorted(names)}")
    kw = {}
    for k, v in changes.items():
        cur = getattr(obj, k)
        kw[k] = _replace(cur, v) if isinstance(v, dict) and dataclasses.is_dataclass(cur) else v
    return dataclasses.replace(obj, **kw)


# Shipped pool sizes (see workbench/data/pools/SOURCES.md), PoolSizes' defaults. Years: 1900..2100.
SHIPPED_POOL_SIZES = {f.name: f.default for f in dataclasses.fields(PoolSizes)}


def _nested(cls: type, name: str) -> type | None:
    """The config dataclass a field of `cls` holds (`X` or `X | None`), else None: derived from the annotations."""
    hint = typing.get_type_hints(cls)[name]
    for t in (hint, *typing.get_args(hint)):
        if dataclasses.is_dataclass(t):
            return t
    return None


def _from_dict(cls: type, d: dict[str, Any], where: str = "") -> Any:
    """Rebuild a (nested) frozen dataclass from `dataclasses.asdict` output. Unknown keys fail; a missing nested
    section of RunConfig (data, model, train) fails; a missing scalar field takes its default."""
    if not isinstance(d, dict):
        raise ValueError(f"{where or cls.__name__}={d!r}: allowed a table of {cls.__name__} fields")
    names = {f.name: f for f in dataclasses.fields(cls)}
    unknown = set(d) - set(names)
    if unknown:
        raise ValueError(f"{where or cls.__name__}: unknown field(s) {sorted(unknown)}; allowed {sorted(names)}")
    if cls is RunConfig:
        missing = [n for n in ("data", "model", "train") if n not in d]
        if missing:
            raise ValueError(f"config: section(s) {missing} missing; allowed a config with data, model and train")
    kwargs = {}
    for k, v in d.items():
        sub = _nested(cls, k)
        if sub is not None and v is not None:
            v = _from_dict(sub, v, f"{where}.{k}" if where else k)
        elif isinstance(v, list):
            v = tuple(v)
        kwargs[k] = v
    return cls(**kwargs)
