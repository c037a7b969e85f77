import pytest
import yaml

from coda_edu.config import (
    Config,
    describe_keys,
    from_dict,
    load_config,
    parse_override,
    resolve,
    save_config,
    set_value,
)
from coda_edu.errors import ConfigError


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


def test_every_key_is_documented():
    rows = describe_keys()
    assert len(rows) > 50
    assert all(help_text for _, help_text, _ in rows)
