"""The notebooks: committed with outputs stripped, public workbench API only, no cell copied between
notebooks, and each one runs top to bottom on the tiny preset (nbclient, kernel python3), producing
its key outputs and writing runs only under the checkpoints root.

Run times per notebook are printed (`pytest -s`) and summarised at the end of the session.
"""

from __future__ import annotations

import ast
import re
import time
from pathlib import Path

import nbformat
import pytest
from browser import probe_counts, rendered_dom, with_probe
from nbclient import NotebookClient

import workbench as wb
from workbench.patching import default_reference_steps
from workbench.sweeps import read_plan

pytestmark = pytest.mark.slow

NOTEBOOKS_DIR = Path(__file__).resolve().parents[2] / "notebooks"
NOTEBOOKS = sorted(NOTEBOOKS_DIR.glob("*.ipynb"))
EXPECTED = [
    "01_three_phases",
    "02_name_attention",
    "03_attention_patching",
    "04_finetuning_and_memory",
    "05_toy_memory",
    "06_scaling_and_curricula",
    "07_data_attribution",
    "08_retrieval",
]
CELL_TIMEOUT_S = 300
WIDGET = "application/vnd.jupyter.widget-view+json"


def read(path: Path):
    return nbformat.read(path, as_version=4)


def code_cells(nb) -> list[str]:
    return [c.source for c in nb.cells if c.cell_type == "code"]


def outputs(nb, mime: str) -> list[str]:
    """Every output of `nb` carrying `mime` (execute results and displays), in order."""
    found = []
    for cell in nb.cells:
        for out in cell.get("outputs", []):
            if mime in out.get("data", {}):
                found.append(out["data"][mime])
    return found


def explorers(nb) -> int:
    """Outputs that are a live widget with its static figure beside it (`workbench.viz.explorers`; progress
    bars are widgets without one)."""
    return sum(
        WIDGET in o.get("data", {}) and "image/png" in o.get("data", {}) for c in nb.cells for o in c.get("outputs", [])
    )


def python_source(cell: str) -> str:
    """A code cell without its IPython magics (lines starting with % or !)."""
    return "\n".join(line for line in cell.splitlines() if not line.lstrip().startswith(("%", "!")))


# ---------------------------------------------------------------------------------------------
# the committed files


def test_expected_notebooks_exist():
    assert sorted(p.stem for p in NOTEBOOKS) == EXPECTED


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.stem)
def test_committed_stripped(path):
    nb = read(path)
    nbformat.validate(nb)
    assert nb.nbformat == 4
    assert nb.metadata.kernelspec.name == "python3"
    for i, cell in enumerate(nb.cells):
        if cell.cell_type == "code":
            assert cell.outputs == [], f"{path.name} cell {i} has outputs"
            assert cell.execution_count is None, f"{path.name} cell {i} has an execution count"
        assert not {"execution", "collapsed", "scrolled"} & set(cell.metadata), f"{path.name} cell {i}: run metadata"
    first = nb.cells[0]
    assert first.cell_type == "markdown" and first.source.startswith("# ")
    assert re.search(r"§4\.\d", first.source), f"{path.name}: the introduction names no finding of docs/method.md"


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.stem)
def test_public_api_only(path):
    """Imports from workbench name public modules and names only; no private attribute is touched."""
    for cell in code_cells(read(path)):
        tree = ast.parse(python_source(cell))
        for node in ast.walk(tree):
            if isinstance(node, ast.ImportFrom) and (node.module or "").startswith("workbench"):
                parts = node.module.split(".") + [a.name for a in node.names]
                assert not [p for p in parts if p.startswith("_")], f"{path.name}: private import {ast.unparse(node)}"
            if isinstance(node, ast.Import):
                for alias in node.names:
                    assert not any(p.startswith("_") for p in alias.name.split(".")), f"{path.name}: {alias.name}"
            if isinstance(node, ast.Attribute) and node.attr.startswith("_") and not node.attr.startswith("__"):
                pytest.fail(f"{path.name}: private attribute {ast.unparse(node)}")


def test_no_code_cell_is_copied_between_notebooks():
    seen: dict[str, str] = {}
    for path in NOTEBOOKS:
        for cell in code_cells(read(path)):
            key = re.sub(r"\s+", " ", cell).strip()
            assert key not in seen or seen[key] == path.name, f"cell copied in {seen[key]} and {path.name}:\n{cell}"
            seen[key] = path.name


