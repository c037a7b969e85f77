"""The method and dataset registries: a new method is one module, specs are the only place names are tested."""

import ast
import dataclasses

import pytest
import torch

from coda_edu.config import MethodConfig, load_config, option, preset_path, resolve, section
from coda_edu.errors import ConfigError
from coda_edu.io import read_jsonl
from coda_edu.registry import ALIGNMENTS, DATASETS, FILTERS, METHODS, ReadingSpec
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
    keys = {f.name for f in dataclasses.fields(section(MethodConfig))}
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


def name_literals(source: str, names: set[str], allowed_defaults: bool = False) -> list[tuple[int, str]]:
    """(line, name) of every string constant in ``source`` that spells one of ``names``; with
    ``allowed_defaults``, not those that are the default of a config field (the first argument of ``option``)."""
    tree = ast.parse(source)
    defaults = set()
    if allowed_defaults:
        for node in ast.walk(tree):
            if isinstance(node, ast.Call) and getattr(node.func, "id", None) == "option" and node.args:
                defaults.add(id(node.args[0]))
    return [
        (node.lineno, node.value)
        for node in ast.walk(tree)
        if isinstance(node, ast.Constant) and node.value in names and id(node) not in defaults
    ]


def test_no_method_or_dataset_name_is_spelled_outside_its_module():
    """A method's name is written only in the module that registers it, a dataset's only in its own
    module (config.py may name the default experiment's method and dataset as field defaults): the rest
    of the library and the course package ask the registries and specs. Read from the syntax tree, so
    comparisons, dictionary keys, ``startswith`` and ``in`` tests are all caught; docstrings and comments
    are not code."""
    import coda_edu.data  # noqa: F401  (every built-in dataset registered)

    owners = {name: METHODS.get(name).algorithm.__module__ for name in METHODS.names()}
    owners.update({name: DATASETS.get(name).loader.__module__ for name in DATASETS.names()})
    offenders = []
    for path in sorted([*(REPO / "coda_edu").rglob("*.py"), *(REPO / "coda_course").rglob("*.py")]):
        module = ".".join(path.relative_to(REPO).with_suffix("").parts)
        source = path.read_text(encoding="utf-8")
        for line, name in name_literals(source, set(owners), allowed_defaults=module == "coda_edu.config"):
            if owners[name] != module:
                offenders.append(f"{path.relative_to(REPO)}:{line}: {name!r} (registered in {owners[name]})")
    assert offenders == []


def test_the_guard_reads_comparisons_keys_and_calls_but_not_field_defaults():
    source = (
        'x = option("coda", help="")\nif m == "coda": pass\ncolors = {"cps": 1}\nname.startswith("coda")\n'
        '"""the coda method"""\n'
    )
    assert name_literals(source, {"coda", "cps"}, allowed_defaults=True) == [(2, "coda"), (3, "cps"), (4, "coda")]
    assert (1, "coda") in name_literals(source, {"coda"})


def test_a_method_declares_its_colour_and_its_variants_take_its_shades():
    from coda_edu.viz.figures import method_color

    for name in METHODS.names():
        assert method_color(name) == METHODS.get(name).color
    coda = METHODS.get("coda")
    assert method_color("coda, argmax share") in coda.variant_colors
    assert method_color("coda[labels,fixed]") in coda.variant_colors
    assert method_color("alignment only") not in coda.variant_colors + (coda.color,)
    assert method_color("cps + options") == METHODS.get("cps").color  # a method without shades: its colour
    assert len({METHODS.get(name).color for name in METHODS.names()}) == len(METHODS.names())  # all told apart


def test_a_run_is_labelled_by_its_method_and_by_a_reading_or_filter_other_than_the_method_s_own():
    from coda_course.analysis import method_label

    def method(*overrides):
        return resolve(load_config(None, list(overrides))).to_dict()["method"]

    assert method_label(method("method.name=coda")) == "coda"
    assert method_label(method("method.name=coda", "method.alignment=labels")) == "coda[labels,over_expectation]"
    assert method_label(method("method.name=cps")) == "cps" and method_label(method("method.name=supervised")) == (
        "supervised"
    )
    assert method_label({"name": "gone"}) == "gone"  # a run of a method no longer registered keeps its name


