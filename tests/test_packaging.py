"""The set-up files agree with each other and with the README."""

import re
import sys

import pytest
import yaml

from tests.conftest import REPO

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover
    import tomli as tomllib

CONDA_TO_PYPI = {"pytorch": "torch"}


def _split(req: str) -> tuple[str, str]:
    m = re.match(r"^\s*([A-Za-z0-9_.\-]+)\s*(.*)$", req)
    return m.group(1).lower().replace("_", "-"), m.group(2).replace(" ", "")


def pyproject_requirements() -> dict[str, str]:
    meta = tomllib.loads((REPO / "pyproject.toml").read_text())["project"]
    reqs = list(meta["dependencies"])
    for extra in meta["optional-dependencies"].values():
        reqs.extend(extra)
    return dict(_split(r) for r in reqs if ";" not in r)  # environment markers (py<3.11 backports) are pip-only


def conda_requirements() -> tuple[dict[str, str], list[str]]:
    env = yaml.safe_load((REPO / "environment.yml").read_text())
    assert env["channels"] == ["conda-forge"]
    conda, pip = {}, []
    for dep in env["dependencies"]:
        if isinstance(dep, dict):
            pip.extend(dep["pip"])
            continue
        name, spec = _split(dep)
        if name in ("python", "pip"):
            continue
        conda[CONDA_TO_PYPI.get(name, name)] = spec
    return conda, pip


def test_environment_yml_lists_the_same_dependencies_as_pyproject():
    conda, pip = conda_requirements()
    assert conda == pyproject_requirements()
    assert pip == ["-e ."]


def test_torch_is_not_pinned_to_one_release():
    spec = pyproject_requirements()["torch"]
    assert not spec.startswith("==")


def test_console_script_and_extras():
    meta = tomllib.loads((REPO / "pyproject.toml").read_text())["project"]
    assert meta["scripts"]["coda-edu"] == "coda_edu.cli:main"
    assert {"notebooks", "dev"} <= set(meta["optional-dependencies"])


def test_readme_quick_start_has_exactly_two_commands_and_ci_runs_the_test_one():
    readme = (REPO / "README.md").read_text()
    section = readme.split("## Quick start", 1)[1].split("\n## ", 1)[0]
    block = re.search(r"```(?:bash|sh)?\n(.*?)```", section, re.S).group(1)
    commands = [line.split("#")[0].strip() for line in block.splitlines()]
    commands = [c for c in commands if c and not c.startswith(("git clone", "cd "))]
    assert commands == ["make demo", "make test"]
    ci = (REPO / ".ci" / "run").read_text()
    assert re.search(r"^make test$", ci, re.M)


def test_real_data_helper_skips_or_fails_as_ci_requires(monkeypatch, tmp_path):
    from tests.conftest import real_data_root

    monkeypatch.setenv("CODA_EDU_DATA_DIR", str(tmp_path))
    monkeypatch.delenv("CODA_EDU_REQUIRE_DATA", raising=False)
    with pytest.raises(pytest.skip.Exception, match="does not exist"):
        real_data_root("ACDC")
    monkeypatch.setenv("CODA_EDU_REQUIRE_DATA", "1")
    with pytest.raises(pytest.fail.Exception, match="CODA_EDU_REQUIRE_DATA=1 requires it"):
        real_data_root("ACDC")
    (tmp_path / "ACDC").mkdir()
    assert real_data_root("ACDC") == tmp_path / "ACDC"
