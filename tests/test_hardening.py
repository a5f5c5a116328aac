"""Hostile and broken inputs through the real stage scripts: one `error:` line, exit 1, no output.

Each case runs the stage's main() in this process (the `stage` fixture); one case per stage
also runs as its own `python stages/NAME.py` process, the contract DVC sees."""

import hashlib
import json
import os
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest
import torch
from helpers import REPO, free_port, torch_bytes, write_params_copy, zip_of


def subprocess_stage(name, *args, cwd, timeout=120):
    env = dict(os.environ, CNN_DENOISE_TRACKING="off")
    return subprocess.run(
        [sys.executable, str(REPO / "stages" / f"{name}.py"), *map(str, args)],
        cwd=cwd,
        env=env,
        capture_output=True,
        text=True,
        timeout=timeout,
    )


def assert_refused(proc, message, *outputs):
    lines = [line for line in proc.stderr.splitlines() if line.strip()]
    assert proc.returncode == 1, proc.stderr
    assert len(lines) == 1 and lines[0].startswith("error: "), proc.stderr
    assert message in lines[0], lines[0]
    for out in outputs:
        assert not Path(out).exists(), f"{out} was written"
        assert not list(Path(out).parent.glob(f".{Path(out).name}.*")), "a temp file was left behind"


def pairs(q=6, n=100):
    g = torch.Generator().manual_seed(0)
    return [(torch.randn(1, n, generator=g), torch.randn(1, n, generator=g)) for _ in range(q)]


class Exploit:
    def __init__(self, marker):
        self.marker = marker

    def __reduce__(self):
        return (os.system, (f"touch {self.marker}",))


def bad_zip(tmp_path, case):
    z = tmp_path / "bad.zip"
    if case == "truncated":
        z.write_bytes(zip_of(tmp_path / "good.zip", {"d.pt": torch_bytes(pairs())}).read_bytes()[:300])
    elif case == "not_a_zip":
        z.write_text("<html>404</html>")
    elif case == "empty":
        z.write_bytes(b"")
    elif case == "no_torch_file":
        zip_of(z, {"readme.md": b"x"})
    elif case == "two_torch_files":
        zip_of(z, {"a.pt": torch_bytes(pairs()), "b.pt": torch_bytes(pairs())})
    elif case == "zip_slip":
        zip_of(z, {"../../escape.pt": torch_bytes(pairs())})
    elif case == "absolute_path":
        zip_of(z, {"/etc/escape.pt": torch_bytes(pairs())})
    elif case == "ratio_bomb":
        zip_of(z, {"d.pt": b"\0" * (40 << 20)})
    elif case == "code_execution":
        zip_of(z, {"d.pt": torch_bytes([Exploit(tmp_path / "marker")])})
    elif case in ("mismatched", "float64", "nan", "inf"):
        data = pairs()
        x, y = data[2]
        data[2] = {
            "mismatched": (x, y[:, :50]),
            "float64": (x.double(), y.double()),
            "nan": (x, y.index_fill(1, torch.tensor([7]), float("nan"))),
            "inf": (x.index_fill(1, torch.tensor([3]), float("inf")), y),
        }[case]
        zip_of(z, {"d.pt": torch_bytes(data)})
    return z


@pytest.mark.parametrize(
    "case, message",
    [
        ("truncated", "is not a readable zip"),
        ("not_a_zip", "is not a readable zip"),
        ("empty", "is not a readable zip"),
        ("no_torch_file", "holds no torch file"),
        ("two_torch_files", "holds 2 torch files"),
        ("zip_slip", "points outside its folder (zip slip)"),
        ("absolute_path", "points outside its folder (zip slip)"),
        ("ratio_bomb", "refusing a possible zip bomb"),
        ("code_execution", "holds objects other than tensors (GLOBAL posix.system)"),
        ("mismatched", "pair 2 has x (1, 100) and y (1, 50)"),
        ("float64", "x of pair 2 is torch.float64, expected torch.float32"),
        ("nan", "y of pair 2 holds NaN or infinite values"),
        ("inf", "x of pair 2 holds NaN or infinite values"),
    ],
)
def test_unzip_refuses(tmp_path, stage, case, message):
    out = tmp_path / "data" / "pairs.pt"
    assert_refused(stage("unzip", bad_zip(tmp_path, case), out, cwd=tmp_path), message, out)
    assert not (tmp_path / "marker").exists()
    assert not (tmp_path.parent / "escape.pt").exists()


