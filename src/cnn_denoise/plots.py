"""Pictures for people: the per-epoch loss curves as a PNG (DVC draws the same from CSV)."""

from pathlib import Path

import matplotlib

matplotlib.use("Agg")  # files only, no display needed
import matplotlib.pyplot as plt  # noqa: E402


def history_png(history: list[dict], path) -> str:
    """Train and test L1 per epoch (epoch 0 is the initial model), on a log scale."""
    epochs = [row["epoch"] for row in history]
    fig, ax = plt.subplots(figsize=(6, 3.5), dpi=120)
    for key, label in (("train_l1", "train"), ("test_l1", "test")):
        ax.plot(epochs, [row[key] for row in history], marker="o", markersize=3, label=label)
    ax.set(xlabel="epoch", ylabel="L1 (mean absolute error)", yscale="log", title="Training history")
    ax.grid(True, which="both", alpha=0.3)
    ax.legend()
    fig.tight_layout()
    Path(path).parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path)
    plt.close(fig)
    return str(path)