# ---------------------------------------------------------------------------------------------
# executed on the tiny preset


def check_01(nb, root: Path) -> None:
    assert len(outputs(nb, "image/png")) >= 3  # phases, per attribute, hallucination panel
    html = "\n".join(outputs(nb, "text/html"))
    assert "plateau_start" in html and "heldout" in html


def check_02(nb, root: Path) -> None:
    assert len(outputs(nb, "image/png")) >= 3  # name->name, attribute->name, attribute->text
    pages = outputs(nb, "text/html")
    views = [h for h in pages if "CircuitsVis.render(" in h]
    assert len(views) == 6  # before / during / after (tiny: first / middle / last), last and first layer
    assert sum(h.count("var CircuitsVis=") for h in pages) == 1  # the bundle once per notebook (load_circuitsvis)
    assert not any("unpkg.com" in h for h in pages)  # offline
    assert all('src="data:image/png;base64,' in v for v in views)  # the static patterns, for an untrusted notebook
    size, bundle = len(nbformat.writes(nb).encode()), max(len(h) for h in pages if "var CircuitsVis=" in h)
    print(f"\nexecuted 02: {size / 1e6:.2f} MB, of which the circuitsvis bundle {bundle / 1e6:.2f} MB")
    assert size < 2_000_000  # 6 views: was 6 bundles (~9 MB), then one bundle with the views' numbers as JSON (2.2 MB)
    assert max(len(v) for v in views) < 30_000  # a view: its numbers packed (pack_attention) and a thumbnail
    # the outputs as a trusted notebook shows them, in order: every view renders and paints
    page = root / "notebook-02-outputs.html"
    page.write_text("<!DOCTYPE html><html><body>" + "\n".join(pages) + "</body></html>", encoding="utf-8")
    dom = rendered_dom(with_probe(page, root / "notebook-02-probe.html"))
    assert dom.count("Head Selector (hover to view, click to lock)</h3>") == 6
    counts = probe_counts(dom)
    assert counts["canvases"] >= 12 and counts["painted"] == counts["canvases"]
    assert (root / "tiny-seed0" / "attention_views.html").is_file()
    assert explorers(nb) == 1  # the attention explorer


def check_03(nb, root: Path) -> None:
    assert len(outputs(nb, "image/png")) >= 8  # 2 grids, 3 layer x position maps, heads, patterns, ablation
    assert "final_attribute_accuracy" in "\n".join(outputs(nb, "text/html"))
    assert explorers(nb) == 2  # the grid comparer and the ablation explorer
    pages = outputs(nb, "text/html")
    assert sum("CircuitsVis.render(" in h for h in pages) == 2  # the swapped routings, before and after
    assert sum(h.count("var CircuitsVis=") for h in pages) == 1
    reference = wb.load_run(root / "tiny-seed0")
    runs = sorted((root / "tiny-seed0-patching-40steps").glob("patch-ref*"))
    expected = {f"patch-ref{s}-start0" for s in default_reference_steps(reference)}
    assert {r.name for r in runs} == expected
    assert all(wb.load_run(r).status == "finished" for r in runs)


def check_04(nb, root: Path) -> None:
    assert len(outputs(nb, "image/png")) >= 5  # 2 panels, stability, localisation, probes
    html = "\n".join(outputs(nb, "text/html"))
    assert "seen (pre-training)" in html and "overwritten" in html and "logit_contribution" in html
    runs = sorted(root.glob("tiny-seed0-ft*-replay*"))
    assert len(runs) == 2 and all(wb.load_run(r).status == "finished" for r in runs)


def check_05(nb, root: Path) -> None:
    assert len(outputs(nb, "image/png")) == 1
    assert "replay 0.1" in "\n".join(outputs(nb, "text/html"))


