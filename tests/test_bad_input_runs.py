"""Bad input inside run directories and around them (issue 23, item 8): each case is one line on stderr
naming the file, flag or field and what is allowed, exit code 2 (CLI), no traceback unless --debug /
WORKBENCH_DEBUG=1, and nothing already written changed (the run directory's bytes compared before and after)."""

from __future__ import annotations

import errno
import hashlib
import html
import json
import os
import shutil
import stat
from pathlib import Path

import pytest
from interrupts import StopAt

from workbench.cli import main


def _hashes(root: Path) -> dict[str, str]:
    return {
        str(p.relative_to(root)): hashlib.sha256(p.read_bytes()).hexdigest()
        for p in sorted(Path(root).rglob("*"))
        if p.is_file()
    }


def _one_line(capsys) -> str:
    out, err = capsys.readouterr()
    lines = err.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("workbench: error: "), err
    assert "Traceback" not in out + err
    return lines[0]


@pytest.fixture
def run_copy(tiny_run_dir, tmp_path) -> Path:
    """A private copy of the tiny run (40 steps, checkpoints 0, 10, 20, 30, 40) under tmp_path/runs."""
    dest = tmp_path / "runs" / "tiny"
    shutil.copytree(tiny_run_dir, dest, ignore=shutil.ignore_patterns("analysis", "report.html"))
    return dest


@pytest.fixture(scope="module")
def stopped_run(tmp_path_factory) -> Path:
    """The tiny preset stopped at step 15 (as by Ctrl-C): last checkpoint 10, resume point 15, of 40 steps."""
    from workbench.config import preset
    from workbench.experiment import train

    path = tmp_path_factory.mktemp("stopped") / "tiny-stopped"
    train(preset("tiny"), path, progress=False, callbacks=[StopAt(15)])
    return path


@pytest.fixture(scope="module")
def heavy_imports():
    """torch, TransformerLens and Ray imported in a fixture's setup, not in a test's call (the 5 CPU-s guard)."""
    import ray  # noqa: F401

    import workbench.experiment  # noqa: F401


# 1 ------------------------------------------------------------------------------------------------


def test_garbage_manifest_is_named_and_runs_lists_the_others(run_copy, capsys):
    root = run_copy.parent
    shutil.copytree(run_copy, root / "broken")
    (root / "broken" / "manifest.json").write_bytes(b'{"status": "fin\x01ished"}')
    before = _hashes(root)
    assert main(["runs", "--root", str(root), "--json"]) == 0
    rows = {r["run"]: r for r in json.loads(capsys.readouterr().out)}
    assert rows["tiny"]["status"] == "finished" and rows["tiny"]["error"] == ""
    assert rows["broken"]["status"] == "broken"
    assert rows["broken"]["error"] == (
        f"{root / 'broken' / 'manifest.json'} is not valid JSON (Invalid control "
        f"character at line 1 column 16): allowed the file as the workbench wrote it "
        f"(restore it, or remove the run)"
    )
    assert main(["runs", "--root", str(root)]) == 0
    table = capsys.readouterr().out
    assert "broken" in table and "finished" in table
    assert main(["report", str(root / "broken")]) == 2
    assert _one_line(capsys) == f"workbench: error: {rows['broken']['error']}"
    (run_copy / "config.json").write_text('{"seed": 0,')  # any run JSON: named when unparsable
    before = _hashes(root)
    assert main(["report", str(run_copy)]) == 2
    line = _one_line(capsys)
    assert f"{run_copy / 'config.json'} is not valid JSON (Expecting" in line and "line 1 column 12" in line
    assert _hashes(root) == before


def test_a_manifest_that_is_json_but_not_a_manifest_is_named(run_copy, capsys):
    (run_copy / "manifest.json").write_text("[1, 2]")
    before = _hashes(run_copy)
    assert main(["train", "--resume", str(run_copy)]) == 2
    assert _one_line(capsys) == (
        f"workbench: error: {run_copy / 'manifest.json'} is not a run manifest: allowed a JSON "
        f"object with status and checkpoints, as the workbench writes it (restore it, or "
        f"remove the run)"
    )
    assert _hashes(run_copy) == before


