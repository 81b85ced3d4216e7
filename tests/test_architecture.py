"""The house rules (docs/architecture.md), checked on the source: no import cycles between
lwscale's modules, and no module importing another module's private (``_``-prefixed) name.
The layers themselves are import-linter's contract in pyproject.toml (``lint-imports``)."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

SRC = Path(__file__).resolve().parents[1] / "src" / "lwscale"


def module_name(path: Path, src: Path = SRC) -> str:
    parts = list(path.relative_to(src.parent).with_suffix("").parts)
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def imports(src: Path = SRC) -> dict[str, list[tuple[str, list[str], int]]]:
    """{module: [(imported module, names imported from it, line)]}, function-level imports included."""
    out = {}
    for path in sorted(src.rglob("*.py")):
        mod = module_name(path, src)
        package = mod if path.name == "__init__.py" else mod.rsplit(".", 1)[0]
        found = []
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.Import):
                found += [(a.name, [], node.lineno) for a in node.names if a.name.startswith("lwscale")]
            elif isinstance(node, ast.ImportFrom):
                base = node.module or ""
                if node.level:
                    up = package.split(".")[: len(package.split(".")) - node.level + 1]
                    base = ".".join(up + ([base] if base else []))
                if base.startswith("lwscale"):
                    found.append((base, [a.name for a in node.names], node.lineno))
        out[mod] = found
    return out


def graph() -> dict[str, set[str]]:
    """Module -> the lwscale modules it imports (``from pkg import mod`` counts as importing mod)."""
    found = imports()
    edges = {m: set() for m in found}
    for mod, imps in found.items():
        for base, names, _ in imps:
            targets = [f"{base}.{n}" for n in names if f"{base}.{n}" in found] or [base]
            edges[mod] |= {t for t in targets if t in found and t != mod}
    return edges


def cycles(edges: dict[str, set[str]]) -> list[list[str]]:
    """Strongly connected components with more than one module (Tarjan)."""
    index, low, stack, on, out, counter = {}, {}, [], set(), [], [0]

    def visit(v):
        index[v] = low[v] = counter[0]
        counter[0] += 1
        stack.append(v)
        on.add(v)
        for w in edges[v]:
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in on:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            comp = []
            while True:
                w = stack.pop()
                on.discard(w)
                comp.append(w)
                if w == v:
                    break
            if len(comp) > 1:
                out.append(sorted(comp))

    for v in sorted(edges):
        if v not in index:
            visit(v)
    return out


def test_no_import_cycles():
    # a package's __init__ importing its own modules is its face, not a cycle
    edges = {
        m: {t for t in ts if not m == t.rsplit(".", 1)[0] and not t == m.rsplit(".", 1)[0]} for m, ts in graph().items()
    }
    assert cycles(edges) == []


def test_the_cycle_finder_finds_a_planted_cycle():
    assert cycles({"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}) == [["a", "b", "c"]]
    assert cycles({"a": {"b"}, "b": set()}) == []


def test_no_private_name_is_imported_from_another_module():
    found = imports()
    bad = [
        f"{mod} (line {line}) imports {base}.{n}"
        for mod, imps in found.items()
        for base, names, line in imps
        for n in names
        if n.startswith("_") and not n.startswith("__") and base != mod
    ]
    assert bad == []


@pytest.mark.parametrize("name", ["_clean", "_digest"])
def test_the_private_import_check_sees_one(tmp_path, name):
    pkg = tmp_path / "lwscale"
    pkg.mkdir()
    (pkg / "__init__.py").write_text("")
    (pkg / "a.py").write_text(f"def {name}(): pass\n")
    (pkg / "b.py").write_text(f"def f():\n    from lwscale.a import {name}\n")
    found = imports(pkg)
    assert ("lwscale.a", [name], 2) in found["lwscale.b"]
