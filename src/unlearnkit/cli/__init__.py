"""The ``unlearnkit`` command line: thin commands over the Python API.

Each module listed in :data:`COMMAND_MODULES` defines ``add_commands(subparsers)``, adding its sub-commands
with ``set_defaults(func=handler)``; a handler takes the parsed arguments and returns an exit code. Heavy
optional dependencies are imported inside handlers, never at start-up.
"""

from __future__ import annotations

import argparse
import importlib
import sys
from collections.abc import Sequence

from ..errors import UnlearnkitError, storage_errno, storage_error

COMMAND_MODULES = [
    "unlearnkit.cli.core",
    "unlearnkit.cli.audit",
    "unlearnkit.cli.diffusion",
    "unlearnkit.cli.exact",
    "unlearnkit.cli.lm",
    "unlearnkit.cli.lm_concepts",
    "unlearnkit.cli.lm_continual",
    "unlearnkit.cli.backdoor",
    "unlearnkit.cli.gan",
]


def build_parser() -> argparse.ArgumentParser:
    from .. import __version__

    parser = argparse.ArgumentParser(prog="unlearnkit", description="Machine unlearning, measured against retraining.")
    parser.add_argument("--version", action="version", version=f"unlearnkit {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    for name in COMMAND_MODULES:
        importlib.import_module(name).add_commands(sub)
    _point_to_outputs(sub)
    return parser


def _point_to_outputs(sub: argparse._SubParsersAction) -> None:
    """Every command that writes (has ``--out``/``--json`` taking a path) says in its help how outputs are
    written; a ``--json`` flag that only prints is not an output."""
    from ..outputs import HELP_NOTE

    for command in sub.choices.values():
        writes = [a for a in command._actions if {"--out", "--json"} & set(a.option_strings) and a.nargs != 0]
        for action in writes:
            action.help = f"{action.help or 'output'} ({HELP_NOTE})"
        if writes and not command.epilog:
            command.epilog = f"Outputs: {HELP_NOTE}."


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    if not getattr(args, "func", None):
        parser.print_help()
        return 2
    try:
        return int(args.func(args) or 0)
    except UnlearnkitError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    except Exception as exc:  # a full disk or file-size limit in a writer no project code wraps: still one line
        if storage_errno(exc) is None:
            raise
        print(f"error: {storage_error(exc, getattr(exc, 'filename', None) or 'the output')}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:  # outputs are written atomically, so nothing half-written is left behind
        print("interrupted; nothing half-written was kept", file=sys.stderr)
        return 130


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