# 2 ------------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "content, why",
    [
        (b'step,attribute_loss\n\x00\x01garbage,"x\n', "unexpected end of data"),
        (b"hello,world\n1,2\n", "no step column"),
        (b"step,attribute_loss\n10,abc\n", "column 'attribute_loss' holds text"),
    ],
)
def test_garbage_metrics_fail_the_report_in_one_line_naming_the_file(run_copy, capsys, content, why):
    (run_copy / "metrics.csv").write_bytes(content)
    before = _hashes(run_copy)
    assert main(["report", str(run_copy)]) == 2
    assert _one_line(capsys) == (
        f"workbench: error: {run_copy / 'metrics.csv'} is not the metrics table the workbench "
        f"writes ({why}): allowed a CSV of numbers with a step column (restore it, or remove "
        f"the run)"
    )
    assert _hashes(run_copy) == before and not (run_copy / "report.html").exists()


def test_garbage_scores_fail_the_report_naming_the_file(run_copy, capsys):
    (run_copy / "eval_scores.npz").write_bytes(b"PK\x03\x04 not a zip")
    before = _hashes(run_copy)
    assert main(["report", str(run_copy)]) == 2
    line = _one_line(capsys)
    assert line.startswith(f"workbench: error: {run_copy / 'eval_scores.npz'} is not the evaluation scores")
    assert line.endswith("allowed an .npz archive of arrays (restore it, or remove the run)")
    assert _hashes(run_copy) == before


def test_a_failing_section_marks_the_report_incomplete_without_a_traceback(run_copy, capsys, monkeypatch):
    from workbench.viz import report

    def broken(run):
        raise RuntimeError("attention over training failed\nsecond line")

    monkeypatch.setattr(
        report, "default_sections", lambda run=None: [("Summary", report.summary_section), ("Broken part", broken)]
    )
    before = _hashes(run_copy)
    assert main(["report", str(run_copy)]) == 2
    assert _one_line(capsys) == (
        f"workbench: error: report {run_copy / 'report.html'} is incomplete: 1 section(s) "
        f"failed, first 'Broken part' (RuntimeError: attention over training failed); "
        f"rerun with --debug for the traceback"
    )
    page = (run_copy / "report.html").read_text()
    body = page.split("<body>", 1)[1]
    assert body.startswith("<p class='banner'>INCOMPLETE REPORT: 1 section(s) failed: Broken part</p>")
    assert "<title>workbench report: [incomplete] tiny</title>" in page
    assert "Traceback" not in page and "section failed: RuntimeError: attention over training failed</div>" in page
    assert {k: v for k, v in _hashes(run_copy).items() if k != "report.html"} == before


# 3 ------------------------------------------------------------------------------------------------


@pytest.mark.parametrize("writer", ["safetensors", "python"])
def test_a_full_disk_is_one_line_naming_the_file_and_the_run_resumes(
    tmp_path, capsys, monkeypatch, writer, tiny_run_dir
):  # (imports done in its setup)
    from safetensors import SafetensorError

    from workbench.training import checkpoint

    real = checkpoint.save_file

    def full_disk(tensors, filename, metadata=None):
        Path(filename).write_bytes(b"\0" * 100)  # a partial write, as a full disk leaves it
        if writer == "safetensors":  # safetensors.torch.save_file on a full disk
            raise SafetensorError("Error while serializing: I/O error: No space left on device (os error 28)")
        raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))  # f.write on a full disk: no file name

    monkeypatch.setattr(checkpoint, "save_file", full_disk)
    out = tmp_path / "full"
    assert main(["train", "--preset", "tiny", "--steps", "4", "--out", str(out), "--quiet"]) == 2
    assert _one_line(capsys) == (
        f"workbench: error: {out / 'step_000000.safetensors'}: no space left on device: free "
        f"some space, then rerun (a run continues from its last saved step with `workbench "
        f"train --resume RUN`)"
    )
    assert json.loads((out / "manifest.json").read_text())["status"] == "failed"
    assert not list(out.glob("*.tmp")) and not list(out.glob("*.safetensors"))  # nothing half-written
    before = _hashes(out)
    monkeypatch.setattr(checkpoint, "save_file", real)
    assert main(["train", "--resume", str(out), "--quiet"]) == 0
    assert json.loads((out / "manifest.json").read_text())["status"] == "finished"
    assert (out / "config.json").read_bytes() and _hashes(out)["config.json"] == before["config.json"]


