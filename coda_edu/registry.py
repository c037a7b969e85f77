"""The registries of training methods and datasets.

A method or a dataset is one module that registers a *spec*: a small, frozen record of
its properties that the rest of the package reads instead of testing names. Nothing
outside that module compares ``method.name`` or ``data.name`` with a literal.

- :data:`METHODS`: :class:`MethodSpec` (uses unlabeled data? makes pseudo-labels?
  default alignment and filter, does network B get gradients, the ``method.*`` keys it
  reads and the ones it declares itself) and the :class:`~coda_edu.method.base.Algorithm` class that trains it.
- :data:`ALIGNMENTS`, :data:`FILTERS`: :class:`ReadingSpec` and the function of each
  alignment reading and pseudo-label filter (:mod:`coda_edu.method.readings`).
- :data:`DATASETS`: :class:`DatasetSpec` (spatial dims, folder under
  ``$CODA_EDU_DATA_DIR``, evaluation mode, presets in ``configs/``, defaults for
  ``coda-edu data check``, a config check, the ``data.*`` keys it declares) and the function that loads it.

The built-in entries are registered by the modules listed in each registry's
``builtins``, imported the first time a name is looked up (this module itself imports
no torch, so :mod:`coda_edu.config` stays light at import time). A new method or
dataset outside the package registers itself when its module is imported::

    from coda_edu.registry import METHODS, MethodSpec

    @METHODS.register(MethodSpec("toy", summary="...", uses_unlabeled=False, pseudo_labels=False))
    class Toy(Algorithm): ...

after which ``method.name: toy`` is a valid config and ``coda_edu.train.train`` runs it.
A spec's ``options`` (a dataclass of :func:`coda_edu.config.option` fields) adds the
entry's own keys, with defaults, limits and help, to the flat ``method.*`` / ``data.*``
section (:func:`coda_edu.config.section`): ``coda-edu config --keys`` lists them and
validation checks them like any other key.
An installed package makes it available to every command (``coda-edu train --set
method.name=toy``) without an import, by naming the module in an entry point of the group
``coda_edu.methods`` (datasets: ``coda_edu.datasets``), the entry point's name being the
registered name; in its ``pyproject.toml``::

    [project.entry-points."coda_edu.methods"]
    toy = "my_package.toy_method"

The entry points are imported with the built-ins; one that fails to import, or registers
no entry of its name, is skipped with a :class:`PluginWarning` naming it.
"""

from __future__ import annotations

import dataclasses
import difflib
import functools
import importlib
import warnings
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, Generic, Optional, TypeVar

from .errors import ConfigError, excerpt


@dataclass(frozen=True)
class MethodSpec:
    """What the trainer and the config need to know about a method (``method.name``)."""

    name: str
    summary: str
    uses_unlabeled: bool = True  # draws unlabeled images (so train.labeled_batch_size < train.batch_size)
    pseudo_labels: bool = True  # makes pseudo-labels, so method.alignment/method.filter apply
    alignment: str = "none"  # method.alignment when the config leaves it null
    filter: str = "none"  # method.filter when the config leaves it null
    trains_b: bool = True  # network B gets gradients (mean teacher: no, B is an EMA of A)
    config_keys: tuple[str, ...] = ()  # the method.* keys it reads (the shared ones and its own; all: keys())
    options: Any = None  # a dataclass of config.option() fields: its own method.* keys, defaults, limits, help
    color: str = "#666666"  # its colour in every figure of the series
    variant_colors: tuple[str, ...] = ()  # shades for its variants ("coda, argmax share"): by the label's hash
    algorithm: Any = None  # the Algorithm subclass (set by METHODS.register used as a decorator)

    def keys(self) -> tuple[str, ...]:
        """The ``method.*`` keys it reads: ``config_keys`` and the keys of the mixins that
        :meth:`Registry.refine` registered for its class (:mod:`coda_edu.beyond`)."""
        extra = [f.name for options in METHODS.refinement_options(self.algorithm) for f in dataclasses.fields(options)]
        return self.config_keys + tuple(extra)

    def build(self, cfg, num_classes: int, ignore_index: Optional[int]):
        """The algorithm object of a run (``cfg`` resolved): the registered class, with the mixins
        that :meth:`Registry.refine` registered for it and that ``cfg`` turns on in front."""
        if self.algorithm is None:
            raise TypeError(f"method '{self.name}' was registered without an algorithm class")
        return METHODS.refined(self.algorithm, cfg)(cfg, num_classes, ignore_index)


