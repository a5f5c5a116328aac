"""The git and DVC experiment refs a study's trials leave behind."""

import re
import subprocess

from cnn_denoise.tracking.store import main_root


def git(*args, cwd=None) -> str:
    out = subprocess.run(["git", *args], cwd=cwd or main_root(), capture_output=True, text=True)
    return out.stdout.strip() if out.returncode == 0 else ""


def earlier_experiments(study: str) -> list[str]:
    """DVC experiments named <study>-<number> in this clone (a new study's trials would clash)."""
    names = [r.rsplit("/", 1)[-1] for r in git("for-each-ref", "--format=%(refname)", "refs/exps").split()]
    return sorted({n for n in names if re.fullmatch(rf"{re.escape(study)}-\d+", n)})


def exp_ref(name: str) -> str | None:
    """The git ref of the DVC experiment `name` (refs/exps/<..>/<baseline>/<name>)."""
    refs = git("for-each-ref", "--format=%(refname)", "refs/exps").splitlines()
    found = [r for r in refs if r.rsplit("/", 1)[-1] == name]
    return found[-1] if found else None