def test_zip_bomb_by_declared_size_is_refused_before_reading(tmp_path, monkeypatch):
    from cnn_denoise.common.errors import PipelineError
    from cnn_denoise.lab import dataset

    monkeypatch.setattr(dataset, "MAX_MEMBER_BYTES", 1000)  # stands for 4 GiB: same check, small file
    z = zip_of(tmp_path / "z.zip", {"d.pt": os.urandom(2000)})
    monkeypatch.setattr(zipfile.ZipFile, "read", lambda *a: pytest.fail("read before the size check"))
    with pytest.raises(PipelineError, match="inflates to 2000 bytes .*zip bomb"):
        dataset.read_torch_member(z)


def test_split_needs_more_pairs_than_test_size(tmp_path, stage):
    write_params_copy(tmp_path, **{"data.test_size": 6})
    torch.save({"x": torch.zeros(6, 1, 100), "y": torch.zeros(6, 1, 100)}, tmp_path / "pairs.pt")
    out = tmp_path / "split" / "train.pt"
    proc = stage("split", tmp_path / "pairs.pt", out, tmp_path / "split" / "test.pt", cwd=tmp_path)
    assert_refused(proc, "data.test_size is 6 but the dataset has 6 pairs; set it between 1 and 5", out)


def make_split(tmp_path, n=100):
    d = tmp_path / "split"
    d.mkdir(exist_ok=True)
    for name in ("train", "test"):
        torch.save({"x": torch.randn(8, 1, n) * 1e-3, "y": torch.randn(8, 1, n) * 1e-3}, d / f"{name}.pt")
    return d / "train.pt", d / "test.pt"


def test_signal_shorter_than_the_longest_filter(tmp_path, stage):
    write_params_copy(tmp_path)
    model = tmp_path / "models" / "model.pt"
    proc = stage("train", *make_split(tmp_path, n=30), model, tmp_path / "metrics" / "h.csv", cwd=tmp_path)
    assert_refused(proc, "recordings have 30 samples but model.taps asks for 40", model)


def test_diverging_training_writes_no_model(tmp_path, stage):
    write_params_copy(
        tmp_path, **{"train.lr": 1e37, "train.batch_size": 2, "model.last_activation": "linear", "train.epochs": 3}
    )
    model = tmp_path / "models" / "model.pt"
    train, test = make_split(tmp_path)
    torch.save({"x": torch.randn(8, 1, 100), "y": torch.zeros(8, 1, 100)}, train)
    proc = stage("train", train, test, model, tmp_path / "metrics" / "h.csv", cwd=tmp_path)
    assert_refused(proc, "training diverged: loss is", model, tmp_path / "metrics" / "h.csv")


@pytest.mark.parametrize(
    "change, message",
    [
        ({"train.lr": "fast"}, "train.lr: Input should be a valid number (got 'fast')"),
        ({"train.lr": -1.0}, "train.lr: Input should be greater than 0"),
        ({"train.epochs": 0}, "train.epochs: Input should be greater than or equal to 1"),
        ({"model.features": [2, 5, 1]}, "model: features must start and end with 1 for mono audio"),
        ({"model.taps": [40]}, "model: features needs len(taps) + 1 = 2 entries"),
        ({"train.momentum": 0.9}, "train.momentum is not a key of params.yaml (did you mean train.ema?); remove it"),
        ({"train.epoch": 3}, "train.epoch is not a key of params.yaml (did you mean train.epochs?); remove it"),
        ({"train.optimizer": "rmsprop"}, "train.optimizer: Input should be 'sgd', 'adam' or 'lbfgs'"),
        (
            {"train.init": "linear"},
            "params.yaml: train.init linear needs model.taps [K, 1], model.features [1, G, 1] with G >= 2 and "
            "model.last_activation linear, got taps [40, 40], features [1, 5, 1], last_activation tanh; fix it",
        ),
    ],
)
def test_bad_params_stop_the_first_stage(tmp_path, stage, change, message):
    write_params_copy(tmp_path, **change)
    out = tmp_path / "data" / "raw" / "dataset.zip"
    assert_refused(stage("fetch", out, cwd=tmp_path), message, out)


