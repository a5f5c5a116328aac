"""The tree tells the story: packages by concern with no import circle, no module reaching into
another package's private names, and short modules. Read from the source with `ast` (nothing is
imported), so a lazy import inside a function counts as much as one at the top."""

import ast
from pathlib import Path

from helpers import REPO

PACKAGE = REPO / "src" / "cnn_denoise"
MOST_LINES = 400


def modules() -> dict[str, Path]:
    """{dotted name: file} of every module of the package."""
    out = {}
    for path in PACKAGE.rglob("*.py"):
        parts = path.relative_to(PACKAGE.parent).with_suffix("").parts
        out[".".join(parts[:-1] if parts[-1] == "__init__" else parts)] = path
    return out


def imports(name: str, path: Path) -> list[tuple[str, list[str]]]:
    """(module imported, names taken from it) for every import of ours in the file, nested ones too."""
    package = name if path.name == "__init__.py" else name.rpartition(".")[0]
    found = []
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            found += [(a.name, []) for a in node.names if a.name.split(".")[0] == "cnn_denoise"]
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                parts = package.split(".")
                base = ".".join(parts[: len(parts) - node.level + 1] + ([base] if base else []))
            if base.split(".")[0] == "cnn_denoise":
                found.append((base, [a.name for a in node.names]))
    return found


def graph() -> dict[str, set[str]]:
    """{module: modules of ours it imports}, a `from package import module` counted as the module."""
    known = modules()
    edges = {}
    for name, path in known.items():
        out = set()
        for base, names in imports(name, path):
            subs = {f"{base}.{n}" for n in names if f"{base}.{n}" in known}
            out |= subs or {base}
            if len(subs) < len(names):
                out.add(base)
        edges[name] = out - {name}
    return edges


def circles(edges: dict[str, set[str]]) -> list[list[str]]:
    """Each import circle once, as the path that closes it (depth-first search, Tarjan-free)."""
    found, state = [], {}

    def visit(node, path):
        state[node] = "open"
        for nxt in sorted(edges.get(node, ())):
            if state.get(nxt) == "open":
                found.append(path[path.index(nxt) :] + [nxt])
            elif nxt not in state:
                visit(nxt, path + [nxt])
        state[node] = "done"

    for node in sorted(edges):
        if node not in state:
            visit(node, [node])
    return found


def package_of(name: str) -> str:
    return ".".join(name.split(".")[:2])


def test_no_import_circle():
    assert circles(graph()) == []


def test_the_check_finds_a_circle():
    assert circles({"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}) == [["a", "b", "c", "a"]]
    assert circles({"a": {"b"}, "b": set()}) == []


def test_no_package_uses_another_packages_private_names():
    reaching = [
        f"{name} takes {base}.{n}"
        for name, path in modules().items()
        for base, names in imports(name, path)
        for n in names
        if n.startswith("_") and package_of(base) != package_of(name)
    ]
    assert reaching == []


def test_every_module_is_short():
    long = {name: n for name, path in modules().items() if (n := len(path.read_text().splitlines())) > MOST_LINES}
    assert long == {}


def test_every_package_says_what_it_holds():
    """Each package's __init__ starts with a docstring that names each of its modules."""
    for init in PACKAGE.rglob("__init__.py"):
        doc = ast.get_docstring(ast.parse(init.read_text())) or ""
        missing = [
            p.name
            for p in init.parent.glob("*.py")
            if p.name not in ("__init__.py", "__main__.py") and p.name not in doc
        ]
        if init.parent != PACKAGE:
            assert doc and not missing, f"{init.relative_to(REPO)} does not name {missing}"
