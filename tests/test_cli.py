"""Bad input through the command line: one line, exit status 2, no traceback."""

import subprocess

import pytest

from tests.conftest import cli_command


def run_cli(*args, timeout=120):
    return subprocess.run(cli_command() + list(args), capture_output=True, text=True, timeout=timeout)


@pytest.mark.parametrize(
    "args, fragment",
    [
        (["train", "--set", "method.alfa=0.5"], "unknown config key 'method.alfa' (did you mean 'method.alpha'?)"),
        (["train", "--set", "train.iterations=ten"], "config key 'train.iterations': expected an integer"),
        (["train", "--set", "method.alpha=2"], "config key 'method.alpha': 2.0 is out of range"),
        (["train", "--set", "data.name=mnist"], "config key 'data.name': 'mnist' is not one of"),
        (["train", "--config", "no/such/file.yaml"], "config file 'no/such/file.yaml' does not exist"),
        (["train", "--resume"], "--resume needs --out DIR"),
        (["eval", "--run", "no/such/run"], "'no/such/run' is not a run folder (no config.yaml)"),
        (["train", "--bogus-flag"], "unrecognized arguments: --bogus-flag"),
        (["train", "--set", "optim.lr=1.0e+39"], "config key 'optim.lr': 1e+39 is out of float32's range"),
        (["train", "--set", "train=0"], "config key 'train': expected a mapping of its keys"),
        (["train", "--set", "eval.splits=[&a [val, val], *a, *a]"], "YAML aliases (*name) are not accepted"),
    ],
)
def test_bad_input_is_one_line_with_status_2(args, fragment):
    done = run_cli(*args)
    assert done.returncode == 2
    assert "Traceback" not in done.stderr
    lines = [line for line in done.stderr.splitlines() if line.strip()]
    assert len(lines) == 1, done.stderr
    assert fragment in lines[0]


def test_bad_yaml_file_names_file_and_line(tmp_path):
    path = tmp_path / "broken.yaml"
    path.write_text("train:\n  iterations: 10\n  batch_size: [\n")
    done = run_cli("train", "--config", str(path))
    assert done.returncode == 2 and "broken.yaml' line" in done.stderr


def test_config_command_prints_resolved_yaml():
    done = run_cli("config", "--set", "method.name=cps")
    assert done.returncode == 0
    assert "name: cps" in done.stdout and "alignment: none" in done.stdout
    keys = run_cli("config", "--keys")
    assert "method.alpha" in keys.stdout and "train.iterations" in keys.stdout


def test_resume_of_a_missing_run_is_a_clear_error(tmp_path):
    done = run_cli("train", "--resume", "--out", str(tmp_path / "nothing"))
    assert done.returncode == 2 and "has no checkpoints/last.pt" in done.stderr


def test_the_course_commands_join_coda_edu_through_entry_points():
    """coda_course's commands are entry points of group coda_edu.commands (pyproject.toml), each an
    ``add_cli(sub)`` that the parser calls; the library's cli.py names none of them."""
    import sys
    from importlib.metadata import entry_points

    from coda_edu import cli
    from tests.conftest import REPO

    if sys.version_info >= (3, 11):
        import tomllib
    else:  # pragma: no cover
        import tomli as tomllib
    declared = tomllib.loads((REPO / "pyproject.toml").read_text())["project"]["entry-points"][cli.COMMAND_ENTRY_POINTS]
    assert set(declared) == {"course", "data", "notebooks", "protocol"}
    installed = {p.name: p.value for p in entry_points(group=cli.COMMAND_ENTRY_POINTS)}
    assert installed == declared, "the installed metadata is stale: pip install -e . again"
    parser = cli.build_parser()
    commands = next(a for a in parser._actions if a.dest == "command").choices
    assert {"train", "eval", "config", *declared} <= set(commands)
    assert all(value.startswith("coda_course.") for value in declared.values())
    source = (REPO / "coda_edu" / "cli.py").read_text()
    assert "coda_course." not in source.split('"""', 2)[2]  # the docstring may say where they come from


def test_a_command_that_fails_to_load_is_one_warning_and_the_rest_still_work(monkeypatch, capsys):
    import importlib.metadata

    from coda_edu import cli

    class Broken:
        name, value = "broken", "no_such_package.cli:add_cli"

        def load(self):
            raise ModuleNotFoundError("No module named 'no_such_package'")

    monkeypatch.setattr(importlib.metadata, "entry_points", lambda group: [Broken()])
    parser = cli.build_parser()
    commands = next(a for a in parser._actions if a.dest == "command").choices
    assert set(commands) == {"train", "eval", "config"}
    err = capsys.readouterr().err.splitlines()
    warning = "coda-edu: warning: command 'broken' (no_such_package.cli:add_cli) not loaded"
    reason = "ModuleNotFoundError: \"No module named 'no_such_package'\""  # excerpt() quotes the message
    assert err == [f"{warning}: {reason}"]
