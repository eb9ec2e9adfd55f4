"""``RemoteModel``: a model on an OpenAI-compatible server (vLLM, llama.cpp's server, Ollama,
TGI, SGLang, ``chatapp serve``) with the interface of a local ``engine.Model`` that the chat
and ``chatapp ask`` use: ``chat`` / ``complete`` yield text deltas, ``last_stats`` says what
the last call did. Streams with httpx over server-sent events; closing the iterator (Esc)
closes the connection, which is how these servers learn to stop."""

from __future__ import annotations

import contextlib
import json
import socket
import threading
import time
from collections.abc import Iterator, Sequence
from typing import Any

import httpx

from chatapp.remote.registry import Remote, RemoteError
from engine.errors import GenerationError
from engine.generate import GenerationStats, StopReason
from engine.sampling_params import SamplingParams

CONNECT_TIMEOUT = 5.0
READ_TIMEOUT = 120.0  # between two chunks: a big model's prefill can take a while
FINISH: dict[str, StopReason] = {
    "stop": "eos",
    "length": "length",
    "content_filter": "stop",
    "tool_calls": "stop",
}


class RemoteReplyError(GenerationError):
    """The server refused or broke off a reply: one line for the user."""


def _headers(remote: Remote) -> dict[str, str]:
    key = remote.api_key()
    return {"Authorization": f"Bearer {key}"} if key else {}


def _status_message(remote: Remote, response: httpx.Response) -> str:
    detail = ""
    try:
        body = json.loads(response.read())
        err = body.get("error") if isinstance(body, dict) else None
        if isinstance(err, dict):
            detail = str(err.get("message") or "")
        elif isinstance(err, str):
            detail = err
        elif isinstance(body, dict) and isinstance(body.get("detail"), str):
            detail = body["detail"]
    except (ValueError, httpx.HTTPError):
        pass
    code = response.status_code
    what = {
        401: "the server refused the API key",
        403: "the server refused access",
        404: "the server does not have that model or endpoint",
        429: "the server is busy or over its rate limit; try again shortly",
    }.get(code, "the server failed" if code >= 500 else "the server refused the request")
    hint = ""
    if code in (401, 403):
        hint = (
            f" (check ${remote.api_key_env})"
            if remote.api_key_env
            else " (add one: chatapp remote add … --api-key-env VAR)"
        )
    line = f"{remote.name}: {what}{hint}: HTTP {code}"
    return f"{line}: {' '.join(detail.split())[:200]}" if detail else line


def _transport_message(remote: Remote, e: httpx.HTTPError) -> str:
    if isinstance(e, httpx.ConnectError):
        return f"{remote.name}: cannot reach the server at {remote.url} (is it running?)"
    if isinstance(e, httpx.TimeoutException):
        return f"{remote.name}: the server at {remote.url} did not answer in time"
    if isinstance(e, httpx.RemoteProtocolError):
        return f"{remote.name}: the server closed the connection mid-reply"
    return f"{remote.name}: {type(e).__name__}: {e}"


def list_server_models(remote: Remote) -> list[dict[str, Any]]:
    """``GET /v1/models``: the server's model entries (``id`` and whatever else it says)."""
    url = remote.url
    headers = _headers(remote)
    try:
        r = httpx.get(f"{url}/models", headers=headers, timeout=CONNECT_TIMEOUT)
    except httpx.HTTPError as e:
        raise RemoteError(_transport_message(remote, e)) from None
    if r.status_code != 200:
        raise RemoteError(_status_message(remote, r))
    try:
        data = r.json().get("data")
    except (ValueError, AttributeError):
        data = None
    if not isinstance(data, list):
        raise RemoteError(f"{url}/models did not answer with a model list (not an OpenAI API?)")
    return [m for m in data if isinstance(m, dict) and isinstance(m.get("id"), str)]


def request_fields(params: SamplingParams) -> dict[str, Any]:
    """Our sampling settings as the API's fields (with the extras llama.cpp and vLLM take;
    other servers ignore what they do not know)."""
    body: dict[str, Any] = {
        "temperature": params.temperature,
        "top_p": params.top_p,
        "max_tokens": params.max_new_tokens,
        "top_k": params.top_k,
        "min_p": params.min_p,
        "repetition_penalty": params.repetition_penalty,
    }
    if params.seed is not None:
        body["seed"] = params.seed
    if params.stop:
        body["stop"] = list(params.stop)
    return body


