"""The OpenAI chat-completions wire format: request fields -> ``SamplingParams``, and the
response objects and stream chunks, as plain dicts (no web framework here, so it is tested on
its own). Field names and shapes follow OpenAI's API, with llama.cpp's and vLLM's extra
sampling fields (``top_k``, ``min_p``, ``repetition_penalty``)."""

from __future__ import annotations

import time
import uuid
from typing import Any

from engine.sampling_params import SamplingParams

# OpenAI (and the extras llama.cpp and vLLM accept) -> our SamplingParams fields.
FIELDS = {
    "temperature": "temperature",
    "top_p": "top_p",
    "top_k": "top_k",
    "min_p": "min_p",
    "repetition_penalty": "repetition_penalty",
    "seed": "seed",
    "max_tokens": "max_new_tokens",
    "max_completion_tokens": "max_new_tokens",  # the newer name of max_tokens
}
# engine stop reasons -> OpenAI finish_reason
FINISH = {"eos": "stop", "stop": "stop", "length": "length", "context": "length"}


class RequestError(ValueError):
    """A request the API refuses: ``status`` (400, 404...) and OpenAI's error ``code``."""

    def __init__(self, message: str, status: int = 400, code: str = "invalid_request") -> None:
        super().__init__(message)
        self.status, self.code = status, code


def error_body(message: str, code: str) -> dict[str, Any]:
    kind = "authentication_error" if code == "invalid_api_key" else "invalid_request_error"
    return {"error": {"message": message, "type": kind, "code": code, "param": None}}


def sampling_params(body: dict[str, Any]) -> SamplingParams:
    """The request's sampling fields as ``SamplingParams`` (unset ones: the engine's
    defaults); a field of the wrong type or range is a ``RequestError`` naming it."""
    values: dict[str, Any] = {}
    for name, ours in FIELDS.items():
        if body.get(name) is not None:
            values[ours] = body[name]
    if isinstance(values.get("temperature"), int) and not isinstance(values["temperature"], bool):
        values["temperature"] = float(values["temperature"])
    stop = body.get("stop")
    if stop is not None:
        if isinstance(stop, str):
            stop = [stop]
        if not isinstance(stop, list) or not all(isinstance(s, str) and s for s in stop):
            raise RequestError("stop must be a string or a list of non-empty strings")
        values["stop"] = tuple(stop)
    try:
        return SamplingParams(**values)
    except (ValueError, TypeError) as e:
        reverse = {v: k for k, v in FIELDS.items() if k != "max_completion_tokens"}
        message = str(e)
        for ours, theirs in reverse.items():
            message = message.replace(ours, theirs)
        raise RequestError(message) from None


def chat_messages(body: dict[str, Any]) -> list[dict[str, str]]:
    """``messages`` as role/content pairs (content parts of type ``text`` are joined)."""
    messages = body.get("messages")
    if not isinstance(messages, list) or not messages:
        raise RequestError("messages must be a non-empty list")
    out = []
    for i, m in enumerate(messages):
        if not isinstance(m, dict) or m.get("role") not in (
            "system",
            "developer",
            "user",
            "assistant",
        ):
            raise RequestError(f"messages[{i}] needs a role: system, user or assistant")
        content = m.get("content")
        if isinstance(content, list):  # [{"type": "text", "text": ...}, ...]
            parts = [
                p.get("text") for p in content if isinstance(p, dict) and p.get("type") == "text"
            ]
            content = "".join(p for p in parts if isinstance(p, str))
        if not isinstance(content, str):
            raise RequestError(f"messages[{i}].content must be text")
        role = "system" if m["role"] == "developer" else m["role"]
        out.append({"role": role, "content": content})
    return out


def completion_id(kind: str) -> str:
    return f"{kind}-{uuid.uuid4().hex[:24]}"


def usage(stats: Any) -> dict[str, int]:
    return {
        "prompt_tokens": stats.prompt_tokens,
        "completion_tokens": stats.new_tokens,
        "total_tokens": stats.prompt_tokens + stats.new_tokens,
    }


def timings(stats: Any) -> dict[str, float]:
    """llama.cpp-style timings, for clients that show speed."""
    return {
        "prompt_n": stats.prompt_tokens - stats.reused_tokens,
        "cache_n": stats.reused_tokens,
        "prompt_ms": round(stats.time_to_first_token * 1000, 2),
        "prompt_per_second": round(stats.prefill_tokens_per_second, 2),
        "predicted_n": stats.new_tokens,
        "predicted_ms": round(stats.decode_seconds * 1000, 2),
        "predicted_per_second": round(stats.decode_tokens_per_second, 2),
    }


def chat_response(rid: str, model: str, text: str, stats: Any) -> dict[str, Any]:
    return {
        "id": rid,
        "object": "chat.completion",
        "created": int(time.time()),
        "model": model,
        "choices": [
            {
                "index": 0,
                "message": {"role": "assistant", "content": text},
                "finish_reason": FINISH.get(stats.stop_reason, "stop"),
            }
        ],
        "usage": usage(stats),
        "timings": timings(stats),
    }


def chat_chunk(
    rid: str, model: str, delta: dict[str, str], finish: str | None = None
) -> dict[str, Any]:
    return {
        "id": rid,
        "object": "chat.completion.chunk",
        "created": int(time.time()),
        "model": model,
        "choices": [{"index": 0, "delta": delta, "finish_reason": finish}],
    }


def text_response(rid: str, model: str, text: str, stats: Any) -> dict[str, Any]:
    return {
        "id": rid,
        "object": "text_completion",
        "created": int(time.time()),
        "model": model,
        "choices": [
            {
                "index": 0,
                "text": text,
                "logprobs": None,
                "finish_reason": FINISH.get(stats.stop_reason, "stop"),
            }
        ],
        "usage": usage(stats),
        "timings": timings(stats),
    }


def text_chunk(rid: str, model: str, text: str, finish: str | None = None) -> dict[str, Any]:
    return {
        "id": rid,
        "object": "text_completion",
        "created": int(time.time()),
        "model": model,
        "choices": [{"index": 0, "text": text, "logprobs": None, "finish_reason": finish}],
    }