def test_missing_param_key(tmp_path, stage):
    write_params_copy(tmp_path)
    text = (tmp_path / "params.yaml").read_text().replace("  seed: 0\n", "", 1)
    (tmp_path / "params.yaml").write_text(text)
    out = tmp_path / "data.zip"
    assert_refused(stage("fetch", out, cwd=tmp_path), "Field required", out)


@pytest.mark.slow
@pytest.mark.parametrize(
    "kind, message",
    [
        ("404", "HTTP 404"),
        ("500", "failed after 3 attempts: HTTP 500"),
        ("refused", "failed after 3 attempts"),
        ("stall", "timed out"),
        ("sha", "data.sha256 mismatch"),
    ],
)
def test_fetch_failures_leave_no_file(tmp_path, http_server, stage, monkeypatch, kind, message):
    monkeypatch.setattr("time.sleep", lambda s: None)  # the retries' back-off
    root, url = http_server
    (root / "d.zip").write_bytes(b"zip bytes")
    urls = {
        "404": f"{url}/status/404",
        "500": f"{url}/status/500",
        "refused": f"http://127.0.0.1:{free_port()}/d.zip",
        "stall": f"{url}/stall",
        "sha": f"{url}/files/d.zip",
    }
    write_params_copy(tmp_path, **{"data.url": urls[kind], "data.timeout": 0.2, "data.sha256": "0" * 64})
    out = tmp_path / "data" / "raw" / "dataset.zip"
    proc = stage("fetch", out, cwd=tmp_path)
    lines = [line for line in proc.stderr.splitlines() if line.startswith("error: ")]
    assert proc.returncode == 1 and len(lines) == 1 and message in lines[0], proc.stderr
    assert not out.exists()
    assert not out.parent.exists() or list(out.parent.iterdir()) == []  # no temp file either


