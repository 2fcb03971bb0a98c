"""Fixtures for the patching tests: reference models of the tiny run, and reference runs that must
be rejected (another architecture, another tokenizer)."""

from __future__ import annotations

import json
import shutil

import pytest

from workbench.atomic import atomic_write_json, sha256
from workbench.config import preset


@pytest.fixture(scope="session")
def other_arch_run_dir(tmp_path_factory):
    """A tiny run with another d_model (5 steps): a reference with another architecture."""
    from workbench.experiment import train

    path = tmp_path_factory.mktemp("runs") / "tiny-d48"
    cfg = preset("tiny", model={"d_model": 48}, train={"steps": 5, "checkpoint_steps": (0, 5), "eval_every": 5})
    train(cfg, path, progress=False)
    return path


@pytest.fixture(scope="session")
def other_tokenizer_run_dir(tiny_run_dir, tmp_path_factory):
    """A copy of the tiny run whose tokenizer.json maps two tokens to swapped ids (manifest updated)."""
    path = tmp_path_factory.mktemp("runs") / "tiny-other-tokenizer"
    shutil.copytree(tiny_run_dir, path)
    tok = json.loads((path / "tokenizer.json").read_text())
    vocab = tok["model"]["vocab"]
    a, b = sorted(vocab, key=vocab.get)[300:302]
    vocab[a], vocab[b] = vocab[b], vocab[a]
    (path / "tokenizer.json").write_text(json.dumps(tok))
    manifest = json.loads((path / "manifest.json").read_text())
    manifest["tokenizer_sha256"] = sha256(path / "tokenizer.json")
    atomic_write_json(path / "manifest.json", manifest)
    return path


@pytest.fixture(scope="session")
def eval_tokens(tiny_run):
    """Eight evaluation biographies of the tiny run (padded token ids)."""
    return tiny_run.data.eval_batch("seen", 8).tokens
