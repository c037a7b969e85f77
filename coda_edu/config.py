"""One configuration tree for a whole experiment.

The tree is made of dataclasses (``Config`` -> ``data``, ``model``, ``method``,
``optim``, ``train``, ``eval``). It round-trips through YAML, takes dotted
overrides such as ``method.alpha=0.5`` (the CLI's ``--set``), and is validated
field by field: an unknown key, a wrong type or a value out of range raises
:class:`~coda_edu.errors.ConfigError` with one line naming the field.

Every method choice that is our reading of the Co-DA paper (no official code was
published) is a field here, so each can be switched off or replaced; see
``docs/method.md``.
"""

from __future__ import annotations

import copy
import dataclasses
import difflib
import math
import os
import typing
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Optional

import yaml

from .errors import ConfigError, excerpt
from .io import MB, YAMLRefused, load_yaml, read_small_text
from .registry import ALIGNMENTS, DATASETS, FILTERS, METHODS, Registry

#: Settings are checked against the types the code gives them: integers go into int64 (numpy, torch),
#: floats into float32 tensors, so a value float32 cannot hold (or rounds to 0) is refused here.
INT64 = (-(2**63), 2**63 - 1)
FLOAT32_MAX = 3.4028234663852886e38
FLOAT32_TINY = 1.1754943508222875e-38  # the smallest normal float32
CONFIG_LIMIT = MB  # a config file is a few kB; a larger file is refused before it is parsed


def option(
    default: Any = None,
    *,
    help: str,
    choices: tuple | None = None,
    min: float | None = None,
    max: float | None = None,
    min_exclusive: bool = False,
    factory: Any = None,
):
    """A config key: a dataclass field carrying its help text and validation limits (``choices``: a
    tuple, or a :class:`~coda_edu.registry.Registry` whose names are the choices). A method or dataset
    module declares its own keys with it (see :func:`section`)."""
    meta = {"help": help, "choices": choices, "min": min, "max": max, "min_exclusive": min_exclusive}
    if factory is not None:
        return field(default_factory=factory, metadata=meta)
    return field(default=default, metadata=meta)


class _Section:
    """Base of a section that registered modules extend with their own keys (see :func:`section`)."""

    def __reduce__(self):  # pickled (a run in a spawned process) by base and values, not by the built class
        base = next(c for c in type(self).__mro__ if c in _REGISTRIES_OF)  # DataConfig or MethodConfig
        return (_rebuilt_section, (base, dict(self.__dict__)))


@dataclass
class DataConfig(_Section):
    """The ``data.*`` keys every dataset reads; a dataset module adds its own (``DatasetSpec.options``)."""

    name: str = option("synthetic", help="dataset (registered in coda_edu.registry.DATASETS)", choices=DATASETS)
    root: Optional[str] = option(None, help="dataset folder; default $CODA_EDU_DATA_DIR/<dataset folder>")
    image_size: list[int] = option(
        help="training size: [H, W] for 2D, [D, H, W] patch for 3D (empty = dataset default)", factory=list
    )
    labeled_patients: Optional[int] = option(
        4, help="labeled training patients (cases for LA, videos for CaDIS)", min=1
    )
    labeled_fraction: Optional[float] = option(
        None,
        help="alternative to labeled_patients: fraction of training patients",
        min=0.0,
        max=1.0,
        min_exclusive=True,
    )
    labeled_selection: str = option(
        "first", help="'first' N patients in list order, or a seeded 'random' choice", choices=("first", "random")
    )
    crop: Optional[float] = option(
        None,
        help="2D real data: keep this central fraction of each slice before resizing (e.g. 0.6 around the heart)",
        min=0.1,
        max=1.0,
    )


@dataclass
class ModelConfig:
    name: str = option(
        "auto", help="network; 'auto' = unet2d for 2D data, unet3d for 3D", choices=("auto", "unet2d", "unet3d")
    )
    base_width: int = option(
        16,
        help="channels of the first level; level k has base_width * 2**k (16: the literature layout "
        "16-32-64-128-256; at 8 finding a small class is a lottery of the initial draw, see docs/method.md)",
        min=1,
    )
    levels: int = option(0, help="resolution levels (0 = 5 for unet2d, 4 for unet3d)", min=0, max=7)
    dropout: bool = option(True, help="encoder dropout (0.05, 0.1, 0.2, 0.3, 0.5 from top to bottom)")
    upsampling: str = option("bilinear", help="decoder upsampling", choices=("bilinear", "transposed"))
    init_a: str = option("kaiming", help="weight initialisation of network A", choices=("kaiming", "xavier"))
    init_b: str = option("xavier", help="weight initialisation of network B", choices=("kaiming", "xavier"))
    head_prior: bool = option(
        True,
        help="start the output bias of both networks at the log of the labeled class frequencies (false = zero bias)",
    )
    init_scale: str = option(
        "matched",
        help="'matched': convolutions that feed a batch norm get the Xavier scale in both networks (equal "
        "learning speed); 'scheme': each scheme's own scale",
        choices=("matched", "scheme"),
    )