def test_fetch_downloads_and_pins(tmp_path, http_server, stage):
    root, url = http_server
    body = b"the course zip"
    (root / "d.zip").write_bytes(body)
    write_params_copy(tmp_path, **{"data.url": f"{url}/files/d.zip", "data.sha256": hashlib.sha256(body).hexdigest()})
    out = tmp_path / "data" / "raw" / "dataset.zip"
    proc = stage("fetch", out, cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr
    assert out.read_bytes() == body


def one_stage_case(name, tmp_path):
    """A refused input for stage `name`: (args, message, output that must not appear)."""
    if name == "fetch":
        write_params_copy(tmp_path, **{"train.lr": "fast"})
        out = tmp_path / "data" / "raw" / "dataset.zip"
        return [out], "train.lr: Input should be a valid number (got 'fast')", out
    if name == "unzip":
        out = tmp_path / "data" / "pairs.pt"
        return [bad_zip(tmp_path, "code_execution"), out], "holds objects other than tensors (GLOBAL posix.system)", out
    write_params_copy(tmp_path, **{"data.test_size": 6})
    if name == "split":
        torch.save({"x": torch.zeros(6, 1, 100), "y": torch.zeros(6, 1, 100)}, tmp_path / "pairs.pt")
        out = tmp_path / "split" / "train.pt"
        return [tmp_path / "pairs.pt", out, tmp_path / "split" / "test.pt"], "set it between 1 and 5", out
    train, test = make_split(tmp_path, n=30)
    if name == "train":
        out = tmp_path / "models" / "model.pt"
        return (
            [train, test, out, tmp_path / "metrics" / "h.csv"],
            "recordings have 30 samples but model.taps asks for 40",
            out,
        )
    (tmp_path / "model.pt").write_bytes(b"not a checkpoint")
    out = tmp_path / "metrics" / "eval.json"
    if name == "baselines":
        (tmp_path / "bad.pt").write_bytes(b"not a split")
        out = tmp_path / "data" / "baselines.json"
        return [train, tmp_path / "bad.pt", out], "bad.pt is not a split file (", out
    return [tmp_path / "model.pt", train, test, out, tmp_path / "reports"], "is not a model checkpoint", out


STAGES = ["fetch", "unzip", "split", "train", "baselines", "evaluate"]


@pytest.mark.parametrize("name", STAGES)
def test_each_stage_refuses_in_one_line(tmp_path, stage, name):
    """Each stage's main() under run_stage, in this process: one error line, exit status 1."""
    args, message, out = one_stage_case(name, tmp_path)
    assert_refused(stage(name, *args, cwd=tmp_path), message, out)
    assert not (tmp_path / "marker").exists()


@pytest.mark.parametrize("name", [n if n == "fetch" else pytest.param(n, marks=pytest.mark.slow) for n in STAGES])
def test_each_stage_as_its_own_process(tmp_path, name):
    """What DVC runs: `python stages/NAME.py`, one error line on stderr, exit status 1. Fetch
    imports no torch, so it stays in the fast tier; the others pay torch's import each (slow)."""
    args, message, out = one_stage_case(name, tmp_path)
    assert_refused(subprocess_stage(name, *args, cwd=tmp_path), message, out)
    assert not (tmp_path / "marker").exists()


def test_a_read_only_output_folder_is_one_line(tmp_path, stage):
    """Found when writing, not as a traceback: the stage names the path."""
    import stat

    if os.geteuid() == 0:  # root writes anywhere; stand in a file where the folder should be
        (tmp_path / "data").write_text("a file, not a folder")
    else:
        (tmp_path / "data").mkdir()
        (tmp_path / "data").chmod(stat.S_IRUSR | stat.S_IXUSR)
    write_params_copy(tmp_path, **{"data.synthetic.pairs": 2, "data.synthetic.samples": 100})
    out = tmp_path / "data" / "raw" / "dataset.zip"
    proc = stage("fetch", out, cwd=tmp_path)
    lines = [line for line in proc.stderr.splitlines() if line.strip()]
    assert proc.returncode == 1 and len(lines) == 1 and lines[0].startswith("error: cannot access"), proc.stderr
    assert "data" in lines[0]


def test_an_unexpected_error_is_one_line_unless_debugging(monkeypatch, capsys):
    from cnn_denoise.common.errors import run_stage

    def broken():
        raise ZeroDivisionError("division by zero\nmore")

    with pytest.raises(SystemExit) as exited:
        run_stage(broken)
    err = capsys.readouterr().err.strip().splitlines()
    assert exited.value.code == 1 and err == [
        "error: unexpected ZeroDivisionError: division by zero; rerun with CNN_DENOISE_DEBUG=1 "
        "for the traceback and report it"
    ]
    monkeypatch.setenv("CNN_DENOISE_DEBUG", "1")
    with pytest.raises(ZeroDivisionError):
        run_stage(broken)


@pytest.mark.slow
@pytest.mark.parametrize(("returned", "code"), [("0", 0), ("None", 0), ("1", 1), ("raise_error()", 1)])
def test_a_stage_exits_fast_with_its_code_its_threads_and_atexit_done(tmp_path, returned, code):
    """run_stage(fast_exit=True), a stage script's last line, skips the interpreter's teardown only:
    the exit status, stderr, a non-daemon thread's and an idle executor's end, atexit's handlers."""
    script = (
        "import atexit, concurrent.futures, threading, time\n"
        "from pathlib import Path\n"
        "from cnn_denoise.common.errors import PipelineError, run_stage\n"
        f"out = Path({str(tmp_path)!r})\n"
        "atexit.register(lambda: (out / 'atexit').write_text('ran'))\n"
        "def raise_error():\n"
        "    raise PipelineError('bad input; fix it')\n"
        "def main():\n"
        "    threading.Thread(target=lambda: (time.sleep(0.5), (out / 'thread').write_text('done'))).start()\n"
        "    pool = concurrent.futures.ThreadPoolExecutor(1)\n"
        "    pool.submit(lambda: None).result()\n"
        f"    return {returned}\n"
        "run_stage(main, fast_exit=True)\n"
        "(out / 'after').write_text('run_stage returned')\n"
    )
    proc = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=60)
    assert proc.returncode == code, proc.stderr
    assert proc.stderr == ("error: bad input; fix it\n" if returned == "raise_error()" else "")
    assert (tmp_path / "atexit").read_text() == "ran" and (tmp_path / "thread").read_text() == "done"
    assert not (tmp_path / "after").exists()


