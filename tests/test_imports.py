"""The package's import graph, read statically: no cycles, layering, cheap top-level imports.

The graph is built with `ast` from every .py file under workbench/ (nothing is imported to build it):

- every `import a.b`, `from a.b import c` (c may be a submodule or a name) and relative import,
  at module level (class bodies and `try` blocks included) and inside functions (lazy imports count:
  they run eventually, and a lazy import is how a cycle is usually hidden). Imports under
  `if TYPE_CHECKING:` are left out (they never run).
- implicit edges to parent packages: importing `workbench.x.y` executes `workbench/__init__.py` and
  `workbench/x/__init__.py`, so there is an edge to each ancestor package that has an __init__.py,
  unless that ancestor is also an ancestor of the importing module (it has run already: a module
  importing a sibling in its own package does not import its package's __init__ again).
- `from P import name`: an edge to P.name when that is a module; an edge to P itself too, except when
  P is an ancestor of the importing module and every name is a submodule (only then is nothing of
  P's __init__ needed). Only modules of the package are nodes; everything else (torch, ...) is ignored.

The rules (each its own test id): no cycles; workbench.training and workbench.run import no feature
module; compute modules import no workbench.viz module; `import workbench` / `workbench.cli` stay
cheap (no TransformerLens) while the lazy top-level API still resolves. Layering rules are checked
transitively (what importing the module may end up executing); a failure names, per module, each
forbidden module it imports directly, or else the shortest chain of imports by which it reaches one.
"""

from __future__ import annotations

import ast
import json
import os
import subprocess
import sys
import textwrap
from collections import deque
from dataclasses import dataclass
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
PACKAGE_DIR = ROOT / "workbench"


# ---------------------------------------------------------------------------------------------
# the graph


@dataclass(frozen=True)
class Edge:
    src: str
    dst: str
    file: str  # relative to the package's parent folder
    line: int
    lazy: bool  # inside a function
    implicit: bool  # a parent package executed because a submodule of it was imported

    def describe(self) -> str:
        how = ["lazy" if self.lazy else "module level"] + (["parent package"] if self.implicit else [])
        return f"{self.file}:{self.line} ({', '.join(how)})"


@dataclass
class Graph:
    modules: dict[str, Path]  # module name -> file
    packages: set[str]  # modules that are packages (an __init__.py)
    edges: dict[tuple[str, str], Edge]  # (src, dst) -> the first import making that edge

    def adjacency(self) -> dict[str, list[str]]:
        adj: dict[str, list[str]] = {m: [] for m in self.modules}
        for src, dst in self.edges:
            adj[src].append(dst)
        return {m: sorted(set(d)) for m, d in adj.items()}


