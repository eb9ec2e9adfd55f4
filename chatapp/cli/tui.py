"""``chatapp [--model NAME|PATH]``: open the chat TUI (the default command)."""

from __future__ import annotations

import argparse
import sys
from typing import Any

from chatapp.cli import error


def register(subs: Any, parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--model",
        metavar="NAME|PATH",
        help="model to chat with: a name (guide is the built-in one, a unique prefix does), "
        "a checkpoint folder or a .gguf file (default: see `chatapp default`)",
    )
    parser.set_defaults(func=run_tui)


def run_tui(args: argparse.Namespace) -> int:
    model = getattr(args, "model", None)
    if model:  # a typo fails here, with the closest names, not inside the chat
        from chatapp.models.choice import require_model
        from engine.errors import ModelLoadError

        try:
            model = require_model(model)
        except ModelLoadError as e:
            return error(str(e))
    if not (sys.stdin.isatty() and sys.stdout.isatty()):
        # Without a terminal (a script, a service manager, output to a file) the TUI would
        # draw into the pipe forever at full speed.
        return error(
            'the chat needs a terminal (stdin and stdout); for scripts use `chatapp ask "PROMPT"`',
            code=2,
        )
    from chatapp.core.store import StoreError
    from chatapp.tui.app import ChatApp

    try:
        app = ChatApp(model=model)
    except StoreError as e:
        return error(str(e))
    app.run()
    return app.return_code or 0  # an unexpected error in the app exits non-zero
