"""`python -m cnn_denoise.tune`: a search's command line."""

import sys

from cnn_denoise.common.errors import run_stage
from cnn_denoise.tune.command import main

# What Ctrl-C leaves and what to do next: the study keeps every trial that finished, the ones
# running are marked FAILED when the search is next run (their workers are gone), and the same
# command goes on until the budget is spent; no `dvc repro` is involved.
INTERRUPTED = {
    "run": "the workers were stopped; finished trials stay in the study and the ones running count as failed; "
    "run the same command (make tune) again to go on with the study",
    "worker": "this worker stopped; its running trial counts as failed",
    "report": "nothing was changed; run it again",
    "promote": "the alias may not be set; run it again",
}
command = sys.argv[1] if len(sys.argv) > 1 else ""
run_stage(main, interrupted=INTERRUPTED.get(command, "run it again"))