@pytest.mark.parametrize(
    ("name", "args", "blocked"),
    [
        ("train", ["data/split/train.pt", "data/split/test.pt", "models/model.pt", "metrics/history.csv"], "models"),
        (
            "evaluate",
            ["models/model.pt", "data/split/train.pt", "data/split/test.pt", "metrics/eval.json", "reports"],
            "metrics",
        ),
    ],
)
def test_an_unwritable_output_folder_is_found_before_the_work(tmp_path, stage, monkeypatch, name, args, blocked):
    """A file where the output folder should be (what a read-only folder is to root): one line
    naming it, before any input is read, so an hour of training is not lost."""
    import cnn_denoise.lab.dataset

    def no_work(*a, **k):
        raise AssertionError("the stage started its work")

    monkeypatch.setattr(cnn_denoise.lab.dataset, "load_split", no_work)
    write_params_copy(tmp_path)
    (tmp_path / blocked).write_text("a file, not a folder")
    proc = stage(name, *args, cwd=tmp_path)
    assert proc.returncode == 1 and proc.stderr.count("\n") == 1, proc.stderr
    assert proc.stderr.startswith(
        f"error: cannot access {tmp_path / blocked}: a file stands where a folder should be"
    ), proc.stderr


def run_with_peak(name, *args, cwd):
    """`python stages/NAME.py ARGS` with its own peak RSS (VmHWM, MiB) read at exit; ru_maxrss
    of a child would also count the pytest process it was forked from."""
    script = (
        "import atexit, runpy, sys\n"
        "atexit.register(lambda: print('VmHWM', "
        "open('/proc/self/status').read().split('VmHWM:')[1].split()[0], file=sys.stderr))\n"
        f"sys.argv = [{str(REPO / 'stages' / f'{name}.py')!r}] + sys.argv[1:]\n"
        "runpy.run_path(sys.argv[0], run_name='__main__')\n"
    )
    env = dict(os.environ, CNN_DENOISE_TRACKING="off")
    proc = subprocess.run(
        [sys.executable, "-c", script, *map(str, args)], cwd=cwd, env=env, capture_output=True, text=True, timeout=300
    )
    text, _, peak = proc.stderr.rpartition("VmHWM")
    return subprocess.CompletedProcess(proc.args, proc.returncode, proc.stdout, text), int(peak.split()[0]) / 1024