def _module_name(path: Path, base: Path) -> str:
    parts = list(path.relative_to(base).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


def _ancestors(name: str) -> list[str]:
    """'a.b.c' -> ['a', 'a.b'] (proper ancestors, outermost first)."""
    parts = name.split(".")
    return [".".join(parts[:i]) for i in range(1, len(parts))]


def _is_type_checking(test: ast.expr) -> bool:
    return (isinstance(test, ast.Name) and test.id == "TYPE_CHECKING") or (
        isinstance(test, ast.Attribute) and test.attr == "TYPE_CHECKING"
    )


class _Imports(ast.NodeVisitor):
    """(lineno, lazy, kind, base, names) for every import statement that can run."""

    def __init__(self):
        self.found: list[tuple[int, bool, str, str | None, int, list[str]]] = []
        self.depth = 0

    def _scope(self, node):
        self.depth += 1
        self.generic_visit(node)
        self.depth -= 1

    visit_FunctionDef = visit_AsyncFunctionDef = visit_Lambda = _scope

    def visit_If(self, node: ast.If):
        if _is_type_checking(node.test):
            for child in node.orelse:
                self.visit(child)
        else:
            self.generic_visit(node)

    def visit_Import(self, node: ast.Import):
        for alias in node.names:
            self.found.append((node.lineno, self.depth > 0, "import", alias.name, 0, []))

    def visit_ImportFrom(self, node: ast.ImportFrom):
        self.found.append((node.lineno, self.depth > 0, "from", node.module, node.level, [a.name for a in node.names]))


def import_graph(package_dir: Path) -> Graph:
    """The static import graph of the package in `package_dir` (its name is the folder's name)."""
    base = package_dir.parent
    modules = {_module_name(p, base): p for p in sorted(package_dir.rglob("*.py"))}
    packages = {_module_name(p, base) for p in package_dir.rglob("__init__.py")}
    top = package_dir.name
    edges: dict[tuple[str, str], Edge] = {}

    def add(src: str, dst: str, file: str, line: int, lazy: bool, implicit: bool) -> None:
        if dst == src or dst not in modules:
            return
        key = (src, dst)
        old = edges.get(key)
        # keep the most telling evidence: an explicit import over an implicit one, module level over lazy
        rank = (implicit, lazy, line)
        if old is None or rank < (old.implicit, old.lazy, old.line):
            edges[key] = Edge(src, dst, file, line, lazy, implicit)

    for src, path in modules.items():
        file = path.relative_to(base).as_posix()
        own_ancestors = set(_ancestors(src))
        here = src if src in packages else src.rpartition(".")[0]  # the package relative imports start from
        visitor = _Imports()
        visitor.visit(ast.parse(path.read_text(encoding="utf-8"), filename=str(path)))
        for line, lazy, kind, name, level, names in visitor.found:
            if kind == "import":
                base_mod = name
                explicit = {name} - own_ancestors  # an ancestor of src has run already
            else:
                if level:
                    pkg_parts = here.split(".")
                    pkg_parts = pkg_parts[: len(pkg_parts) - (level - 1)]
                    base_mod = ".".join(pkg_parts + ([name] if name else []))
                else:
                    base_mod = name
                subs = {f"{base_mod}.{n}" for n in names if f"{base_mod}.{n}" in modules}
                attributes = len(subs) < len(names)  # names (or *) read off base_mod: its __init__ must have run
                explicit = subs | ({base_mod} if attributes or base_mod not in own_ancestors else set())
            if base_mod.split(".")[0] != top:
                continue
            for dst in sorted(explicit):
                add(src, dst, file, line, lazy, implicit=False)
            for dst in sorted(set(_ancestors(base_mod)) - explicit - own_ancestors):
                if dst in packages:
                    add(src, dst, file, line, lazy, implicit=True)
    return Graph(modules, packages, edges)


# ---------------------------------------------------------------------------------------------
# cycles


def _strongly_connected(adj: dict[str, list[str]]) -> list[list[str]]:
    """Tarjan's algorithm, iterative; components in no particular order, members sorted."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    on_stack: set[str] = set()
    stack: list[str] = []
    out: list[list[str]] = []
    counter = 0
    for root in sorted(adj):
        if root in index:
            continue
        work = [(root, iter(adj[root]))]
        index[root] = low[root] = counter
        counter += 1
        stack.append(root)
        on_stack.add(root)
        while work:
            node, it = work[-1]
            for nxt in it:
                if nxt not in index:
                    index[nxt] = low[nxt] = counter
                    counter += 1
                    stack.append(nxt)
                    on_stack.add(nxt)
                    work.append((nxt, iter(adj[nxt])))
                    break
                if nxt in on_stack:
                    low[node] = min(low[node], index[nxt])
            else:
                work.pop()
                if work:
                    low[work[-1][0]] = min(low[work[-1][0]], low[node])
                if low[node] == index[node]:
                    comp = []
                    while True:
                        m = stack.pop()
                        on_stack.discard(m)
                        comp.append(m)
                        if m == node:
                            break
                    out.append(sorted(comp))
    return out


def find_cycles(graph: Graph, limit: int = 1000) -> list[list[str]]:
    """Every elementary cycle (as a path [a, b, ..., a]), each once, starting at its smallest module.

    Enumerated inside each strongly connected component; at most `limit` of them.
    """
    adj = graph.adjacency()
    cycles: list[list[str]] = []
    for comp in _strongly_connected(adj):
        if len(comp) == 1 and comp[0] not in adj[comp[0]]:
            continue
        for i, start in enumerate(comp):
            allowed = set(comp[i:])
            path = [start]
            on_path = {start}
            work = [iter([n for n in adj[start] if n in allowed])]
            while work:
                nxt = next(work[-1], None)
                if nxt is None:
                    work.pop()
                    on_path.discard(path.pop())
                    continue
                if nxt == start:
                    cycles.append(path + [start])
                    if len(cycles) >= limit:
                        return cycles
                elif nxt not in on_path:
                    path.append(nxt)
                    on_path.add(nxt)
                    work.append(iter([n for n in adj[nxt] if n in allowed]))
    return sorted(cycles, key=lambda c: (len(c), c))


def format_cycle(graph: Graph, cycle: list[str]) -> str:
    hops = "\n".join(f"      {a} -> {b}: {graph.edges[(a, b)].describe()}" for a, b in zip(cycle, cycle[1:]))
    return f"  {' -> '.join(cycle)}\n{hops}"


# ---------------------------------------------------------------------------------------------
# layering


def _in(name: str, prefix: str) -> bool:
    """`name` is `prefix` or inside it; a trailing '*' matches any module name starting with it."""
    if prefix.endswith("*"):
        return name.startswith(prefix[:-1])
    return name == prefix or name.startswith(prefix + ".")


FEATURES = (
    "workbench.patching*",
    "workbench.finetune",
    "workbench.finetuning",  # finetune(ing): today's name
    "workbench.probes*",
    "workbench.stability",
    "workbench.attention",
    "workbench.head_ablation",
    "workbench.sweeps*",
    "workbench.attribution*",
    "workbench.retrieval*",
    "workbench.viz*",
    "workbench.experiment",
    "workbench.cli",
)
NOT_COMPUTE = ("workbench.viz*", "workbench.experiment", "workbench.cli", "workbench.__main__")


def forbidden_reaches(graph: Graph, sources, forbidden) -> list[str]:
    """Per source: each forbidden module it imports directly, or else the shortest chain of imports
    by which it reaches one (only through modules that are not forbidden themselves)."""
    adj = graph.adjacency()
    lines = []
    for src in sorted(sources):
        direct = [d for d in adj[src] if forbidden(d)]
        for dst in direct:
            lines.append(f"  {src} -> {dst}: {graph.edges[(src, dst)].describe()}")
        if direct:
            continue
        parent: dict[str, str | None] = {src: None}
        queue = deque([src])
        hit = None
        while queue and hit is None:
            node = queue.popleft()
            for nxt in adj[node]:
                if nxt in parent:
                    continue
                parent[nxt] = node
                if forbidden(nxt):
                    hit = nxt
                    break
                queue.append(nxt)
        if hit is not None:
            chain = [hit]
            while parent[chain[-1]] is not None:
                chain.append(parent[chain[-1]])
            chain.reverse()
            last = graph.edges[(chain[-2], chain[-1])]
            lines.append(f"  {' -> '.join(chain)} (indirect; last: {last.describe()})")
    return lines


# ---------------------------------------------------------------------------------------------
# the rules


@pytest.fixture(scope="module")
def graph() -> Graph:
    return import_graph(PACKAGE_DIR)


def rule_no_cycles(g: Graph) -> str | None:
    cycles = find_cycles(g)
    if cycles:
        return f"{len(cycles)} import cycle(s):\n" + "\n".join(format_cycle(g, c) for c in cycles)
    return None


def rule_training_and_run_import_no_features(g: Graph) -> str | None:
    sources = [m for m in g.modules if _in(m, "workbench.training") or m == "workbench.run"]
    assert any(_in(m, "workbench.training") for m in sources) and "workbench.run" in sources
    lines = forbidden_reaches(g, sources, lambda m: any(_in(m, f) for f in FEATURES))
    if lines:
        return "workbench.training / workbench.run import feature modules:\n" + "\n".join(lines)
    return None


def rule_compute_imports_no_viz(g: Graph) -> str | None:
    sources = [m for m in g.modules if m != "workbench" and not any(_in(m, p) for p in NOT_COMPUTE)]
    lines = forbidden_reaches(g, sources, lambda m: _in(m, "workbench.viz"))
    if lines:
        return "compute modules import workbench.viz:\n" + "\n".join(lines)
    return None


RULES = {
    "no-cycles": rule_no_cycles,
    "training-and-run-import-no-feature-module": rule_training_and_run_import_no_features,
    "compute-modules-import-no-viz": rule_compute_imports_no_viz,
}


@pytest.mark.parametrize("rule", list(RULES), ids=list(RULES))
def test_import_rule(graph, rule):
    assert len(graph.modules) > 10 and graph.edges  # the walk found the package
    problem = RULES[rule](graph)
    if problem:
        pytest.fail(problem, pytrace=False)


# ---------------------------------------------------------------------------------------------
# cheap imports, checked in a fresh interpreter

CHEAP = {
    "import-workbench": "import workbench",
    "import-workbench-cli-and-build-parser": "import workbench\nimport workbench.cli\nworkbench.cli.build_parser()",
}
REPORT = "import json\nprint(json.dumps({m: m in sys.modules for m in ('transformer_lens', 'torch')}))"


def _python(code: str) -> subprocess.CompletedProcess:
    env = dict(os.environ, PYTHONPATH=os.pathsep.join([str(ROOT), os.environ.get("PYTHONPATH", "")]).rstrip(os.pathsep))
    return subprocess.run([sys.executable, "-c", code], cwd=ROOT, env=env, capture_output=True, text=True, timeout=300)


@pytest.mark.parametrize("case", list(CHEAP), ids=list(CHEAP))
def test_cheap_import(case):
    proc = _python("import sys\n" + CHEAP[case] + "\n" + REPORT)
    assert proc.returncode == 0, proc.stderr
    loaded = json.loads(proc.stdout.strip().splitlines()[-1])
    assert not loaded["transformer_lens"], (
        f"`{'; '.join(CHEAP[case].splitlines())}` loads transformer_lens (torch loaded: {loaded['torch']}); "
        "keep it lazy"
    )


def test_lazy_api_attribute_resolves():
    proc = _python(
        textwrap.dedent("""
        import sys
        import workbench
        load_run = workbench.load_run
        import workbench.run
        assert load_run is workbench.run.load_run, load_run
        assert "load_run" in dir(workbench) and "load_run" in workbench.__all__
        try:
            workbench.no_such_name
        except AttributeError:
            pass
        else:
            raise SystemExit("workbench.no_such_name did not raise AttributeError")
        print("ok")
    """)
    )
    assert proc.returncode == 0 and proc.stdout.strip().splitlines()[-1] == "ok", proc.stderr


# ---------------------------------------------------------------------------------------------
# the checker itself, on synthetic packages

SYNTHETIC = {
    # a -> b (module level), b -> a (lazy, relative): one cycle
    "finds-known-cycle": (
        {
            "__init__.py": "",
            "a.py": "from pkg.b import g\n",
            "b.py": "def g():\n    from . import a\n    return a\n",
            "c.py": "import pkg.a\n",
        },
        [["pkg.a", "pkg.b", "pkg.a"]],
        {"pkg.a -> pkg.b", "pkg.b -> pkg.a (lazy)", "pkg.c -> pkg.a"},
    ),
    # two cycles sharing an edge: each listed once, shortest first
    "finds-every-cycle": (
        {
            "__init__.py": "",
            "a.py": "import pkg.b\n",
            "b.py": "from pkg import a, c\n",
            "c.py": "from pkg.a import *\n",
        },
        [["pkg.a", "pkg.b", "pkg.a"], ["pkg.a", "pkg.b", "pkg.c", "pkg.a"]],
        {"pkg.a -> pkg.b", "pkg.b -> pkg.a", "pkg.b -> pkg.c", "pkg.c -> pkg.a"},
    ),
    # c imports pkg.sub.x, which executes pkg/sub/__init__.py, which imports c: a cycle through a parent
    "finds-cycle-through-parent-package": (
        {
            "__init__.py": "",
            "c.py": "import pkg.sub.x\n",
            "sub/__init__.py": "from pkg.c import *\n",
            "sub/x.py": "",
        },
        [["pkg.c", "pkg.sub", "pkg.c"]],
        {"pkg.c -> pkg.sub.x", "pkg.c -> pkg.sub (parent)", "pkg.sub -> pkg.c"},
    ),
    # siblings inside their own package, a package importing its submodules, TYPE_CHECKING and
    # imports of outside modules: no cycle
    "accepts-acyclic": (
        {
            "__init__.py": "import os\nfrom pkg.sub import x\n",
            "sub/__init__.py": "from . import x, y\n",
            "sub/x.py": "from pkg.sub import y\nfrom .y import helper\nimport json\n",
            "sub/y.py": (
                "from typing import TYPE_CHECKING\nif TYPE_CHECKING:\n    from pkg.sub.x import X\n"
                "def helper():\n    import pkg.other\n"
            ),
            "other.py": "import numpy\n",
        },
        [],
        {
            "pkg -> pkg.sub",
            "pkg -> pkg.sub.x",
            "pkg.sub -> pkg.sub.x",
            "pkg.sub -> pkg.sub.y",
            "pkg.sub.x -> pkg.sub.y",
            "pkg.sub.y -> pkg.other (lazy)",
        },
    ),
}


@pytest.mark.parametrize("case", list(SYNTHETIC), ids=list(SYNTHETIC))
def test_cycle_detector(tmp_path, case):
    files, expected, edges = SYNTHETIC[case]
    for rel, text in files.items():
        path = tmp_path / "pkg" / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text)
    g = import_graph(tmp_path / "pkg")
    assert {
        f"{e.src} -> {e.dst}" + (" (lazy)" if e.lazy else "") + (" (parent)" if e.implicit else "")
        for e in g.edges.values()
    } == edges
    assert find_cycles(g) == expected
    problem = rule_no_cycles(g)
    if expected:
        assert problem and all(" -> ".join(c) in problem for c in expected)
    else:
        assert problem is None
