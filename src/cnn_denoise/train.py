"""Task 4's training loop: plain SGD on the mean absolute error, as the course's code did.

Every epoch shuffles the training set with a seeded generator, steps through it in
mini-batches, and then measures the train and test L1 of the whole sets, so the history
(epoch 0 is the initial model) shows how far SGD actually moved.
"""

import sys

import torch
from tqdm import tqdm

from .errors import PipelineError
from .metrics import losses


def pick_device(name: str) -> torch.device:
    """`auto` is CUDA when present. On CUDA, TF32 is turned off: cuDNN would otherwise round
    convolutions' inputs to 10-bit mantissas, and the backends would no longer agree."""
    if name == "auto":
        name = "cuda" if torch.cuda.is_available() else "cpu"
    if name == "cuda" and not torch.cuda.is_available():
        raise PipelineError("train.device is cuda but no CUDA device is available; set train.device: auto or cpu")
    if name == "cuda":
        torch.backends.cudnn.allow_tf32 = False
        torch.backends.cuda.matmul.allow_tf32 = False
    return torch.device(name)


OPTIMIZERS = {"sgd": torch.optim.SGD, "adam": torch.optim.Adam}


def fit(model, train_set: dict, test_set: dict, lr: float, batch_size: int, epochs: int, seed: int, device="cpu",
        progress: bool = True, optimizer: str = "sgd") -> list[dict]:
    """Train `model` in place; return the per-epoch history [{epoch, train_l1, test_l1}]."""
    device = torch.device(device)
    model.to(device)
    n = train_set["x"].shape[-1]
    if n < max(model.taps):
        raise PipelineError(f"recordings have {n} samples but model.taps asks for {max(model.taps)}; use shorter filters or longer recordings")
    x, y = train_set["x"].to(device), train_set["y"].to(device)
    x_test, y_test = test_set["x"].to(device), test_set["y"].to(device)
    opt = OPTIMIZERS[optimizer](model.parameters(), lr=lr)  # SGD: plain, no momentum, as the course
    loss_fn = torch.nn.L1Loss()
    generator = torch.Generator().manual_seed(seed)

    def record(epoch):
        model.eval()
        row = {"epoch": epoch, "train_l1": losses(model, x, y)["l1"], "test_l1": losses(model, x_test, y_test)["l1"]}
        model.train()
        return row

    history = [record(0)]
    bar = tqdm(range(1, epochs + 1), desc="train", unit="epoch", file=sys.stderr, disable=None if progress else True)  # None: off when not a terminal
    for epoch in bar:
        order = torch.randperm(x.shape[0], generator=generator).to(device)
        for start in range(0, x.shape[0], batch_size):
            idx = order[start : start + batch_size]
            loss = loss_fn(model(x[idx]), y[idx])
            if not torch.isfinite(loss):
                raise PipelineError(f"training diverged: loss is {loss.item()} at epoch {epoch}, batch {start // batch_size}; lower train.lr")
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
        history.append(record(epoch))
        bar.set_postfix(train_l1=f"{history[-1]['train_l1']:.3e}", test_l1=f"{history[-1]['test_l1']:.3e}")
    model.cpu().eval()
    return history
