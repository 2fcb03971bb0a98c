"""Bad input, through the CLI and the API: one clear line naming the field or path, exit code 2 (CLI),
no traceback, and nothing written anywhere (the working directory, the inputs, the reference run)."""

from __future__ import annotations

import tempfile
from pathlib import Path

import pytest

from workbench import experiment
from workbench.cli import main
from workbench.config import (
    DataConfig,
    FinetuneConfig,
    ModelConfig,
    PatchConfig,
    RunConfig,
    SamplerConfig,
    TrainConfig,
    override,
    preset,
)
from workbench.run import load_run
from workbench.training.rundir import RunDir


def _snapshot(*roots: Path) -> dict:
    return {str(p): (p.stat().st_size, p.stat().st_mtime_ns) for root in roots for p in sorted(root.rglob("*"))}


def _read_only_dir() -> str:
    """A directory no process can write to, even as root (a pseudo file system)."""
    for candidate in ("/sys", "/proc/1"):
        try:
            tempfile.TemporaryFile(dir=candidate).close()
        except OSError:
            return candidate
    raise AssertionError("no read-only directory found on this machine")


@pytest.fixture
def places(tmp_path, tiny_run_dir, monkeypatch):
    """Paths the cases refer to, inside a fresh working directory."""
    monkeypatch.chdir(tmp_path)
    (tmp_path / "afile").write_text("not a run")
    (tmp_path / "emptydir").mkdir()
    (tmp_path / "notarun").mkdir()
    (tmp_path / "notarun" / "notes.txt").write_text("hello")
    (tmp_path / "bad.toml").write_text(
        f'name = "bad"\npreset = "tiny"\nout = "{tmp_path}/sweep"\n[grid]\n"data.n_individuals" = [64, 0]\n'
    )
    return {
        "BADSPEC": str(tmp_path / "bad.toml"),
        "RUN": str(tiny_run_dir),
        "FILE": str(tmp_path / "afile"),
        "EMPTY": str(tmp_path / "emptydir"),
        "NOTRUN": str(tmp_path / "notarun"),
        "MISSING": str(tmp_path / "missing"),
        "RO": _read_only_dir(),
        "TMP": str(tmp_path),
    }


CLI_CASES = [  # (argv with placeholders, a fragment the one-line error must contain)
    ("train --preset nope", "--preset"),
    ("train --preset tiny --steps 0", "train.steps"),
    ("train --preset tiny --steps -5", "train.steps"),
    ("train --preset tiny --lr 0", "train.lr"),
    ("train --preset tiny --lr 2", "train.lr"),
    ("train --preset tiny --lr abc", "--lr"),
    ("train --preset tiny --batch-size 0", "train.batch_size"),
    ("train --preset tiny --n-individuals 0", "data.n_individuals"),
    ("train --preset tiny --seed -1", "seed"),
    ("train --preset tiny --device tpu", "--device"),
    ("train --preset tiny --set train.beta1=1", "train.beta1"),
    ("train --preset tiny --set train.beta2=1.5", "train.beta2"),
    ("train --preset tiny --set train.nope=1", "train.nope"),
    ("train --preset tiny --set nope.x=1", "nope"),
    ("train --preset tiny --set train.lr", "SECTION.FIELD=VALUE"),
    ("train --preset tiny --set train.steps=ten", "train.steps"),
    ("train --preset tiny --set data.sampler.kind=zipf", "sampler.kind"),
    ("train --preset tiny --set data.sampler.alpha=-1", "sampler.alpha"),
    ("train --preset tiny --set model.n_ctx=10", "model.n_ctx=10"),
    ("train --preset tiny --set patch.mix=0.5", "patch is not set"),
    ("train --preset tiny --out ''", "out=''"),
    ("train --preset tiny --out FILE", "is a file"),
    ("train --preset tiny --out FILE/sub", "is under a file"),
    ("train --preset tiny --out RO/wbrun", "cannot be written"),
    ("train --preset tiny --out RUN", "already holds a run"),
    ("train --preset tiny --out NOTRUN", "non-empty directory"),
    ("train --resume MISSING", "does not exist"),
    ("train --resume EMPTY", "is empty"),
    ("train --resume FILE", "is a file"),
    ("train --resume NOTRUN", "no manifest.json"),
    ("train --resume ''", "--resume=''"),
    (
        "train --resume RUN --steps 10",
        "--steps=10 is out of range: allowed an integer in [40, ",
    ),  # extending only lengthens
    ("train --resume RUN --lr 0.1", "--lr cannot be used with --resume"),
    ("train --resume RUN --preset tiny", "--preset cannot be used with --resume"),
    ("train --resume RUN --out TMP/x", "--out cannot be used with --resume"),
    ("train --resume RUN --set train.lr=1e-3", "--set cannot be used with --resume"),
    ("train --preset tiny --patch-start 5", "--patch-start cannot be used without --patch-from"),
    ("train --patch-from RUN", "RUN@STEP"),
    ("train --patch-from RUN@7", "patch.reference_step=7"),
    ("train --patch-from MISSING@0", "--patch-from"),
    ("train --patch-from RUN@0 --preset tiny", "--preset cannot be used with --patch-from"),
    ("train --patch-from RUN@0 --patch-start 999", "patch.start_step=999"),
    ("train --patch-from RUN@0 --set model.d_model=48", "architecture"),
    ("finetune RUN@7 --new-individuals 5", "finetune.base_step=7"),
    ("finetune RUN --new-individuals 5", "RUN@STEP"),
    ("finetune RUN@40 --new-individuals 0", "finetune.n_new"),
    ("finetune RUN@40 --new-individuals 5 --replay-weight -1", "finetune.replay_weight"),
    ("finetune MISSING@0 --new-individuals 5", "finetune.base_run"),
    ("finetune RUN@40 --new-individuals 5 --steps 0", "steps=0"),
    ("finetune RUN@40", "--new-individuals"),
    ("finetune RUN@40 --new-individuals 5 --out FILE", "is a file"),
    ("patch-grid MISSING", "not a run directory"),
    ("patch-grid RUN --reference-steps 7", "reference_step=7"),
    ("patch-grid RUN --reference-steps 0 --start-steps 999", "start_step=999"),
    ("patch-grid RUN --reference-steps 0 --steps 0", "train.steps"),
    ("sweep", "SPEC is missing"),
    ("sweep MISSING", "neither a file nor a shipped spec"),
    ("sweep FILE", "not valid TOML"),
    ("sweep BADSPEC", "point n_individuals0: data.n_individuals=0 is out of range"),
    ("sweep BADSPEC --plan", "data.n_individuals=0"),
    ("sweep tiny/finetune", "finetune.base_run"),
    ("sweep tiny/scaling --plan --retry-failed", "--retry-failed cannot be used with --plan"),
    ("runs --root MISSING", "--root"),
    ("runs --root FILE", "--root"),
    ("report MISSING", "not a run directory"),
    ("report RUN --out MISSING/report.html", "its folder"),
    ("report RUN --out EMPTY", "is a directory"),
    ("data sample --preset tiny -n 0", "-n=0"),
    ("data stats --preset tiny --n-individuals 0", "data.n_individuals"),
    ("data stats --preset tiny --steps 5", "unrecognized arguments: --steps"),
    ("data stats --preset tiny --set data.vocab_size=10", "data.vocab_size"),
    ("main --preset nope", "--preset"),
    ("main --preset tiny --out FILE", "is a file"),
    ("", "required"),
    ("train --frobnicate", "unrecognized arguments"),
]


