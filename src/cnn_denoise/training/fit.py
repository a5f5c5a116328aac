"""Task 4's training loop: plain SGD on the mean absolute error, as the course's code did.

Beyond the lab (recipes): Adam, or L-BFGS (PyTorch's, strong-Wolfe line search, up to 20
evaluations per step: give it the whole training set as one batch), and the `snr` loss,
minus the batch's SNR in dB, which is blind to the signals' scale (the data's ~1e-3
amplitudes make mean squared errors ~1e-12, too small for L-BFGS's curvature test).

Every epoch shuffles the training set with a seeded generator, steps through it in
mini-batches, and then measures the train and test L1 of the whole sets (train.history), so
the history (epoch 0 is the initial model) shows how far SGD actually moved.
"""

import ctypes
import math
import os

import torch
import torch.distributed as dist

from cnn_denoise.common.errors import PipelineError
from cnn_denoise.config import choices
from cnn_denoise.scoring.sets import model_scores
from cnn_denoise.training.losses import LOSSES, RESOLUTIONS
from cnn_denoise.training.progress import Progress


def pick_device(name: str) -> torch.device:
    """`auto` is CUDA when present, else the CPU."""
    if name == choices.AUTO:
        name = choices.CUDA if torch.cuda.is_available() else choices.CPU
    if name == choices.CUDA and not torch.cuda.is_available():
        raise PipelineError("train.device is cuda but no CUDA device is available; set train.device: auto or cpu")
    return torch.device(name)


def keep_freed_memory() -> None:
    """Have glibc's malloc keep freed blocks for the next allocation instead of handing them back
    to the kernel. A step's tensors over 32 MB (glibc's ceiling for heap blocks) are by default
    mmap'ed and unmapped every time, and the page faults of mapping them again cost up to a third
    of a small CNN's training on a CPU (bench/README.md); a step allocates the same sizes as the
    last, so what is kept is reused.
    The numbers computed are the same. Elsewhere than glibc (macOS, musl): nothing."""
    mallopt = getattr(ctypes.CDLL(None), "mallopt", None)  # this process's own symbols, libc's among them
    if mallopt is not None:
        M_TRIM_THRESHOLD, M_MMAP_THRESHOLD = -1, -3  # malloc.h
        mallopt(M_MMAP_THRESHOLD, 1 << 30)  # blocks under 1 GiB from the heap, where freed ones are reused
        mallopt(M_TRIM_THRESHOLD, (1 << 31) - 1)  # and the heap's free top not trimmed back


def exact_float32() -> None:
    """Make CUDA compute in true float32: TF32 would round convolutions' and GEMMs' inputs to
    10-bit mantissas, and the backends would no longer agree. No effect on CPUs."""
    torch.backends.cudnn.allow_tf32 = False
    torch.backends.cuda.matmul.allow_tf32 = False


def deterministic() -> None:
    """Deterministic kernels only (some CPU backward kernels change with it: the model's bytes
    depend on it). torch.use_deterministic_algorithms(True) does this and also sets
    torch.compile's flag, whose import costs seconds a process (bench/README.md); nothing here compiles."""
    torch._C._set_deterministic_algorithms(True, warn_only=False)


def _lbfgs(params, lr):
    return torch.optim.LBFGS(params, lr=lr, line_search_fn="strong_wolfe")


class PlainSGD:
    """The course's SGD (no momentum, no weight decay): p <- p - lr * grad, the same floats
    as torch.optim.SGD(params, lr) (tests/test_train.py compares them bit for bit). Written out
    because every torch.optim optimizer imports torch._dynamo, which costs a process more than
    the lab's 20 epochs of updates (bench/README.md); Adam and L-BFGS still come from torch.optim."""

    def __init__(self, params, lr: float):
        self.params, self.lr = list(params), lr

    def zero_grad(self, set_to_none: bool = True) -> None:
        for p in self.params:
            p.grad = None

    def step(self, closure):
        loss = closure()
        with torch.no_grad():
            for p in self.params:
                if p.grad is not None:
                    p.add_(p.grad, alpha=-self.lr)
        return loss


OPTIMIZERS = {
    choices.SGD: PlainSGD,  # plain, no momentum, as the course
    choices.ADAM: torch.optim.Adam,
    choices.LBFGS: _lbfgs,
}
choices.check_table(OPTIMIZERS, choices.OPTIMIZERS, "train.OPTIMIZERS")


