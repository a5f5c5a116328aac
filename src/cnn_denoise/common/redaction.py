"""Passwords kept out of what is printed or logged: URLs redacted (their userinfo parsed as
SQLAlchemy and urllib3 do), the passwords of the URLs this process was given scrubbed from any
text, a library's exception included. Imports nothing of the project's, so that errors.py can
use it on every line it prints."""

import os
import re
import urllib.parse

SCHEME = re.compile(r"^([A-Za-z][A-Za-z0-9+.-]*):(//)?")
# what follows a userinfo's '@' up to the path: a host, a port, whatever brackets (a malformed
# IPv6 address still ends the userinfo: its password is hidden all the same)
HOST = re.compile(r"[^/?#@\s]*")


def split_userinfo(url: str) -> tuple[str, str, str | None, str] | None:
    """(before the user, user, password or None, from the '@' on) of a URL or a URL without a
    scheme (`user:pw@host/db`), else None. The userinfo ends at the last '@' that a host follows,
    wherever '/', '?' or '#' stand before it: SQLAlchemy's make_url takes `u:pa/ss@host/db` as
    password `pa/ss`, so a message must hide all of it; an '@' in a path or query has a '/', '?'
    or '#' in what would be its user, and is no userinfo."""
    m = SCHEME.match(url)
    start = m.end() if m and m.group(2) else 0  # `user:pw@host`: what looks like a scheme is the user
    rest = url[start:]
    for at in reversed([i for i, c in enumerate(rest) if c == "@"]):
        info = rest[:at]
        user, colon, password = info.partition(":")
        if any(c in user for c in "/?#") or (not colon and any(c in info for c in "/?#")):
            continue  # an '@' in a path or query: no userinfo before it
        return url[:start], user, password if colon else None, rest[at:]
    return None


def query_span(tail: str) -> tuple[int, int]:
    """Where the query of `tail` (a URL from its host on) starts ('?') and the query and
    fragment end ('#' or the end); -1 when it has none."""
    host_end = HOST.match(tail, 1 if tail.startswith("@") else 0).end()
    query = tail.find("?", host_end)
    fragment = tail.find("#", host_end)
    if fragment >= 0 and (query < 0 or fragment < query):
        query = -1
    return query, fragment


def redact(url: str) -> str:
    """The URL without its password, query and fragment (signed URLs carry their credentials
    there), the rest as written; a URL without a scheme too."""
    parts = split_userinfo(url)
    if parts:
        head, user, password, tail = parts
        head = f"{head}{user}{':***' if password is not None else ''}"
    else:
        m = SCHEME.match(url)
        cut = m.end() if m and m.group(2) else 0
        head, tail = url[:cut], url[cut:]
    query, fragment = query_span(tail)
    if query >= 0:
        tail = tail[:query] + ("?<query hidden>" if query < len(tail) - 1 else "")
    elif fragment >= 0:
        tail = tail[:fragment]
    return head + tail


def _env_secrets() -> list[str]:
    """The passwords of the URLs this process was given in its environment (the tracking URI,
    the Optuna storage), and MLflow's own credentials: never printed, whatever quotes them."""
    found = [os.environ.get(k, "") for k in ("MLFLOW_TRACKING_PASSWORD", "MLFLOW_TRACKING_TOKEN")]
    for key in ("MLFLOW_TRACKING_URI", "OPTUNA_STORAGE", "MLFLOW_BACKEND_STORE_URI"):
        parts = split_userinfo(os.environ.get(key, ""))
        if parts and parts[2]:
            found.append(parts[2])
    return found


_KNOWN: set[str] = set()


def remember(url: str) -> None:
    """Keep the password of `url` (one given on the command line, say) out of every message."""
    parts = split_userinfo(url)
    if parts and parts[2]:
        _KNOWN.add(parts[2])


URLISH = re.compile(r"[A-Za-z][A-Za-z0-9+.-]*://\S+|[^\s'\"(<\[{=,]+:[^\s]*@\S+")


def scrub(text: str) -> str:
    """`text` (a library's exception, say) with every URL in it redacted and every known secret
    (and its %-encoded form) replaced by ***: what may be printed or logged. A URL in free text
    ends at whitespace, so a password with a space is hidden as a known secret (the tracking
    URI's, the storage URL's), not by its place in a URL."""
    for secret in sorted({*_KNOWN, *_env_secrets()}, key=len, reverse=True):
        if len(secret) >= 3:
            for form in {secret, urllib.parse.quote(secret, safe=""), urllib.parse.unquote(secret)}:
                text = text.replace(form, "***")
    return URLISH.sub(lambda m: redact(m.group(0)), text)  # after: a URL cut short would hide a known secret