@dataclass
class MethodConfig(_Section):
    """The ``method.*`` keys every method reads; a method module adds its own (``MethodSpec.options``)."""

    name: str = option("coda", help="training method (registered in coda_edu.registry.METHODS)", choices=METHODS)
    alignment: Optional[str] = option(
        None,
        help="distribution alignment reading, registered in coda_edu.method.readings (None = method default: "
        "coda 'predictions', others 'none')",
        choices=ALIGNMENTS,
    )
    filter: Optional[str] = option(
        None,
        help="pseudo-label filter, registered in coda_edu.method.readings (None = method default: coda "
        "'over_expectation', others 'none')",
        choices=FILTERS,
    )
    supervised_loss: str = option(
        "ce_dice",
        help="supervised loss of each network: 'ce_dice' = (CE + soft Dice) / 2, 'ce' = cross-entropy alone "
        "(small classes end up under-counted by the argmax: configs/synthetic_minority.yaml)",
        choices=("ce_dice", "ce"),
    )
    lambda_max: float = option(1.0, help="maximum weight of the unsupervised loss", min=0.0)
    rampup: float = option(0.4, help="sigmoid ramp-up length as a fraction of train.iterations", min=0.0, max=1.0)


@dataclass
class OptimConfig:
    name: str = option("sgd", help="optimiser", choices=("sgd", "adam", "adamw"))
    lr: float = option(0.03, help="base learning rate", min=0.0, min_exclusive=True)
    momentum: float = option(0.9, help="SGD momentum", min=0.0, max=1.0)
    weight_decay: float = option(1e-4, help="weight decay", min=0.0)
    schedule: str = option("poly", help="learning-rate schedule", choices=("poly", "constant"))
    poly_power: float = option(0.9, help="power of the poly schedule lr * (1 - t/T)**power", min=0.0)
    fused: bool = option(
        False, help="one multi-tensor optimiser step: torch's fused=True on CUDA, foreach=True elsewhere (same update)"
    )


@dataclass
class AugmentConfig:
    flip: bool = option(True, help="random flips of the in-plane axes")
    rot90: bool = option(True, help="random in-plane rotations by multiples of 90 degrees")
    rotate_degrees: float = option(15.0, help="random in-plane rotation in [-r, r] degrees", min=0.0, max=180.0)
    scale: float = option(0.1, help="random zoom in [1 - s, 1 + s]", min=0.0, max=0.9)
    intensity: float = option(0.1, help="random brightness/contrast jitter strength", min=0.0, max=1.0)
    gamma: float = option(
        0.0, help="random gamma change of each image's intensities, log(gamma) in [-g, g] (0 = off)", min=0.0, max=1.0
    )


@dataclass
class TrainConfig:
    iterations: int = option(300, help="optimisation steps", min=1)
    batch_size: int = option(16, help="images per step, labeled + unlabeled", min=2)
    labeled_batch_size: int = option(8, help="labeled images per step", min=1)
    val_every: int = option(100, help="validate and refresh the 'last' checkpoint every N steps", min=1)
    log_every: int = option(10, help="write a metrics.jsonl line every N steps", min=1)
    device: str = option("auto", help="'auto' (CUDA, then MPS, then CPU), 'cpu', 'cuda', 'cuda:1', 'mps'")
    precision: str = option(
        "auto",
        help="'auto' = bf16/fp16 mixed precision on CUDA, fp32 elsewhere; 'fp64' = float64 networks and "
        "losses, for testing and debugging (exact comparisons, e.g. one process against several), not speed",
        choices=("auto", "fp32", "bf16", "fp16", "fp64"),
    )
    channels_last: Optional[bool] = option(None, help="channels-last memory format (None = on for CUDA)")
    compile: bool = option(False, help="torch.compile the networks (CUDA only, slow start)")
    fused_pair: bool = option(
        False,
        help="removed: A and B as one grouped network was measured slower than two (0.71x on an H200); "
        "only false is accepted, so run folders that name it still load",
    )
    threads: int = option(0, help="CPU threads for torch (0 = torch default)", min=0)
    augment: AugmentConfig = option(help="batched on-device augmentation", factory=AugmentConfig)