def check_06(nb, root: Path) -> None:
    assert len(outputs(nb, "image/png")) == 4  # scaling, alpha trade-off, curricula curves, fine-tuning drops
    html = "\n".join(outputs(nb, "text/html"))
    assert "initial_drop" in html and "final_attribute_accuracy" in html
    assert "final_drop_vs_none_lo" in html and "initial_unchanged" in html and "exposures" in html
    for name, trials in (("scaling", 4), ("alpha", 2), ("curricula", 3), ("finetune-study", 8)):
        plan = read_plan(root / "sweeps" / f"tiny-{name}")
        assert len(plan["trials"]) == trials
        assert all(wb.load_run(t["run"]).status == "finished" for t in plan["trials"])


def check_07(nb, root: Path) -> None:
    assert len(outputs(nb, "image/png")) == 4  # head scores, influence, exact vs EK-FAC, retrains
    html = "\n".join(outputs(nb, "text/html"))
    assert "attribute_to_name" in html and "delta_vs_random" in html and "warmup-top16" in html
    run = wb.load_run(root / "sweeps" / "tiny-attribution" / "seed0")
    saved = sorted(p.parent.name for p in (run.path / "attribution").glob("*/attribution.json"))
    found = next(n.split("-")[0] for n in saved if n.endswith("trajectory"))  # the recall head the notebook found
    assert saved == sorted(
        {
            f"{found}-attention-exact-w10-20-s20",  # the plateau window (tiny: steps 10-20)
            f"{found}-attention-exact-w10-20-trajectory",
            "L1H0-attention-exact-w10-20-s20",  # the LDS's three estimators on head L1H0
            "L1H0-attention-ekfac-w10-20-s20",
            "L1H0-attention-exact-w10-20-s20-d1e+06",
        }
    )
    assert "lds" in html and "gradient product" in html
    for name, trials in (("tiny-attribution-retrains", 3), ("tiny-attribution-curriculum", 2), ("tiny-lds", 8)):
        plan = read_plan(root / "sweeps" / name)
        assert len(plan["trials"]) == trials
        assert all(wb.load_run(t["run"]).status == "finished" for t in plan["trials"])


def check_08(nb, root: Path) -> None:
    assert len(outputs(nb, "image/png")) == 2  # accuracy by mode, multiplier, held-out panel; reading vs memorisation
    html = "\n".join(outputs(nb, "text/html"))
    assert "oracle" in html and "equivalent_step" in html and "copied" in html
    assert "other_own" in html and "own_other" in html  # the reading tests' table
    text = "\n".join(o.get("text", "") for c in nb.cells for o in c.get("outputs", []) if o.output_type == "stream")
    assert "recall@1 queried with a name alone" in text and "[[" in text and "<<" in text
    study = root / "tiny-k3-q0.5-seed0" / "retrieval" / "default" / "retrieval.json"
    assert study.is_file()


CHECKS = {
    "01": check_01,
    "02": check_02,
    "03": check_03,
    "04": check_04,
    "05": check_05,
    "06": check_06,
    "07": check_07,
    "08": check_08,
}


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.stem)
def test_notebook_runs_on_tiny(path, notebook_root, notebook_timings):
    nb = read(path)
    before = sorted(p.name for p in NOTEBOOKS_DIR.iterdir())
    client = NotebookClient(
        nb, timeout=CELL_TIMEOUT_S, kernel_name="python3", resources={"metadata": {"path": str(NOTEBOOKS_DIR)}}
    )
    start = time.perf_counter()
    with pytest.MonkeyPatch.context() as env:  # the kernel inherits this process's environment
        env.setenv("WORKBENCH_PRESET", "tiny")
        env.setenv("WORKBENCH_CHECKPOINTS", str(notebook_root))
        # one thread per kernel: on a shared 2-core machine, OpenMP spinning slowed tiny training ~4x
        env.setenv("OMP_NUM_THREADS", "1")
        client.execute()  # raises CellExecutionError, with the traceback, when a cell fails
    seconds = time.perf_counter() - start
    notebook_timings[path.stem] = seconds
    print(f"\n{path.name}: {seconds:.1f} s on the tiny preset")

    errors = [o for c in nb.cells for o in c.get("outputs", []) if o.output_type == "error"]
    assert not errors
    assert all(c.execution_count is not None for c in nb.cells if c.cell_type == "code")
    assert sorted(p.name for p in NOTEBOOKS_DIR.iterdir()) == before  # nothing written next to the notebooks
    CHECKS[path.stem[:2]](nb, notebook_root)