def lying_zip(tmp_path, case):
    """Zips whose headers or tensors lie about their size, and members in methods no dataset uses."""
    import struct
    import zipfile

    z = tmp_path / f"{case}.zip"
    if case == "forged_header":  # deflate: declares twice its compressed size (an innocent ratio), inflates to 1 GiB
        with zipfile.ZipFile(z, "w", zipfile.ZIP_DEFLATED) as zf, zf.open("d.pt", "w", force_zip64=True) as member:
            member.write(torch_bytes(pairs()))
            zeros = b"\0" * (16 << 20)
            for _ in range(64):
                member.write(zeros)
        raw = bytearray(z.read_bytes())
        with zipfile.ZipFile(z) as zf:
            info = zf.getinfo("d.pt")
        extra = info.header_offset + 30 + len(info.filename.encode())  # zip64 extra field of the local header
        struct.pack_into("<Q", raw, extra + 4, 2 * info.compress_size)
        central = raw.rfind(b"PK\x01\x02")  # the central directory: what readers believe
        if struct.unpack_from("<I", raw, central + 24)[0] == 0xFFFFFFFF:
            struct.pack_into("<Q", raw, central + 46 + len(info.filename.encode()) + 4, 2 * info.compress_size)
        else:
            struct.pack_into("<I", raw, central + 24, 2 * info.compress_size)
        z.write_bytes(bytes(raw))
    elif case in ("bzip2", "lzma"):
        method = {"bzip2": zipfile.ZIP_BZIP2, "lzma": zipfile.ZIP_LZMA}[case]
        with zipfile.ZipFile(z, "w", method) as zf:
            zf.writestr("d.pt", torch_bytes(pairs()) + b"\0" * (8 << 20))
    elif (
        case == "broadcast_tensor"
    ):  # a 1-sample storage viewed as 1.5e8 samples (under the total bound): 600 MB each copy
        data = pairs()
        data[1] = (data[1][0][:, :1].expand(1, 150_000_000), data[1][1])
        zip_of(z, {"d.pt": torch_bytes(data)})
    return z


@pytest.mark.slow
@pytest.mark.parametrize(
    "case, message",
    [
        ("forged_header", "'d.pt' is corrupt"),
        ("bzip2", "uses compression method 12; only stored and deflate are accepted"),
        ("lzma", "uses compression method 14; only stored and deflate are accepted"),
        ("broadcast_tensor", "a broadcast view"),
    ],
)
def test_lying_zips_through_the_unzip_stage_in_bounded_memory(tmp_path, case, message):
    z = lying_zip(tmp_path, case)
    assert z.stat().st_size < 8 << 20  # small files ...
    out = tmp_path / "data" / "pairs.pt"
    proc, peak_mib = run_with_peak("unzip", z, out, cwd=tmp_path)
    assert_refused(proc, message, out)
    print(f"{case}: {z.stat().st_size} bytes, peak RSS {peak_mib:.0f} MiB")
    assert peak_mib < 1024, f"{case}: peak RSS {peak_mib:.0f} MiB"  # ... that once took gigabytes


@pytest.mark.slow
@pytest.mark.parametrize("init", ["xavier", "linear"])
def test_all_silent_recordings_train_and_evaluate(tmp_path, stage, init):
    """Silence everywhere makes the least-squares problems singular (once a traceback): the
    zero filter is their answer, the measures that need signal are null, and a linear start
    (which scales by the filter's output) says it has nothing to start from."""
    d = tmp_path / "split"
    d.mkdir()
    for name, q in (("train", 8), ("test", 4)):
        torch.save({"x": torch.zeros(q, 1, 600), "y": torch.zeros(q, 1, 600)}, d / f"{name}.pt")
    model_spec = (
        {"model.taps": [40, 1], "model.features": [1, 4, 1], "model.last_activation": "linear"}
        if init == "linear"
        else {}
    )
    write_params_copy(
        tmp_path, **{"train.epochs": 1, "train.batch_size": 4, "train.init": init, "evaluate.examples": 1, **model_spec}
    )  # one figure of silence
    trained = stage("train", d / "train.pt", d / "test.pt", tmp_path / "m.pt", tmp_path / "h.csv", cwd=tmp_path)
    if init == "linear":
        assert_refused(
            trained,
            "train.init linear: the least-squares filter of the training set outputs silence",
            tmp_path / "m.pt",
        )
        return
    assert trained.returncode == 0, trained.stderr
    evaluated = stage(
        "evaluate",
        tmp_path / "m.pt",
        d / "train.pt",
        d / "test.pt",
        tmp_path / "e.json",
        tmp_path / "reports",
        cwd=tmp_path,
    )
    assert evaluated.returncode == 0, evaluated.stderr
    metrics = json.loads((tmp_path / "e.json").read_text())
    assert (
        metrics["linear"]["l1_sum"] == 0.0 and metrics["test"]["si_sdr_db"] is None and metrics["test"]["stoi"] is None
    )