@dataclass
class EvalConfig:
    splits: list[str] = option(help="splits evaluated at the end", factory=lambda: ["val", "test"])
    select_model: str = option(
        "ensemble", help="model whose validation Dice picks the 'best' checkpoint", choices=("A", "B", "ensemble")
    )
    distances: bool = option(True, help="compute HD95 and ASD (MONAI); off for very large splits")
    postprocess: str = option(
        "none",
        help="'largest_component': keep the largest connected foreground component of each case and, inside it, "
        "of each class (validation and evaluation; for one organ such as the heart)",
        choices=("none", "largest_component"),
    )
    batch_size: int = option(32, help="slices (2D) or windows (3D) per inference batch", min=1)
    overlap: float = option(0.5, help="3D sliding-window overlap", min=0.0, max=0.95)


@dataclass
class Config:
    seed: int = option(
        0, help="seed of data sampling, augmentation and initialisation (0 .. 2**32 - 1)", min=0, max=2**32 - 1
    )
    data: DataConfig = option(help="dataset", factory=lambda: section(DataConfig)())
    model: ModelConfig = option(help="network", factory=ModelConfig)
    method: MethodConfig = option(help="semi-supervised method", factory=lambda: section(MethodConfig)())
    optim: OptimConfig = option(help="optimiser and schedule", factory=OptimConfig)
    train: TrainConfig = option(help="training loop", factory=TrainConfig)
    eval: EvalConfig = option(help="evaluation", factory=EvalConfig)

    # ------------------------------------------------------------------ helpers
    def to_dict(self) -> dict:
        """The tree as plain data (config.yaml, checkpoints, comparisons). A key declared by a module
        outside coda_edu is left out unless that module is this run's own method, reading, filter or
        dataset: a method registered in a notebook does not leave, in every other run's config.yaml,
        keys that another process (``coda-edu eval``, a resume) does not know."""
        mapping = dataclasses.asdict(self)
        for name in ("data", "method"):
            for key in _foreign_keys(getattr(self, name)):
                del mapping[name][key]
        return mapping

    def copy(self) -> Config:
        return copy.deepcopy(self)


# --------------------------------------------------------------------------- sections from the registries
_REGISTRIES_OF = {DataConfig: (DATASETS,), MethodConfig: (METHODS, ALIGNMENTS, FILTERS)}
_BUILT: dict[tuple, type] = {}
_DECLARED_BY: dict[type, dict[str, type]] = {}  # built section -> {key: the options class that declares it}


def section(base: type) -> type:
    """``base`` (:class:`DataConfig` or :class:`MethodConfig`) plus the keys that every registered
    dataset, or method, alignment reading and filter, declares in its module, as one flat section
    (``data.<key>``, ``method.<key>``: the keys of existing configs and run folders stay where they were).

    A module declares its keys as a dataclass of :func:`option` fields given as its spec's
    ``options``; several entries may share one such class (CPS and Co-DA do). Two classes may
    not declare the same key. The class is built once per set of registered entries.
    """
    declared: list[type] = []
    for registry in _REGISTRIES_OF[base]:
        for name in registry.names():
            spec = registry.get(name)
            # its own options, then those of the mixins refining its class (a method's options beyond the paper)
            for options in (spec.options, *registry.refinement_options(getattr(spec, "algorithm", None))):
                if options is not None and options not in declared:
                    declared.append(options)
    key = (base, tuple(declared))
    if key not in _BUILT:
        prefix = _REGISTRIES_OF[base][0].config_key.split(".")[0]  # "method" or "data"
        owner = {f.name: base.__name__ for f in dataclasses.fields(base)}
        declared_by: dict[str, type] = {}
        fields = []
        for options in declared:
            hints = typing.get_type_hints(options)
            where = f"{options.__module__}.{options.__qualname__}"
            for f in dataclasses.fields(options):
                if f.name in owner:
                    raise ConfigError(
                        f"config key '{prefix}.{f.name}' is declared twice: by {owner[f.name]} and by {where}"
                    )
                owner[f.name] = where
                declared_by[f.name] = options
                fields.append(
                    (
                        f.name,
                        hints[f.name],
                        field(default=f.default, default_factory=f.default_factory, metadata=f.metadata),
                    )
                )
        _BUILT[key] = dataclasses.make_dataclass(
            base.__name__, fields, bases=(base,), namespace={"__module__": base.__module__, "__doc__": base.__doc__}
        )
        _DECLARED_BY[_BUILT[key]] = declared_by
    return _BUILT[key]


