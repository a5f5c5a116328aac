"""The lab's losses, computed over whole sets in batches.

- l1: mean absolute error over every sample of every recording (PyTorch's L1Loss, what
  the course trained with);
- l1_sum: the lab's L1, the sum of |error| over one recording, averaged over recordings;
- mse: mean squared error.

The sums are the same bits whatever the thread count: torch adds a large tensor in one order on
one thread and in another on several (a sweep's experiments get one thread each), so each
recording's errors are added by NumPy (one thread, pairwise, in an order its source fixes) and
the recordings' sums exactly (math.fsum).
"""

import math

import numpy as np
import torch

BATCH = 32  # recordings evaluated at once


@torch.no_grad()
def scores(pred: torch.Tensor, y: torch.Tensor, batch: int = BATCH) -> dict[str, float]:
    """The losses of outputs `pred` against y, stacks of shape [Q, 1, N]; float64 sums."""
    abs_sums, sq_sums = [], []
    for i in range(0, y.shape[0], batch):
        err = (pred[i : i + batch] - y[i : i + batch]).double().flatten(1).cpu().numpy()
        abs_sums += np.add.reduce(np.abs(err), axis=1).tolist()
        sq_sums += np.add.reduce(np.square(err), axis=1).tolist()
    abs_sum, sq_sum = math.fsum(abs_sums), math.fsum(sq_sums)
    q, n = y.shape[0], y[0].numel()
    return {"l1": abs_sum / (q * n), "l1_sum": abs_sum / q, "mse": sq_sum / (q * n)}


def model_scores(model, x: torch.Tensor, y: torch.Tensor) -> dict[str, float]:
    """The losses of model(x) against y."""
    return scores(predict(model, x), y)


@torch.no_grad()
def predict(model, x: torch.Tensor, batch: int = BATCH) -> torch.Tensor:
    """model(x) for a stack [Q, F, N], in batches."""
    return torch.cat([model(x[i : i + batch]) for i in range(0, x.shape[0], batch)])
