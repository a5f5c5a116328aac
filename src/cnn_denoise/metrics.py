"""The lab's losses, computed over whole sets in batches.

- l1: mean absolute error over every sample of every recording (PyTorch's L1Loss, what
  the course trained with);
- l1_sum: the lab's L1, the sum of |error| over one recording, averaged over recordings;
- mse: mean squared error.
"""

import torch

BATCH = 32  # recordings evaluated at once


@torch.no_grad()
def losses(predict, x: torch.Tensor, y: torch.Tensor, batch: int = BATCH) -> dict[str, float]:
    """Losses of predict(x) against y for stacks x, y of shape [Q, 1, N]; float64 sums."""
    abs_sum = sq_sum = 0.0
    for i in range(0, x.shape[0], batch):
        err = (predict(x[i : i + batch]) - y[i : i + batch]).double()
        abs_sum += err.abs().sum().item()
        sq_sum += err.square().sum().item()
    q, n = x.shape[0], x[0].numel()
    return {"l1": abs_sum / (q * n), "l1_sum": abs_sum / q, "mse": sq_sum / (q * n)}


@torch.no_grad()
def predict(model, x: torch.Tensor, batch: int = BATCH) -> torch.Tensor:
    """model(x) for a stack [Q, F, N], in batches."""
    return torch.cat([model(x[i : i + batch]) for i in range(0, x.shape[0], batch)])
