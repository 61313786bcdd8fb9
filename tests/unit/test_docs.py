"""The docs stay true: every setting is in the README with its flag and variable, and every link,
repository path and ``voxlive.…`` name in the docs, comments and docstrings exists."""

import ast
import dataclasses
import io
import re
import tokenize
from pathlib import Path

from voxlive.settings import Settings
from voxlive.settings_sources import env_name, flag

README = (Path(__file__).parents[2] / "README.md").read_text()


def test_every_setting_is_in_the_readme() -> None:
    for f in dataclasses.fields(Settings):
        assert f"| `{flag(f.name)}` | `{env_name(f.name)}` |" in README, f.name


def test_benchmark_figures_link_committed_raw_json() -> None:
    """BENCHMARKS.md's raw-JSON links point at files in the repository."""
    import re

    root = Path(__file__).parents[2]
    text = (root / "BENCHMARKS.md").read_text()
    links = re.findall(r"\]\((docs/benchmarks/[^)]+\.json)\)", text)
    assert links, "expected links to raw JSON under docs/benchmarks/"
    for link in links:
        assert (root / link).is_file(), link


# ---- links and paths -----------------------------------------------------------------------------
# Every relative link in the Markdown resolves, and every repository path or ``voxlive.…`` name that
# the docs, comments and docstrings mention exists in the tree as it is when the tests run.
ROOT = next(p for p in Path(__file__).resolve().parents if (p / "pyproject.toml").is_file())
MARKDOWN = sorted([*ROOT.glob("*.md"), *(ROOT / "docs").rglob("*.md")])
# A path starts at one of these top-level folders; the character before it is not part of a path.
PATH = re.compile(r"(?<![\w./-])((?:docs|src|tests|deploy|scripts|spec|web)/[\w./-]*)")
# Short forms: a module by its package (``server/app.py``; its tests by the same folder,
# ``server/test_app.py``, as tests/unit mirrors src/voxlive), a page module by its folder
# (``net/client.ts``), each under its own roots.
SHORT = {
    ("src/voxlive", "tests/unit"): re.compile(
        r"(?<![\w./-])((?:protocol|audio|inference|pipeline|server|bench)/\w+\.py)\b"
    ),
    ("web/src",): re.compile(
        r"(?<![\w./-])((?:protocol|audio|net|state|controller|hooks|components)/[\w-]+\.tsx?)\b"
    ),
}
NAME = re.compile(r"(?<![\w./-])(voxlive(?:\.\w+)+)")
LINK = re.compile(r"\[[^\]]*\]\(([^)\s]+)\)")


def _prose(path: Path) -> str:
    """What people read in a source file: its comments and docstrings (Python), its comments
    (TypeScript)."""
    text = path.read_text()
    if path.suffix != ".py":
        return "\n".join(re.findall(r"//.*|/\*[\s\S]*?\*/", text))
    out = [tok.string for tok in tokenize.generate_tokens(io.StringIO(text).readline)
           if tok.type == tokenize.COMMENT]  # fmt: skip
    for node in ast.walk(ast.parse(text)):
        if isinstance(node, ast.Module | ast.ClassDef | ast.FunctionDef | ast.AsyncFunctionDef):
            out.append(ast.get_docstring(node, clean=False) or "")
    return "\n".join(out)


def _sources() -> dict[str, str]:
    """Every text a person reads for what it names: the Markdown whole, the code's prose."""
    files = [*(ROOT / "src").rglob("*.py"), *(ROOT / "tests").rglob("*.py"),
             *(ROOT / "web" / "src").rglob("*.ts"), *(ROOT / "web" / "src").rglob("*.tsx")]  # fmt: skip
    texts = {str(p.relative_to(ROOT)): p.read_text() for p in MARKDOWN}
    texts.update(
        {str(p.relative_to(ROOT)): _prose(p) for p in files if "node_modules" not in p.parts}
    )
    return texts


