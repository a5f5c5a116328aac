"""The Makefile's apt check: as root, `make repro` (and `make system`) update apt's package lists
only when there are none, whether apt keeps them plain or compressed (_Packages.lz4 here)."""

import os
import subprocess

import pytest
from helpers import REPO


def apt_updates(tmp_path, lists: list[str], uid: int = 0) -> list[str]:
    """The apt-get calls of `make apt-lists` with these files in the lists folder, as user `uid`
    (stand-ins for apt-get and id on the PATH record and answer)."""
    bin_, folder, log = tmp_path / "bin", tmp_path / "lists", tmp_path / "apt.log"
    bin_.mkdir()
    folder.mkdir()
    for name in lists:
        (folder / name).write_bytes(b"")
    (bin_ / "apt-get").write_text(f'#!/bin/sh\necho "$*" >> {log}\n')
    (bin_ / "id").write_text(f"#!/bin/sh\necho {uid}\n")
    for tool in bin_.iterdir():
        tool.chmod(0o755)
    env = dict(os.environ, PATH=f"{bin_}:{os.environ['PATH']}")
    subprocess.run(["make", "-s", "-C", str(REPO), "apt-lists", f"APT_LISTS_DIR={folder}"], env=env, check=True)
    return log.read_text().splitlines() if log.exists() else []


@pytest.mark.parametrize(
    "lists",
    [
        ["deb.debian.org_debian_dists_bookworm_main_binary-amd64_Packages.lz4"],
        ["deb.debian.org_debian_dists_bookworm_main_binary-amd64_Packages.xz"],
        ["deb.debian.org_debian_dists_bookworm_main_binary-amd64_Packages"],
    ],
)
def test_lists_apt_keeps_plain_or_compressed_mean_no_update(tmp_path, lists):
    assert apt_updates(tmp_path, ["lock", "deb.debian.org_debian_dists_bookworm_InRelease", *lists]) == []


def test_no_lists_as_root_updates_once(tmp_path):
    assert apt_updates(tmp_path, ["lock"]) == ["update -qq"]


def test_no_lists_as_another_user_leaves_apt_alone(tmp_path):
    assert apt_updates(tmp_path, [], uid=1000) == []