def test_a_full_disk_on_any_atomic_write_names_the_destination_and_keeps_the_old_file(tmp_path, monkeypatch):
    from workbench import atomic

    target = tmp_path / "manifest.json"
    target.write_text("old")

    def full(self, data):
        raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC), str(self))

    monkeypatch.setattr(Path, "write_bytes", full)
    with pytest.raises(OSError) as e:
        atomic.atomic_write_json(target, {"new": 1})
    monkeypatch.undo()
    assert e.value.errno == errno.ENOSPC and e.value.filename == str(target)
    assert target.read_text() == "old" and sorted(p.name for p in tmp_path.iterdir()) == ["manifest.json"]


# 4 ------------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "address, error, expected",
    [
        (
            None,
            TimeoutError("Timed out after 30 seconds while waiting for node to startup. Did not find socket name"),
            "sweep: the local Ray instance did not start (TimeoutError: Timed out after 30 seconds while waiting for node "  # noqa: E501
            "to startup. Did not find socket name): check this machine's free memory, CPUs and /tmp space, or stop "
            "leftover Ray processes (`ray stop`); or give --address HOST:PORT (or RAY_ADDRESS) of a running cluster",
        ),
        (
            "10.0.0.9:6379",
            ConnectionError("Failed to connect to Ray cluster at 10.0.0.9:6379"),
            "sweep: cannot connect to the Ray cluster at --address='10.0.0.9:6379' (ConnectionError: Failed to connect to "  # noqa: E501
            "Ray cluster at 10.0.0.9:6379): allowed the address of a running cluster (check it with `ray status --address "  # noqa: E501
            "10.0.0.9:6379`), or no --address and no RAY_ADDRESS for a local Ray on this machine",
        ),
    ],
)
def test_ray_start_up_failure_is_one_line_saying_what_to_do(
    tmp_path, capsys, monkeypatch, address, error, expected, heavy_imports
):
    import ray

    def fail(*args, **kw):
        raise error

    monkeypatch.delenv("RAY_ADDRESS", raising=False)
    monkeypatch.setattr(ray, "is_initialized", lambda: False)
    monkeypatch.setattr(ray, "init", fail)
    monkeypatch.setattr(ray, "shutdown", lambda: None)
    spec = tmp_path / "spec.toml"
    spec.write_text(f'name = "raytest"\npreset = "tiny"\nout = "{tmp_path}/sweep"\n[grid]\nseed = [0, 1]\n')
    before = _hashes(tmp_path)
    assert main(["sweep", str(spec), "--quiet", *(["--address", address] if address else [])]) == 2
    assert _one_line(capsys) == f"workbench: error: {expected}"
    assert _hashes(tmp_path) == before and not (tmp_path / "sweep").exists()


# 5 ------------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "argv, flag",
    [
        (["train", "--patch-from", "RUN@\u00b2"], "--patch-from"),
        (["train", "--patch-from", "RUN@\u0664"], "--patch-from"),  # Arabic-Indic four: int() would accept it
        (["finetune", "RUN@\u00b9\u00b2", "--new-individuals", "5"], "RUN@STEP"),
    ],
)
def test_a_step_must_be_ascii_digits(run_copy, capsys, argv, flag):
    argv = [a.replace("RUN", str(run_copy)) for a in argv]
    spec = next(a for a in argv if "@" in a)
    before = _hashes(run_copy.parent)
    assert main(argv) == 2
    assert _one_line(capsys) == (
        f"workbench: error: {flag}={spec!r}: allowed RUN@STEP, STEP a whole number in ASCII "
        f"digits 0-9, e.g. checkpoints/cpu-quick-seed0@3500"
    )
    assert _hashes(run_copy.parent) == before


# 6 ------------------------------------------------------------------------------------------------


@pytest.mark.parametrize("window", [("500", "600"), ("30", "10"), ("-5", "10"), ("20", "20")])
def test_attribute_window_outside_the_run_names_the_flag_and_the_runs_steps(run_copy, capsys, window):
    before = _hashes(run_copy)
    assert main(["attribute", str(run_copy), "--window", *window, "--quiet"]) == 2
    assert _one_line(capsys) == (
        f"workbench: error: --window {window[0]} {window[1]}: allowed START < END within the run's steps [0, 40]"
    )
    assert _hashes(run_copy) == before


