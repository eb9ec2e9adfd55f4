"""``chatapp history``: the past prompts (the ones Up and Ctrl+R recall in the chat)."""

from __future__ import annotations

import argparse
import time
from typing import Any

from chatapp.cli import error


def register(subs: Any, parser: argparse.ArgumentParser) -> None:
    p = subs.add_parser("history", help="print past prompts, newest last")
    p.add_argument("--search", metavar="TEXT", default="", help="only prompts containing TEXT")
    p.add_argument("--limit", type=int, default=50, help="how many of the newest (50)")
    p.add_argument("--json", action="store_true", help="a JSON list of {text, created_at}")
    p.set_defaults(func=cmd_history)


def _when(created_at: float) -> str:
    return time.strftime("%Y-%m-%d %H:%M", time.localtime(created_at))


def format_prompt(text: str, when: str) -> str:
    """``WHEN  first line`` with the other lines indented under it (controls shown as ␛)."""
    from chatapp.console_text import printable

    pad = " " * (len(when) + 2)
    lines = printable(text).split("\n")
    rest = [(pad + line).rstrip() for line in lines[1:]]
    return "\n".join([f"{when}  {lines[0]}".rstrip(), *rest])


def cmd_history(args: argparse.Namespace) -> int:
    from chatapp.console_text import terminal_json
    from chatapp.core.settings import load_settings
    from chatapp.core.store import Store, StoreError

    if args.limit < 1:
        return error(f"--limit must be at least 1, got {args.limit}", code=2)
    try:
        prompts = Store().past_prompts(limit=args.limit, search=args.search)
    except StoreError as e:
        return error(str(e))
    if args.json:
        rows = [{"text": p.text, "created_at": p.created_at} for p in prompts]
        print(terminal_json(rows))
        return 0
    if not prompts:
        if args.search:
            print(terminal_json(args.search, indent=None).join(["No past prompt contains ", "."]))
            return 1
        settings, _ = load_settings()
        off = "" if settings.history_enabled else " (it is off: [history] enabled in config.toml)"
        print(f"No past prompts yet{off}.")
        return 0
    for p in prompts:
        print(format_prompt(p.text, _when(p.created_at)))
    return 0