@dataclass(frozen=True)
class DatasetSpec:
    """What the trainer, the config and ``coda-edu data check`` need to know about a dataset (``data.name``)."""

    name: str
    summary: str
    spatial_dims: int  # 2: the network sees slices/frames; 3: volumes
    eval_mode: str  # "slices", "frames" or "volume" (see SegmentationData)
    folder: Optional[str] = None  # folder under $CODA_EDU_DATA_DIR (None: generated in memory)
    presets: dict[str, str] = field(default_factory=dict)  # preset name -> file in configs/
    quick: tuple[str, ...] = ()  # KEY=VALUE that shrink a run of this dataset to seconds (the notebooks' quick mode)
    check_defaults: tuple[str, ...] = ()  # KEY=VALUE added by `coda-edu data check` unless the key is set
    val_hint: str = ""  # appended to the "validation split is empty" error
    check_config: Optional[Callable[[Any], None]] = None  # extra config rules (raise ConfigError)
    options: Any = None  # a dataclass of config.option() fields: its own data.* keys, defaults, limits, help
    loader: Optional[Callable[[Any], Any]] = None  # cfg -> SegmentationData (set by register)

    def load(self, cfg):
        if self.loader is None:
            raise TypeError(f"dataset '{self.name}' was registered without a loader")
        return self.loader(cfg)


@dataclass(frozen=True)
class ReadingSpec:
    """An alignment reading (``method.alignment``) or a pseudo-label filter (``method.filter``);
    see :mod:`coda_edu.method.readings` for the function each attaches."""

    name: str
    summary: str
    ramped: bool = False  # alignment: alpha follows the unsupervised ramp-up (method.alignment_rampup)
    labeled_target: str = "predictions"  # alignment: pi_l tracks the labeled "predictions" or the "labels"
    hard_shares: bool = False  # alignment: reads the EMA argmax shares s_u of the unlabeled predictions
    options: Any = None  # a dataclass of config.option() fields: its own method.* keys
    function: Any = None  # set by register used as a decorator


S = TypeVar("S", MethodSpec, DatasetSpec, ReadingSpec)


class PluginWarning(UserWarning):
    """An installed method or dataset (an entry point) could not be loaded; the others still work."""