def test_an_alignment_reading_and_a_filter_register_like_a_method(monkeypatch):
    """A reading or a filter is a function registered by name with its own keys; CPS and Co-DA call it."""

    seen = []

    @dataclasses.dataclass
    class HalfOptions:
        half_weight: float = option(0.5, help="test reading: weight of the uniform distribution", min=0.0, max=1.0)

    def towards_uniform(probs_u, tracker, state, m, alpha):
        seen.append((m.half_weight, state))
        return (1 - m.half_weight) * probs_u + m.half_weight / probs_u.shape[1], (state or 0) + 1

    def top_half(confidence, labels, num_classes, state, m):
        return confidence >= confidence.median(), state

    ALIGNMENTS.names()  # the built-ins first, so that teardown leaves them
    FILTERS.names()
    monkeypatch.setitem(
        ALIGNMENTS._entries, "half", ReadingSpec("half", "test", options=HalfOptions, function=towards_uniform)
    )
    monkeypatch.setitem(FILTERS._entries, "top_half", ReadingSpec("top_half", "test", function=top_half))
    sets = {"method.alignment": "half", "method.filter": "top_half", "method.half_weight": 0.25}
    cfg = resolve(load_config(None, tiny_overrides(**sets)))
    algorithm = METHODS.get(cfg.method.name).build(cfg, 3, None)
    probs = torch.softmax(torch.randn(2, 3, 4, 4, generator=torch.Generator().manual_seed(0)), dim=1)
    for _ in range(2):
        labels, mask = algorithm._pseudo("A", probs)
    assert seen == [(0.25, None), (0.25, 1)]  # its key, and its state carried from step to step
    aligned = 0.75 * probs + 0.25 / 3
    assert torch.equal(labels, aligned.argmax(1))
    confidence = aligned.max(1).values
    assert torch.equal(mask, confidence >= confidence.median())
    with pytest.raises(ConfigError, match="config key 'method.half_weight': 2.0 is out of range"):
        load_config(None, tiny_overrides(**{**sets, "method.half_weight": 2}))


def test_keys_of_an_outside_module_stay_out_of_other_runs_config_files(tmp_path):
    """A method registered in this process (a notebook's) declares method.copy_weight; a coda run's
    config.yaml must not carry it, or `coda-edu eval` in another process could not read it."""
    import subprocess
    import sys

    import tests.toy_method  # noqa: F401  (registers "toy" and its key method.copy_weight)
    from coda_edu.config import save_config

    coda = load_config(None, ["method.name=coda"])
    assert coda.method.copy_weight == 1.0  # the key exists here, so it can be set ...
    assert "copy_weight" not in coda.to_dict()["method"]  # ... but a coda run does not write it
    assert {"teacher_noise", "max_weight", "mix"} <= set(coda.to_dict()["method"])  # built-in keys: all, as before
    toy = load_config(None, ["method.name=toy", "method.copy_weight=0.5"])
    assert toy.to_dict()["method"]["copy_weight"] == 0.5  # the toy run's own key is written
    save_config(coda, tmp_path / "config.yaml")
    command = [sys.executable, "-m", "coda_edu.cli", "config", "--config", str(tmp_path / "config.yaml")]
    done = subprocess.run(command, capture_output=True, text=True, timeout=120, cwd=REPO)
    assert done.returncode == 0, done.stderr  # another process, without the toy method, reads it


def test_the_two_view_step_is_a_mixin_put_in_front_of_cps_derived_methods_only_when_asked():
    from coda_edu.beyond.two_view import TwoViewSteps
    from coda_edu.method.coda import CoDA
    from coda_edu.method.cps import CrossPseudoSupervision

    def built(**overrides):
        cfg = resolve(load_config(None, tiny_overrides(**overrides)))
        return METHODS.get(cfg.method.name).build(cfg, 4, None)

    plain = built(**{"method.name": "coda"})
    assert type(plain) is CoDA and not isinstance(plain, TwoViewSteps)
    for switch in (
        {"method.mix": "copy_paste"},
        {"method.strong_intensity": 0.3},
        {"method.ema_teacher": 0.99},
        {"method.feature_dropout": 0.5},
    ):
        algo = built(**{"method.name": "coda", **switch})
        assert isinstance(algo, TwoViewSteps) and isinstance(algo, CoDA), switch
        assert type(algo) is type(built(**{"method.name": "coda", **switch}))  # one combined class per pair
    cps = built(**{"method.name": "cps", "method.mix": "cutmix"})
    assert isinstance(cps, TwoViewSteps) and type(cps).__mro__[1:3] == (TwoViewSteps, CrossPseudoSupervision)
    # a method that is not derived from CPS never gets it
    assert not isinstance(built(**{"method.name": "supervised"}), TwoViewSteps)


