"""data.url and its secrets (cnn_denoise.common.urls): a password or signed query written into
params.yaml is refused (params.yaml and dvc.lock would record it); ${NAME} takes it from the
environment at fetch time, through the real fetch stage against a loopback server."""

import pytest
from helpers import write_params_copy

from cnn_denoise.common.errors import PipelineError
from cnn_denoise.common.urls import expand, secret_in


@pytest.mark.parametrize(
    ("url", "found"),
    [
        ("https://ann:s3cret@example.org/d.zip", "a password"),
        (
            "https://bucket.s3.amazonaws.com/d.zip?X-Amz-Credential=AK&X-Amz-Signature=ab12",
            "a signed query (X-Amz-Credential=...)",
        ),
        ("https://acct.blob.core.windows.net/c/d.zip?sv=2024&sig=ab%2B12", "a signed query (sig=...)"),
        ("https://example.org/d.zip?token=abc", "a signed query (token=...)"),
        ("https://ann:${DATA_PASSWORD}@example.org/d.zip", None),
        ("https://ann:$DATA_PASSWORD@example.org/d.zip", None),
        ("https://example.org/d.zip?token=$DATA_TOKEN", None),
        ("https://ann:$$pw@example.org/d.zip", "a password"),  # $$ is a literal $: no variable named
        ("https://example.org/d.zip?token=${DATA_TOKEN}", None),
        ("https://ann@example.org/d.zip?dl=1", None),
        ("synthetic", None),
        ("data/course.zip", None),
    ],
)
def test_secret_in(url, found):
    assert secret_in(url) == found


def test_expand(monkeypatch):
    monkeypatch.setenv("DATA_TOKEN", "t0k")
    assert expand("https://h/d.zip?token=${DATA_TOKEN}&x=${DATA_TOKEN}") == "https://h/d.zip?token=t0k&x=t0k"
    monkeypatch.delenv("DATA_TOKEN")
    with pytest.raises(
        PipelineError,
        match=r"^data.url names \$\{DATA_TOKEN\}, which is not set; export DATA_TOKEN=\.\.\. before dvc repro$",
    ):
        expand("https://h/d.zip?token=${DATA_TOKEN}")


def test_dollar_name_the_form_dvc_exp_run_leaves_alone(monkeypatch):
    """$NAME (what survives `dvc exp run -S`: tests/test_recipes.py runs DVC on it) and $$."""
    monkeypatch.setenv("DATA_TOKEN", "t0k")
    monkeypatch.setenv("DATA_PASSWORD", "pw")
    assert (
        expand("https://ann:$DATA_PASSWORD@h/d.zip?token=$DATA_TOKEN&p=$$5") == "https://ann:pw@h/d.zip?token=t0k&p=$5"
    )
    monkeypatch.delenv("DATA_TOKEN")
    with pytest.raises(
        PipelineError,
        match=r"^data.url names \$DATA_TOKEN, which is not set; export DATA_TOKEN=\.\.\. before dvc repro$",
    ):
        expand("https://h/d.zip?token=$DATA_TOKEN")


def test_fetch_stage_takes_the_token_from_the_environment(stage, http_server, tmp_path, monkeypatch):
    root, url = http_server
    (root / "data.zip").write_bytes(b"PK zip bytes")
    write_params_copy(tmp_path, **{"data.url": f"{url}/signed/data.zip?token=${{CNN_TEST_TOKEN}}"})
    monkeypatch.delenv("CNN_TEST_TOKEN", raising=False)
    unset = stage("fetch", "data/raw/d.zip", cwd=tmp_path)
    assert (
        unset.returncode == 1
        and unset.stderr
        == "error: data.url names ${CNN_TEST_TOKEN}, which is not set; export CNN_TEST_TOKEN=... before dvc repro\n"
    )
    assert not (tmp_path / "data").exists()
    monkeypatch.setenv("CNN_TEST_TOKEN", "s3cret")
    ok = stage("fetch", "data/raw/d.zip", cwd=tmp_path)
    assert ok.returncode == 0 and (tmp_path / "data/raw/d.zip").read_bytes() == b"PK zip bytes"
    assert "s3cret" not in ok.stderr and "s3cret" not in (tmp_path / "params.yaml").read_text()


def test_a_literal_secret_in_params_is_one_line_and_not_shown(stage, tmp_path):
    write_params_copy(tmp_path, **{"data.url": "https://ann:s3cret@127.0.0.1:9/data.zip"})
    proc = stage("fetch", "data/raw/d.zip", cwd=tmp_path)
    assert proc.returncode == 1 and proc.stderr.count("\n") == 1 and "s3cret" not in proc.stderr
    assert (
        "https://ann:***@127.0.0.1:9/data.zip holds a password, which params.yaml and dvc.lock would record; "
        "write it as ${NAME}" in proc.stderr
    )
    assert not (tmp_path / "data").exists()
