import dataclasses

import pytest
import yaml

from coda_edu.config import (
    Config,
    DataConfig,
    MethodConfig,
    describe_keys,
    from_dict,
    load_config,
    option,
    parse_override,
    resolve,
    save_config,
    section,
    set_value,
)
from coda_edu.errors import ConfigError
from coda_edu.registry import METHODS, MethodSpec


def test_defaults_are_valid_and_resolve_to_coda():
    cfg = resolve(Config())
    assert cfg.method.name == "coda"
    assert cfg.method.alignment == "predictions"
    assert cfg.method.filter == "over_expectation"
    assert cfg.model.name == "unet2d" and cfg.model.levels == 5


def test_method_and_dataset_choices_come_from_the_registries():
    from coda_edu.registry import DATASETS, METHODS

    for name in METHODS.names():
        spec = METHODS.get(name)
        cfg = resolve(load_config(None, [f"method.name={name}"]))
        assert (cfg.method.alignment, cfg.method.filter) == (spec.alignment, spec.filter)
    for name in DATASETS.names():
        assert from_dict({"data": {"name": name}}).data.name == name
    with pytest.raises(ConfigError, match="'data.name': 'acdcc' is not one of .*did you mean 'acdc'"):
        load_config(None, ["data.name=acdcc"])


def test_yaml_round_trip(tmp_path):
    cfg = load_config(
        None,
        [
            "method.name=cps",
            "method.alpha=0.25",
            "data.image_size=[32, 32]",
            "seed=7",
            "data.synthetic.imbalance=0.9",
            "train.channels_last=null",
        ],
    )
    path = tmp_path / "c.yaml"
    save_config(cfg, path)
    again = load_config(path)
    assert again == cfg
    assert yaml.safe_load(path.read_text())["method"]["alpha"] == 0.25


def test_overrides_parse_types():
    cfg = load_config(
        None, ["optim.lr=1e-3", "train.iterations=50", "train.augment.flip=false", "data.labeled_fraction=0.2"]
    )
    assert cfg.optim.lr == pytest.approx(1e-3)
    assert cfg.train.iterations == 50 and cfg.train.augment.flip is False
    assert cfg.data.labeled_fraction == pytest.approx(0.2)


@pytest.mark.parametrize(
    "override, fragment",
    [
        ("method.alfa=0.5", "unknown config key 'method.alfa' (did you mean 'method.alpha'?)"),
        ("train.iterations=many", "config key 'train.iterations': expected an integer"),
        ("method.alpha=1.5", "config key 'method.alpha': 1.5 is out of range (must be <= 1.0)"),
        ("method.name=coda2", "config key 'method.name': 'coda2' is not one of"),
        ("train.augment.flip=maybe", "config key 'train.augment.flip': expected true or false"),
        ("optim.lr=0", "config key 'optim.lr': 0.0 is out of range (must be > 0.0)"),
        ("nonsense", "must look like KEY=VALUE"),
    ],
)
def test_bad_overrides_name_the_field(override, fragment):
    with pytest.raises(ConfigError) as info:
        load_config(None, [override])
    assert fragment in str(info.value)
    assert "\n" not in str(info.value)


def test_cross_field_rules():
    with pytest.raises(ConfigError, match="labeled_batch_size"):
        load_config(None, ["train.batch_size=4", "train.labeled_batch_size=4"])
    load_config(None, ["method.name=supervised", "train.batch_size=4", "train.labeled_batch_size=4"])
    with pytest.raises(ConfigError, match="needs 2 sizes"):
        load_config(None, ["data.image_size=[8, 32, 32]"])
    with pytest.raises(ConfigError, match="makes no pseudo-labels"):
        resolve(load_config(None, ["method.name=supervised", "method.filter=fixed"]))