def test_a_refinement_reaches_a_subclass_registered_outside_the_package(monkeypatch):
    from coda_edu.method.base import Algorithm
    from coda_edu.registry import MethodSpec

    class Base(Algorithm):
        pass

    class Extra:
        marker = "refined"

    METHODS.names()  # the built-ins first, so the entries below are the only additions
    monkeypatch.setattr(METHODS, "_refinements", dict(METHODS._refinements))
    monkeypatch.setattr(METHODS, "_entries", dict(METHODS._entries))
    METHODS.refine(Base, when=lambda cfg: cfg.seed == 7)(Extra)

    @METHODS.register(MethodSpec("refine_probe", "probe", uses_unlabeled=False, pseudo_labels=False))
    class Probe(Base):
        pass

    spec = METHODS.get("refine_probe")
    cfg = resolve(load_config(None, tiny_overrides()))
    assert type(spec.build(cfg, 4, None)) is Probe
    cfg.seed = 7
    refined = spec.build(cfg, 4, None)
    assert isinstance(refined, Probe) and refined.marker == "refined"


def test_a_refinement_declares_its_own_keys_for_the_methods_it_refines(monkeypatch):
    from dataclasses import dataclass

    from coda_edu.config import option
    from coda_edu.method.base import Algorithm
    from coda_edu.registry import MethodSpec

    # the built-in refinements: the two-view and pseudo-label keys belong to CPS and Co-DA only
    for name in ("cps", "coda"):
        beyond = {"mix", "ema_teacher", "strong_intensity", "pseudo_postprocess", "unsupervised_loss"}
        assert beyond | {"alpha"} <= set(METHODS.get(name).keys()), name
    assert "mix" not in METHODS.get("mean_teacher").keys() and "mix" not in METHODS.get("supervised").keys()

    class Base(Algorithm):
        pass

    @dataclass
    class ExtraOptions:
        extra_gain: float = option(0.5, help="a refinement's own key", min=0.0, max=1.0)

    class Extra:
        pass

    METHODS.names()
    monkeypatch.setattr(METHODS, "_refinements", dict(METHODS._refinements))
    monkeypatch.setattr(METHODS, "_entries", dict(METHODS._entries))
    METHODS.refine(Base, when=lambda cfg: cfg.method.extra_gain > 0.5, options=ExtraOptions)(Extra)

    @METHODS.register(MethodSpec("refine_keys_probe", "probe", uses_unlabeled=False, pseudo_labels=False))
    class Probe(Base):
        pass

    assert METHODS.get("refine_keys_probe").keys()[-1] == "extra_gain"
    cfg = resolve(load_config(None, tiny_overrides(**{"method.name": "refine_keys_probe"})))
    assert cfg.method.extra_gain == 0.5 and type(METHODS.get("refine_keys_probe").build(cfg, 4, None)) is Probe
    cfg = resolve(load_config(None, tiny_overrides(**{"method.name": "refine_keys_probe", "method.extra_gain": 0.75})))
    assert isinstance(METHODS.get("refine_keys_probe").build(cfg, 4, None), Extra)
    with pytest.raises(ConfigError, match="config key 'method.extra_gain': 2.0 is out of range"):
        load_config(None, tiny_overrides(**{"method.name": "refine_keys_probe", "method.extra_gain": 2}))
    # declared outside the package: a run of another method does not carry the key in its config file
    assert "extra_gain" in cfg.to_dict()["method"]
    other = resolve(load_config(None, tiny_overrides(**{"method.name": "coda"})))
    assert "extra_gain" not in other.to_dict()["method"] and "mix" in other.to_dict()["method"]