@pytest.mark.slow
def test_evaluate_with_the_baselines_stage_reports_the_same_and_refuses_other_params(tmp_path, stage):
    """evaluate --baselines (the baselines stage's zeros, noisy input and low-pass, measured once
    per dataset) writes the same eval.json and reports/measures.json as evaluate measuring them
    itself; a file measured with another low-pass is refused in one line, no output written."""
    d = tmp_path / "split"
    d.mkdir()
    gen = torch.Generator().manual_seed(0)
    for name, q in (("train", 8), ("test", 4)):
        y = torch.randn(q, 1, 16000, generator=gen) * 1e-3
        torch.save({"x": y + torch.randn(q, 1, 16000, generator=gen) * 1e-4, "y": y}, d / f"{name}.pt")
    write_params_copy(
        tmp_path, **{"train.epochs": 1, "train.batch_size": 4, "model.taps": [8, 8], "evaluate.examples": 1}
    )
    splits = (d / "train.pt", d / "test.pt")
    trained = stage("train", *splits, tmp_path / "m.pt", tmp_path / "h.csv", cwd=tmp_path)
    assert trained.returncode == 0, trained.stderr
    measured = stage("baselines", *splits, tmp_path / "b.json", cwd=tmp_path)
    assert measured.returncode == 0, measured.stderr
    results = {}
    for how, extra in (("here", []), ("stage", ["--baselines", tmp_path / "b.json"])):
        done = stage("evaluate", tmp_path / "m.pt", *splits, tmp_path / how / "e.json", tmp_path / how / "r", *extra,
                     cwd=tmp_path)  # fmt: skip
        assert done.returncode == 0, done.stderr
        results[how] = [(tmp_path / how / f).read_bytes() for f in ("e.json", "r/measures.json")]
    assert results["stage"] == results["here"]
    assert set(json.loads(results["here"][1])["baselines"]) == {"zeros", "noisy", "linear", "lowpass"}
    write_params_copy(tmp_path, **{"evaluate.lowpass_hz": 3000.0})
    out = tmp_path / "other" / "e.json"
    refused = stage(
        "evaluate", tmp_path / "m.pt", *splits, out, tmp_path / "other" / "r", "--baselines", tmp_path / "b.json",
        cwd=tmp_path,
    )  # fmt: skip
    assert_refused(refused, "was measured at 2000.0 Hz low-pass", out)


@pytest.mark.parametrize(
    "content, message",
    [
        (b"hostile bytes", "is not a split file ("),
        (torch_bytes([Exploit("marker")]), "is not a split file ("),
        (torch_bytes({"x": torch.zeros(4, 1, 100)}), "is not a split file (expected {'x': X, 'y': Y})"),
        (
            torch_bytes({"x": torch.zeros(4, 1, 100), "y": torch.zeros(4, 1, 100, dtype=torch.float64)}),
            "y is torch.float64, expected torch.float32",
        ),
    ],
)
def test_a_corrupt_or_hostile_split_file_is_one_line(tmp_path, stage, content, message):
    write_params_copy(tmp_path)
    bad = tmp_path / "train.pt"
    bad.write_bytes(content)
    out = tmp_path / "models" / "model.pt"
    assert_refused(stage("train", bad, bad, out, tmp_path / "h.csv", cwd=tmp_path), message, out)
    assert not (tmp_path / "marker").exists()