class WeightAverage:
    """An exponential moving average of the weights over training's steps (train.ema: its decay
    per step), what training ends with: the last step's weights carry the noise of its last few
    batches, which the average smooths out (Polyak and Juditsky, 1992; the EMA of
    torch.optim.swa_utils.AveragedModel, with which tests compare it). The first step's weights
    start it."""

    def __init__(self, params, decay: float):
        self.params, self.decay, self.average = list(params), float(decay), None

    @torch.no_grad()
    def update(self) -> None:
        if self.average is None:
            self.average = [p.detach().clone() for p in self.params]
        else:
            torch._foreach_lerp_(self.average, [p.detach() for p in self.params], 1 - self.decay)

    @torch.no_grad()
    def apply(self) -> list[torch.Tensor]:
        """Put the average in the model; return the weights it held."""
        held = [p.detach().clone() for p in self.params]
        if self.average is not None:
            torch._foreach_copy_([p.detach() for p in self.params], self.average)
        return held

    @torch.no_grad()
    def restore(self, held) -> None:
        torch._foreach_copy_([p.detach() for p in self.params], held)


def lr_at(t, step: int, steps: int) -> float:
    """The learning rate of optimizer step `step` (0 first) of `steps`, as train.schedule says:
    train.lr throughout, or CosineAnnealingLR's curve to 0 (eta_min 0, T_max steps) in closed form.
    Not torch's scheduler: torch.optim.lr_scheduler imports torch._dynamo, as torch.optim does."""
    if t.schedule == choices.CONSTANT:
        return t.lr
    return t.lr * (1 + math.cos(math.pi * step / steps)) / 2


def set_lr(opt, lr: float) -> None:
    if isinstance(opt, PlainSGD):
        opt.lr = lr
    else:
        for group in opt.param_groups:
            group["lr"] = lr


# training recordings whose L1 the history records each epoch: all of the lab's 250; of a larger
# set a fixed sample, so recording an epoch costs a bounded share of it
RECORDED = 512
CHUNK = 32  # recordings per forward pass: a larger batch (L-BFGS's full batch) goes through in chunks


def _chunked_loss(net, x, y, idx, name: str, l1=None) -> torch.Tensor:
    """The loss of the batch x[idx], its forward pass run CHUNK recordings at a time and the
    sums added before the loss is taken: the same loss and gradient as one pass (up to float
    rounding), but every activation a CPU allocator can reuse. A whole-set batch in one pass
    made tensors so large that the allocator maps and unmaps them on every use, and the page
    faults dominated L-BFGS's time (bench/README.md). `l1`, if given, has the batch's
    absolute error added to it (train.history batches)."""
    loss = LOSSES[name]
    sums = 0
    for part in idx.split(CHUNK):
        pred = net(x[part])
        sums = sums + loss.sums(pred, y[part])
        _add_l1(l1, pred, y[part])
    return loss.value(sums, len(idx) * x[0].numel())


def _add_l1(l1, pred, y) -> None:
    """Add the batch's absolute error to `l1`, if given (train.history batches)."""
    if l1 is not None:
        l1 += (pred.detach() - y).abs().sum(dtype=torch.float64)


@torch.no_grad()
def calibrate_gain(model, x: torch.Tensor, y: torch.Tensor) -> float | None:
    """After a scale-invariant loss (si_sdr), the output's level is whatever training left: the
    least-squares gain g = <model(x), y> / <model(x), model(x)> over the training recordings
    (at most RECORDED of them) brings it to the speech's, folded into the model's last filters
    (model.rescale). Returns g, or None for a model whose output is not linear in its last layer."""
    if not hasattr(model, "rescale"):
        return None
    seen = slice(0, min(len(x), RECORDED))
    pred = torch.cat([model(x[i : i + CHUNK]) for i in range(seen.start, seen.stop, CHUNK)]).double()
    gain = (pred * y[seen].double()).sum() / pred.square().sum().clamp_min(1e-30)
    model.rescale(float(gain))
    return float(gain)


def init_distributed(device: torch.device) -> int:
    """Under torchrun (WORLD_SIZE > 1): join the process group (NCCL on CUDA, gloo on CPU)
    and return this process's rank; otherwise 0, with nothing set up."""
    if int(os.environ.get("WORLD_SIZE", "1")) <= 1:
        return 0
    if device.type == choices.CUDA:
        torch.cuda.set_device(int(os.environ.get("LOCAL_RANK", "0")))
    dist.init_process_group(backend="nccl" if device.type == choices.CUDA else "gloo")
    return dist.get_rank()


def close_distributed() -> None:
    if dist.is_available() and dist.is_initialized():
        dist.destroy_process_group()


def _distributed_step(model, x, y, idx, world: int, rank: int, loss_name: str, l1=None):
    """One rank's share of a global batch: the rows idx[rank::world]. The ranks add their
    sums S_r, so every rank sees the global batch's loss L(S). The surrogate returned,
    world * (dL/dS . S_r), has the gradient of L once DDP averages it over the ranks.
    Returns it and L, which every rank sees, so all stop together on divergence."""
    loss = LOSSES[loss_name]
    mine = idx[rank::world]
    pred = model(x[mine])
    local = loss.sums(pred, y[mine])
    _add_l1(l1, pred, y[mine])
    total = local.detach().clone()
    dist.all_reduce(total)
    total.requires_grad_(True)
    value = loss.value(total, len(idx) * x[0].numel())
    (slope,) = torch.autograd.grad(value, total)
    return world * (slope * local).sum(), value.detach()


