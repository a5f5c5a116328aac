"""cnn_denoise: Lab 2B's convolutional neural networks for speech denoising.

The names below load on first use, so that `import cnn_denoise.params` (every stage, fetch
included) does not pay for importing torch.
"""

_EXPORTS = {"MIMOFilter": "filters", "CNN": "model", "MIMOCNN": "model", "Denoiser": "enhance"}
__all__ = sorted(_EXPORTS)


def __getattr__(name):
    if name in _EXPORTS:
        from importlib import import_module

        return getattr(import_module(f".{_EXPORTS[name]}", __name__), name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