def _ignored(path: str) -> bool:
    """Build output that git ignores (web/dist, src/voxlive/web, artifacts/…): it exists only
    once built, so naming it is fine."""
    entries = [line.strip().rstrip("/") for line in (ROOT / ".gitignore").read_text().splitlines()]
    parts = path.strip("/").split("/")
    prefixes = {"/".join(parts[: i + 1]) for i in range(len(parts))}
    return any(e in prefixes or ("/" not in e and e in parts) for e in entries if e)


def _missing_paths(texts: dict[str, str]) -> dict[str, list[str]]:
    out: dict[str, list[str]] = {}
    for source, text in texts.items():
        for match in PATH.findall(text):
            path = match.rstrip(".,:;")
            if not (ROOT / path).exists() and not _ignored(path):
                out.setdefault(source, []).append(path)
        for roots, short in SHORT.items():
            for path in short.findall(text):
                if not any((ROOT / root / path).is_file() for root in roots):
                    out.setdefault(source, []).append(path)
    return out


def test_every_repository_path_named_in_docs_and_code_prose_exists() -> None:
    assert _missing_paths(_sources()) == {}


def test_the_path_check_sees_a_missing_path_and_accepts_build_output() -> None:
    found = _missing_paths({"x": "see docs/security.md, docs/protocol.md; `web/dist/` and "
                                 "tests/unit/<package>/ and src/voxlive/server/app.py; "
                                 "server/app.py, server/gone.py, net/client.ts, net/gone.tsx, "
                                 "server/test_app.py, server/test_gone.py."})  # fmt: skip
    assert found == {
        "x": ["docs/security.md", "server/gone.py", "server/test_gone.py", "net/gone.tsx"]
    }


def _slug(heading: str) -> str:
    """GitHub's anchor for a Markdown heading."""
    text = re.sub(r"[^\w\- ]", "", heading.strip().lower())
    return text.replace(" ", "-")


def _anchors(path: Path) -> set[str]:
    text = re.sub(r"```[\s\S]*?```", "", path.read_text())
    return {_slug(m) for m in re.findall(r"^#+ (.+)$", text, re.MULTILINE)}


def test_every_relative_link_in_the_markdown_resolves() -> None:
    broken = []
    for md in MARKDOWN:
        text = re.sub(r"```[\s\S]*?```", "", md.read_text())  # code blocks hold no links
        for link in LINK.findall(text):
            if re.match(r"[a-z]+:", link):  # https:, mailto:
                continue
            target, _, anchor = link.partition("#")
            file = (md.parent / target).resolve() if target else md
            if not file.exists():
                broken.append(f"{md.relative_to(ROOT)}: {link}")
            elif anchor and file.suffix == ".md" and anchor not in _anchors(file):
                broken.append(f"{md.relative_to(ROOT)}: {link} (no such heading)")
    assert broken == []


def _defines(module: Path, names: list[str]) -> bool:
    """Whether ``module`` defines ``names[0]`` at its top level (and, for ``Class.attr``, the
    class defines or assigns ``names[1]``, or one of its methods sets ``self.<names[1]>``)."""
    tree = ast.parse(module.read_text())
    scope: list[ast.stmt] = tree.body
    for name in names[:2]:
        found = None
        for node in scope:
            if isinstance(node, ast.ClassDef | ast.FunctionDef | ast.AsyncFunctionDef):
                hit = node.name == name
            elif isinstance(node, ast.Assign | ast.AnnAssign):
                targets = node.targets if isinstance(node, ast.Assign) else [node.target]
                hit = any(isinstance(t, ast.Name) and t.id == name for t in targets)
            elif isinstance(node, ast.Import | ast.ImportFrom):
                hit = any((a.asname or a.name).split(".")[0] == name for a in node.names)
            else:
                hit = False
            if hit:
                found = node
                break
        if found is None:
            return False
        if not isinstance(found, ast.ClassDef):
            return True
        # a class's names: its own statements, and the attributes its methods set on self
        scope = found.body + [
            ast.Assign(targets=[ast.Name(t.attr)], value=ast.Constant(None))
            for t in ast.walk(found)
            if isinstance(t, ast.Attribute) and isinstance(t.value, ast.Name) and t.value.id == "self"
            and isinstance(t.ctx, ast.Store)
        ]  # fmt: skip
    return True


