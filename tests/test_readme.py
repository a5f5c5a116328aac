"""The README stays a short guide that tells the truth about the Makefile."""

import re

from helpers import REPO


def test_readme_is_under_200_lines():
    assert len((REPO / "README.md").read_text().splitlines()) < 200


def test_every_make_target_the_readme_names_exists():
    targets = set(re.findall(r"^([A-Za-z][\w-]*):", (REPO / "Makefile").read_text(), re.M))
    named = set(re.findall(r"`make ([a-z][\w-]*)", (REPO / "README.md").read_text())) | set(
        re.findall(r"^make ([a-z][\w-]*)", (REPO / "README.md").read_text(), re.M)
    )
    assert named, "the README names no make target"
    assert named <= targets, f"README names make targets the Makefile lacks: {sorted(named - targets)}"
