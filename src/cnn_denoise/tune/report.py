"""`tune report` and `tune promote`: the study's table and plots, its best model promoted."""

import datetime
import json
import warnings
from pathlib import Path

from cnn_denoise.common.errors import PipelineError
from cnn_denoise.common.tables import WIDTH, cell
from cnn_denoise.tracking.store import main_root
from cnn_denoise.tune.space import redact
from cnn_denoise.tune.storage import load_study, reap, storage_url

REPORTS = "tuning"  # tuning/<study>/: the report's table and plots, in the main clone


# ---- the report ----


def table(study, width: int = WIDTH) -> list[str]:
    """trial (its DVC experiment), state, the metric, each param, minutes; within `width` columns."""
    space = study.user_attrs.get("space", {})
    metric = space.get("metric", "value")
    keys = list(space.get("params", {})) or sorted({k for t in study.trials for k in t.params})
    rows = []
    for t in study.trials:
        took = (t.datetime_complete or datetime.datetime.now()) - t.datetime_start if t.datetime_start else None
        note = f"same as {t.user_attrs['same_as']}" if "same_as" in t.user_attrs else ""
        if "pruned_at" in t.user_attrs:
            note = f"epoch {t.user_attrs['pruned_at']}"
        note = note or t.user_attrs.get("failed", t.user_attrs.get("error", ""))
        rows.append(
            [
                f"{study.study_name}-{t.number}",
                t.state.name,
                cell(t.value),
                *(cell(t.params.get(k)) for k in keys),
                f"{took.total_seconds() / 60:.1f}" if took else "-",
                note,
            ]
        )
    head = ["trial", "state", metric, *(k.split(".", 1)[-1] for k in keys), "min", "note"]
    cells = [head, *rows]
    widths = [max(len(c[i]) for c in cells) for i in range(len(head))]
    lines = ["  ".join(c.ljust(w) for c, w in zip(line, widths, strict=True)).rstrip() for line in cells]
    return [line if len(line) <= width else line[: width - 1] + "…" for line in lines]


def report(args) -> int:
    url = storage_url(args.storage)
    name = args.study or args.name
    study = load_study(url, name, heartbeat=True)  # so that reap() fails trials whose heartbeat stopped
    reap(study)
    lines = table(study)
    print(f"study {name} in {redact(url)}: {len(study.trials)} trials, budget {study.user_attrs.get('trials')}"[:WIDTH])
    print("\n".join(lines))
    out = Path(args.out) if args.out else main_root() / REPORTS / name
    out.mkdir(parents=True, exist_ok=True)
    (out / "trials.txt").write_text("\n".join(lines) + "\n")
    for path in plots(study, out):
        print(f"wrote {path}")
    best = best_trial(study)
    if best:
        exp = exp_name(study, best)
        print(f"best: trial {best.number} ({exp}), {cell(best.value)}: make tune-promote NAME={args.name}, or "
              f"make promote EXP={exp}; dvc exp apply {exp}")  # fmt: skip
    return 0


def plots(study, out: Path) -> list[Path]:
    """Optuna's optimization history and (with two finished trials or more) parameter
    importances, drawn with matplotlib, as PNG files in `out`."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from optuna.visualization import matplotlib as ovm

    complete = [t for t in study.trials if t.state.name == "COMPLETE"]
    if not complete:
        return []
    drawn = [("history.png", ovm.plot_optimization_history)]
    if len(complete) >= 2 and len({json.dumps(t.params, sort_keys=True) for t in complete}) >= 2:
        drawn.append(("importance.png", ovm.plot_param_importances))
    written = []
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # Optuna's matplotlib plots are "experimental"
        for file, draw in drawn:
            ax = draw(study)
            if file == "history.png":
                ax.set_ylabel(study.user_attrs.get("space", {}).get("metric", "value"))
            fig = ax.figure if hasattr(ax, "figure") else ax.flat[0].figure
            fig.set_size_inches(8, 4.5)
            fig.tight_layout()
            fig.savefig(out / file, dpi=100)
            plt.close(fig)
            written.append(out / file)
    return written


def promote(args) -> int:
    from cnn_denoise.tracking import promote as promote_run

    study = load_study(storage_url(args.storage), args.study or args.name)
    best = best_trial(study)
    if best is None:
        raise PipelineError(f"study {study.study_name} has no finished trial yet; run make tune first")
    exp = exp_name(study, best)
    version = promote_run(exp, args.alias)
    print(f"models:/cnn-denoise@{args.alias} is version {version}: trial {best.number} ({exp}), {cell(best.value)}")
    return 0


def exp_name(study, trial) -> str:
    """The DVC experiment (and MLflow run) holding a trial's model: its own, or the one it repeats."""
    if "same_as" in trial.user_attrs:
        trial = study.trials[trial.user_attrs["same_as"]]
    return trial.user_attrs.get("dvc_exp") or f"{study.study_name}-{trial.number}"


def best_trial(study):
    try:
        return study.best_trial
    except ValueError:  # no trial complete yet
        return None
