"""``chatapp chats | export | import-chat``: the saved chats from the command line."""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path
from typing import Any

from chatapp.cli import error


def register(subs: Any, parser: argparse.ArgumentParser) -> None:
    p = subs.add_parser("chats", help="list the saved chats (newest first) with their ids")
    p.add_argument("--limit", type=int, default=50, help="how many (50)")
    p.add_argument("--json", action="store_true", help="a JSON list, for scripts")
    p.set_defaults(func=cmd_chats)

    p = subs.add_parser(
        "export",
        help="write saved chats as JSON (everything, for import-chat) or Markdown (to read)",
    )
    which = p.add_mutually_exclusive_group(required=True)
    which.add_argument("id", nargs="?", type=int, metavar="ID", help="a chat's id (chatapp chats)")
    which.add_argument("--all", action="store_true", help="every saved chat")
    p.add_argument("--format", choices=("json", "md"), default="json", help="json (default) or md")
    p.add_argument("-o", "--output", metavar="PATH", help="write to PATH instead of stdout")
    p.set_defaults(func=cmd_export)

    p = subs.add_parser("search", help="find saved chats by the text of their messages")
    p.add_argument("text", metavar="TEXT", nargs="+", help="what to look for (any language)")
    p.add_argument("--limit", type=int, default=20, help="how many matches (20)")
    p.set_defaults(func=cmd_search)

    p = subs.add_parser("import-chat", help="add the chats of a JSON export to the saved chats")
    p.add_argument("file", metavar="FILE", help="a file written by chatapp export (- for stdin)")
    p.set_defaults(func=cmd_import_chat)


def _store() -> Any:
    from chatapp.core.store import Store

    return Store()


def cmd_chats(args: argparse.Namespace) -> int:
    from rich.console import Console
    from rich.table import Table
    from rich.text import Text

    from chatapp.console_text import printable, terminal_json
    from chatapp.core.store import StoreError

    try:
        convs = _store().list_conversations(limit=args.limit)
    except StoreError as e:
        return error(str(e))
    if args.json:
        keys = ("id", "title", "model", "system", "params", "created_at", "updated_at")
        print(terminal_json([{k: getattr(c, k) for k in keys} for c in convs]))
        return 0
    console = Console() if sys.stdout.isatty() else Console(width=200)
    if not convs:
        console.print("No saved chats yet.")
        return 0
    table = Table(box=None, header_style="bold")
    for col in ("ID", "UPDATED", "MODEL", "TITLE"):
        table.add_column(col, no_wrap=col != "TITLE")
    for c in convs:
        when = time.strftime("%Y-%m-%d %H:%M", time.localtime(c.updated_at))
        table.add_row(str(c.id), when, Text(printable(c.model)), Text(printable(c.title)))
    console.print(table)
    return 0


def cmd_export(args: argparse.Namespace) -> int:
    from chatapp.core.export import ChatFileError, export_json, export_markdown
    from chatapp.core.store import StoreError

    try:
        store = _store()
        ids = [c.id for c in store.list_conversations(limit=10**9)] if args.all else [args.id]
        ids = sorted(ids)  # oldest first in a file
        text = (export_json if args.format == "json" else export_markdown)(store, ids)
    except (StoreError, ChatFileError) as e:
        return error(str(e))
    if args.output:
        try:
            Path(args.output).write_text(text, encoding="utf-8")
        except OSError as e:
            return error(f"cannot write {args.output}: {e.strerror or e}")
        print(f"Wrote {len(ids)} chat{'s' if len(ids) != 1 else ''} to {args.output}")
    else:
        sys.stdout.write(text)
    return 0


def cmd_import_chat(args: argparse.Namespace) -> int:
    from chatapp.core.export import ChatFileError, import_json
    from chatapp.core.store import StoreError

    try:
        if args.file == "-":
            text, source = sys.stdin.read(), "stdin"
        else:
            text, source = Path(args.file).read_text(encoding="utf-8"), args.file
    except (OSError, UnicodeDecodeError) as e:
        return error(f"cannot read {args.file}: {getattr(e, 'strerror', None) or e}")
    try:
        ids = import_json(_store(), text, source)
    except (StoreError, ChatFileError) as e:
        return error(str(e))
    print(
        f"Imported {len(ids)} chat{'s' if len(ids) != 1 else ''} (ids {', '.join(map(str, ids))})"
    )
    return 0


def cmd_search(args: argparse.Namespace) -> int:
    from rich.console import Console
    from rich.text import Text

    from chatapp.console_text import printable
    from chatapp.core.store import MATCH_END, MATCH_START, StoreError

    try:
        hits = _store().search(" ".join(args.text), limit=args.limit)
    except StoreError as e:
        return error(str(e))
    console = Console() if sys.stdout.isatty() else Console(width=200)
    if not hits:
        console.print(Text(f"No saved message contains {' '.join(args.text)!r}."))
        return 1
    for hit in hits:
        line = Text(f"{hit.conversation_id:>5}  ", style="bold")
        line.append(printable(hit.title or "Untitled chat"), style="bold")
        line.append(f"  ({hit.role})", style="dim")
        console.print(line)
        snippet = Text("       ")
        for i, part in enumerate(hit.snippet.replace(MATCH_END, MATCH_START).split(MATCH_START)):
            snippet.append(printable(part.replace("\n", " ")), style="reverse" if i % 2 else "")
        console.print(snippet)
    return 0
