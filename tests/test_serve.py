"""``chatapp serve``: a real uvicorn server on 127.0.0.1 with a tiny real model, spoken to over
HTTP with httpx as any OpenAI client would (bounded in time: every call has a timeout)."""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from fakes import FakeModel

import engine

httpx = pytest.importorskip("httpx")
uvicorn = pytest.importorskip("uvicorn")
from http_servers import TIMEOUT, Server  # noqa: E402

from chatapp.server.app import EngineHost, create_app  # noqa: E402
from chatapp.server.openai_api import RequestError, sampling_params  # noqa: E402

GREEDY = {"temperature": 0, "max_tokens": 12}


@pytest.fixture
def model(tiny_models: dict[str, Path]) -> engine.Model:
    return engine.load(tiny_models["llama"])


@pytest.fixture
def url(model: engine.Model, tiny_models: dict[str, Path]) -> Iterator[str]:
    host = EngineHost(str(tiny_models["llama"]), engine.load, "tiny")
    host.model, host.source = model, str(tiny_models["llama"])
    with Server(create_app(host)) as base:
        yield base


def sse_events(response: Any) -> list[Any]:
    events = []
    for line in response.iter_lines():
        if line.startswith("data: "):
            data = line[len("data: ") :]
            events.append(data if data == "[DONE]" else json.loads(data))
    return events


CHAT = [{"role": "user", "content": "Hello"}]


def test_chat_completion_is_the_engines_reply(url: str, model: engine.Model) -> None:
    expected = "".join(model.chat(CHAT, engine.SamplingParams(temperature=0, max_new_tokens=12)))
    r = httpx.post(f"{url}/v1/chat/completions", json={"model": "tiny", "messages": CHAT, **GREEDY},
                   timeout=TIMEOUT)  # fmt: skip
    assert r.status_code == 200
    body = r.json()
    assert body["object"] == "chat.completion" and body["model"] == "tiny"
    assert body["choices"][0]["message"] == {"role": "assistant", "content": expected}
    assert body["choices"][0]["finish_reason"] in ("stop", "length")
    assert body["usage"]["completion_tokens"] == model.last_stats.new_tokens > 0


def test_streamed_chunks_add_up_to_the_same_reply(url: str) -> None:
    request = {"messages": CHAT, "stream": True, "stream_options": {"include_usage": True}}
    whole = httpx.post(f"{url}/v1/chat/completions", json={"messages": CHAT, **GREEDY},
                       timeout=TIMEOUT).json()["choices"][0]["message"]["content"]  # fmt: skip
    with httpx.stream("POST", f"{url}/v1/chat/completions", json=request | GREEDY,
                      timeout=TIMEOUT) as r:  # fmt: skip
        assert r.headers["content-type"].startswith("text/event-stream")
        events = sse_events(r)
    assert events[-1] == "[DONE]"
    chunks = [e for e in events[:-1] if e["choices"]]
    assert chunks[0]["choices"][0]["delta"]["role"] == "assistant"
    text = "".join(c["choices"][0]["delta"].get("content", "") for c in chunks)
    assert text == whole
    assert chunks[-1]["choices"][0]["finish_reason"] in ("stop", "length")
    assert events[-2]["usage"]["completion_tokens"] > 0  # include_usage: the last chunk


def test_a_second_turn_reuses_the_kv_cache(url: str, model: engine.Model) -> None:
    first = httpx.post(f"{url}/v1/chat/completions", json={"messages": CHAT, **GREEDY},
                       timeout=TIMEOUT).json()  # fmt: skip
    reply = first["choices"][0]["message"]["content"]
    turn2 = [*CHAT, {"role": "assistant", "content": reply}, {"role": "user", "content": "More"}]
    second = httpx.post(f"{url}/v1/chat/completions", json={"messages": turn2, **GREEDY},
                        timeout=TIMEOUT).json()  # fmt: skip
    assert second["timings"]["cache_n"] > 0  # the first turn's tokens came from the cache
    assert model.last_stats.reused_tokens == second["timings"]["cache_n"]


def test_completions_continue_plain_text(url: str, model: engine.Model) -> None:
    params = engine.SamplingParams(temperature=0, max_new_tokens=12)
    expected = "".join(model.complete("Once upon a time", params))
    r = httpx.post(f"{url}/v1/completions", json={"prompt": "Once upon a time", **GREEDY},
                   timeout=TIMEOUT)  # fmt: skip
    assert r.status_code == 200 and r.json()["choices"][0]["text"] == expected


