"""`python -m cnn_denoise.tune`: a search's command line."""

from cnn_denoise.common.errors import run_stage
from cnn_denoise.tune.command import main

run_stage(main, interrupted="stopped; trials that finished are kept in the study (make tune-report)")
