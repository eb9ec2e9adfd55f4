"""``chatapp remote add | list | rm``: models on OpenAI-compatible servers, by name."""

from __future__ import annotations

import argparse
import sys
from typing import Any

from chatapp.cli import error


def register(subs: Any, parser: argparse.ArgumentParser) -> None:
    p = subs.add_parser(
        "remote",
        help="add, list or remove models on OpenAI-compatible servers",
        description=(
            "A remote model works like an installed one (--model NAME, /model NAME, the "
            "picker), running on a server that speaks the OpenAI API: vLLM, llama.cpp's "
            "server, Ollama, TGI, SGLang or chatapp serve."
        ),
    )
    rs = p.add_subparsers(dest="remote_command", metavar="ACTION", required=True)
    a = rs.add_parser("add", help="name a model on a server (lists the server's models)")
    a.add_argument("name", metavar="NAME", help="the name to use it by")
    a.add_argument("url", metavar="URL", help="the API base, e.g. http://127.0.0.1:8080/v1")
    a.add_argument("--model", metavar="ID", help="the server's model id (see the list)")
    a.add_argument(
        "--api-key-env",
        metavar="VAR",
        help="send $VAR as the bearer key (only the variable's name is stored)",
    )
    a.add_argument("--force", action="store_true", help="replace a remote of the same name")
    a.set_defaults(func=cmd_add)
    ls = rs.add_parser("list", help="the remote models")
    ls.set_defaults(func=cmd_list)
    rm = rs.add_parser("rm", help="forget a remote model (the server is not touched)")
    rm.add_argument("name", metavar="NAME")
    rm.set_defaults(func=cmd_rm)


def cmd_add(args: argparse.Namespace) -> int:
    from chatapp.console_text import printable
    from chatapp.models.importer import ModelImportError, model_path, validate_name
    from chatapp.remote.client import list_server_models
    from chatapp.remote.registry import Remote, RemoteError, add_remote, normalise_url

    try:
        name = validate_name(args.name)
        url = normalise_url(args.url)
        remote = Remote(name, url, args.model or "", args.api_key_env or "")
        if model_path(name).exists():
            return error(f"{name!r} is an installed model's name; pick another")
        models = [m["id"] for m in list_server_models(remote)]
    except (RemoteError, ModelImportError, ValueError) as e:
        return error(str(e))
    if args.model and args.model not in models:
        return error(f"{url} has no model {args.model!r}; it has: {', '.join(models) or 'none'}")
    if not args.model and len(models) > 1:
        print(f"{url} serves {len(models)} models:", file=sys.stderr)
        for m in models:
            print(f"  {printable(m)}", file=sys.stderr)  # ids come from the server
        return error("pick one with --model ID")
    if not args.model and models:
        remote = Remote(name, url, models[0], remote.api_key_env)
    try:
        add_remote(remote, force=args.force)
    except RemoteError as e:
        return error(str(e))
    served = remote.model or "the server's default model"
    print(printable(f"Added {name}: {served} at {url}"))
    print(f'Try it: chatapp ask "Hello" --model {name}   (or chatapp --model {name})')
    return 0


def cmd_list(args: argparse.Namespace) -> int:
    from chatapp.remote.registry import RemoteError, list_remotes

    try:
        remotes = list_remotes()
    except RemoteError as e:
        return error(str(e))
    print_remotes(remotes, empty="No remote models. Add one: chatapp remote add NAME URL")
    return 0


def print_remotes(remotes: list[Any], empty: str | None = None) -> None:
    from rich.console import Console
    from rich.table import Table
    from rich.text import Text

    console = Console()
    if not remotes:
        if empty:
            console.print(Text(empty))
        return
    table = Table(box=None, header_style="bold")
    for col in ("REMOTE", "MODEL", "URL", "KEY"):
        table.add_column(col)
    for r in remotes:
        key = f"${r.api_key_env}" if r.api_key_env else "-"
        table.add_row(Text(r.name), Text(r.model or "(default)"), Text(r.url), Text(key))
    console.print(table)


def cmd_rm(args: argparse.Namespace) -> int:
    from chatapp.remote.registry import RemoteError, remove_remote

    try:
        remove_remote(args.name)
    except RemoteError as e:
        return error(str(e))
    print(f"Removed the remote {args.name}")
    return 0
