"""The layout stays honest: modules stay small, no modules import each other in a loop, and
tests/unit mirrors src/voxlive (a module's tests are where a reader would look for them).

Every import counts, wherever it is written: at the top, inside a function, or under
``TYPE_CHECKING`` (a loop that only type checking sees is still two modules that need each
other).
"""

from __future__ import annotations

import ast
from pathlib import Path

SRC = Path(__file__).resolve().parents[2] / "src"
TESTS = Path(__file__).resolve().parent  # tests/unit
MAX_LINES = 400
# test files directly in tests/unit that test the project's structure rather than one module
STRUCTURE_TESTS = {"test_architecture", "test_docs", "test_mutation_score", "test_system_deps"}


def _modules() -> dict[str, Path]:
    out = {}
    for path in sorted((SRC / "voxlive").rglob("*.py")):
        parts = list(path.relative_to(SRC).with_suffix("").parts)
        if parts[-1] == "__init__":
            parts.pop()
        out[".".join(parts)] = path
    return out


def _imports(name: str, path: Path, modules: dict[str, Path]) -> set[str]:
    """The voxlive modules that ``name`` imports (anywhere in its body)."""
    package = name if path.name == "__init__.py" else name.rpartition(".")[0]
    found: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            targets = [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                anchor = package.split(".")[: len(package.split(".")) - node.level + 1]
                base = ".".join(anchor + ([base] if base else []))
            # "from a.b import c" imports module a.b.c when there is one, else names of a.b.
            targets = [f"{base}.{a.name}" if f"{base}.{a.name}" in modules else base
                       for a in node.names]  # fmt: skip
        else:
            continue
        found.update(t for t in targets if t in modules and t != name)
    return found


def _cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """Strongly connected components with more than one module (Tarjan)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    out: list[list[str]] = []

    def visit(v: str) -> None:
        index[v] = low[v] = len(index)
        stack.append(v)
        on_stack.add(v)
        for w in graph[v]:
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in on_stack:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            component = []
            while True:
                w = stack.pop()
                on_stack.discard(w)
                component.append(w)
                if w == v:
                    break
            if len(component) > 1:
                out.append(sorted(component))

    for v in graph:
        if v not in index:
            visit(v)
    return out


def test_no_modules_import_each_other_in_a_loop() -> None:
    modules = _modules()
    graph = {name: _imports(name, path, modules) for name, path in modules.items()}
    assert _cycles(graph) == []


def test_the_cycle_finder_sees_loops_through_function_level_imports() -> None:
    graph = {"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}
    assert _cycles(graph) == [["a", "b", "c"]]
    # and the import scan reads imports inside functions
    tree = SRC / "voxlive" / "pipeline" / "assembly.py"
    assert "voxlive.inference.ray_serve" in _imports("voxlive.pipeline.assembly", tree, _modules())


def test_no_module_is_over_400_lines() -> None:
    sizes = {name: len(path.read_text().splitlines()) for name, path in _modules().items()}
    assert {name: n for name, n in sizes.items() if n > MAX_LINES} == {}


def test_tests_unit_mirrors_the_packages() -> None:
    """tests/unit/<package>/test_<module>.py holds the tests of voxlive/<package>/<module>.py:
    every folder is a package of src/voxlive (an importable one: tests import each other as the
    ``tests`` package), and every test file names a module that exists."""
    modules = _modules()
    folders = [p for p in sorted(TESTS.iterdir()) if p.is_dir() and p.name != "__pycache__"]
    assert [p.name for p in folders if f"voxlive.{p.name}" not in modules] == []
    assert [p.name for p in folders if not (p / "__init__.py").is_file()] == []
    stray = [
        str(path.relative_to(TESTS))
        for path in sorted(TESTS.glob("*/test_*.py"))
        if f"voxlive.{path.parent.name}.{path.stem.removeprefix('test_')}" not in modules
    ]
    assert stray == []


def test_top_level_test_files_test_top_level_modules_or_the_structure() -> None:
    """Directly in tests/unit: test_<module>.py for the modules directly in voxlive/ (settings.py,
    cli.py, errors.py, metrics.py), besides the tests of the project's structure."""
    modules = _modules()
    stray = [
        path.name
        for path in sorted(TESTS.glob("test_*.py"))
        if f"voxlive.{path.stem.removeprefix('test_')}" not in modules
        and path.stem not in STRUCTURE_TESTS
    ]
    assert stray == []


def _methods(cls: ast.ClassDef) -> set[str]:
    return {n.name for n in cls.body if isinstance(n, ast.FunctionDef)}


def test_every_classifier_implements_the_whole_protocol() -> None:
    """Each backend (and the tests' fakes) has every method of ``Classifier``, ``close``
    included, so whoever serves a model can release it without asking whether it can."""
    base = ast.parse((SRC / "voxlive" / "inference" / "base.py").read_text())
    protocol = next(
        n for n in ast.walk(base) if isinstance(n, ast.ClassDef) and n.name == "Classifier"
    )
    wanted = _methods(protocol)
    assert {"info", "predict", "warmup", "close"} <= wanted
    files = [
        *(SRC / "voxlive" / "inference").glob("*.py"),
        next(d / "fakes.py" for d in Path(__file__).parents if (d / "fakes.py").is_file()),
    ]
    backends = {
        f"{path.name}:{node.name}": _methods(node)
        for path in files
        for node in ast.walk(ast.parse(path.read_text()))
        if isinstance(node, ast.ClassDef) and {"info", "predict"} <= _methods(node)
    }
    assert {"hf.py:TransformersClassifier", "onnx.py:OnnxClassifier", "pitch.py:PitchClassifier",
            "ray_serve.py:RayClassifier", "fakes.py:FakeClassifier", "fakes.py:Slowed"} <= set(backends)  # fmt: skip
    assert {name: sorted(wanted - have) for name, have in backends.items() if wanted - have} == {}


def test_the_client_is_the_other_end_of_the_socket_not_the_server() -> None:
    """voxlive.client runs where the server does not: it may use protocol/ and audio/, never
    server/, pipeline/ or inference/ (nor pull in the model stack with them)."""
    modules = _modules()
    banned = ("voxlive.server", "voxlive.pipeline", "voxlive.inference", "voxlive.cli")
    below = tuple(b + "." for b in banned)
    found = {
        name: sorted(t for t in _imports(name, path, modules) if t in banned or t.startswith(below))
        for name, path in modules.items()
        if name.startswith("voxlive.client")
    }
    assert found and {k: v for k, v in found.items() if v} == {}
