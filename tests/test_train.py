"""The training loop: it learns, it is deterministic, it refuses to write a diverged model."""

import os

import numpy as np
import pytest
import torch
from helpers import model_settings, si_sdr_numpy, train_settings
from scipy import signal

from cnn_denoise.common.errors import PipelineError
from cnn_denoise.lab.filters import shift
from cnn_denoise.models import model as cnn
from cnn_denoise.scoring.quality import snr_db
from cnn_denoise.training import losses
from cnn_denoise.training.fit import fit, pick_device
from cnn_denoise.training.losses import loss_of


def toy(q=24, n=200, seed=0):
    """y = 0.5 * (x delayed by 2): a CNN with a linear last layer can learn it exactly."""
    x = torch.randn(q, 1, n, generator=torch.Generator().manual_seed(seed)) * 0.5
    return {"x": x, "y": 0.5 * shift(x, 2)}


@pytest.mark.slow
def test_sgd_reduces_the_loss_and_records_every_epoch():
    model = cnn.build(model_settings([5], [1, 1], "linear"), seed=0)
    history = fit(model, toy(), toy(seed=1), train_settings(lr=0.5, batch_size=8, epochs=30, seed=0), progress=False)
    assert [row["epoch"] for row in history] == list(range(31))
    assert history[-1]["train_l1"] < 0.1 * history[0]["train_l1"]
    assert history[-1]["test_l1"] < 0.1 * history[0]["test_l1"]
    h = model.layers[0].H.detach().flatten()
    assert h.abs().argmax().item() == 2 and h[2].item() > 0.3  # it found the delay and the gain's sign


@pytest.mark.slow
def test_same_seed_same_weights():
    runs = []
    for _ in range(2):
        model = cnn.build(model_settings([4, 3], [1, 3, 1]), seed=5)
        history = fit(model, toy(), toy(seed=1), train_settings(lr=0.3, batch_size=5, epochs=3, seed=5), progress=False)
        runs.append((model.state_dict(), history))
    assert runs[0][1] == runs[1][1]
    assert all(torch.equal(runs[0][0][k], runs[1][0][k]) for k in runs[0][0])


def test_divergence_stops_at_first_non_finite_loss():
    model = cnn.build(model_settings([5], [1, 1], "linear"), seed=0)
    data = {"x": toy()["x"] * 1e30, "y": toy()["y"]}
    with pytest.raises(
        PipelineError, match="training diverged: loss is (nan|inf) at epoch 1, batch [0-9]+; lower train.lr"
    ):
        fit(model, data, data, train_settings(lr=1e30, batch_size=8, epochs=2, seed=0), progress=False)


def test_signal_shorter_than_filter():
    data = toy(n=10)
    with pytest.raises(PipelineError, match="recordings have 10 samples but model.taps asks for 40"):
        fit(
            cnn.build(model_settings([40], [1, 1]), seed=0),
            data,
            data,
            train_settings(lr=0.1, batch_size=4, epochs=1, seed=0),
            progress=False,
        )


def test_device_choice():
    assert pick_device("cpu").type == "cpu"
    assert pick_device("auto").type == ("cuda" if torch.cuda.is_available() else "cpu")
    if not torch.cuda.is_available():
        with pytest.raises(PipelineError, match="no CUDA device"):
            pick_device("cuda")


@pytest.mark.slow
def test_adam_and_input_scale():
    """The recipe knobs: Adam, and Phi(x) = CNN(s x) / s, which the checkpoint keeps."""
    model = cnn.build(model_settings([5], [1, 1], "linear", input_scale=1000.0), seed=0)
    small = {k: v * 1e-3 for k, v in toy().items()}
    history = fit(
        model, small, small, train_settings(lr=3e-2, batch_size=8, epochs=60, seed=0, optimizer="adam"), progress=False
    )
    assert history[-1]["train_l1"] < 0.02 * history[0]["train_l1"]
    ref = cnn.build(model_settings([5], [1, 1], "linear", input_scale=1.0))
    ref.load_state_dict(model.state_dict())
    x = small["x"][:2]
    torch.testing.assert_close(model(x), ref(x * 1000) / 1000)


