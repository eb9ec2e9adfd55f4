"""``chatapp serve``: our engine as an OpenAI-compatible server (chat completions, completions,
models), so any OpenAI client can use a local model and its KV-cache reuse across turns."""

from __future__ import annotations

import argparse
import os
from typing import Any

from chatapp.cli import add_quant_option, error

INSTALL_HINT = "chatapp serve needs the serve extra: pip install -e '.[serve]' (starlette, uvicorn)"


def register(subs: Any, parser: argparse.ArgumentParser) -> None:
    p = subs.add_parser(
        "serve",
        help="serve a model over the OpenAI-compatible HTTP API",
        description=(
            "POST /v1/chat/completions and /v1/completions (streaming or not) and GET "
            "/v1/models, for any OpenAI client. Requests are served in order (one engine, one "
            "KV cache); a streaming client that disconnects stops its generation."
        ),
    )
    p.add_argument("--model", metavar="NAME|PATH", help="the model served by default")
    p.add_argument("--host", default="127.0.0.1", help="address to bind (127.0.0.1)")
    p.add_argument("--port", type=int, default=8080, help="port (8080)")
    p.add_argument(
        "--api-key-env",
        metavar="VAR",
        help="require Authorization: Bearer $VAR (the key is read from this variable)",
    )
    add_quant_option(p, "weights as loaded (see chatapp ask --quant)")
    p.set_defaults(func=cmd_serve)


def cmd_serve(args: argparse.Namespace) -> int:
    try:
        import uvicorn

        from chatapp.server.app import EngineHost, create_app
    except ModuleNotFoundError:
        return error(INSTALL_HINT)
    import engine
    from chatapp.console_text import printable
    from chatapp.core.settings import load_settings
    from chatapp.models.choice import resolve_model_source
    from engine.engine_thread import on_engine_thread

    key = None
    if args.api_key_env:
        key = os.environ.get(args.api_key_env)
        if not key:
            return error(f"${args.api_key_env} is empty or unset: put the API key in it")
    settings, _warning = load_settings()
    try:
        source = resolve_model_source(args.model, settings.model)

        def load(src: str) -> engine.Model:
            return engine.load(src, quant=args.quant)

        model = on_engine_thread(load, source)  # where it will generate (engine.engine_thread)
    except engine.ModelLoadError as e:
        return error(str(e))
    host = EngineHost(source, load, model.name)
    host.model, host.source = model, source
    for warning in model.warnings:
        print(printable(f"chatapp: warning: {model.name}: {warning}"))
    where = f"http://{args.host}:{args.port}/v1"
    print(
        printable(f"Serving {model.name} at {where} (OpenAI-compatible; Ctrl+C stops)"), flush=True
    )
    if args.host not in ("127.0.0.1", "localhost", "::1") and key is None:
        print("chatapp: warning: listening beyond this machine without --api-key-env")
    uvicorn.run(create_app(host, api_key=key), host=args.host, port=args.port, log_level="warning")
    return 0
