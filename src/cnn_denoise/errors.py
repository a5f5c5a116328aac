"""The one exception type for bad input: stages print its message as one line and exit 1."""


class PipelineError(Exception):
    """Bad input or a failed step; the message names the problem and the fix."""


def _interrupt(signum, frame):
    raise KeyboardInterrupt


def run_stage(main) -> None:
    """Run a stage's main(); a PipelineError becomes one line on stderr and exit status 1.
    SIGTERM (what `kill` and job schedulers send) is handled like Ctrl-C: temp files are
    removed and an open MLflow run is ended, not left RUNNING."""
    import signal
    import sys

    signal.signal(signal.SIGTERM, _interrupt)
    try:
        code = main()
    except PipelineError as exc:
        print(f"error: {exc}", file=sys.stderr)
        code = 1
    except KeyboardInterrupt:
        print("error: interrupted; outputs left as they were, run dvc repro again", file=sys.stderr)
        code = 130
    sys.exit(code or 0)