def test_snr_loss_is_minus_the_snr_of_the_whole_batch():
    data = toy()
    pred = data["y"] + 0.1 * torch.randn_like(data["y"])
    flat_pred, flat_y = pred.reshape(1, -1), data["y"].reshape(1, -1)  # one recording: the batch
    assert loss_of("snr", pred, data["y"]).item() == pytest.approx(-snr_db(flat_pred, flat_y), abs=1e-4)
    assert torch.isfinite(loss_of("snr", pred, torch.zeros_like(pred)))  # an all-silent batch: large, not inf


@pytest.mark.slow
def test_lbfgs_on_the_snr_loss_reaches_what_sgd_does_not():
    """Full-batch L-BFGS is scale-blind with the snr loss: at the data's 1e-3 amplitudes it
    finds the exact filter in a few steps, where SGD with the lab's lr barely moves."""
    small = {k: v * 1e-3 for k, v in toy().items()}
    runs = {}
    for optimizer, loss, lr in (("lbfgs", "snr", 1.0), ("sgd", "l1", 0.5)):
        model = cnn.build(model_settings([5], [1, 1], "linear"), seed=0)
        runs[optimizer] = fit(
            model,
            small,
            small,
            train_settings(lr=lr, batch_size=24, epochs=5, seed=0, optimizer=optimizer, loss=loss),
            progress=False,
        )
    assert runs["lbfgs"][-1]["train_l1"] < 1e-4 * runs["lbfgs"][0]["train_l1"]
    assert runs["sgd"][-1]["train_l1"] > 0.5 * runs["sgd"][0]["train_l1"]