def _unknown_names(texts: dict[str, str]) -> dict[str, list[str]]:
    src = ROOT / "src"
    out: dict[str, list[str]] = {}
    for source, text in texts.items():
        for name in NAME.findall(text):
            parts = name.split(".")
            # the longest prefix that is a module (a file or a package), the rest defined in it
            for cut in range(len(parts), 0, -1):
                base = src.joinpath(*parts[:cut])
                module = (
                    base.with_suffix(".py")
                    if base.with_suffix(".py").is_file()
                    else base / "__init__.py"
                )
                if module.is_file():
                    if cut < len(parts) and not _defines(module, parts[cut:]):
                        out.setdefault(source, []).append(name)
                    break
            else:
                out.setdefault(source, []).append(name)
    return out


def test_every_voxlive_name_in_docs_and_code_prose_is_defined() -> None:
    """``voxlive.server.service.Service``, ``voxlive.pipeline.stream.Stream.background``: the
    module exists and defines the name (a rename that missed a docstring fails here)."""
    assert _unknown_names(_sources()) == {}


def test_the_name_check_sees_a_renamed_module_or_attribute() -> None:
    found = _unknown_names({"x": "voxlive.server.service.Service, voxlive.pipeline.stream.Stream."
                                 "background, voxlive.server.nowhere, voxlive.audio.ring.Nope"})  # fmt: skip
    assert found == {"x": ["voxlive.server.nowhere", "voxlive.audio.ring.Nope"]}


def test_the_readme_hard_codes_no_test_counts() -> None:
    """Counts of tests go stale with the next test; the README names none."""
    import re

    found = re.findall(
        r"\b\d[\d,]* (?:pytest |vitest |unit |integration |browser )?tests\b", README
    )
    assert found == []


def test_the_int8_speed_up_range_is_the_one_the_raw_json_gives() -> None:
    """README and the benchmark history state the int8 / fp32 ceiling range of every committed run
    that measured both (``int8`` beside ``base`` in the bench's JSON), slowest run included."""
    import json

    def pairs(node: object) -> list[tuple[float, float]]:
        if isinstance(node, dict):
            if isinstance(node.get("base"), dict) and isinstance(node.get("int8"), dict):
                return [(node["base"]["audio_s_per_s"], node["int8"]["audio_s_per_s"])]
            return [p for v in node.values() for p in pairs(v)]
        if isinstance(node, list):
            return [p for v in node for p in pairs(v)]
        return []

    ratios = [
        int8 / base
        for path in sorted((ROOT / "docs" / "benchmarks").rglob("*.json"))
        for base, int8 in pairs(json.loads(path.read_text()))
    ]
    assert ratios
    stated = f"{min(ratios):.2f}–{max(ratios):.1f}× the fp32 ceiling"
    assert stated in README
    assert stated in (ROOT / "docs" / "benchmarks" / "history.md").read_text()


def test_the_bad_message_allowance_is_stated_as_the_code_counts_it() -> None:
    from voxlive.server.budget import BAD_BEFORE_AUTH, BAD_LIMIT, BAD_WINDOW_S

    ordinal = {3: "third", 4: "fourth", 5: "fifth"}
    # bad() closes once the count passes the allowance: the (allowance + 1)-th message closes.
    assert f"a {ordinal[BAD_BEFORE_AUTH + 1]} bad message" in README
    protocol = (ROOT / "docs" / "protocol.md").read_text()
    assert (
        f"more than {BAD_LIMIT} bad messages within {BAD_WINDOW_S:g} s "
        f"({BAD_BEFORE_AUTH} before authenticating)"
    ) in protocol


def test_the_memory_bound_in_the_readme_is_the_one_the_test_asserts() -> None:
    import re

    test = (ROOT / "tests" / "integration" / "test_attacks.py").read_text()
    first, per = re.search(
        r"FIRST_STREAMS_MIB, PER_CONNECTION_BOUND_MIB = (\d+), (\d+)", test
    ).groups()  # type: ignore[union-attr]
    assert (
        f"at most {first} MiB once for the first streams, then at most {per} MiB for"
        in " ".join(README.split())
    )
