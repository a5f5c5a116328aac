"""The backends on a GPU give the CPU reference's numbers (skipped where there is no CUDA)."""

import pytest
import torch

from cnn_denoise import MIMOCNN, MIMOFilter
from cnn_denoise.config.choices import BACKENDS
from cnn_denoise.lab.filters import choose_backend
from cnn_denoise.training.fit import exact_float32

pytestmark = pytest.mark.skipif(not torch.cuda.is_available(), reason="no CUDA device")


@pytest.mark.parametrize("backend", BACKENDS)
def test_backend_on_cuda_matches_cpu_reference(backend):
    exact_float32()  # as the train stage does: no TF32
    torch.manual_seed(0)
    ref = MIMOFilter(40, 5, 3, backend="shift")
    gpu = MIMOFilter(40, 5, 3, backend=backend).cuda()
    gpu.load_state_dict(ref.state_dict())
    X = torch.randn(4, 5, 5000) * 1e-3
    Xg = X.cuda().requires_grad_(True)
    X.requires_grad_(True)
    W = torch.randn(4, 3, 5000)
    a, b = ref(X), gpu(Xg)
    scale = a.abs().max().item()
    torch.testing.assert_close(b.cpu(), a, rtol=0, atol=1e-5 * scale)
    (a * W).sum().backward()
    (b * W.cuda()).sum().backward()
    torch.testing.assert_close(gpu.H.grad.cpu(), ref.H.grad, rtol=0, atol=1e-5 * ref.H.grad.abs().max().item())
    torch.testing.assert_close(Xg.grad.cpu(), X.grad, rtol=0, atol=1e-5 * X.grad.abs().max().item())


def test_auto_on_cuda_trains():
    assert choose_backend(40, 1, 5, "cuda") in BACKENDS
    torch.manual_seed(0)
    model = MIMOCNN([40, 40], [1, 5, 1]).cuda()
    x = torch.randn(8, 1, 4000, device="cuda") * 1e-3
    loss = torch.nn.L1Loss()(model(x), x)
    loss.backward()
    assert torch.isfinite(loss) and all(torch.isfinite(p.grad).all() for p in model.parameters())
