"""The method and dataset registries: a new method is one module, specs are the only place names are tested."""

import dataclasses
import re

import pytest
import torch

from coda_edu.config import MethodConfig, load_config, preset_path, resolve
from coda_edu.errors import ConfigError
from coda_edu.io import read_jsonl
from coda_edu.registry import DATASETS, METHODS
from coda_edu.run_folder import RunFolder
from coda_edu.train import train
from tests.conftest import REPO, tiny_overrides


def test_a_toy_method_in_one_file_trains_through_train(tmp_path):
    import tests.toy_method  # noqa: F401  (registers "toy")

    cfg = load_config(None, tiny_overrides(**{"method.name": "toy", "train.iterations": 4, "train.val_every": 2}))
    assert resolve(cfg).method.alignment == "none"
    result = train(cfg, tmp_path / "toy", progress=False, evaluate=False, log=lambda s: None)
    rows = [r for r in read_jsonl(result.run_dir / "metrics.jsonl") if r["kind"] == "train"]
    assert [r["step"] for r in rows] == [2, 4] and all("copy_B" in r for r in rows)
    # train() hands back the trained pair: the best checkpoint's weights, as RunFolder.load_pair rebuilds them
    a, b = RunFolder(result.run_dir).load_pair("best")
    for mine, loaded in ((result.model_a, a), (result.model_b, b)):
        assert not mine.training
        for (k, v), w in zip(mine.state_dict().items(), loaded.state_dict().values()):
            assert torch.equal(v.cpu(), w), k


def test_method_specs_declare_real_config_keys():
    keys = {f.name for f in dataclasses.fields(MethodConfig)}
    for name in METHODS.names():
        spec = METHODS.get(name)
        assert set(spec.config_keys) <= keys, name
        assert spec.algorithm is not None
        if not spec.pseudo_labels:
            assert (spec.alignment, spec.filter) == ("none", "none"), name


def test_dataset_specs_and_their_presets():
    for name in DATASETS.names():
        spec = DATASETS.get(name)
        assert spec.spatial_dims in (2, 3) and spec.eval_mode in ("slices", "frames", "volume")
        assert spec.loader is not None
        for file in spec.presets.values():
            cfg = load_config(preset_path(file))
            assert cfg.data.name == name, file


def test_unknown_names_are_one_line_errors():
    for registry, bad in ((METHODS, "codaa"), (DATASETS, "acdc2")):
        with pytest.raises(ConfigError) as info:
            registry.get(bad)
        assert "is not one of" in str(info.value) and "\n" not in str(info.value)


def test_no_method_or_dataset_name_is_tested_outside_its_module():
    pattern = re.compile(r"""(method|data)\.name\s*(==|!=|in\b|not in\b)|\b(d|data)\.name\s*(==|!=)""")
    offenders = []
    for path in sorted((REPO / "coda_edu").rglob("*.py")):
        for number, line in enumerate(path.read_text().splitlines(), 1):
            if pattern.search(line):
                offenders.append(f"{path.relative_to(REPO)}:{number}: {line.strip()}")
    assert not offenders, "\n".join(offenders)