def fit(model, train_set: dict, test_set: dict, t, device="cpu", progress: bool = True, on_epoch=None) -> list[dict]:
    """Train `model` in place as params.yaml's `train` section `t` says (a params.Train, passed
    whole and already checked by the schema); return the per-epoch history
    [{epoch, train_l1, test_l1}]. `on_epoch(row)`, if given, sees each row as it is recorded
    (a search's pruning: it may raise to stop training).

    Under torchrun (a process group is initialised), each rank computes its share of every
    global batch of `batch_size` and DistributedDataParallel averages the gradients: the
    same SGD steps as one process, up to float rounding."""
    keep_freed_memory()
    device = torch.device(device)
    model.to(device)
    distributed = dist.is_available() and dist.is_initialized()
    net = model
    if distributed:
        net = torch.nn.parallel.DistributedDataParallel(
            model, device_ids=[torch.cuda.current_device()] if device.type == choices.CUDA else None
        )
        world, rank = dist.get_world_size(), dist.get_rank()
    n = train_set["x"].shape[-1]
    if isinstance(model.taps, list) and n < max(model.taps):  # the lab's CNN; a masknet takes any length
        raise PipelineError(
            f"recordings have {n} samples but model.taps asks for {max(model.taps)}; use shorter filters or "
            "longer recordings"
        )
    if t.loss == choices.SI_SDR_SPECTRAL and n < (shortest := max(RESOLUTIONS)):
        raise PipelineError(
            f"recordings have {n} samples but train.loss si_sdr_spectral needs at least {shortest} (its longest "
            "STFT); use train.loss si_sdr or longer recordings"
        )
    x, y = train_set["x"].to(device), train_set["y"].to(device)
    x_test, y_test = test_set["x"].to(device), test_set["y"].to(device)
    opt = OPTIMIZERS[t.optimizer](net.parameters(), lr=t.lr)
    loss, epochs = t.loss, t.epochs
    batch_size = len(x) if t.batch_size == choices.FULL else t.batch_size
    generator = torch.Generator().manual_seed(t.seed)
    steps, step = epochs * -(-x.shape[0] // batch_size), 0

    seen = torch.randperm(len(x), generator=torch.Generator().manual_seed(t.seed))[:RECORDED].sort().values
    x_seen, y_seen = (x, y) if len(x) <= RECORDED else (x[seen], y[seen])  # gathered once, not every epoch

    # train.history batches: the epoch's absolute error as its batches trained, summed over the
    # ranks at the epoch's end (each rank sees its share of every batch)
    batches = t.history == choices.BATCHES
    l1 = torch.zeros((), dtype=torch.float64, device=device)
    average = WeightAverage(model.parameters(), t.ema) if t.ema else None

    def record(epoch):
        model.eval()
        held = average.apply() if average else None  # the history measures the weights training ends with
        if batches and epoch:
            if distributed:
                dist.all_reduce(l1)
            train_l1 = l1.item() / (len(x) * x[0].numel())
            l1.zero_()
        else:
            train_l1 = model_scores(model, x_seen, y_seen)["l1"]
        row = {"epoch": epoch, "train_l1": train_l1, "test_l1": model_scores(model, x_test, y_test)["l1"]}
        if held is not None:
            average.restore(held)
        model.train()
        return row

    history = [record(0)]
    if on_epoch:
        on_epoch(history[-1])
    quiet = not progress or (distributed and rank != 0)
    bar = Progress(epochs, quiet)
    batches_per_epoch = -(-x.shape[0] // batch_size)
    for epoch in bar:
        order = torch.randperm(x.shape[0], generator=generator).to(device)
        for start in range(0, x.shape[0], batch_size):
            idx = order[start : start + batch_size]

            first = batches  # L-BFGS evaluates a step's batch several times: its first is the one recorded

            def closure():  # every optimizer's step() calls it: L-BFGS once per evaluation, SGD/Adam once
                nonlocal first
                opt.zero_grad(set_to_none=True)
                tally, first = l1 if first else None, False
                if distributed:
                    value, seen = _distributed_step(net, x, y, idx, world, rank, loss, tally)
                else:
                    value = seen = _chunked_loss(net, x, y, idx, loss, tally)
                if not torch.isfinite(seen):
                    raise PipelineError(
                        f"training diverged: loss is {seen.item()} at epoch {epoch}, batch "
                        f"{start // batch_size}; lower train.lr"
                    )
                value.backward()
                return seen

            set_lr(opt, lr_at(t, step, steps))
            opt.step(closure)
            step += 1
            if average:
                average.update()
            bar.batch(start // batch_size + 1, batches_per_epoch)
        history.append(record(epoch))
        bar.ended(history[-1])
        if on_epoch:
            on_epoch(history[-1])
    if average:
        average.apply()
    model.cpu().eval()
    return history
