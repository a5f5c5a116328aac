"""Which network: the lab's CNN (lab/cnn.py) or the speech recipe's masking CNN (masknet.py),
from params.yaml's `model` section or from a checkpoint's spec. Loading and saving live in
checkpoint.py."""

import torch
import torch.nn as nn

from cnn_denoise.config import choices
from cnn_denoise.lab.cnn import MIMOCNN
from cnn_denoise.models.masknet import MaskNet


def build(m, seed: int | None = None) -> nn.Module:
    """The network that params.yaml's `model` section describes (a params.Model, passed whole
    and already checked by the schema): the lab's CNN, or with `arch: masknet` the speech
    recipe's masking CNN (masknet.py); its initial weights depend only on `seed` (when given)."""
    if seed is not None:
        torch.manual_seed(seed)
    if m.arch == choices.MASKNET:
        return MaskNet(**m.masknet.model_dump(), input_scale=m.input_scale)
    return MIMOCNN(m.taps, m.features, m.last_activation, m.backend, m.input_scale)


def from_spec(spec_: dict, backend: str = choices.AUTO) -> nn.Module:
    """The (untrained) network a checkpoint's spec describes."""
    if spec_.get("arch") == choices.MASKNET:
        return MaskNet(**{k: v for k, v in spec_.items() if k != "arch"})
    return MIMOCNN(**spec_, backend=backend)
