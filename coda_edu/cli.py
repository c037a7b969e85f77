"""The ``coda-edu`` command.

    coda-edu train [--config FILE] [--set KEY=VALUE ...] [--out DIR] [--resume]
    coda-edu eval --run DIR [--device DEVICE] [--no-progress]
    coda-edu config [--config FILE] [--set KEY=VALUE ...] [--keys]

The commands below come from the ``coda_course`` package (the course and lab tools), which
registers them as entry points of group ``coda_edu.commands``:

    coda-edu notebooks run|sweep|sync|check|strip|setup ...
    coda-edu data check --dataset NAME [--root DIR] [--config FILE] [--set KEY=VALUE ...]
    coda-edu data pack NAME --out FILE | coda-edu data unpack FILE --out DIR
    coda-edu protocol [--config FILE] [--methods coda,cps,supervised] [--budget-minutes M] [--out DIR]
    coda-edu course pack [--group NAME ...] [--runs-from DIR] | coda-edu course check

Problems the user can fix are printed as one line, ``coda-edu: error: ...``, with exit
status 2 and no traceback.
"""

from __future__ import annotations

import argparse
import errno
import sys
from pathlib import Path

from .errors import CodaEduError, excerpt


class _Parser(argparse.ArgumentParser):
    """argparse with one-line errors and exit status 2."""

    def error(self, message: str):  # noqa: D401
        sys.stderr.write(f"{self.prog}: error: {message} (see {self.prog} --help)\n")
        raise SystemExit(2)


def _add_config_args(p: argparse.ArgumentParser) -> None:
    from .config import add_config_options

    add_config_options(
        p,
        "YAML config (defaults: the synthetic Co-DA experiment)",
        "override one config key, e.g. --set method.name=cps --set train.iterations=300 (repeatable)",
    )


def build_parser() -> argparse.ArgumentParser:
    parser = _Parser(prog="coda-edu", description="Co-DA and baselines for semi-supervised medical image segmentation.")
    parser.add_argument("--version", action="version", version=f"%(prog)s {__import__('coda_edu').__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", parser_class=_Parser)

    p = sub.add_parser("train", help="train a run (default: Co-DA on the embedded synthetic data)")
    _add_config_args(p)
    p.add_argument("--out", metavar="DIR", help="run folder (default: runs/<time>-<data>-<method>-seed<seed>)")
    p.add_argument("--resume", action="store_true", help="continue the run in --out from its last checkpoint")
    p.add_argument("--no-eval", action="store_true", help="skip the final evaluation")
    p.add_argument("--no-progress", action="store_true", help="no progress bar")

    p = sub.add_parser("eval", help="(re-)evaluate the last and best checkpoints of a run folder")
    p.add_argument("--run", metavar="DIR", required=True, help="run folder written by 'coda-edu train'")
    p.add_argument("--device", help="override train.device for evaluation (e.g. cpu)")
    p.add_argument("--no-progress", action="store_true", help="no progress bar")

    p = sub.add_parser("config", help="print the resolved config, or list every key with --keys")
    _add_config_args(p)
    p.add_argument("--keys", action="store_true", help="list every config key with its default and meaning")

    _add_installed_commands(sub)
    return parser


COMMAND_ENTRY_POINTS = "coda_edu.commands"  # installed packages add subcommands here (coda_course: notebooks, ...)


def _add_installed_commands(sub) -> None:
    """Each entry point of group ``coda_edu.commands`` is a function ``add_cli(sub)`` that adds its
    subcommand(s) with a ``handler``; coda_course adds ``notebooks``, ``data``, ``protocol`` and ``course``.
    The library imports nothing of theirs: a command appears when its package is installed."""
    from importlib.metadata import entry_points

    for point in sorted(entry_points(group=COMMAND_ENTRY_POINTS), key=lambda p: p.name):
        try:
            add_cli = point.load()
        except Exception as exc:  # a broken add-on must not take the library's own commands down
            reason = f"{type(exc).__name__}: {excerpt(str(exc))}"  # one line, as the registries' plugin warnings
            sys.stderr.write(f"coda-edu: warning: command '{point.name}' ({point.value}) not loaded: {reason}\n")
            continue
        add_cli(sub)