class RemoteModel:
    """A remote model that the chat and ``chatapp ask`` use as they use a local one."""

    tokenizer = None
    base_model_note: str | None = None
    weight_format = "remote"

    def __init__(self, remote: Remote, *, context_length: int = 0) -> None:
        self.remote = remote
        self.name = remote.name
        self.path = remote.url
        self.warnings: list[str] = []
        self.last_stats = GenerationStats()
        # The last reply's own ``timings`` as the server gave them (llama.cpp and chatapp
        # serve do: prompt_ms is its time to first token), for benchmarks; {} when none.
        self.last_server_timings: dict[str, Any] = {}
        self._context_length = context_length  # 0: unknown (the gauge is not shown)
        # One client for every reply: building one costs milliseconds (its TLS context), and
        # its pool keeps the connection open between turns, so neither adds to the time to
        # first token. A reply that is stopped closes its connection; the next opens one.
        self._http = httpx.Client(timeout=httpx.Timeout(READ_TIMEOUT, connect=CONNECT_TIMEOUT))

    @property
    def context_length(self) -> int:
        return self._context_length

    def chat(
        self,
        messages: Sequence[dict[str, str]],
        params: SamplingParams | None = None,
        *,
        cancel: threading.Event | None = None,
    ) -> Iterator[str]:
        body = {"messages": [dict(m) for m in messages]}
        return self._stream("chat/completions", body, params or SamplingParams(), cancel)

    def complete(
        self,
        text: str,
        params: SamplingParams | None = None,
        *,
        cancel: threading.Event | None = None,
    ) -> Iterator[str]:
        return self._stream("completions", {"prompt": text}, params or SamplingParams(), cancel)

    def _stream(
        self,
        endpoint: str,
        body: dict[str, Any],
        params: SamplingParams,
        cancel: threading.Event | None,
    ) -> Iterator[str]:
        stats = self.last_stats = GenerationStats()
        self.last_server_timings = {}
        body = body | request_fields(params) | {"stream": True}
        body["stream_options"] = {"include_usage": True}
        if self.remote.model:
            body["model"] = self.remote.model
        return self._events(endpoint, body, stats, cancel)

    def _events(
        self,
        endpoint: str,
        body: dict[str, Any],
        stats: GenerationStats,
        cancel: threading.Event | None,
    ) -> Iterator[str]:
        url = f"{self.remote.url}/{endpoint}"
        t0 = time.perf_counter()
        t_first = 0.0
        finished = reason_seen = False
        try:
            headers = _headers(self.remote)
        except RemoteError as e:
            raise RemoteReplyError(str(e)) from None
        done = threading.Event()
        try:
            with self._http.stream("POST", url, json=body, headers=headers) as r:
                if r.status_code != 200:
                    raise RemoteReplyError(_status_message(self.remote, r))
                if cancel is not None:
                    watch = threading.Thread(target=_hang_up, args=(r, cancel, done), daemon=True)
                    watch.start()
                for data in _sse_data(r):
                    if finished:
                        continue  # past [DONE] (servers end the body there): read to its end
                    if data == "[DONE]":
                        # Read on to the end of the body rather than break: a response read
                        # whole gives its connection back to the pool for the next turn.
                        finished = True
                        continue
                    event = _parse_event(self.remote, data)
                    usage = event.get("usage")
                    if isinstance(event.get("timings"), dict):
                        self.last_server_timings = event["timings"]
                    if isinstance(usage, dict):
                        stats.prompt_tokens = int(usage.get("prompt_tokens") or 0)
                        stats.new_tokens = int(usage.get("completion_tokens") or stats.new_tokens)
                    for choice in event.get("choices") or []:
                        text = _choice_text(choice)
                        reason = choice.get("finish_reason")
                        if reason:
                            stats.stop_reason = FINISH.get(str(reason), "stop")
                            reason_seen = True
                        if text:
                            if not t_first:
                                t_first = time.perf_counter()
                                stats.time_to_first_token = t_first - t0
                                stats.prefill_seconds = stats.time_to_first_token
                            if usage is None:
                                stats.new_tokens += 1  # a chunk is a token, near enough
                            yield text
                    if cancel is not None and cancel.is_set():
                        stats.stop_reason = "cancelled"
                        return  # leaving the block closes the connection: the server stops
        except httpx.HTTPError as e:
            if cancel is not None and cancel.is_set():  # we hung up (see _hang_up)
                stats.stop_reason = "cancelled"
                return
            raise RemoteReplyError(_transport_message(self.remote, e)) from None
        finally:
            done.set()
            if t_first:
                stats.decode_seconds = time.perf_counter() - t_first
        if not finished and not reason_seen:
            raise RemoteReplyError(f"{self.remote.name}: the reply stream was cut off mid-reply")


def _hang_up(response: httpx.Response, cancel: threading.Event, done: threading.Event) -> None:
    """When ``cancel`` is set (Esc), shut the connection down at once, even while the read is
    blocked on a server that sends nothing yet (a long prefill): the server sees the
    disconnect and stops generating, and the blocked read returns."""
    while not done.is_set():
        if cancel.wait(0.05):
            stream = response.extensions.get("network_stream")
            sock = stream.get_extra_info("socket") if stream is not None else None
            if sock is not None:
                with contextlib.suppress(OSError):
                    sock.shutdown(socket.SHUT_RDWR)
            return


def _sse_data(response: httpx.Response) -> Iterator[str]:
    """The ``data:`` payloads of a server-sent event stream (multi-line data joined)."""
    lines: list[str] = []
    for line in response.iter_lines():
        if not line:
            if lines:
                yield "\n".join(lines)
                lines = []
            continue
        if line.startswith("data:"):
            lines.append(line[5:].removeprefix(" "))
    if lines:
        yield "\n".join(lines)


def _parse_event(remote: Remote, data: str) -> dict[str, Any]:
    try:
        event = json.loads(data)
    except ValueError:
        raise RemoteReplyError(
            f"{remote.name}: the server sent a malformed chunk ({data[:60]!r})"
        ) from None
    if not isinstance(event, dict):
        raise RemoteReplyError(f"{remote.name}: the server sent a malformed chunk")
    if "error" in event:  # an error after the headers were sent (llama.cpp, vLLM do this)
        err = event["error"]
        message = err.get("message") if isinstance(err, dict) else str(err)
        raise RemoteReplyError(f"{remote.name}: the server stopped the reply: {message}")
    return event


def _choice_text(choice: Any) -> str:
    if not isinstance(choice, dict):
        return ""
    delta = choice.get("delta")
    if isinstance(delta, dict) and isinstance(delta.get("content"), str):
        return str(delta["content"])
    text = choice.get("text")
    return text if isinstance(text, str) else ""
