"""cnn_denoise: Lab 2B's convolutional neural networks for speech denoising.

    lab/       the course's lab: MIMO filters, its CNN, stand-in data, baselines
    models/    the networks (build, masknet) and their checkpoints
    training/  the training loop
    speech/    recorded speech from Debian's packages, mixed with noise
    scoring/   losses over sets, SI-SDR/STOI, PESQ/DNSMOS, the test matrix, figures
    enhance/   denoising a user's recordings: arrays, files, streams
    recipes/   recipes, sweeps and DVC experiments; tune/: Optuna searches
    tracking/  MLflow: runs, registry, the team server
    views/     what commands print: summary, compare, demo
    config/    params.yaml's schema and the names of every choice
    common/    errors, atomic files, processes, URLs, downloads, YAML, hashing, tables
    cli.py     `cnn-denoise`: parses arguments, calls the above

The names below load on first use, so that `import cnn_denoise.config.params` (every stage, fetch
included) does not pay for importing torch.
"""

_EXPORTS = {"MIMOFilter": "lab.filters", "CNN": "lab.cnn", "MIMOCNN": "lab.cnn", "Denoiser": "enhance.denoiser"}
__all__ = sorted(_EXPORTS)


def __getattr__(name):
    if name in _EXPORTS:
        from importlib import import_module

        return getattr(import_module(f".{_EXPORTS[name]}", __name__), name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