def _argv(template: str, places: dict) -> list[str]:
    import shlex

    words = shlex.split(template)
    out = []
    for w in words:
        for key in sorted(places, key=len, reverse=True):
            w = w.replace(key, places[key]) if not w.startswith("-") else w
        out.append(w)
    return out


@pytest.mark.parametrize("template, fragment", CLI_CASES, ids=[c[0] or "no command" for c in CLI_CASES])
def test_cli_bad_input_is_one_line_naming_what_is_wrong(template, fragment, places, tmp_path, tiny_run_dir, capsys):
    before = _snapshot(tmp_path, Path(tiny_run_dir))
    code = main(_argv(template, places))
    out, err = capsys.readouterr()
    assert code == 2, (out, err)
    lines = err.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("workbench: error: "), err
    assert fragment in lines[0], lines[0]
    assert "Traceback" not in err + out
    assert _snapshot(tmp_path, Path(tiny_run_dir)) == before  # nothing written, nothing half-made


def test_cli_suite_is_large_enough():
    assert len(CLI_CASES) >= 40


def _patched(run_dir, **patch):
    return preset("tiny").replace(patch=PatchConfig(reference_run=str(run_dir), **patch))


API_CASES = [  # (name, callable(places) raising ValueError, a fragment of the message)
    ("beta1 = 1", lambda p: TrainConfig(beta1=1.0), "train.beta1"),
    ("beta2 = 1", lambda p: TrainConfig(beta2=1.0), "train.beta2"),
    ("lr = 0", lambda p: TrainConfig(lr=0.0), "train.lr"),
    ("steps = 0", lambda p: TrainConfig(steps=0), "train.steps"),
    ("eval_every = 0", lambda p: TrainConfig(eval_every=0), "train.eval_every"),
    ("n_checkpoints < 0", lambda p: TrainConfig(n_checkpoints=-1), "train.n_checkpoints"),
    ("bool checkpoint step", lambda p: TrainConfig(checkpoint_steps=(True,)), "train.checkpoint_steps[]"),
    ("unknown schedule", lambda p: TrainConfig(schedule="linear"), "train.schedule"),
    ("bool head index", lambda p: PatchConfig(reference_run="x", heads=(True,)), "patch.heads[]"),
    ("negative layer", lambda p: PatchConfig(reference_run="x", layers=(-1,)), "patch.layers[]"),
    ("repeated head", lambda p: PatchConfig(reference_run="x", heads=(0, 0)), "patch.heads"),
    ("empty reference run", lambda p: PatchConfig(reference_run=""), "patch.reference_run"),
    ("mix > 1", lambda p: PatchConfig(reference_run="x", mix=1.5), "patch.mix"),
    ("empty base run", lambda p: FinetuneConfig(base_run=""), "finetune.base_run"),
    ("negative replay weight", lambda p: FinetuneConfig(base_run="x", replay_weight=-1.0), "finetune.replay_weight"),
    (
        "fine-tuning with patching",
        lambda p: preset("tiny").replace(
            patch=PatchConfig(reference_run="x"), finetune=FinetuneConfig(base_run="y", n_new=1)
        ),
        "patch",
    ),
    ("negative seed", lambda p: RunConfig(seed=-1), "seed"),
    ("bool seed", lambda p: RunConfig(seed=True), "seed"),
    ("a section of the wrong type", lambda p: RunConfig(train="fast"), "train"),
    ("no individuals", lambda p: DataConfig(n_individuals=0), "data.n_individuals"),
    ("attributes as one string", lambda p: DataConfig(attributes="major"), "data.attributes"),
    ("unknown sampler", lambda p: SamplerConfig(kind="zipf"), "sampler.kind"),
    ("unknown activation", lambda p: ModelConfig(act_fn="tanh"), "model.act_fn"),
    ("unknown preset", lambda p: preset("nope"), "preset"),
    ("unknown override", lambda p: override(preset("tiny"), ["train.nope=1"]), "train.nope"),
    ("out is a file", lambda p: experiment.train(preset("tiny"), p["FILE"], progress=False), "is a file"),
    ("out under a file", lambda p: experiment.train(preset("tiny"), p["FILE"] + "/x", progress=False), "under a file"),
    ("empty out", lambda p: experiment.train(preset("tiny"), "", progress=False), "out="),
    ("read-only out", lambda p: experiment.train(preset("tiny"), p["RO"] + "/x", progress=False), "cannot be written"),
    ("config not a RunConfig", lambda p: experiment.train("tiny", p["TMP"] + "/x", progress=False), "config="),
    ("resume a missing run", lambda p: experiment.resume(p["MISSING"], progress=False), "does not exist"),
    ("resume an empty directory", lambda p: experiment.resume(p["EMPTY"], progress=False), "is empty"),
    ("load a missing run", lambda p: load_run(p["MISSING"]), "run="),
    (
        "twin with another seed",
        lambda p: experiment.train(_patched(p["RUN"]).replace(seed=1), p["TMP"] + "/x", progress=False),
        "seed=1 differs",
    ),
    (
        "reference step without checkpoint",
        lambda p: experiment.train(_patched(p["RUN"], reference_step=7), p["TMP"] + "/x", progress=False),
        "patch.reference_step=7",
    ),
    (
        "head out of range",
        lambda p: experiment.train(_patched(p["RUN"], heads=(5,)), p["TMP"] + "/x", progress=False),
        "patch.heads",
    ),
    (
        "too many new individuals",
        lambda p: experiment.finetune(p["RUN"], 40, n_new=10**6, out=p["TMP"] + "/x", progress=False),
        "finetune.n_new",
    ),
    (
        "context too short",
        lambda p: experiment.train(preset("tiny", model={"n_ctx": 10}), p["TMP"] + "/x", progress=False),
        "model.n_ctx=10",
    ),
    ("checkpoint that does not exist", lambda p: load_run(p["RUN"]).load_model(7), "step=7"),
    (
        "negative patch start step",
        lambda p: experiment.patch_grid(p["RUN"], [0], [-1], out_root=p["TMP"] + "/g", progress=False),
        "start_steps",
    ),
    (
        "another config in a run directory",
        lambda p: experiment.train_or_resume(preset("tiny", train={"lr": 1e-3}), p["RUN"], progress=False),
        "another config",
    ),
]


