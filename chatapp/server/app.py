"""``chatapp serve``: our engine behind the OpenAI-compatible API (Starlette, run by uvicorn).

One engine holds one model and one KV cache, so requests are served in order: an asyncio lock
is held for each generation, which runs in a worker thread and hands its text back through a
queue. The cache is reused across requests, so a client that resends a growing chat prefills
only the new turn. A streaming client that disconnects sets the generation's cancel event:
the engine stops within one token and the next request starts.
"""

from __future__ import annotations

import asyncio
import contextlib
import hmac
import json
import threading
from collections.abc import AsyncIterator, Callable, Iterator
from typing import Any

from starlette.applications import Starlette
from starlette.middleware import Middleware
from starlette.requests import Request
from starlette.responses import JSONResponse, Response, StreamingResponse
from starlette.routing import Route
from starlette.types import ASGIApp, Receive, Scope, Send

from chatapp.server import openai_api as api
from chatapp.server.openai_api import RequestError
from engine.engine_thread import engine_executor

Loader = Callable[[str], Any]  # a model source -> engine.Model


class EngineHost:
    """The served model: loaded on first use, switched when a request names another
    installed model; ``lock`` serialises loads and generations."""

    def __init__(self, default: str, loader: Loader, default_name: str | None = None) -> None:
        self.default = default
        self.default_name = default_name
        self.loader = loader
        self.model: Any = None
        self.source: str | None = None
        self.lock = asyncio.Lock()

    def names(self) -> list[str]:
        from engine.registry import list_models

        names = [m.name for m in list_models()]
        served = self.default_name or (self.model.name if self.model is not None else None)
        return ([served] if served and served not in names else []) + names

    def source_for(self, requested: Any) -> str:
        """The source to load for a request's ``model`` field (absent or the served model's
        name: the default); an unknown name is a 404 that lists the known ones."""
        if requested is None or requested == "" or requested == self.default_name:
            return self.default
        if self.model is not None and requested == self.model.name:
            return self.source or self.default
        if not isinstance(requested, str):
            raise RequestError("model must be a string")
        from engine.registry import list_models

        if any(m.name == requested for m in list_models()):
            return requested
        known = ", ".join(self.names()) or "none"
        raise RequestError(
            f"model {requested!r} not found; this server has: {known}",
            status=404,
            code="model_not_found",
        )

    @property
    def served_name(self) -> str:
        """The loaded model's name as this server lists it."""
        if self.source == self.default and self.default_name:
            return self.default_name
        return str(self.model.name)

    async def model_for(self, requested: Any) -> Any:
        """Call with ``lock`` held."""
        source = self.source_for(requested)
        if self.model is None or source != self.source:
            loop = asyncio.get_running_loop()  # loads and generations share one thread
            self.model = await loop.run_in_executor(engine_executor(), self.loader, source)
            self.source = source
            if source == self.default and self.default_name is None:
                self.default_name = self.model.name
        return self.model


async def _in_thread(
    make: Callable[[threading.Event], Iterator[str]], cancel: threading.Event
) -> AsyncIterator[str]:
    """The text deltas of a blocking generation, produced in a worker thread. Closing this
    iterator early (a client gone) sets ``cancel`` and waits for the worker to stop."""
    loop = asyncio.get_running_loop()
    queue: asyncio.Queue[Any] = asyncio.Queue()
    done = object()

    def work() -> None:
        try:
            for delta in make(cancel):
                loop.call_soon_threadsafe(queue.put_nowait, delta)
        except BaseException as e:  # noqa: BLE001 - handed to the request, raised there
            loop.call_soon_threadsafe(queue.put_nowait, e)
        finally:
            loop.call_soon_threadsafe(queue.put_nowait, done)

    worker = loop.run_in_executor(engine_executor(), work)  # see engine.engine_thread
    try:
        while (item := await queue.get()) is not done:
            if isinstance(item, BaseException):
                raise item
            yield item
    finally:
        cancel.set()
        # The engine stops within one token; the worker's own error was raised above.
        with contextlib.suppress(BaseException):
            await asyncio.shield(worker)


def _sse(obj: Any) -> str:
    return f"data: {json.dumps(obj, ensure_ascii=False)}\n\n"


def _error(e: RequestError) -> JSONResponse:
    return JSONResponse(api.error_body(str(e), e.code), status_code=e.status)


async def _body(request: Request) -> dict[str, Any]:
    try:
        body = json.loads(await request.body())
    except (ValueError, UnicodeDecodeError):
        raise RequestError("the request body is not JSON") from None
    if not isinstance(body, dict):
        raise RequestError("the request body must be a JSON object")
    return body


def _engine_errors() -> tuple[type[BaseException], ...]:
    import engine

    return (engine.ContextOverflowError, engine.TemplateRenderError, engine.GenerationError)


