"""download.fetch against a real HTTP server on 127.0.0.1, file:// URLs and paths."""

import hashlib

import pytest
from helpers import free_port

from cnn_denoise.common.download import fetch
from cnn_denoise.common.errors import PipelineError

BODY = b"PK fake zip bytes " * 5000
SHA = hashlib.sha256(BODY).hexdigest()


def test_http_download_with_hash(http_server, tmp_path):
    root, url = http_server
    (root / "data.zip").write_bytes(BODY)
    dest = tmp_path / "out" / "dataset.zip"
    assert fetch(f"{url}/files/data.zip", dest, sha256=SHA, timeout=10) == SHA
    assert dest.read_bytes() == BODY
    assert [p.name for p in dest.parent.iterdir()] == ["dataset.zip"]  # no temp file left


def test_null_hash_prints_the_hash_to_pin(http_server, tmp_path, capsys):
    root, url = http_server
    (root / "data.zip").write_bytes(BODY)
    fetch(f"{url}/files/data.zip", tmp_path / "d.zip", sha256=None, timeout=10)
    assert f"{SHA} (pin it as data.sha256" in capsys.readouterr().err


def test_hash_mismatch_leaves_nothing(http_server, tmp_path):
    root, url = http_server
    (root / "data.zip").write_bytes(BODY)
    dest = tmp_path / "out" / "dataset.zip"
    with pytest.raises(PipelineError, match=f"data.sha256 mismatch .* got {SHA}"):
        fetch(f"{url}/files/data.zip", dest, sha256="0" * 64, timeout=10)
    assert list(dest.parent.iterdir()) == []


def test_404_fails_at_once(http_server, tmp_path):
    _, url = http_server
    with pytest.raises(PipelineError, match="HTTP 404") as err:
        fetch(f"{url}/status/404", tmp_path / "d.zip", timeout=10)
    assert "after" not in str(err.value)  # not retried
    assert not (tmp_path / "d.zip").exists()


def test_500_is_retried_then_fails(http_server, tmp_path, monkeypatch):
    monkeypatch.setattr("time.sleep", lambda s: None)
    _, url = http_server
    with pytest.raises(PipelineError, match="failed after 3 attempts: HTTP 500"):
        fetch(f"{url}/status/500", tmp_path / "d.zip", timeout=10, retries=3)
    assert not (tmp_path / "d.zip").exists()


def test_transient_503_then_success(http_server, tmp_path, monkeypatch, capsys):
    monkeypatch.setattr("time.sleep", lambda s: None)
    root, url = http_server
    (root / "data.zip").write_bytes(BODY)
    assert fetch(f"{url}/flaky/2/data.zip", tmp_path / "d.zip", sha256=SHA, timeout=10, retries=3) == SHA
    assert capsys.readouterr().err.count("retrying") == 2


@pytest.mark.slow
def test_stalled_server_times_out(http_server, tmp_path, monkeypatch):
    monkeypatch.setattr("time.sleep", lambda s: None)
    _, url = http_server
    with pytest.raises(PipelineError, match="timed out"):
        fetch(f"{url}/stall", tmp_path / "d.zip", timeout=0.5, retries=2)
    assert not (tmp_path / "d.zip").exists()


def test_connection_refused(tmp_path, monkeypatch):
    monkeypatch.setattr("time.sleep", lambda s: None)
    with pytest.raises(PipelineError, match="failed after 2 attempts.*(refused|Connection)"):
        fetch(f"http://127.0.0.1:{free_port()}/x.zip", tmp_path / "d.zip", timeout=5, retries=2)


def test_file_url_and_path(tmp_path):
    src = tmp_path / "course.zip"
    src.write_bytes(BODY)
    assert fetch(src.as_uri(), tmp_path / "a.zip", sha256=SHA) == SHA
    assert fetch(str(src), tmp_path / "b.zip", sha256=SHA.upper()) == SHA
    assert (tmp_path / "b.zip").read_bytes() == BODY


def test_missing_file_and_bad_scheme(tmp_path):
    with pytest.raises(PipelineError, match="no file at"):
        fetch(str(tmp_path / "nope.zip"), tmp_path / "d.zip")
    with pytest.raises(PipelineError, match="unsupported scheme 'ftp'"):
        fetch("ftp://example.org/x.zip", tmp_path / "d.zip")
    assert not (tmp_path / "d.zip").exists()


def test_relative_path_under_a_dvc_experiment_copy_means_the_main_repository(tmp_path, monkeypatch):
    """dvc exp run --temp/--queue run in .dvc/tmp/exps/<copy> with DVC_ROOT = the main repo."""
    (tmp_path / "course.zip").write_bytes(BODY)
    copy = tmp_path / ".dvc" / "tmp" / "exps" / "abc"
    copy.mkdir(parents=True)
    monkeypatch.chdir(copy)
    monkeypatch.setenv("DVC_ROOT", str(tmp_path))
    assert fetch("course.zip", copy / "d.zip", sha256=SHA) == SHA


def test_an_endless_body_stops_at_the_cap(http_server, tmp_path):
    _, url = http_server
    with pytest.raises(PipelineError, match="sends more than data.max_mb \\(1 MiB\\)"):
        fetch(f"{url}/endless", tmp_path / "out" / "d.zip", timeout=10, max_bytes=1 << 20)
    assert not (tmp_path / "out").exists() or list((tmp_path / "out").iterdir()) == []  # no temp file either


def test_a_body_shorter_than_announced_is_retried_then_refused(http_server, tmp_path, monkeypatch):
    monkeypatch.setattr("time.sleep", lambda s: None)
    root, url = http_server
    (root / "data.zip").write_bytes(BODY)
    with pytest.raises(PipelineError, match="failed after 2 attempts"):
        fetch(f"{url}/short/data.zip", tmp_path / "out" / "d.zip", timeout=10, retries=2)
    assert not (tmp_path / "out").exists() or list((tmp_path / "out").iterdir()) == []


def test_an_encoded_body_is_refused_not_saved_compressed(http_server, tmp_path):
    root, url = http_server
    (root / "data.zip").write_bytes(BODY)
    with pytest.raises(PipelineError, match="sends the file gzip-encoded"):
        fetch(f"{url}/gzip/data.zip", tmp_path / "out" / "d.zip", timeout=10)
    assert not (tmp_path / "out").exists() or list((tmp_path / "out").iterdir()) == []


def test_a_certificate_failure_is_not_retried(monkeypatch, tmp_path, capsys):
    import ssl
    import urllib.error

    calls = []

    def refuse(*args, **kwargs):
        calls.append(1)
        raise urllib.error.URLError(
            ssl.SSLCertVerificationError(1, "certificate verify failed: self-signed certificate")
        )

    monkeypatch.setattr("urllib.request.urlopen", refuse)
    with pytest.raises(PipelineError, match="certificate verify failed"):
        fetch("https://127.0.0.1:1/d.zip", tmp_path / "d.zip", retries=3)
    assert calls == [1] and "retrying" not in capsys.readouterr().err


def test_passwords_and_signed_queries_never_shown(tmp_path):
    from cnn_denoise.common.urls import redact

    url = "https://ann:s3cret@example.org/d.zip?X-Amz-Signature=abc123&X-Amz-Credential=key"
    assert redact(url) == "https://ann:***@example.org/d.zip?<query hidden>"
    with pytest.raises(PipelineError) as err:
        fetch(f"http://ann:s3cret@127.0.0.1:{free_port()}/d.zip?sig=abc123", tmp_path / "d.zip", timeout=2, retries=1)
    assert "s3cret" not in str(err.value) and "abc123" not in str(err.value)
