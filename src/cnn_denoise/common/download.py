"""Fetch the dataset zip from a URL or a path, with a timeout, a progress bar and a SHA-256 check.

http(s) downloads are retried a bounded number of times on transient failures (connection
refused or reset, time-outs, HTTP 5xx/429); a 4xx or a hash mismatch fails at once. The
file is written to a temp name and renamed only once its hash is right.
"""

import hashlib
import http.client
import os
import socket
import ssl
import sys
import time
import urllib.error
import urllib.parse
import urllib.request
from pathlib import Path

from tqdm import tqdm

from cnn_denoise.common.atomic import atomic_path
from cnn_denoise.common.errors import PipelineError
from cnn_denoise.common.urls import redact

CHUNK = 1 << 20  # bytes read at a time


def _is_http(url: str) -> bool:
    return urllib.parse.urlsplit(url).scheme in ("http", "https")


def _local_path(url: str) -> Path:
    parts = urllib.parse.urlsplit(url)
    if parts.scheme == "file":
        return Path(urllib.request.url2pathname(parts.path))
    if parts.scheme and len(parts.scheme) > 1:  # one letter is a Windows drive
        raise PipelineError(
            f"data.url: unsupported scheme {parts.scheme!r} in {url!r}; use https://, http://, file:// or a path"
        )
    path = Path(url).expanduser()
    if not path.is_absolute() and os.environ.get("DVC_ROOT"):  # dvc exp run --temp/--queue: a copy under .dvc/tmp
        path = Path(os.environ["DVC_ROOT"]) / path  # a relative path means the main repository's
    return path


def watched(url: str) -> bool:
    """Whether DVC sees this source change: a file under sources/ (a dependency of fetch)."""
    if _is_http(url):
        return False
    sources = (Path(os.environ.get("DVC_ROOT") or ".") / "sources").resolve()
    return _local_path(url).resolve().is_relative_to(sources)


class Truncated(OSError):
    """The body ended before its Content-Length: a dropped connection, worth another try."""


def _copy_stream(src, dst, total, label, digest, max_bytes: int, url: str) -> None:
    received = 0
    with tqdm(total=total, unit="B", unit_scale=True, desc=label, file=sys.stderr, disable=None) as bar:
        while chunk := src.read(CHUNK):
            received += len(chunk)
            if received > max_bytes:
                raise PipelineError(
                    f"{redact(url)} sends more than data.max_mb ({max_bytes >> 20} MiB); "
                    "check data.url or raise data.max_mb"
                )
            dst.write(chunk)
            digest.update(chunk)
            bar.update(len(chunk))
    if total is not None and received != total:
        raise Truncated(f"received {received} of the {total} bytes announced")


def _transient(exc: Exception) -> bool:
    if isinstance(exc, urllib.error.HTTPError):
        return exc.code >= 500 or exc.code == 429
    if isinstance(getattr(exc, "reason", exc), ssl.SSLError):  # a bad certificate stays bad: no retry
        return False
    return isinstance(
        exc,
        (urllib.error.URLError, TimeoutError, socket.timeout, ConnectionError, Truncated, http.client.HTTPException),
    )


def _describe(exc: Exception) -> str:
    if isinstance(exc, urllib.error.HTTPError):
        return f"HTTP {exc.code} {exc.reason}"
    if isinstance(exc, urllib.error.URLError):
        exc = exc.reason if isinstance(exc.reason, Exception) else exc
    if isinstance(exc, (TimeoutError, socket.timeout)):
        return "timed out (no data within data.timeout seconds)"
    return str(exc) or type(exc).__name__


def fetch(
    url: str, dest, sha256: str | None = None, timeout: float = 60.0, retries: int = 3, max_bytes: int = 4 << 30
) -> str:
    """Copy `url` to `dest`; return its SHA-256. Raises PipelineError; leaves no file on failure."""
    dest = Path(dest)
    label = Path(urllib.parse.urlsplit(url).path).name or "download"
    for attempt in range(1, retries + 1):
        digest = hashlib.sha256()
        try:
            with atomic_path(dest) as tmp, open(tmp, "wb") as out:
                if _is_http(url):
                    request = urllib.request.Request(
                        url, headers={"User-Agent": "cnn-denoise", "Accept-Encoding": "identity"}
                    )
                    with urllib.request.urlopen(request, timeout=timeout) as response:
                        encoding = response.headers.get("Content-Encoding", "identity").lower()
                        if encoding != "identity":
                            raise PipelineError(
                                f"{redact(url)} sends the file {encoding}-encoded although asked for it as is; "
                                "download it by hand and point data.url at the file"
                            )
                        length = response.headers.get("Content-Length")
                        _copy_stream(
                            response,
                            out,
                            int(length) if length and length.isdigit() else None,
                            label,
                            digest,
                            max_bytes,
                            url,
                        )
                else:
                    path = _local_path(url)
                    if not path.is_file():
                        raise PipelineError(f"data.url: no file at {path}; fix the path or URL in params.yaml")
                    with open(path, "rb") as src:
                        _copy_stream(src, out, path.stat().st_size, label, digest, max_bytes, url)
                out.flush()
                found = digest.hexdigest()
                if sha256 is not None and found != sha256.lower():
                    raise PipelineError(
                        f"data.sha256 mismatch for {redact(url)}: expected {sha256.lower()}, got {found}; "
                        "check the URL or update data.sha256 in params.yaml"
                    )
            break
        except PipelineError:
            raise
        except (urllib.error.URLError, OSError, http.client.HTTPException) as exc:
            if not _is_http(url) or not _transient(exc) or attempt == retries:
                tries = f" after {attempt} attempts" if attempt > 1 else ""
                raise PipelineError(
                    f"download of {redact(url)} failed{tries}: {_describe(exc)}; check data.url and the network"
                ) from exc
            print(f"download of {redact(url)}: {_describe(exc)}; retrying ({attempt}/{retries - 1})", file=sys.stderr)
            time.sleep(min(2.0 ** (attempt - 1), 8.0))
    if sha256 is None:
        print(f"SHA-256 of {redact(url)}: {found} (pin it as data.sha256 in params.yaml)", file=sys.stderr)
    return found