def _own_options(obj: Any) -> set:
    """The options classes of the entries a section selects (its method, reading and filter, or its dataset)."""
    try:
        if isinstance(obj, MethodConfig):
            spec = METHODS.get(obj.name)
            reading = ALIGNMENTS.get(obj.alignment or spec.alignment)
            keep = FILTERS.get(obj.filter or spec.filter)
            return {spec.options, *METHODS.refinement_options(spec.algorithm), reading.options, keep.options}
        return {DATASETS.get(obj.name).options}
    except ConfigError:  # an unknown name: keep every key, validation will name the problem
        return set(_DECLARED_BY.get(type(obj), {}).values())


def _foreign_keys(obj: Any) -> list[str]:
    """Keys of ``obj``'s section declared outside coda_edu by an entry the section does not select."""
    declared = _DECLARED_BY.get(type(obj), {})
    foreign = {k: c for k, c in declared.items() if not c.__module__.startswith("coda_edu.")}
    if not foreign:
        return []
    own = _own_options(obj)
    return [key for key, options in foreign.items() if options not in own]


def _rebuilt_section(base: type, values: dict) -> Any:
    obj = section(base)()
    obj.__dict__.update(values)
    return obj


# --------------------------------------------------------------------------- typing
_HINTS: dict[type, dict[str, Any]] = {}


def _hints(cls: type) -> dict[str, Any]:
    if cls not in _HINTS:
        _HINTS[cls] = typing.get_type_hints(cls)
    return _HINTS[cls]


def _describe(tp: Any) -> str:
    origin = typing.get_origin(tp)
    if origin is typing.Union:
        args = [a for a in typing.get_args(tp) if a is not type(None)]
        return f"{_describe(args[0])} or null"
    if origin is list:
        return f"list of {_describe(typing.get_args(tp)[0])}"
    return getattr(tp, "__name__", str(tp))


def _coerce(value: Any, tp: Any, key: str) -> Any:
    """Check ``value`` against the annotation ``tp``; convert strings where unambiguous."""
    origin = typing.get_origin(tp)
    if origin is typing.Union:
        args = [a for a in typing.get_args(tp) if a is not type(None)]
        if value is None or (isinstance(value, str) and value in ("null", "Null", "NULL", "None", "~")):
            return None
        return _coerce(value, args[0], key)
    if origin is list:
        (item_tp,) = typing.get_args(tp)
        if isinstance(value, str):
            value = (
                _yaml_value(value, key) if value.strip().startswith("[") else [v for v in value.split(",") if v.strip()]
            )
        if isinstance(value, tuple):
            value = list(value)
        if not isinstance(value, list):
            raise ConfigError(f"config key '{key}': expected {_describe(tp)}, got {excerpt(value)}")
        return [_coerce(v, item_tp, f"{key}[{i}]") for i, v in enumerate(value)]
    if tp is bool:
        if isinstance(value, bool):
            return value
        if isinstance(value, str) and value.lower() in ("true", "false", "yes", "no", "on", "off"):
            return value.lower() in ("true", "yes", "on")
        raise ConfigError(f"config key '{key}': expected true or false, got {excerpt(value)}")
    if tp is int:
        number = None
        if isinstance(value, int) and not isinstance(value, bool):
            number = value
        elif isinstance(value, float) and value.is_integer():
            number = int(value)
        elif isinstance(value, str):
            try:
                number = int(value.replace("_", ""))
            except ValueError:
                pass
        if number is None:
            raise ConfigError(f"config key '{key}': expected an integer, got {excerpt(value)}")
        if not INT64[0] <= number <= INT64[1]:
            raise ConfigError(f"config key '{key}': {excerpt(number)} is out of range (beyond 64-bit integers)")
        return number
    if tp is float:
        number = None
        if isinstance(value, (int, float, str)) and not isinstance(value, bool):
            try:
                number = float(value)
            except ValueError:
                pass
            except OverflowError:  # an integer beyond float64
                number = math.inf
        if number is None:
            raise ConfigError(f"config key '{key}': expected a number, got {excerpt(value)}")
        if not math.isfinite(number):
            raise ConfigError(f"config key '{key}': expected a finite number, got {excerpt(value)}")
        if abs(number) > FLOAT32_MAX:
            raise ConfigError(
                f"config key '{key}': {number!r} is out of float32's range (the type training uses: |x| <= 3.4e+38)"
            )
        if 0 < abs(number) < FLOAT32_TINY:
            raise ConfigError(
                f"config key '{key}': {number!r} is too small for float32 (the type training uses: a nonzero "
                f"value must be >= 1.2e-38 in magnitude)"
            )
        return number
    if tp is str:
        if isinstance(value, str):
            return value
        if isinstance(value, (int, float)) and not isinstance(value, bool):
            return str(value)
        raise ConfigError(f"config key '{key}': expected a string, got {excerpt(value)}")
    raise TypeError(f"unsupported config type {tp!r} for {key}")  # programming error


