"""Fetch the dataset zip from a URL or a path, with a timeout, a progress bar and a SHA-256 check.

http(s) downloads are retried a bounded number of times on transient failures (connection
refused or reset, time-outs, HTTP 5xx/429); a 4xx or a hash mismatch fails at once. The
file is written to a temp name and renamed only once its hash is right.
"""

import hashlib
import os
import socket
import sys
import time
import urllib.error
import urllib.parse
import urllib.request
from pathlib import Path

from tqdm import tqdm

from .atomic import atomic_path
from .errors import PipelineError

CHUNK = 1 << 20  # bytes read at a time


def _is_http(url: str) -> bool:
    return urllib.parse.urlsplit(url).scheme in ("http", "https")


def _local_path(url: str) -> Path:
    parts = urllib.parse.urlsplit(url)
    if parts.scheme == "file":
        return Path(urllib.request.url2pathname(parts.path))
    if parts.scheme and len(parts.scheme) > 1:  # one letter is a Windows drive
        raise PipelineError(f"data.url: unsupported scheme {parts.scheme!r} in {url!r}; use https://, http://, file:// or a path")
    path = Path(url).expanduser()
    if not path.is_absolute() and os.environ.get("DVC_ROOT"):  # dvc exp run --temp/--queue: a copy under .dvc/tmp
        path = Path(os.environ["DVC_ROOT"]) / path  # a relative path means the main repository's
    return path


def _copy_stream(src, dst, total, label, digest) -> None:
    with tqdm(total=total, unit="B", unit_scale=True, desc=label, file=sys.stderr, disable=None) as bar:
        while chunk := src.read(CHUNK):
            dst.write(chunk)
            digest.update(chunk)
            bar.update(len(chunk))


def _transient(exc: Exception) -> bool:
    if isinstance(exc, urllib.error.HTTPError):
        return exc.code >= 500 or exc.code == 429
    return isinstance(exc, (urllib.error.URLError, TimeoutError, socket.timeout, ConnectionError))


def _describe(exc: Exception) -> str:
    if isinstance(exc, urllib.error.HTTPError):
        return f"HTTP {exc.code} {exc.reason}"
    if isinstance(exc, urllib.error.URLError):
        exc = exc.reason if isinstance(exc.reason, Exception) else exc
    if isinstance(exc, (TimeoutError, socket.timeout)):
        return "timed out (no data within data.timeout seconds)"
    return str(exc) or type(exc).__name__


def fetch(url: str, dest, sha256: str | None = None, timeout: float = 60.0, retries: int = 3) -> str:
    """Copy `url` to `dest`; return its SHA-256. Raises PipelineError; leaves no file on failure."""
    dest = Path(dest)
    label = Path(urllib.parse.urlsplit(url).path).name or "download"
    for attempt in range(1, retries + 1):
        digest = hashlib.sha256()
        try:
            with atomic_path(dest) as tmp, open(tmp, "wb") as out:
                if _is_http(url):
                    request = urllib.request.Request(url, headers={"User-Agent": "cnn-denoise"})
                    with urllib.request.urlopen(request, timeout=timeout) as response:
                        length = response.headers.get("Content-Length")
                        _copy_stream(response, out, int(length) if length else None, label, digest)
                else:
                    path = _local_path(url)
                    if not path.is_file():
                        raise PipelineError(f"data.url: no file at {path}; fix the path or URL in params.yaml")
                    with open(path, "rb") as src:
                        _copy_stream(src, out, path.stat().st_size, label, digest)
                out.flush()
                found = digest.hexdigest()
                if sha256 is not None and found != sha256.lower():
                    raise PipelineError(
                        f"data.sha256 mismatch for {url}: expected {sha256.lower()}, got {found}; "
                        "check the URL or update data.sha256 in params.yaml"
                    )
            break
        except PipelineError:
            raise
        except (urllib.error.URLError, OSError) as exc:
            if not _is_http(url) or not _transient(exc) or attempt == retries:
                tries = f" after {attempt} attempts" if attempt > 1 else ""
                raise PipelineError(f"download of {url} failed{tries}: {_describe(exc)}; check data.url and the network") from exc
            print(f"download of {url}: {_describe(exc)}; retrying ({attempt}/{retries - 1})", file=sys.stderr)
            time.sleep(min(2.0 ** (attempt - 1), 8.0))
    if sha256 is None:
        print(f"SHA-256 of {url}: {found} (pin it as data.sha256 in params.yaml)", file=sys.stderr)
    return found