class Registry(Generic[S]):
    """Name -> spec. ``register(spec)`` adds an entry; used as a decorator it also attaches
    the decorated class or function (``algorithm`` of a method, ``loader`` of a dataset)."""

    def __init__(self, kind: str, config_key: str, attach: str, builtins: tuple[str, ...], entry_points: str):
        self.kind = kind  # "method" or "dataset", for messages
        self.config_key = config_key  # "method.name" or "data.name"
        self.attach = attach  # spec field that the decorator fills
        self.builtins = builtins  # modules that register the built-in entries
        self.entry_points = entry_points  # the entry-point group of installed packages' entries
        self._entries: dict[str, S] = {}
        self._refinements: dict[str, tuple[type, Callable[[Any], bool], type, Any]] = {}
        self._loaded = False

    def _load_builtins(self) -> None:
        if not self._loaded:
            self._loaded = True
            for module in self.builtins:
                importlib.import_module(module)
            self._load_entry_points()

    def _load_entry_points(self) -> None:
        """Import every module named in the entry-point group; each must register the entry of its name."""
        from importlib.metadata import entry_points

        for point in entry_points(group=self.entry_points):
            where = f"{self.kind} '{point.name}' (entry point {point.value!r} of group {self.entry_points})"
            try:
                point.load()
            except Exception as exc:  # a broken plugin must not break the built-ins
                warnings.warn(
                    f"{where} skipped: {type(exc).__name__}: {excerpt(str(exc))}", PluginWarning, stacklevel=3
                )
                continue
            if point.name not in self._entries:
                warnings.warn(f"{where} skipped: it registers no {self.kind} of that name", PluginWarning, stacklevel=3)

    def register(self, spec: S):
        """A decorator that registers ``spec`` with the decorated class or function attached."""

        def attach(obj):
            self._put(dataclasses.replace(spec, **{self.attach: obj}))
            return obj

        return attach

    def _put(self, spec: S) -> None:
        old = self._entries.get(spec.name)
        if old is not None:
            # Re-importing the same module (a reloaded notebook) replaces its entry; two modules may not share a name.
            owner = getattr(getattr(old, self.attach), "__module__", "?")
            if owner != getattr(getattr(spec, self.attach), "__module__", "?"):
                raise ValueError(f"{self.kind} '{spec.name}' is already registered by {owner}")
        self._entries[spec.name] = spec

    def refine(self, base: type, when: Callable[[Any], bool], options: Any = None):
        """A decorator for a mixin class that :meth:`refined` puts in front of every registered class
        derived from ``base`` whenever ``when(cfg)`` holds: options beyond a method that change its
        step live in their own module (:mod:`coda_edu.beyond`), not in the method's. ``options``
        (a dataclass of :func:`coda_edu.config.option` fields) declares the mixin's own keys, which
        then belong to every method it refines (:meth:`MethodSpec.keys`)."""

        def attach(mixin: type) -> type:
            self._refinements[f"{mixin.__module__}.{mixin.__qualname__}"] = (base, when, mixin, options)
            return mixin

        return attach

    def refined(self, cls: type, cfg) -> type:
        """``cls`` with the registered mixins that apply to it under ``cfg`` (``cls`` itself if none does)."""
        self._load_builtins()
        for base, when, mixin, _ in self._refinements.values():
            if issubclass(cls, base) and not issubclass(cls, mixin) and when(cfg):
                cls = _with_mixin(mixin, cls)
        return cls

    def refinement_options(self, cls: Any) -> list:
        """The options classes of the mixins registered for ``cls`` and its bases (none for ``None``)."""
        self._load_builtins()
        return [
            options
            for base, _, _, options in self._refinements.values()
            if options is not None and isinstance(cls, type) and issubclass(cls, base)
        ]

    def names(self) -> tuple[str, ...]:
        self._load_builtins()
        return tuple(self._entries)

    def __contains__(self, name: object) -> bool:
        self._load_builtins()
        return name in self._entries

    def get(self, name: str) -> S:
        """The spec of ``name``; a one-line :class:`ConfigError` naming the choices otherwise."""
        self._load_builtins()
        try:
            return self._entries[name]
        except (KeyError, TypeError):
            shown = ", ".join(repr(n) for n in self._entries)
            close = (
                difflib.get_close_matches(name, list(self._entries), n=1)
                if isinstance(name, str) and len(name) <= 100
                else []
            )
            hint = f" (did you mean '{close[0]}'?)" if close else ""
            raise ConfigError(f"config key '{self.config_key}': {excerpt(name)} is not one of {shown}{hint}") from None


@functools.cache
def _with_mixin(mixin: type, cls: type) -> type:
    """The class ``mixin`` + ``cls`` (one per pair, so its objects share one type)."""
    return type(f"{mixin.__name__}{cls.__name__}", (mixin, cls), {"__module__": mixin.__module__})


METHODS: Registry[MethodSpec] = Registry(
    "method",
    "method.name",
    "algorithm",
    builtins=(
        "coda_edu.method.supervised",
        "coda_edu.method.coda",
        "coda_edu.method.cps",
        "coda_edu.method.mean_teacher",
        "coda_edu.beyond.two_view",
        "coda_edu.beyond.pseudo_postprocess",
        "coda_edu.beyond.oece_dice",
    ),
    entry_points="coda_edu.methods",
)
ALIGNMENTS: Registry[ReadingSpec] = Registry(
    "alignment reading",
    "method.alignment",
    "function",
    builtins=("coda_edu.method.readings", "coda_edu.beyond.argmax_readings"),
    entry_points="coda_edu.alignments",
)
FILTERS: Registry[ReadingSpec] = Registry(
    "pseudo-label filter",
    "method.filter",
    "function",
    builtins=("coda_edu.method.readings",),
    entry_points="coda_edu.filters",
)
DATASETS: Registry[DatasetSpec] = Registry(
    "dataset",
    "data.name",
    "loader",
    builtins=("coda_edu.data.synthetic", "coda_edu.data.acdc", "coda_edu.data.la", "coda_edu.data.cadis"),
    entry_points="coda_edu.datasets",
)
