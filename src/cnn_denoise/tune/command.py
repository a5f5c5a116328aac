"""`python -m cnn_denoise.tune`: run, worker, report, promote."""

import argparse

from cnn_denoise.common.errors import PipelineError
from cnn_denoise.tune.report import REPORTS, promote, report
from cnn_denoise.tune.search import run, worker
from cnn_denoise.tune.storage import ENV_STORAGE


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m cnn_denoise.tune", description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    sub = parser.add_subparsers(dest="command", required=True)
    common = argparse.ArgumentParser(add_help=False)
    common.add_argument("name", help="a recipe of recipes/ with a search section")
    common.add_argument(
        "--storage",
        help=f"the study's database URL (default ${ENV_STORAGE}, else optuna.db here); a password in it is "
        f"seen by every user's `ps`: put such a URL in ${ENV_STORAGE}",
    )
    common.add_argument("--study", help="the study's name (default: the recipe's)")
    for cmd in ("run", "worker"):
        p = sub.add_parser(cmd, parents=[common], help="run trials here (W workers) until the budget is spent")
        p.add_argument("-S", "--set", action="append", default=[], metavar="KEY=VALUE", help="a fixed override")
        p.add_argument("--trials", type=int, help="the study's budget (default: the recipe's search.trials)")
        p.add_argument("--workers", type=int, default=1, help="worker processes on this machine (default 1)")
        p.add_argument("--remote", help="git remote finished trials are pushed to (default origin; '' for none)")
    sub.add_parser("report", parents=[common], help="the table of trials; plots").add_argument(
        "--out", help=f"folder for the plots (default {REPORTS}/<study>)"
    )
    sub.add_parser("promote", parents=[common], help="the best trial's model gets --alias").add_argument(
        "--alias", default="best"
    )
    args = parser.parse_args(argv)
    if getattr(args, "trials", None) is not None and args.trials < 1:
        raise PipelineError(f"--trials {args.trials}: give at least 1 (TRIALS=N)")
    if getattr(args, "workers", 1) < 1:
        raise PipelineError(f"--workers {args.workers}: give at least 1 (WORKERS=N)")
    return {"run": run, "worker": worker, "report": report, "promote": promote}[args.command](args)
