"""`cnn-denoise` with no command, with --help and with a command it does not have: the commands
with one line each, through the installed command."""

import subprocess

import pytest

from cnn_denoise import cli


def run(*argv):
    return subprocess.run(["cnn-denoise", *argv], capture_output=True, text=True, timeout=60)


def listed(text: str) -> dict:
    """{command: its line} of an overview, read as a person would: indented rows after 'commands:'."""
    rows = text.split("commands:\n", 1)[1].splitlines()
    return {row.split()[0]: row.split(None, 1)[1] for row in rows if row.startswith("  ")}


def test_help_lists_every_command_with_one_line_and_exits_0():
    proc = run("--help")
    assert proc.returncode == 0 and proc.stderr == "", proc.stderr
    assert proc.stdout.startswith("usage: cnn-denoise COMMAND")
    commands = listed(proc.stdout)
    assert set(commands) == {"enhance", "stream", "export", "info", "promote"} and all(
        len(line) > 20 for line in commands.values()
    )
    assert run("-h").stdout == proc.stdout


def test_no_command_prints_the_same_list_on_stderr_and_exits_2():
    proc = run()
    assert proc.returncode == 2 and proc.stdout == ""
    assert listed(proc.stderr) == listed(run("--help").stdout)


def test_an_unknown_command_is_one_line_that_points_to_help():
    proc = run("enhace", "x.wav")
    assert proc.returncode == 2 and proc.stderr.count("\n") == 1, proc.stderr
    assert proc.stderr.startswith("error: no command 'enhace'; cnn-denoise --help lists them")


@pytest.mark.parametrize("name", list(cli.COMMANDS))
def test_each_listed_command_has_its_own_help(name, capsys):
    with pytest.raises(SystemExit) as exited:
        cli.main([name, "--help"])
    assert exited.value.code == 0 and f"usage: cnn-denoise {name}" in capsys.readouterr().out
