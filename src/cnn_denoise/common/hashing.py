"""A file's hash, the one way the project takes it (packages, checkpoints, DVC's md5 of a file).

A download hashes as it streams instead (common/download.py), so a large file is read once.
"""

import hashlib


def sha256_file(path, algorithm: str = "sha256") -> str:
    """The file's hash in hex; with "md5", DVC's hash of a file."""
    with open(path, "rb") as f:
        return hashlib.file_digest(f, algorithm).hexdigest()