def test_attribution_config_window_outside_the_run_names_the_fields(tiny_run, monkeypatch):
    from workbench.attribution import heads
    from workbench.attribution.window import AttributionConfig, attribute, resolve

    message = "attribution.start, attribution.end = 500, 600: allowed start < end within the run's steps [0, 40]"
    with pytest.raises(ValueError) as e:
        resolve(tiny_run, AttributionConfig(0, 0, 500, 600))
    assert str(e.value) == message

    def no_compute(*args, **kw):
        raise AssertionError("the recall head was searched before the window was checked")

    monkeypatch.setattr(heads, "find_recall_head", no_compute)
    with pytest.raises(ValueError) as e:
        attribute(tiny_run, start=500, end=600, progress=False)
    assert str(e.value) == message


# 7 ------------------------------------------------------------------------------------------------


@pytest.mark.parametrize("step, shown", [("40", "str '40'"), (40.0, "float 40.0"), (True, "bool True")])
def test_load_model_step_must_be_an_int(tiny_run, step, shown):
    with pytest.raises(ValueError) as e:
        tiny_run.load_model(step)
    assert str(e.value) == (
        f"step={step!r}: a step must be an int (got {shown}): allowed a checkpoint step of run "
        f"{tiny_run.path}: [0, 10, 20, 30, 40]"
    )


def test_load_model_accepts_numpy_integers(tiny_run):
    import numpy as np

    assert tiny_run.load_model(np.int64(40)).cfg.n_layers == tiny_run.config.model.n_layers


# 8 ------------------------------------------------------------------------------------------------


def test_runs_last_step_is_where_a_stopped_run_saved_its_state(stopped_run, capsys):
    manifest = json.loads((stopped_run / "manifest.json").read_text())
    assert manifest["status"] == "stopped" and manifest["last_step"] == 10 and manifest["resume"]["step"] == 15
    before = _hashes(stopped_run)
    assert main(["runs", "--root", str(stopped_run.parent), "--json"]) == 0
    (row,) = json.loads(capsys.readouterr().out)
    assert row["status"] == "stopped" and row["last_step"] == 15 and row["checkpoints"] == 2
    assert _hashes(stopped_run) == before


# 9 ------------------------------------------------------------------------------------------------


def test_written_files_are_readable_per_the_umask(tiny_run_dir, tmp_path):
    from workbench.atomic import atomic_path, umask

    mask = umask()
    for p in Path(tiny_run_dir).iterdir():  # checkpoints included (safetensors writes 0600 files)
        if p.is_file() and p.name != ".lock":
            assert stat.S_IMODE(p.stat().st_mode) == 0o666 & ~mask, p
    old = os.umask(0o027)
    try:
        with atomic_path(tmp_path / "x.bin") as tmp:
            os.close(os.open(tmp, os.O_CREAT | os.O_WRONLY, 0o600))
    finally:
        os.umask(old)
    assert stat.S_IMODE((tmp_path / "x.bin").stat().st_mode) == 0o640


# 10, 11 -------------------------------------------------------------------------------------------


def test_a_partial_runs_report_says_so_at_its_top(stopped_run, tmp_path):
    from workbench.run import load_run
    from workbench.viz.report import summary_section, write_report

    before = _hashes(stopped_run)
    page = write_report(load_run(stopped_run), tmp_path / "r.html", [("Summary", summary_section)]).read_text()
    body = page.split("<body>", 1)[1]
    assert body.startswith(
        f"<p class='banner'>Partial run: status stopped, trained to step 15 of 40 planned steps; "
        f"the curves stop there (continue it with: workbench train --resume {stopped_run})</p><h1>"
    )
    assert "[partial] tiny-stopped</title>" in page and "INCOMPLETE" not in page
    assert _hashes(stopped_run) == before


def test_a_finished_runs_report_has_no_banner(tiny_run, tmp_path):
    from workbench.viz.report import summary_section, write_report

    page = write_report(tiny_run, tmp_path / "r.html", [("Summary", summary_section)]).read_text()
    assert page.split("<body>", 1)[1].startswith("<h1>") and "banner'>" not in page


def test_the_reports_plateau_rule_is_the_one_phases_applies(tiny_run):
    from workbench.phases import PlateauRule
    from workbench.viz.report import summary_section

    rule = PlateauRule()
    text = rule.describe()
    for fragment in (
        f"at least {rule.min_evals} consecutive",
        f"within {rule.level_tol:.0%} of the no-knowledge",
        f"at most {rule.max_slope:g}",
        f"{rule.escape:.0%} below the plateau's level",
        f"for {rule.sustain} consecutive",
    ):
        assert fragment in text, fragment
    section = summary_section(tiny_run)
    assert html.escape(text) in section and "10% above" not in section
    assert PlateauRule(level_tol=0.3).describe() != text


