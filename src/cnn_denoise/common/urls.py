"""URLs and the secrets they may carry: data.url is recorded in params.yaml, dvc.lock and
MLflow, and printed in messages, so a password or a signed query must never be written in it.
It may name environment variables as $NAME, filled in only when fetch downloads ($$ is a
literal $). ${NAME} works too with `dvc repro`, but `dvc exp run -S` (recipes, sweeps) reads
params.yaml through OmegaConf, for which ${NAME} is an interpolation it fails on, so $NAME
is the form to write."""

import os
import re
import urllib.parse

from cnn_denoise.common.errors import PipelineError
from cnn_denoise.common.redaction import query_span, redact, remember, scrub, split_userinfo

__all__ = ["expand", "redact", "remember", "scrub", "secret_in", "split_userinfo"]

VARIABLE = re.compile(r"\$\{([A-Za-z_][A-Za-z0-9_]*)\}|\$([A-Za-z_][A-Za-z0-9_]*)|\$\$")


SIGNED_QUERY_KEYS = {
    "signature",
    "sig",
    "token",
    "access_token",
    "x-amz-signature",
    "x-amz-credential",
    "x-amz-security-token",
    "x-goog-signature",
    "x-goog-credential",
}  # what signed URLs (S3, GCS, Azure SAS) authenticate with


def _literal(text: str) -> str:
    """What of `text` is written out: its $NAME and ${NAME} references taken away ($$ is a $)."""
    return VARIABLE.sub(lambda m: "$" if m.group(0) == "$$" else "", text)


def secret_in(url: str) -> str | None:
    """What in a URL written literally would be a secret (a password, a signing query key), or None.
    A password or a signing value made of $NAME and ${NAME} references alone does not count: they
    are filled in from the environment at fetch time."""
    parts = split_userinfo(url)
    if parts and parts[2] and _literal(parts[2]):
        return "a password"  # written literally, wholly or in part (only $NAME references are not)
    tail = parts[3] if parts else url
    start, end = query_span(tail)
    query = tail[start + 1 : end if end > start else None] if start >= 0 else ""
    for key, value in urllib.parse.parse_qsl(query, keep_blank_values=True):
        if key.lower() in SIGNED_QUERY_KEYS and _literal(value):
            return f"a signed query ({key}=...)"
    return None


def expand(url: str) -> str:
    """data.url with each $NAME (or ${NAME}) replaced by the environment variable NAME, and $$ by
    $: credentials stay in the environment, out of params.yaml, dvc.lock and MLflow (which
    record the template)."""
    for m in VARIABLE.finditer(url):
        name = m.group(1) or m.group(2)
        if name and name not in os.environ:
            raise PipelineError(f"data.url names {m.group(0)}, which is not set; export {name}=... before dvc repro")
    return VARIABLE.sub(lambda m: "$" if m.group(0) == "$$" else os.environ[m.group(1) or m.group(2)], url)