def _check_config_path(path) -> None:
    """``--config`` must name a file (load_config reports a missing one)."""
    if path is not None and Path(path).is_dir():
        raise CodaEduError(f"config file '{path}' is a folder, not a file")


def cmd_train(args) -> int:
    from .config import load_config

    _check_config_path(args.config)
    if args.resume:
        if not args.out:
            raise CodaEduError("--resume needs --out DIR, the run folder to continue")
        if args.config or args.overrides:
            raise CodaEduError("--resume continues a run with its own config.yaml; do not pass --config or --set")
        cfg = None  # the run's own config.yaml
    else:
        cfg = load_config(args.config, args.overrides)
    from .train import train  # imports torch: after the config is known to be valid

    train(cfg, args.out, resume=args.resume, progress=not args.no_progress, evaluate=not args.no_eval)
    return 0


def cmd_eval(args) -> int:
    from .report import evaluate_run_dir
    from .run_folder import RunFolder

    run = RunFolder(args.run)
    if run.path.exists() and not run.path.is_dir():
        raise CodaEduError(f"--run '{run.path}' is a file, not a run folder")
    run.read_config()  # a missing or damaged config.yaml is one line, before anything is loaded
    with run.lock("eval"):  # no train/resume/eval writes the folder meanwhile
        evaluate_run_dir(run.path, device=args.device, progress=not args.no_progress)
    return 0


def cmd_config(args) -> int:
    import yaml

    from .config import describe_keys, load_config, resolve

    _check_config_path(args.config)
    if args.keys:
        for key, help_text, default in describe_keys():
            print(f"{key:<36} {default!r:<22} {help_text}")
        return 0
    cfg = resolve(load_config(args.config, args.overrides))
    print(yaml.safe_dump(cfg.to_dict(), sort_keys=False), end="")
    return 0


_OOM = (
    "out of memory (lower train.batch_size, data.image_size, data.synthetic.resolution, model.base_width "
    "or eval.batch_size, or use a machine with more memory)"
)

COMMANDS = {"train": cmd_train, "eval": cmd_eval, "config": cmd_config}


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    if args.command is None:
        parser.print_help()
        return 2
    handler = COMMANDS.get(args.command) or getattr(args, "handler", None)
    if handler is None:
        parser.print_help()
        return 2
    try:
        return int(handler(args) or 0)
    except CodaEduError as exc:
        sys.stderr.write(f"coda-edu: error: {exc}\n")
        return exc.exit_code
    except MemoryError:
        sys.stderr.write(f"coda-edu: error: {_OOM}\n")
        return 2
    except RuntimeError as exc:
        torch = sys.modules.get("torch")
        oom = getattr(torch, "OutOfMemoryError", ()) if torch is not None else ()
        if isinstance(exc, oom) or "can't allocate memory" in str(exc):
            sys.stderr.write(f"coda-edu: error: {_OOM}\n")
            return 2
        raise
    except OSError as exc:
        if exc.errno == errno.ENOSPC:
            where = f" writing '{exc.filename}'" if exc.filename else ""
            sys.stderr.write(f"coda-edu: error: the disk is full{where}; free some space{_next_step(args)}\n")
            return 2
        if isinstance(exc, PermissionError):
            where = f" '{exc.filename}'" if exc.filename else ""
            sys.stderr.write(f"coda-edu: error: permission denied{where} ({exc.strerror or exc})\n")
            return 2
        raise
    except KeyboardInterrupt:
        sys.stderr.write(f"coda-edu: interrupted{_next_step(args, interrupted=True)}\n")
        return 130


def _next_step(args, interrupted: bool = False) -> str:
    """How to go on after a stop: ``--resume`` only for a training run that has a last checkpoint."""
    from .run_folder import RunFolder

    out = getattr(args, "out", None) if args.command == "train" else None
    if out and RunFolder(out).checkpoint_path("last").is_file():
        return f"; continue with: coda-edu train --resume --out {out}"
    if out:
        return f"; no checkpoint was written yet: start it again in place with coda-edu train --out {out}"
    return "" if interrupted else ", then run the command again"


if __name__ == "__main__":  # pragma: no cover
    raise SystemExit(main())