def _check_limits(value: Any, f: dataclasses.Field, key: str) -> None:
    meta = f.metadata
    choices = meta.get("choices")
    if isinstance(choices, Registry):
        if value is not None and value not in choices:  # None: the key's type allows null (the method default)
            choices.get(value)  # the one-line error naming the registered choices
        return
    if choices is not None and value not in choices:
        shown = ", ".join(repr(c) if isinstance(c, str) else str(c) for c in choices if c is not None)
        hint = ""
        if isinstance(value, str) and len(value) <= 100:
            close = difflib.get_close_matches(value, [c for c in choices if isinstance(c, str)], n=1)
            hint = f" (did you mean '{close[0]}'?)" if close else ""
        raise ConfigError(f"config key '{key}': {excerpt(value)} is not one of {shown}{hint}")
    values = value if isinstance(value, list) else [value]
    for v in values:
        if v is None or isinstance(v, (str, bool)):
            continue
        lo, hi = meta.get("min"), meta.get("max")
        if lo is not None and (v < lo or (meta.get("min_exclusive") and v == lo)):
            op = ">" if meta.get("min_exclusive") else ">="
            raise ConfigError(f"config key '{key}': {excerpt(v)} is out of range (must be {op} {lo})")
        if hi is not None and v > hi:
            raise ConfigError(f"config key '{key}': {excerpt(v)} is out of range (must be <= {hi})")


def _known_keys(obj: Any, prefix: str = "") -> list[str]:
    keys = []
    for f in dataclasses.fields(obj):
        value = getattr(obj, f.name)
        keys.append(prefix + f.name)
        if dataclasses.is_dataclass(value):
            keys.extend(_known_keys(value, prefix + f.name + "."))
    return keys


def _unknown_key(key: str) -> ConfigError:
    close = difflib.get_close_matches(key, _known_keys(Config()), n=1, cutoff=0.6) if len(key) <= 100 else []
    hint = f" (did you mean '{close[0]}'?)" if close else ""
    return ConfigError(f"unknown config key {excerpt(key)}{hint}")


def _apply_mapping(obj: Any, mapping: dict, prefix: str) -> None:
    if not isinstance(mapping, dict):
        raise ConfigError(
            f"config key '{prefix.rstrip('.') or '<top>'}': expected a mapping of its keys, got {excerpt(mapping)}"
        )
    fields = {f.name: f for f in dataclasses.fields(obj)}
    for name, value in mapping.items():
        key = f"{prefix}{name}"
        if name not in fields:
            raise _unknown_key(key)
        tp = _hints(type(obj))[name]
        if dataclasses.is_dataclass(tp):
            _apply_mapping(getattr(obj, name), value if value is not None else {}, key + ".")
        else:
            setattr(obj, name, _coerce(value, tp, key))