def spectral_db_scipy(pred, y, sizes, compress=0.3, complex_share=0.3) -> np.ndarray:
    """An oracle for the spectral term (SciPy's STFT, not torch's): per recording, the mean over
    `sizes` of 10 log10 of the compressed spectra's error over the clean one's energy."""
    out = []
    for p, t in zip(pred, y, strict=True):
        p, t = p / np.sqrt(np.mean(t**2)), t / np.sqrt(np.mean(t**2))
        terms = []
        for n in sizes:
            # boundary="even": the signal mirrored at each end, as torch.stft's reflect padding
            P, T = (signal.stft(s, nperseg=n, noverlap=n - n // 4, boundary="even", padded=False)[2] for s in (p, t))
            mp, mt = np.abs(P) ** compress, np.abs(T) ** compress
            cp, ct = mp * np.exp(1j * np.angle(P)), mt * np.exp(1j * np.angle(T))
            error = complex_share * np.abs(cp - ct) ** 2 + (1 - complex_share) * (mp - mt) ** 2
            terms.append(10 * np.log10(error.sum() / (mt**2).sum()))
        out.append(np.mean(terms))
    return np.array(out)


def test_the_spectral_loss_is_minus_si_sdr_plus_the_compressed_spectrum_error_as_scipy_computes_it():
    """si_sdr_spectral: minus the mean SI-SDR plus the mean over recordings of the compressed
    spectra's error in dB; blind to the recording's level but not to the output's gain, and
    finite with a gradient on a silent output."""
    g = torch.Generator().manual_seed(3)
    y = torch.randn(4, 1, 4096, generator=g, dtype=torch.float64) * torch.linspace(0.01, 2, 4096, dtype=torch.float64)
    pred = 0.8 * y + 0.3 * torch.randn(y.shape, generator=g, dtype=torch.float64) * y.std()
    term = losses.spectral_db(pred, y)
    oracle = spectral_db_scipy(pred[:, 0].numpy(), y[:, 0].numpy(), losses.RESOLUTIONS)
    np.testing.assert_allclose(term.numpy(), oracle, atol=1e-6)
    expected = -si_sdr_numpy(pred[:, 0].numpy(), y[:, 0].numpy()) + oracle.mean()
    assert loss_of("si_sdr_spectral", pred, y).item() == pytest.approx(expected, abs=1e-6)
    torch.testing.assert_close(losses.spectral_db(7 * pred, 7 * y), term)  # the recording's level: no matter
    assert (losses.spectral_db(2 * pred, y) > term + 1).all()  # the output's gain: it matters
    assert (losses.spectral_db(y, y) < -100).all()
    silent = torch.zeros_like(y, requires_grad=True)
    value = loss_of("si_sdr_spectral", silent, y)
    value.backward()
    assert torch.isfinite(value) and torch.isfinite(silent.grad).all()


def test_the_spectral_loss_refuses_recordings_shorter_than_its_longest_stft():
    model = cnn.build(model_settings([5], [1, 1], "linear"), seed=0)
    with pytest.raises(PipelineError, match="needs at least 1024 .*use train.loss si_sdr or longer recordings"):
        fit(model, toy(), toy(seed=1), train_settings(loss="si_sdr_spectral", epochs=1), progress=False)


@pytest.mark.parametrize("loss", ["l1", "snr", "si_sdr_spectral"])
def test_a_large_batch_in_chunks_has_the_loss_and_gradient_of_one_pass(loss, monkeypatch):
    """A full batch goes through the network CHUNK recordings at a time (memory a CPU allocator
    reuses); the sums are added before the loss: the same loss and gradient as one pass."""
    from cnn_denoise.training import fit

    monkeypatch.setattr(fit, "CHUNK", 5)
    data = toy(q=23, n=1100 if loss == "si_sdr_spectral" else 200)  # the spectral term's longest STFT: 1024
    idx = torch.randperm(23, generator=torch.Generator().manual_seed(1))
    grads = []
    for chunked in (False, True):
        model = cnn.build(model_settings([7, 3], [1, 3, 1], "linear"), seed=0)
        value = (
            fit._chunked_loss(model, data["x"], data["y"], idx, loss)
            if chunked
            else loss_of(loss, model(data["x"][idx]), data["y"][idx])
        )
        value.backward()
        grads.append((value.item(), [p.grad.clone() for p in model.parameters()]))
    (v1, g1), (v2, g2) = grads
    assert v2 == pytest.approx(v1, rel=1e-5)
    for a, b in zip(g1, g2, strict=True):
        torch.testing.assert_close(b, a, rtol=1e-4, atol=1e-6 * a.abs().max().item())


@pytest.mark.slow
def test_plain_sgd_is_torch_sgd_bit_for_bit():
    from cnn_denoise.training.fit import PlainSGD

    data = toy()
    models = [cnn.build(model_settings([4, 3], [1, 3, 1]), seed=2) for _ in range(2)]
    opts = [PlainSGD(models[0].parameters(), lr=0.3), torch.optim.SGD(models[1].parameters(), lr=0.3)]
    for _ in range(5):
        for model, opt in zip(models, opts, strict=True):

            def closure(model=model, opt=opt):
                opt.zero_grad(set_to_none=True)
                loss = (model(data["x"]) - data["y"]).abs().mean()
                loss.backward()
                return loss

            opt.step(closure)
    a, b = (m.state_dict() for m in models)
    assert all(torch.equal(a[k], b[k]) for k in a)
    assert not torch.equal(
        a["layers.0.H"], cnn.build(model_settings([4, 3], [1, 3, 1]), seed=2).state_dict()["layers.0.H"]
    )  # they moved


@pytest.mark.slow
def test_a_cosine_schedule_steps_as_torchs_cosine_annealing():
    """train.schedule cosine: fit() with full batches (one SGD step an epoch) ends at the weights
    of torch.optim.SGD stepped by torch's own CosineAnnealingLR (T_max: the steps) on the same
    loss; the constant schedule ends elsewhere, and lr_at follows torch's curve step by step."""
    from torch.optim.lr_scheduler import CosineAnnealingLR

    from cnn_denoise.training.fit import lr_at

    data, epochs = toy(), 6
    fitted = {}
    for schedule in ("cosine", "constant"):
        fitted[schedule] = cnn.build(model_settings([4, 3], [1, 3, 1]), seed=2)
        t = train_settings(lr=0.4, batch_size="full", epochs=epochs, seed=0, schedule=schedule)
        fit(fitted[schedule], data, toy(seed=1), t, progress=False)
    oracle = cnn.build(model_settings([4, 3], [1, 3, 1]), seed=2)
    opt = torch.optim.SGD(oracle.parameters(), lr=0.4)
    sched = CosineAnnealingLR(opt, T_max=epochs)
    for step in range(epochs):
        assert lr_at(t.model_copy(update={"schedule": "cosine"}), step, epochs) == pytest.approx(sched.get_last_lr()[0])
        opt.zero_grad()
        loss_of("l1", oracle(data["x"]), data["y"]).backward()
        opt.step()
        sched.step()
    want = oracle.state_dict()
    for k, v in fitted["cosine"].state_dict().items():
        torch.testing.assert_close(v, want[k], rtol=1e-5, atol=1e-7)
    assert not torch.allclose(fitted["constant"].state_dict()["layers.0.H"], want["layers.0.H"], rtol=1e-3)


@pytest.mark.slow
@pytest.mark.parametrize("optimizer", ["sgd", "lbfgs"])
def test_a_history_from_the_batches_is_the_batches_loss_and_trains_the_same(optimizer):
    """train.history batches: no pass of the training set of its own. With one full batch an
    epoch, epoch e's train L1 is the loss of the weights it started from, which `set` measured
    after epoch e - 1 (L-BFGS: its first evaluation of the step); the weights and the test L1
    are what `set` gives, bit for bit."""
    runs = {}
    for history in ("set", "batches"):
        model = cnn.build(model_settings([4, 3], [1, 3, 1]), seed=2)
        lr = 1.0 if optimizer == "lbfgs" else 0.4
        t = train_settings(optimizer=optimizer, lr=lr, batch_size="full", epochs=4, seed=0, history=history)
        runs[history] = (fit(model, toy(), toy(seed=1), t, progress=False), model.state_dict())
    (by_set, weights), (by_batches, same) = runs["set"], runs["batches"]
    assert all(torch.equal(weights[k], same[k]) for k in weights)
    assert [r["test_l1"] for r in by_set] == [r["test_l1"] for r in by_batches]
    assert by_batches[0] == by_set[0]
    for e in range(1, 5):
        assert by_batches[e]["train_l1"] == pytest.approx(by_set[e - 1]["train_l1"], rel=1e-6)
        assert by_batches[e]["train_l1"] != pytest.approx(by_set[e]["train_l1"], rel=1e-3)  # it moved


def test_a_history_from_minibatches_is_their_mean_absolute_error():
    """Minibatches of 8 out of 24 recordings: each epoch's train L1 is the mean |output - target|
    of the outputs training computed that epoch (seen by a forward hook; the toy's target is
    0.5 x delayed by 2)."""
    model = cnn.build(model_settings([5], [1, 1], "linear"), seed=0)
    seen = []

    def hook(module, inputs, output):
        if module.training:
            seen.append((output.detach() - 0.5 * shift(inputs[0], 2)).abs().double())

    model.register_forward_hook(hook)
    history = fit(
        model, toy(), toy(seed=1), train_settings(lr=0.5, batch_size=8, epochs=3, history="batches"), progress=False
    )
    assert len(seen) == 9  # 3 batches x 3 epochs
    for e in range(1, 4):
        errors = torch.cat([err.flatten() for err in seen[3 * (e - 1) : 3 * e]])
        assert history[e]["train_l1"] == pytest.approx(errors.mean().item(), rel=1e-9)


@pytest.mark.slow
def test_freed_memory_is_kept_for_the_next_step():
    """keep_freed_memory: a step's 64 MB tensor (glibc maps anything over 32 MB afresh each
    time), allocated and freed 60 times, faults its pages in 60 times by default, and with
    freed memory kept only until the heap has grown to hold it (a few times; minor page faults
    counted by the kernel, in a fresh process each way)."""
    import ctypes
    import subprocess
    import sys

    if getattr(ctypes.CDLL(None), "mallopt", None) is None:
        pytest.skip("no mallopt here (not glibc): keep_freed_memory does nothing")
    script = (
        "import resource, sys, torch\n"
        "from cnn_denoise.training.fit import keep_freed_memory\n"
        "if sys.argv[1] == 'keep': keep_freed_memory()\n"
        "before = resource.getrusage(resource.RUSAGE_SELF).ru_minflt\n"
        "for _ in range(60): torch.empty(16 << 20).fill_(1.0)\n"
        "print(resource.getrusage(resource.RUSAGE_SELF).ru_minflt - before)\n"
    )
    env = dict(os.environ, OMP_NUM_THREADS="1")
    faults = {
        way: int(
            subprocess.run(
                [sys.executable, "-c", script, way], env=env, capture_output=True, text=True, check=True
            ).stdout
        )
        for way in ("keep", "default")
    }
    pages = (64 << 20) // 4096
    assert faults["default"] > 55 * pages  # mapped afresh every time
    assert faults["keep"] < 15 * pages


@pytest.mark.slow
def test_a_moving_average_of_the_weights_is_torchs_ema():
    """train.ema 0.8: fit() ends at the exponential moving average of its SGD steps' weights, as
    torch.optim.swa_utils.AveragedModel (get_ema_multi_avg_fn) averages the same steps, and its
    history's last row measures those weights; ema 0 ends at the last step's."""
    from torch.optim.swa_utils import AveragedModel, get_ema_multi_avg_fn

    from cnn_denoise.scoring.sets import model_scores

    data, test, epochs = toy(), toy(seed=1), 6
    fitted = {}
    for ema in (0.8, 0.0):
        fitted[ema] = cnn.build(model_settings([4, 3], [1, 3, 1]), seed=2)
        t = train_settings(lr=0.4, batch_size="full", epochs=epochs, seed=0, ema=ema)
        history = fit(fitted[ema], data, test, t, progress=False)
        assert history[-1]["test_l1"] == pytest.approx(model_scores(fitted[ema], test["x"], test["y"])["l1"], rel=1e-12)
    live = cnn.build(model_settings([4, 3], [1, 3, 1]), seed=2)
    oracle = AveragedModel(live, multi_avg_fn=get_ema_multi_avg_fn(0.8))
    opt = torch.optim.SGD(live.parameters(), lr=0.4)
    for _ in range(epochs):
        opt.zero_grad()
        loss_of("l1", live(data["x"]), data["y"]).backward()
        opt.step()
        oracle.update_parameters(live)
    for k, v in fitted[0.8].state_dict().items():
        torch.testing.assert_close(v, oracle.module.state_dict()[k], rtol=1e-5, atol=1e-7)
        torch.testing.assert_close(fitted[0.0].state_dict()[k], live.state_dict()[k], rtol=1e-5, atol=1e-7)
    assert not torch.allclose(fitted[0.8].state_dict()["layers.0.H"], live.state_dict()["layers.0.H"], rtol=1e-3)


@pytest.mark.slow
def test_a_log_gets_a_line_per_epoch_at_most_one_a_minute(capsys, monkeypatch):
    """stderr that is not a terminal (a log, DVC's queue) gets lines, not tqdm's bar (which draws
    nothing there): the first and last epoch, the ones between a minute apart, and within an
    epoch that takes longer, its batches a minute apart."""
    from cnn_denoise.training import progress

    settings = train_settings(lr=0.5, batch_size=8, epochs=3, seed=0)
    history = fit(cnn.build(model_settings([5], [1, 1], "linear"), seed=0), toy(), toy(seed=1), settings)
    lines = capsys.readouterr().err.splitlines()
    assert [line.split(",")[0] for line in lines] == ["train: epoch 1/3", "train: epoch 3/3"], lines
    assert f"test L1 {history[-1]['test_l1']:.3e}" in lines[-1] and lines[-1].endswith("so far")
    monkeypatch.setattr(progress, "EVERY", 0.0)  # every line is due at once
    fit(cnn.build(model_settings([5], [1, 1], "linear"), seed=0), toy(), toy(seed=1), settings)
    lines = [line.split(",")[:2] for line in capsys.readouterr().err.splitlines()]
    batches = [["train: epoch 1/3", f" batch {b}/3"] for b in (1, 2)]  # 24 recordings, batches of 8
    assert lines[:3] == [*batches, ["train: epoch 1/3", " train L1 " + lines[2][1].split()[-1]]], lines
    assert len(lines) == 9 and not any("bar" in str(line) for line in lines)
    fit(cnn.build(model_settings([5], [1, 1], "linear"), seed=0), toy(), toy(seed=1), settings, progress=False)
    assert capsys.readouterr().err == ""
