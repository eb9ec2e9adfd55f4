"""``chatapp ask "PROMPT"``: one reply, streamed to stdout, for scripts and pipes."""

from __future__ import annotations

import argparse
import json
import os
import sys
from typing import Any

from chatapp.cli import add_quant_option, error


def register(subs: Any, parser: argparse.ArgumentParser) -> None:
    p = subs.add_parser(
        "ask",
        help="ask one question and print the reply",
        description="Ask one question; the reply streams to stdout. Piped stdin is appended to "
        "the prompt (`git diff | chatapp ask 'review this'`); PROMPT '-' reads it all from stdin. "
        "The model, system message and sampling settings default to config.toml's.",
    )
    p.add_argument("prompt", metavar="PROMPT", help="the question, or - to read it from stdin")
    p.add_argument(
        "--model",
        metavar="NAME|PATH",
        help="a model name (guide, a pull alias or a unique prefix), folder or .gguf file "
        "(default: see `chatapp default`)",
    )
    p.add_argument("--system", metavar="TEXT", help="a system message")
    # Sampling flags default to None: unset ones come from config.toml, else the engine defaults.
    p.add_argument("--temperature", type=float, help="0 is greedy (0.8)")
    p.add_argument("--top-k", type=int, help="0 is off (50)")
    p.add_argument("--top-p", type=float, help="1 is off (1.0)")
    p.add_argument("--min-p", type=float, help="0 is off (0)")
    p.add_argument("--repetition-penalty", type=float, help="1 is off (1.0)")
    p.add_argument("--seed", type=int, help="same seed, same reply (random)")
    p.add_argument("--max-tokens", type=int, help="most reply tokens (512)")
    add_quant_option(
        p,
        "weights as loaded: auto keeps quantized ones quantized; int8 / int4 quantize a "
        "float model now (import --quant keeps the result); none dequantizes",
    )
    p.add_argument(
        "--raw",
        action="store_true",
        help="continue the prompt as plain text, with no chat template (for base models)",
    )
    p.add_argument("--json", action="store_true", help='print {"reply", "model", "stats"}')
    p.set_defaults(func=cmd_ask)


def read_prompt(prompt: str) -> str:
    """The prompt argument, with piped stdin appended (or all of it for ``-``). Bytes that are
    not UTF-8 (a Latin-1 file in ``git diff``, an odd argument) become U+FFFD, with a warning."""
    stdin = sys.stdin
    if prompt == "-":
        return _utf8(_read_all(stdin), "stdin") if stdin is not None else ""
    prompt = _utf8(prompt, "the prompt")
    if stdin is None or stdin.closed or stdin.isatty():
        return prompt
    try:
        piped = _utf8(_read_all(stdin), "stdin")
    except OSError:  # no readable stdin (e.g. a test runner's)
        return prompt
    return f"{prompt}\n\n{piped}" if piped.strip() else prompt


def _read_all(stdin: Any) -> str:
    buffer = getattr(stdin, "buffer", None)
    if buffer is None:  # a text-only stream (tests)
        return str(stdin.read())
    return bytes(buffer.read()).decode("utf-8", errors="surrogateescape")


def _utf8(text: str, what: str) -> str:
    """``text`` with undecodable bytes (kept as surrogates) replaced by U+FFFD."""
    clean = text.encode("utf-8", errors="surrogateescape").decode("utf-8", errors="replace")
    if clean != text:
        print(
            f"chatapp: warning: {what} is not valid UTF-8; the bytes that are not were "
            "replaced with U+FFFD",
            file=sys.stderr,
        )
    return clean


def cmd_ask(args: argparse.Namespace) -> int:
    from chatapp.core.settings import SAMPLING_KEYS, config_path, load_settings, sampling_params

    settings, warning = load_settings()
    if warning:
        print(f"chatapp: warning: {warning}", file=sys.stderr)
    # The flags' dests are the /set names; an unset flag (None) leaves config.toml's value.
    flags = {k: getattr(args, k) for k in SAMPLING_KEYS if getattr(args, k) is not None}
    from_file = {k: v for k, v in settings.sampling.items() if k not in flags}
    for key, value in from_file.items():  # one at a time, to name the file's bad key
        try:
            sampling_params({key: value})
        except ValueError as e:
            return error(f"{e} (set as sampling.{key} in {config_path()})")
    try:
        params = sampling_params({**from_file, **flags})
    except ValueError as e:
        return error(str(e).replace("max_new_tokens", "--max-tokens"))
    text = read_prompt(args.prompt)
    if not text.strip():
        return error("the prompt is empty")
    if args.raw and args.system:
        return error("--system has no place in a --raw completion; put it in the prompt")
    system = None if args.raw else settings.system if args.system is None else args.system
    messages = [{"role": "system", "content": system}] if system else []
    messages.append({"role": "user", "content": text})
    try:
        return _answer(args, settings.model, messages, params)
    except BrokenPipeError:
        # The reader went away (``chatapp ask … | head``): stop quietly. Point stdout at
        # /dev/null so the interpreter's final flush does not raise again.
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return 141  # 128 + SIGPIPE, as other tools exit on a closed pipe


def _answer(
    args: argparse.Namespace, default_model: str | None, messages: list[dict[str, str]], params: Any
) -> int:
    """Load the model and stream the reply to stdout; the exit code."""
    import engine
    from chatapp.console_text import strip_control
    from chatapp.models.choice import resolve_model_source

    out = sys.stdout
    parts: list[str] = []
    try:
        source = resolve_model_source(args.model, default_model)
        model = _load(source, args.quant)
        for warning in model.warnings:
            if args.raw and warning == model.base_model_note:
                continue  # a completion is what such a model is for
            print(f"chatapp: warning: {model.name}: {warning}", file=sys.stderr)
        if args.raw:
            stream = model.complete(messages[-1]["content"], params)
        else:
            stream = model.chat(messages, params)
        try:
            for delta in stream:
                clean = strip_control(delta)
                parts.append(clean)
                if not args.json and clean:
                    out.write(clean)
                    out.flush()
        finally:
            close = getattr(stream, "close", None)
            if close is not None:
                close()
    except KeyboardInterrupt:
        if parts and not args.json:
            out.write("\n")
            out.flush()
        return 130
    except (
        engine.ModelLoadError,
        engine.TemplateRenderError,
        engine.GenerationError,
        ValueError,
    ) as e:
        if parts and not args.json:
            out.write("\n")
        return error(str(e).splitlines()[0] if str(e) else type(e).__name__)
    reply = "".join(parts)
    if args.json:
        stats = model.last_stats.as_dict()
        result = {"reply": reply, "model": model.name, "weights": model.weight_format}
        out.write(json.dumps(result | {"stats": stats}) + "\n")
    elif not reply.endswith("\n"):
        out.write("\n")
    out.flush()
    return 0


def _load(source: str, quant: str = "auto") -> Any:
    """The model ``source`` names (a remote, ``guide``, an alias, a prefix, a path), with a
    spinner on stderr when it is a terminal."""
    from chatapp.models.choice import require_model
    from chatapp.models.loading import load_model

    name = require_model(source)
    if not sys.stderr.isatty():
        return load_model(name, quant=quant)
    from rich.console import Console
    from rich.markup import escape

    with Console(stderr=True).status(f"Loading {escape(name)}…"):
        return load_model(name, quant=quant)
