"""dvc.yaml tells the truth: each stage declares every module of ours that its script runs.

The imports are read from the source (AST, nothing imported), transitively, so a stage that
reaches `lab/filters.py` through `lab/cnn.py` must list it: otherwise an edit there would leave the
stage's outputs stale while `dvc repro` says everything is up to date.
"""

import ast
import re

import pytest
import yaml
from helpers import REPO

PACKAGE = REPO / "src" / "cnn_denoise"

# Modules a stage may run without declaring them, because they cannot change its outputs
# (and are not followed further: what they import is theirs).
NOT_OUTPUTS = {
    "cnn_denoise": "the package's __init__: lazy re-exports, runs nothing",
    "cnn_denoise.common.errors": "turns an error into one line and an exit status; writes nothing",
    "cnn_denoise.tracking": "the tracking platform: writes to the MLflow store, never to a DVC output",
    "cnn_denoise.tune.trial": "a search trial's side of the train stage: each epoch's test L1 to Optuna",
}


def docstring_only(name: str) -> bool:
    """A package's __init__ that only says what the package holds: it runs nothing."""
    path = module_file(name)
    body = ast.parse(path.read_text()).body if path.name == "__init__.py" else [None]
    return all(isinstance(n, ast.Expr) and isinstance(n.value, ast.Constant) for n in body)


def module_file(name: str):
    parts = name.split(".")[1:]
    path = PACKAGE.joinpath(*parts)
    return path / "__init__.py" if path.is_dir() else path.with_suffix(".py")


def lazy_exports() -> dict:
    """The package's __init__ maps exported names to modules in a dict literal, _EXPORTS."""
    for node in ast.walk(ast.parse((PACKAGE / "__init__.py").read_text())):
        if isinstance(node, ast.Assign) and getattr(node.targets[0], "id", "") == "_EXPORTS":
            return ast.literal_eval(node.value)
    return {}


def imported(path, module: str) -> set[str]:
    """cnn_denoise modules named by any import in the file (top level or inside functions)."""
    package = module if path.name == "__init__.py" else module.rpartition(".")[0]
    found = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            found |= {a.name for a in node.names if a.name.split(".")[0] == "cnn_denoise"}
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                base = ".".join(
                    package.split(".")[: len(package.split(".")) - node.level + 1] + ([base] if base else [])
                )
            if base.split(".")[0] != "cnn_denoise":
                continue
            found.add(base)
            for alias in node.names:
                sub = f"{base}.{alias.name}"
                if module_file(sub).exists():
                    found.add(sub)
                elif base == "cnn_denoise" and alias.name in lazy_exports():
                    found.add(f"cnn_denoise.{lazy_exports()[alias.name]}")
    return found


def reached(script) -> set[str]:
    """Every cnn_denoise module that running `script` can execute, transitively."""
    todo, seen = list(imported(script, "__main__")), set()
    while todo:
        name = todo.pop()
        if name in seen:
            continue
        seen.add(name)
        if (
            name not in NOT_OUTPUTS
            and not docstring_only(name)
            and not name.startswith(("cnn_denoise.tracking.", "cnn_denoise.tune."))
        ):
            todo += imported(module_file(name), name)
    return seen


def undeclared(stages: dict) -> dict[str, list[str]]:
    """{stage: [module files it runs but does not list in deps]} (and the script itself)."""
    out = {}
    for name, stage in stages.items():
        script = re.search(r"stages/\w+\.py", stage["cmd"])[0]
        deps = set(stage.get("deps", []))
        need = {script} | {
            module_file(m).relative_to(REPO).as_posix()
            for m in reached(REPO / script)
            if m not in NOT_OUTPUTS and not docstring_only(m)
        }
        if need - deps:
            out[name] = sorted(need - deps)
    return out


def declared_but_unused(stages: dict) -> dict[str, list[str]]:
    """{stage: [src/ files in deps that its script never runs]}: they rerun it for nothing."""
    out = {}
    for name, stage in stages.items():
        script = re.search(r"stages/\w+\.py", stage["cmd"])[0]
        runs = {module_file(m).relative_to(REPO).as_posix() for m in reached(REPO / script)}
        extra = {d for d in stage.get("deps", []) if d.startswith("src/") and d not in runs}
        if extra:
            out[name] = sorted(extra)
    return out


def stages():
    return yaml.safe_load((REPO / "dvc.yaml").read_text())["stages"]


def test_every_stage_declares_the_code_it_runs():
    assert undeclared(stages()) == {}


@pytest.mark.slow
def test_no_stage_declares_code_it_does_not_run():
    assert declared_but_unused(stages()) == {}


def test_the_check_catches_a_removed_dep():
    """Take filters.py out of evaluate's deps (evaluate runs it through lab/cnn.py and through
    the linear baseline): the check names exactly that file."""
    edited = stages()
    edited["evaluate"]["deps"].remove("src/cnn_denoise/lab/filters.py")
    assert undeclared(edited) == {"evaluate": ["src/cnn_denoise/lab/filters.py"]}


def test_imports_are_followed_through_functions_and_relative_names():
    checkpoint = PACKAGE / "models" / "checkpoint.py"
    assert "cnn_denoise.common.atomic" in imported(checkpoint, "cnn_denoise.models.checkpoint")  # inside save()
    assert "cnn_denoise.lab.filters" in reached(REPO / "stages" / "evaluate.py")  # lab/cnn.py -> filters.py
    assert "cnn_denoise.config.choices" in reached(REPO / "stages" / "fetch.py")  # params.py -> spec.py
