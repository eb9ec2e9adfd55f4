"""The ``chatapp`` command: the TUI by default, plus subcommands for scripts.

Each subcommand lives in its own module with ``register(subparsers)``; the module sets
``func`` on its parser, which ``main`` calls with the parsed arguments and returns its exit code.
"""

from __future__ import annotations

import argparse
import importlib
import sys
from collections.abc import Sequence

# Modules under chatapp.cli that add subcommands; a missing one is skipped, so work on one
# subcommand never blocks the others.
SUBCOMMAND_MODULES = (
    "tui",
    "models",
    "default",
    "ask",
    "bench",
    "train",
    "serve",
    "remote",
    "chats",
    "history",
)


# engine.load's quant values (engine.loader.QUANTS), spelled here so that building the
# parser does not import torch.
QUANT_CHOICES = ("auto", "none", "int8", "int4")


def add_quant_option(p: argparse.ArgumentParser, help: str) -> None:
    """``--quant auto|none|int8|int4`` for the commands that load or import a model."""
    p.add_argument("--quant", choices=QUANT_CHOICES, default="auto", help=help)


def error(message: str, code: int = 1) -> int:
    """``chatapp: error: MESSAGE``, one line on stderr (controls shown, never sent to the
    terminal); returns the exit code, so a command ends with ``return error(...)``."""
    from chatapp.console_text import printable

    print(f"chatapp: error: {printable(message)}", file=sys.stderr)
    return code


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="chatapp", description="Chat with local language models in the terminal."
    )
    parser.add_argument("--version", action="version", version=_version())
    parser.set_defaults(func=None)
    subs = parser.add_subparsers(dest="command", metavar="COMMAND")
    for name in SUBCOMMAND_MODULES:
        try:
            mod = importlib.import_module(f"chatapp.cli.{name}")
        except ModuleNotFoundError as e:
            if e.name == f"chatapp.cli.{name}":
                continue
            raise
        mod.register(subs, parser)
    return parser


def _version() -> str:
    from chatapp import __version__

    return f"chatapp {__version__}"


def unknown_command(parser: argparse.ArgumentParser, argv: Sequence[str]) -> str | None:
    """The error for ``chatapp WORD`` when WORD is no subcommand (with the closest ones), or
    None; argparse's own message lists every choice and suggests none."""
    import difflib

    if not argv or argv[0].startswith("-"):
        return None
    subs = next(a for a in parser._actions if isinstance(a, argparse._SubParsersAction))
    names = list(subs.choices)
    if argv[0] in names:
        return None
    near = difflib.get_close_matches(argv[0], names, n=3, cutoff=0.5)
    hint = f"did you mean {' or '.join(near)}? " if near else ""
    return f"unknown command {argv[0]!r}; {hint}(`chatapp --help` lists them)"


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    argv = sys.argv[1:] if argv is None else list(argv)
    unknown = unknown_command(parser, argv)
    if unknown:
        return error(unknown, code=2)
    args = parser.parse_args(argv)
    if args.func is None:
        parser.print_help()
        return 0
    try:
        return int(args.func(args) or 0)
    except KeyboardInterrupt:
        return 130


if __name__ == "__main__":
    sys.exit(main())