# 12 -----------------------------------------------------------------------------------------------


def test_debug_flag_and_env_show_the_traceback(tmp_path, capsys, monkeypatch):
    monkeypatch.delenv("WORKBENCH_DEBUG", raising=False)
    missing = str(tmp_path / "missing")
    message = f"workbench: error: --root={missing!r} does not exist"
    assert main(["runs", "--root", missing]) == 2
    assert _one_line(capsys) == message
    for argv, env in ((["--debug", "runs", "--root", missing], None), (["runs", "--root", missing], "1")):
        if env:
            monkeypatch.setenv("WORKBENCH_DEBUG", env)
        assert main(argv) == 2
        err = capsys.readouterr().err
        assert err.startswith("Traceback (most recent call last):") and "cmd_runs" in err
        assert err.strip().splitlines()[-1] == message
    monkeypatch.setenv("WORKBENCH_DEBUG", "0")
    assert main(["runs", "--root", missing]) == 2
    assert _one_line(capsys) == message


def test_a_multi_line_error_is_cut_to_its_first_line(tmp_path, capsys, monkeypatch):
    from workbench import cli

    def boom(args):
        raise ValueError("first line\nsecond line")

    monkeypatch.delenv("WORKBENCH_DEBUG", raising=False)
    monkeypatch.setattr(cli, "cmd_runs", boom)
    assert main(["runs", "--root", str(tmp_path)]) == 2
    assert _one_line(capsys) == ("workbench: error: first line (rerun with --debug for the full message and traceback)")


# and a corrupt checkpoint -------------------------------------------------------------------------


def test_a_corrupt_checkpoint_is_named(run_copy, capsys):
    from workbench.run import load_run

    (run_copy / "step_000040.safetensors").write_bytes(b"garbage")
    before = _hashes(run_copy)
    with pytest.raises(ValueError) as e:
        load_run(run_copy).load_model(40)
    assert str(e.value) == (
        f"checkpoint file {run_copy / 'step_000040.safetensors'} is corrupted or truncated "
        f"(sha256 differs from the manifest)"
    )
    assert main(["finetune", f"{run_copy}@40", "--new-individuals", "5", "--out", str(run_copy.parent / "ft")]) == 2
    assert "step_000040.safetensors is corrupted or truncated" in _one_line(capsys)
    assert _hashes(run_copy) == before


def test_an_edited_retrieval_table_is_named(tmp_path):
    from workbench.retrieval.study import load_retrieval

    study = tmp_path / "retrieval" / "default"
    study.mkdir(parents=True)
    (study / "items.csv").write_bytes(b'a,b\n"unterminated\n')
    (study / "retrieval.json").write_text(json.dumps({"config": {}, "sha256": {"items.csv": "0" * 64}}))
    before = _hashes(tmp_path)
    with pytest.raises(ValueError) as e:
        load_retrieval(study)
    assert str(e.value) == (
        f"{study / 'items.csv'} does not match its sha256 in retrieval.json (edited, truncated "
        f"or missing): allowed the file as the workbench wrote it (or remove {study})"
    )
    assert _hashes(tmp_path) == before


@pytest.mark.parametrize(
    "argv, message",
    [
        (
            ["train", "--preset", "tiny", "--steps", str(10**30)],
            r"train\.steps=10+ is out of range: allowed an integer in \[1, 100000000\]",
        ),
        (
            ["train", "--preset", "tiny", "--set", "train.eval_every=1000000000000"],
            r"train\.eval_every=1000000000000 is out of range",
        ),
    ],
)
def test_absurd_step_counts_are_refused_before_any_compute(argv, message, tmp_path, monkeypatch, capsys):
    import re

    monkeypatch.chdir(tmp_path)
    assert main([*argv, "--out", str(tmp_path / "run"), "--quiet"]) == 2
    assert re.search(message, _one_line(capsys)) and not (tmp_path / "run").exists()


def test_a_config_json_without_a_section_is_named(run_copy, capsys):
    config = json.loads((run_copy / "config.json").read_text())
    del config["model"]
    (run_copy / "config.json").write_text(json.dumps(config))
    before = _hashes(run_copy)
    assert main(["report", str(run_copy)]) == 2
    line = _one_line(capsys)
    assert "config.json" in line and "['model'] missing" in line and _hashes(run_copy) == before