@pytest.mark.parametrize("name, call, fragment", API_CASES, ids=[c[0] for c in API_CASES])
def test_api_bad_input_raises_a_clear_value_error(name, call, fragment, places, tmp_path, tiny_run_dir):
    before = _snapshot(tmp_path, Path(tiny_run_dir))
    with pytest.raises(ValueError) as e:
        call(places)
    message = str(e.value)
    assert fragment in message and "\n" not in message, message
    assert _snapshot(tmp_path, Path(tiny_run_dir)) == before


def test_api_suite_is_large_enough():
    assert len(API_CASES) >= 30


def test_an_incomplete_directory_may_be_replaced_but_not_a_foreign_one(tmp_path):
    """Leftovers of a creation killed before its manifest are replaced; anyone else's files are not."""
    incomplete = tmp_path / "incomplete"
    incomplete.mkdir()
    (incomplete / "config.json").write_text("{}")
    (incomplete / "manifest.json.tmp").write_text("{")
    assert RunDir(incomplete).incomplete()
    experiment.train(preset("tiny"), incomplete, progress=False)
    assert load_run(incomplete).status == "finished" and not (incomplete / "manifest.json.tmp").exists()
    foreign = tmp_path / "foreign"
    foreign.mkdir()
    (foreign / "config.json").write_text("{}")
    (foreign / "thesis.tex").write_text("precious")
    with pytest.raises(ValueError, match="non-empty directory"):
        experiment.train(preset("tiny"), foreign, progress=False)
    assert (foreign / "thesis.tex").read_text() == "precious"
