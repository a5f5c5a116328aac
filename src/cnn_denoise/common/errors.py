"""The one exception type for bad input: stages print its message as one line and exit 1."""


class PipelineError(Exception):
    """Bad input or a failed step; the message names the problem and the fix."""


def printable(text: str) -> str:
    """`text` with control characters (terminal escape sequences: ESC, CSI, BEL, ...) written as
    Python escapes, so text read from a file can't move the cursor, retitle the window or hide
    what follows; newlines and tabs too (a one-line message stays one line)."""
    return "".join(c if c.isprintable() else repr(c)[1:-1] for c in text)


def shown(text: str) -> str:
    """What may reach a terminal or a log: secrets scrubbed, control characters escaped."""
    from cnn_denoise.common.redaction import scrub  # a library's message may quote a URL with its password

    return printable(scrub(text))


def first_line(exc: BaseException, limit: int | None = 200, default: str | None = None) -> str:
    """The first line of an exception's message, cut at `limit` characters (None: whole; the exception's
    type name when it has none, or `default`): what a one-line error quotes of a library's error."""
    lines = str(exc).strip().splitlines()
    return shown(lines[0] if lines else type(exc).__name__ if default is None else default)[:limit]


# What the stages tell a person after Ctrl-C and after running out of memory; the commands
# (enhance, recipes) pass their own, so nobody is told to run a pipeline they did not run.
STAGE_INTERRUPTED = "outputs left as they were, run dvc repro again"
STAGE_OUT_OF_MEMORY = "use smaller data or params (data.synthetic, train.batch_size)"


def in_experiment() -> str | None:
    """What a stage stopped inside `dvc exp run` says instead of STAGE_INTERRUPTED (dvc repro
    would train the experiment's params in the workspace), or None outside one. DVC_EXP_NAME and
    DVC_ROOT are DVC's: the experiment, and the workspace it was started from."""
    import os
    from pathlib import Path

    name = os.environ.get("DVC_EXP_NAME")
    if not name:
        return None
    root = os.environ.get("DVC_ROOT")
    if root and Path(root).resolve() != Path.cwd().resolve():
        return f"experiment {name} stops in its temporary copy; the command that started it says what comes next"
    return (
        f"experiment {name} stopped; params.yaml holds its -S values and the outputs are part-made: the same dvc "
        "exp run goes on, git checkout params.yaml dvc.lock && dvc checkout goes back"
    )


def _interrupt(signum, frame):
    raise KeyboardInterrupt


def exit_now(code: int) -> None:
    """Exit with `code` as sys.exit would at the end of a script, less the interpreter's teardown:
    other threads are stopped and joined and the atexit handlers run as usual, then the process
    ends without freeing module by module what torch, MLflow and SQLAlchemy loaded: CPU spent for
    nothing, a sizeable part of a short experiment (bench/README.md). Only for a process that ends."""
    import atexit
    import os
    import sys
    import threading

    threading._shutdown()  # what Python's own exit does first: executors told to stop, non-daemon threads joined
    atexit._run_exitfuncs()
    for stream in (sys.stdout, sys.stderr):
        try:
            stream.flush()
        except (OSError, ValueError):  # a closed or broken pipe: nothing more can reach it
            pass
    os._exit(code)


def run_stage(
    main, interrupted: str = STAGE_INTERRUPTED, out_of_memory: str = STAGE_OUT_OF_MEMORY, fast_exit: bool = False
) -> None:
    """Run a stage's (or a command's) main(); a PipelineError becomes one line on stderr and exit
    status 1, and so, as a last resort, does any other error (CNN_DENOISE_DEBUG=1 shows its
    traceback). SIGTERM (what `kill` and job schedulers send) is handled like Ctrl-C: temp files
    are removed and an open MLflow run is ended, not left RUNNING. `interrupted` and
    `out_of_memory` finish those two messages with what to do next. `fast_exit`: end the process
    with exit_now() instead of raising SystemExit (a stage script's last line, never in a test)."""
    import signal
    import sys

    signal.signal(signal.SIGTERM, _interrupt)
    try:
        code = main()
    except PipelineError as exc:
        print(f"error: {shown(str(exc))}", file=sys.stderr)
        code = 1
    except KeyboardInterrupt:
        told = in_experiment() if interrupted == STAGE_INTERRUPTED else None
        print(f"error: interrupted; {told or interrupted}", file=sys.stderr)
        code = 130
    except OSError as exc:  # a folder that is read-only or full, a file that vanished
        where = f" {exc.filename}" if exc.filename else ""
        print(
            f"error: cannot access{shown(where)}: {shown(str(exc.strerror or exc))}; check the path, its "
            "permissions and free space",
            file=sys.stderr,
        )
        code = 1
    except MemoryError:
        print(f"error: out of memory; {out_of_memory}", file=sys.stderr)
        code = 1
    except Exception as exc:  # last resort: still one line; CNN_DENOISE_DEBUG=1 shows the traceback
        import os

        if os.environ.get("CNN_DENOISE_DEBUG"):
            raise
        print(
            f"error: unexpected {type(exc).__name__}: {first_line(exc, 300, default='')}; rerun with "
            "CNN_DENOISE_DEBUG=1 for the traceback and report it",
            file=sys.stderr,
        )
        code = 1
    if fast_exit:
        exit_now(code or 0)
    sys.exit(code or 0)