def test_config_file_errors(tmp_path):
    with pytest.raises(ConfigError, match="does not exist"):
        load_config(tmp_path / "missing.yaml")
    bad = tmp_path / "bad.yaml"
    bad.write_text("method:\n  name: [unclosed\n")
    with pytest.raises(ConfigError, match="bad.yaml' line"):
        load_config(bad)
    wrong = tmp_path / "wrong.yaml"
    wrong.write_text("method:\n  alpha: high\n")
    with pytest.raises(ConfigError, match="wrong.yaml': config key 'method.alpha'"):
        load_config(wrong)


def test_none_is_an_option_and_null_is_the_method_default():
    cfg = resolve(load_config(None, ["method.filter=none", "method.alignment=null"]))
    assert cfg.method.filter == "none" and cfg.method.alignment == "predictions"


def test_set_value_and_from_dict():
    cfg = Config()
    set_value(cfg, "method.threshold", "0.9")
    assert cfg.method.threshold == 0.9
    assert from_dict({"method": {"name": "cps"}}).method.name == "cps"
    assert parse_override("data.image_size=[16, 16]") == ("data.image_size", [16, 16])


def test_a_module_declares_its_own_keys_and_two_modules_may_not_declare_one_key(monkeypatch):
    shared = {f.name for f in dataclasses.fields(MethodConfig)}
    built = {f.name for f in dataclasses.fields(section(MethodConfig))}
    # mean_teacher.py and cps.py declare their keys; config.py holds only what every method reads
    assert {"teacher_noise", "teacher_momentum", "mix", "strong_intensity"} <= built - shared
    assert {"synthetic", "cadis_task", "val_patients"} <= {f.name for f in dataclasses.fields(Config().data)}
    assert "cadis_task" not in {f.name for f in dataclasses.fields(DataConfig)}
    refused = r"^config key 'method.teacher_noise': -1.0 is out of range \(must be >= 0.0\)$"
    with pytest.raises(ConfigError, match=refused):
        load_config(None, ["method.teacher_noise=-1"])
    assert load_config(None, ["data.name=cadis", "data.cadis_task=3"]).data.cadis_task == 3

    @dataclasses.dataclass
    class Clash:
        teacher_noise: float = option(0.5, help="a second owner of a key")

    spec = MethodSpec("clash", "declares a key mean teacher already declares", options=Clash, algorithm=object)
    monkeypatch.setitem(METHODS._entries, "clash", spec)
    with pytest.raises(ConfigError, match=r"'method.teacher_noise' is declared twice: by .*mean_teacher.*Clash"):
        Config()


def test_every_key_is_documented():
    rows = describe_keys()
    assert len(rows) > 50
    assert all(help_text for _, help_text, _ in rows)


# --------------------------------------------------------------------------- issue 21: hostile values and files
ALIAS_BOMB = "\n".join(
    ['a: &a ["x", "x", "x", "x", "x", "x", "x", "x", "x"]']
    + [
        f"{chr(c)}: &{chr(c)} [*{chr(c - 1)}, *{chr(c - 1)}, *{chr(c - 1)}, *{chr(c - 1)}, *{chr(c - 1)}, "
        f"*{chr(c - 1)}, *{chr(c - 1)}, *{chr(c - 1)}, *{chr(c - 1)}]"
        for c in range(ord("b"), ord("j"))
    ]
)


@pytest.mark.parametrize("key", ["optim.lr", "optim.weight_decay", "method.teacher_noise", "method.max_weight"])
def test_float_settings_beyond_float32_are_refused(key):
    # F1: 1e39 passed validation, then torch could not convert it to float32 (a traceback)
    with pytest.raises(ConfigError, match=rf"config key '{key}': 1e\+39 is out of float32's range"):
        load_config(None, [f"{key}=1.0e+39"])
    load_config(None, [f"{key}=3.0e+38"])  # within float32's range


def test_positive_floats_that_float32_rounds_to_zero_are_refused():
    with pytest.raises(ConfigError, match=r"config key 'method.eps': 1e-50 is too small for float32"):
        load_config(None, ["method.eps=1e-50"])