def set_value(cfg: Config, key: str, value: Any) -> None:
    """Set a dotted key (``"method.alpha"``) with type checking."""
    parts = key.split(".")
    node: Any = cfg
    for i, part in enumerate(parts):
        fields = {f.name: f for f in dataclasses.fields(node)}
        if part not in fields:
            raise _unknown_key(key)
        tp = _hints(type(node))[part]
        if i == len(parts) - 1:
            if dataclasses.is_dataclass(tp):
                if isinstance(value, str):
                    value = _yaml_value(value, key) if value.strip() else value
                if not isinstance(value, dict):  # '--set train=0' must not pass as an empty section
                    raise ConfigError(
                        f"config key '{key}': expected a mapping of its keys, e.g. {key}={{...}} or "
                        f"{key}.<name>=VALUE, got {excerpt(value)}"
                    )
                _apply_mapping(getattr(node, part), value, key + ".")
            else:
                setattr(node, part, _coerce(value, tp, key))
        else:
            if not dataclasses.is_dataclass(tp):
                raise _unknown_key(key)
            node = getattr(node, part)


def parse_override(text: str) -> tuple[str, Any]:
    """Split ``"a.b=value"``; the value is read as YAML (``0.5``, ``true``, ``[64, 64]``)."""
    if "=" not in text:
        raise ConfigError(f"override {excerpt(text)} must look like KEY=VALUE, e.g. method.alpha=0.5")
    key, raw = text.split("=", 1)
    key = key.strip()
    if not key:
        raise ConfigError(f"override {excerpt(text)} has an empty key")
    try:
        value = load_yaml(raw) if raw.strip() else ""
    except YAMLRefused as exc:
        raise ConfigError(f"config key {excerpt(key)}: {exc.problem}") from None
    except yaml.YAMLError:
        value = raw
    return key, value


def _yaml_value(text: str, key: str) -> Any:
    """A ``--set`` value that is itself YAML (a list, a section), with a one-line error."""
    try:
        return load_yaml(text)
    except yaml.YAMLError as exc:
        raise ConfigError(f"config key '{key}': not valid YAML ({getattr(exc, 'problem', None) or exc})") from None


def from_dict(mapping: dict | None) -> Config:
    cfg = Config()
    _apply_mapping(cfg, mapping or {}, "")
    validate(cfg)
    return cfg


def add_config_options(parser, config_help: str, set_help: str = "override one config key (repeatable)") -> None:
    """The command-line options every command with a config has: ``--config FILE`` and repeatable
    ``--set KEY=VALUE`` (into ``args.overrides``, read by :func:`load_config`)."""
    parser.add_argument("--config", metavar="FILE", help=config_help)
    parser.add_argument("--set", metavar="KEY=VALUE", action="append", default=[], dest="overrides", help=set_help)


def load_config(path: str | os.PathLike | None = None, overrides: list[str] | None = None) -> Config:
    """Defaults <- YAML file <- ``KEY=VALUE`` overrides, then validated."""
    cfg = Config()
    if path is not None:
        path = Path(path)
        if not path.is_file():
            raise ConfigError(f"config file '{path}' does not exist")
        text = read_small_text(path, what="config file", limit=CONFIG_LIMIT, error=ConfigError)
        try:
            mapping = load_yaml(text) or {}
        except yaml.YAMLError as exc:
            mark = getattr(exc, "problem_mark", None)
            where = f" line {mark.line + 1}" if mark is not None else ""
            problem = getattr(exc, "problem", None) or "invalid YAML"
            raise ConfigError(f"config file '{path}'{where}: {problem}") from None
        try:
            _apply_mapping(cfg, mapping, "")
        except ConfigError as exc:
            raise ConfigError(f"config file '{path}': {exc}") from None
    for text in overrides or []:
        key, value = parse_override(text)
        set_value(cfg, key, value)
    validate(cfg)
    return cfg


def _validate_fields(obj: Any, prefix: str) -> None:
    for f in dataclasses.fields(obj):
        value = getattr(obj, f.name)
        key = prefix + f.name
        if dataclasses.is_dataclass(value):
            _validate_fields(value, key + ".")
        else:
            _check_limits(value, f, key)