def _error_code(e: BaseException) -> str:
    """OpenAI's error code for an engine error, by its type."""
    import engine

    return (
        "context_length_exceeded"
        if isinstance(e, engine.ContextOverflowError)
        else "invalid_request"
    )


def create_app(host: EngineHost, *, api_key: str | None = None) -> Starlette:
    """The Starlette app serving ``host``'s model; with ``api_key``, every request needs
    ``Authorization: Bearer <api_key>``."""

    async def models(request: Request) -> Response:
        data = [{"id": n, "object": "model", "owned_by": "chatapp"} for n in host.names()]
        return JSONResponse({"object": "list", "data": data})

    async def generate(request: Request, kind: str) -> Response:
        try:
            body = await _body(request)
            params = api.sampling_params(body)
            if kind == "chat":
                messages = api.chat_messages(body)
            else:
                prompt = body.get("prompt")
                if isinstance(prompt, list) and len(prompt) == 1:
                    prompt = prompt[0]
                if not isinstance(prompt, str) or not prompt:
                    raise RequestError("prompt must be a non-empty string")
        except RequestError as e:
            return _error(e)
        rid = api.completion_id("chatcmpl" if kind == "chat" else "cmpl")

        def make(model: Any) -> Callable[[threading.Event], Iterator[str]]:
            if kind == "chat":
                return lambda cancel: model.chat(messages, params, cancel=cancel)
            return lambda cancel: model.complete(prompt, params, cancel=cancel)

        if not body.get("stream"):
            async with host.lock:
                try:
                    model = await host.model_for(body.get("model"))
                    parts = [d async for d in _in_thread(make(model), threading.Event())]
                except RequestError as e:
                    return _error(e)
                except _engine_errors() as e:
                    return _error(RequestError(str(e), code=_error_code(e)))
                stats = model.last_stats
            build = api.chat_response if kind == "chat" else api.text_response
            return JSONResponse(build(rid, host.served_name, "".join(parts), stats))

        include_usage = bool((body.get("stream_options") or {}).get("include_usage"))
        await host.lock.acquire()
        try:
            model = await host.model_for(body.get("model"))
        except RequestError as e:
            host.lock.release()
            return _error(e)
        except BaseException:
            host.lock.release()
            raise

        async def events() -> AsyncIterator[str]:
            try:
                name = host.served_name
                if kind == "chat":
                    yield _sse(api.chat_chunk(rid, name, {"role": "assistant", "content": ""}))
                try:
                    async for delta in _in_thread(make(model), threading.Event()):
                        if kind == "chat":
                            yield _sse(api.chat_chunk(rid, name, {"content": delta}))
                        else:
                            yield _sse(api.text_chunk(rid, name, delta))
                except _engine_errors() as e:  # headers are sent: the error is an event
                    yield _sse(api.error_body(str(e), "generation_error"))
                    yield "data: [DONE]\n\n"
                    return
                stats = model.last_stats
                finish = api.FINISH.get(stats.stop_reason, "stop")
                if kind == "chat":
                    yield _sse(api.chat_chunk(rid, name, {}, finish))
                else:
                    yield _sse(api.text_chunk(rid, name, "", finish))
                if include_usage:
                    yield _sse(
                        {"id": rid, "object": "chat.completion.chunk" if kind == "chat"
                         else "text_completion", "model": name, "choices": [],
                         "usage": api.usage(stats), "timings": api.timings(stats)}
                    )  # fmt: skip
                yield "data: [DONE]\n\n"
            finally:
                host.lock.release()

        return StreamingResponse(events(), media_type="text/event-stream")

    async def chat(request: Request) -> Response:
        return await generate(request, "chat")

    async def completions(request: Request) -> Response:
        return await generate(request, "text")

    routes = [
        Route("/v1/models", models, methods=["GET"]),
        Route("/v1/chat/completions", chat, methods=["POST"]),
        Route("/v1/completions", completions, methods=["POST"]),
    ]
    middleware = [Middleware(BearerKey, key=api_key)] if api_key else []
    return Starlette(routes=routes, middleware=middleware)


class BearerKey:
    """Plain ASGI middleware (no response wrapping, so streams and disconnects pass as they
    are): HTTP requests without ``Authorization: Bearer <key>`` get a 401."""

    def __init__(self, app: ASGIApp, key: str) -> None:
        self.app, self.expected = app, f"Bearer {key}".encode()

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http":
            headers = dict(scope.get("headers") or [])
            if not hmac.compare_digest(headers.get(b"authorization", b""), self.expected):
                body = api.error_body(
                    "a valid API key is needed (Authorization: Bearer KEY)", "invalid_api_key"
                )
                await JSONResponse(body, status_code=401)(scope, receive, send)
                return
        await self.app(scope, receive, send)
