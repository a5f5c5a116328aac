"""The one exception type for bad input: stages print its message as one line and exit 1."""


class PipelineError(Exception):
    """Bad input or a failed step; the message names the problem and the fix."""


def first_line(exc: BaseException, limit: int = 300) -> str:
    """The first line of an exception's message (its type's name when it has none), for one-line errors."""
    return (str(exc).strip().splitlines() or [type(exc).__name__])[0][:limit]


def _interrupt(signum, frame):
    raise KeyboardInterrupt


def run_stage(main) -> None:
    """Run a stage's main(); a PipelineError becomes one line on stderr and exit status 1, and
    so, as a last resort, does any other error (CNN_DENOISE_DEBUG=1 shows its traceback).
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
    except OSError as exc:  # a folder that is read-only or full, a file that vanished
        where = f" {exc.filename}" if exc.filename else ""
        print(
            f"error: cannot access{where}: {exc.strerror or exc}; check the path, its permissions and free space",
            file=sys.stderr,
        )
        code = 1
    except MemoryError:
        print("error: out of memory; use smaller data or params (data.synthetic, train.batch_size)", file=sys.stderr)
        code = 1
    except Exception as exc:  # last resort: still one line; CNN_DENOISE_DEBUG=1 shows the traceback
        import os

        if os.environ.get("CNN_DENOISE_DEBUG"):
            raise
        reason = (str(exc).strip().splitlines() or [""])[0][:300]
        print(
            f"error: unexpected {type(exc).__name__}: {reason}; rerun with CNN_DENOISE_DEBUG=1 for the "
            "traceback and report it",
            file=sys.stderr,
        )
        code = 1
    sys.exit(code or 0)