def validate(cfg: Config) -> Config:
    """Field limits plus the rules that involve several fields."""
    _validate_fields(cfg, "")
    t = cfg.train
    if t.labeled_batch_size > t.batch_size:
        raise ConfigError(
            f"config key 'train.labeled_batch_size': {t.labeled_batch_size} is larger than "
            f"train.batch_size ({t.batch_size})"
        )
    if METHODS.get(cfg.method.name).uses_unlabeled and t.labeled_batch_size >= t.batch_size:
        raise ConfigError(
            f"config key 'train.labeled_batch_size': method '{cfg.method.name}' needs unlabeled images, "
            f"so it must be smaller than train.batch_size ({t.batch_size})"
        )
    if cfg.data.image_size:
        want = 3 if spatial_dims(cfg) == 3 else 2
        if len(cfg.data.image_size) != want:
            raise ConfigError(
                f"config key 'data.image_size': dataset '{cfg.data.name}' needs {want} sizes, "
                f"got {excerpt(cfg.data.image_size)}"
            )
        if any(s < 8 for s in cfg.data.image_size):
            raise ConfigError(f"config key 'data.image_size': sizes must be >= 8, got {excerpt(cfg.data.image_size)}")
    if not cfg.eval.splits:
        raise ConfigError(
            "config key 'eval.splits': is empty; the final evaluation needs at least one of 'val', 'test'"
        )
    for split in cfg.eval.splits:
        if split not in ("val", "test"):
            raise ConfigError(f"config key 'eval.splits': {excerpt(split)} is not one of 'val', 'test'")
    if cfg.model.name == "unet2d" and spatial_dims(cfg) == 3 or cfg.model.name == "unet3d" and spatial_dims(cfg) == 2:
        raise ConfigError(
            f"config key 'model.name': {cfg.model.name} does not fit the {spatial_dims(cfg)}D dataset '{cfg.data.name}'"
        )
    if t.fused_pair:
        raise ConfigError(
            "config key 'train.fused_pair': the fused pair was removed (it was slower than two networks); "
            "leave it out or set it to false"
        )
    dataset = DATASETS.get(cfg.data.name)
    if dataset.check_config is not None:
        dataset.check_config(cfg)
    dev = t.device
    if not (dev in ("auto", "cpu", "mps", "cuda") or (dev.startswith("cuda:") and dev[5:].isdigit())):
        raise ConfigError(
            f"config key 'train.device': {excerpt(dev)} is not one of 'auto', 'cpu', 'cuda', 'cuda:N', 'mps'"
        )
    return cfg


# --------------------------------------------------------------------------- resolving
def spatial_dims(cfg: Config) -> int:
    """2 or 3: what the network of ``cfg``'s dataset sees (from its :class:`~coda_edu.registry.DatasetSpec`)."""
    return DATASETS.get(cfg.data.name).spatial_dims


def resolve(cfg: Config) -> Config:
    """Fill every 'auto'/None that has a method or dataset default (saved as config.yaml).

    The method defaults of ``method.alignment``/``method.filter`` are declared by each method's
    :class:`~coda_edu.registry.MethodSpec` (see :mod:`coda_edu.method.base`).
    """
    cfg = cfg.copy()
    method = METHODS.get(cfg.method.name)
    if cfg.method.alignment is None:
        cfg.method.alignment = method.alignment
    if cfg.method.filter is None:
        cfg.method.filter = method.filter
    if cfg.model.name == "auto":
        cfg.model.name = "unet3d" if spatial_dims(cfg) == 3 else "unet2d"
    if cfg.model.levels == 0:
        cfg.model.levels = 4 if cfg.model.name == "unet3d" else 5
    if not method.pseudo_labels and (cfg.method.alignment != "none" or cfg.method.filter != "none"):
        raise ConfigError(
            f"config key 'method.alignment'/'method.filter': method '{cfg.method.name}' makes no pseudo-labels, "
            "so alignment and filter must be 'none'"
        )
    return validate(cfg)


def preset_path(name: str) -> Path:
    """``configs/<name>`` of the repository checkout (the presets ship with the repository)."""
    path = Path(__file__).resolve().parents[1] / "configs" / name
    if not path.is_file():
        raise ConfigError(f"config preset '{name}' not found at '{path}'")
    return path


def save_config(cfg: Config, path: str | os.PathLike) -> None:
    from .io import atomic_write_text

    atomic_write_text(Path(path), yaml.safe_dump(cfg.to_dict(), sort_keys=False))


def describe_keys() -> list[tuple[str, str, Any]]:
    """(key, help, default) for every leaf key: used by ``coda-edu config --help-keys`` and the docs."""
    rows = []

    def walk(obj: Any, prefix: str) -> None:
        for f in dataclasses.fields(obj):
            value = getattr(obj, f.name)
            if dataclasses.is_dataclass(value):
                walk(value, prefix + f.name + ".")
            else:
                rows.append((prefix + f.name, f.metadata.get("help", ""), value))

    walk(Config(), "")
    return rows