def test_models_lists_the_served_model(url: str) -> None:
    r = httpx.get(f"{url}/v1/models", timeout=TIMEOUT)
    assert r.json()["object"] == "list"
    assert "tiny" in [m["id"] for m in r.json()["data"]]


def test_bad_requests_are_openai_errors(url: str) -> None:
    post = lambda body: httpx.post(f"{url}/v1/chat/completions", json=body, timeout=TIMEOUT)  # noqa: E731
    r = post({"messages": CHAT, "temperature": -1})
    assert r.status_code == 400 and "temperature" in r.json()["error"]["message"]
    r = post({"messages": CHAT, "max_tokens": 0})
    assert r.status_code == 400 and "max_tokens" in r.json()["error"]["message"]
    r = post({"messages": []})
    assert r.status_code == 400
    r = post({"messages": CHAT, "model": "gpt-99"})
    assert r.status_code == 404 and r.json()["error"]["code"] == "model_not_found"
    assert "tiny" in r.json()["error"]["message"]
    r = httpx.post(f"{url}/v1/chat/completions", content=b"{nope", timeout=TIMEOUT)
    assert r.status_code == 400


def test_a_client_that_disconnects_stops_its_generation() -> None:
    slow = FakeModel(["tok "] * 2000, delay=0.01, name="slow")  # 20 s if nobody stops it
    host = EngineHost("slow", lambda _src: slow, "slow")
    host.model, host.source = slow, "slow"
    with Server(create_app(host)) as base:
        request = {"messages": CHAT, "stream": True}
        with httpx.stream("POST", f"{base}/v1/chat/completions", json=request,
                          timeout=TIMEOUT) as r:  # fmt: skip
            for line in r.iter_lines():
                if '"tok ' in line:
                    break  # the reply is streaming: hang up
        deadline = time.monotonic() + 5
        while slow.last_stats.stop_reason != "cancelled" and time.monotonic() < deadline:
            time.sleep(0.02)
        assert slow.last_stats.stop_reason == "cancelled" and slow.closed
        assert slow.last_stats.new_tokens < 500
        # ...and the next request is served at once (the lock was released).
        slow.chunks = ["done"]
        r2 = httpx.post(f"{base}/v1/chat/completions", json={"messages": CHAT}, timeout=5)
        assert r2.json()["choices"][0]["message"]["content"] == "done"


def test_concurrent_requests_are_served_in_order(url: str) -> None:
    results: list[int] = []

    def ask() -> None:
        r = httpx.post(f"{url}/v1/chat/completions", json={"messages": CHAT, **GREEDY},
                       timeout=TIMEOUT)  # fmt: skip
        results.append(r.status_code)

    threads = [threading.Thread(target=ask) for _ in range(3)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(TIMEOUT)
    assert results == [200, 200, 200]


def test_an_api_key_is_required_when_set(model: engine.Model, tiny_models: dict[str, Path]) -> None:
    host = EngineHost(str(tiny_models["llama"]), engine.load, "tiny")
    host.model, host.source = model, str(tiny_models["llama"])
    with Server(create_app(host, api_key="s3cret")) as base:
        assert httpx.get(f"{base}/v1/models", timeout=TIMEOUT).status_code == 401
        wrong = {"Authorization": "Bearer nope"}
        assert httpx.get(f"{base}/v1/models", headers=wrong, timeout=TIMEOUT).status_code == 401
        right = {"Authorization": "Bearer s3cret"}
        assert httpx.get(f"{base}/v1/models", headers=right, timeout=TIMEOUT).status_code == 200


def test_sampling_fields_map_onto_sampling_params() -> None:
    p = sampling_params({"temperature": 1, "top_p": 0.9, "top_k": 5, "min_p": 0.1, "seed": 3,
                         "max_completion_tokens": 7, "stop": "END", "repetition_penalty": 1.1})  # fmt: skip
    assert (p.temperature, p.top_p, p.top_k, p.min_p, p.seed) == (1.0, 0.9, 5, 0.1, 3)
    assert p.max_new_tokens == 7 and p.stop == ("END",) and p.repetition_penalty == 1.1
    with pytest.raises(RequestError, match="top_p"):
        sampling_params({"top_p": 2})