def test_integers_beyond_64_bits_are_refused():
    # 1e20 patients passed validation, then range() overflowed (a traceback)
    with pytest.raises(ConfigError, match=r"n_patients': 100000000000000000000 is out of range \(beyond 64-bit"):
        load_config(None, ["data.synthetic.n_patients=100000000000000000000"])


def test_yaml_aliases_are_refused_quickly(tmp_path):
    # F3: a 416-byte alias bomb expanded for minutes (as --config), into a 312 MB message (as eval.splits)
    path = tmp_path / "bomb.yaml"
    path.write_text(ALIAS_BOMB + "\neval:\n  splits: *i\n")
    assert path.stat().st_size < 1000
    with pytest.raises(ConfigError, match=r"bomb.yaml' line \d+: YAML aliases \(\*name\) are not accepted"):
        load_config(path)
    with pytest.raises(ConfigError, match="YAML aliases") as info:
        load_config(None, ["eval.splits=[&a [x, x], *a, *a]"])
    assert len(str(info.value)) < 300


def test_duplicate_yaml_keys_are_refused(tmp_path):
    # the second 'train' block silently replaced the first one
    path = tmp_path / "dup.yaml"
    path.write_text("train:\n  iterations: 50\nmethod:\n  name: cps\ntrain:\n  batch_size: 8\n")
    with pytest.raises(ConfigError, match=r"dup.yaml' line 5: duplicate key 'train'"):
        load_config(path)


def test_deeply_nested_or_huge_config_files_are_one_line(tmp_path):
    deep = tmp_path / "deep.yaml"
    deep.write_text("a: " + "[" * 100_000 + "]" * 100_000 + "\n")
    with pytest.raises(ConfigError, match="deep.yaml"):
        load_config(deep)
    huge = tmp_path / "huge.yaml"
    huge.write_text("# " + "x" * (2 << 20) + "\n")
    with pytest.raises(ConfigError, match=r"huge.yaml' is larger than 1 MB"):
        load_config(huge)


def test_long_values_are_shown_as_a_bounded_excerpt():
    with pytest.raises(ConfigError) as info:
        load_config(None, ["eval.splits=[" + ", ".join(["val"] * 5000) + ", bad]"])
    assert "eval.splits" in str(info.value) and len(str(info.value)) < 300
    with pytest.raises(ConfigError) as info:
        load_config(None, ["method.name=" + "x" * 100_000])
    assert len(str(info.value)) < 600


@pytest.mark.parametrize("value", ["0", "[1, 2]", "abc", ""])
def test_a_section_set_to_a_non_mapping_is_refused(value):
    # --set train=0 was accepted and did nothing
    with pytest.raises(ConfigError, match="config key 'train': expected a mapping"):
        load_config(None, [f"train={value}"])
    assert load_config(None, ["train={iterations: 7}"]).train.iterations == 7


def test_an_alias_bomb_inside_a_known_key_is_one_line_within_seconds(tmp_path):
    # F3: as --config, a 416-byte bomb under a real key gave no answer after 60 s
    import subprocess
    import time

    from tests.conftest import cli_command

    levels = [f"&l0 [{', '.join(['val'] * 9)}]"] + [f"&l{i} [{', '.join([f'*l{i - 1}'] * 9)}]" for i in range(1, 9)]
    path = tmp_path / "bomb.yaml"
    path.write_text("eval:\n  splits: [" + ", ".join(levels) + "]\n")
    assert path.stat().st_size < 1000
    start = time.perf_counter()
    done = subprocess.run(cli_command() + ["train", "--config", str(path)], capture_output=True, text=True, timeout=60)
    assert time.perf_counter() - start < 30
    assert done.returncode == 2 and "Traceback" not in done.stderr
    assert done.stderr.count("\n") == 1 and "YAML aliases (*name) are not accepted" in done.stderr
