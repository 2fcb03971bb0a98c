"""`workbench attribute`: the saved attribution and its summary; bad arguments name the field."""

import pytest

from workbench.cli import main

SAME_AS_FIXTURE = ["--layer", "1", "--head", "0", "--window", "10", "20", "--fit-size", "0"]  # as the fixture


def test_attribute_prints_the_head_window_and_top_individuals(dense_run, attribution, capsys):
    """The same config as the `attribution` fixture: the CLI loads it rather than recomputing."""
    assert main(["attribute", str(dense_run.path), *SAME_AS_FIXTURE, "--quiet"]) == 0
    out = capsys.readouterr().out
    assert f"attribution: {attribution.path}" in out
    assert "head L1H0, measure attention at step 20 (exact), window [10, 20): 160 sequences" in out
    assert "by individual (top 5)" in out and "by attribute (top 5)" in out


def test_the_deprecated_probe_flag_still_names_the_measure(dense_run, attribution, capsys):
    """`--probe` (the old name of `--measure`) still works, hidden from --help."""
    assert main(["attribute", str(dense_run.path), *SAME_AS_FIXTURE, "--probe", "attention", "--quiet"]) == 0
    assert f"attribution: {attribution.path}" in capsys.readouterr().out
    assert main(["attribute", "--help"]) == 0
    help_text = capsys.readouterr().out
    assert "--measure" in help_text and "--probe" not in help_text


@pytest.mark.parametrize(
    "args, message",
    [
        (["--head", "0"], "head is given without layer"),
        (["--layer", "5", "--head", "0", "--window", "10", "20"], "layer=5 is out of range"),
        (
            ["--layer", "1", "--head", "0", "--window", "10", "90"],
            "--window 10 90: allowed START < END within the run's steps [0, 40]",
        ),
    ],
)
def test_bad_arguments_name_the_field(dense_run, capsys, args, message):
    assert main(["attribute", str(dense_run.path), *args, "--quiet"]) != 0
    assert message in capsys.readouterr().err
