"""``chatapp serve`` as a subprocess (the real command, with ``--api-key-env``) on 127.0.0.1,
spoken to with the ``openai`` package's client: what any OpenAI program sees. Every call is
bounded (the client's timeout, no retries), and the server is stopped at the end."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

import engine

openai = pytest.importorskip("openai")
pytest.importorskip("uvicorn")
from http_servers import TIMEOUT  # noqa: E402

KEY_VAR = "CHATAPP_TEST_SERVE_KEY"
KEY = "s3cret-test-key"
GREEDY = engine.SamplingParams(temperature=0, max_new_tokens=12)
HELLO = [{"role": "user", "content": "Hello"}]


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@pytest.fixture(scope="module")
def served(
    tiny_models: dict[str, Path], tmp_path_factory: pytest.TempPathFactory
) -> Iterator[tuple[str, str]]:
    """``chatapp serve --model TINY --api-key-env VAR``: (its API base URL, the served name)."""
    model_dir = tiny_models["llama"]
    home = tmp_path_factory.mktemp("serve-home")
    port = _free_port()
    env = os.environ | {"CHATAPP_HOME": str(home), KEY_VAR: KEY, "OMP_NUM_THREADS": "1"}
    cmd = [sys.executable, "-m", "chatapp", "serve", "--model", str(model_dir)]
    cmd += ["--port", str(port), "--api-key-env", KEY_VAR]
    proc = subprocess.Popen(
        cmd, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL
    )
    url = f"http://127.0.0.1:{port}/v1"
    client = openai.OpenAI(base_url=url, api_key=KEY, max_retries=0, timeout=2.0)
    try:
        deadline = time.monotonic() + 60  # a cold start imports torch and loads the model
        while True:
            try:
                names = [m.id for m in client.models.list()]
                break
            except openai.APIConnectionError:
                if proc.poll() is not None or time.monotonic() > deadline:
                    out = proc.stdout.read().decode(errors="replace") if proc.stdout else ""
                    pytest.fail(f"chatapp serve did not start: {out[-2000:]}")
                time.sleep(0.2)
        yield url, names[0]
    finally:
        proc.terminate()
        try:
            proc.wait(TIMEOUT)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(TIMEOUT)


@pytest.fixture(scope="module")
def local(tiny_models: dict[str, Path]) -> engine.Model:
    """The same model in this process: the reference for what the server must answer."""
    return engine.load(tiny_models["llama"])


def client(url: str, key: str = KEY) -> Any:
    return openai.OpenAI(base_url=url, api_key=key, max_retries=0, timeout=TIMEOUT)


def expected_chat(model: engine.Model, messages: list[dict[str, str]]) -> str:
    return "".join(model.chat(messages, GREEDY))


def test_the_models_list_names_the_served_model(served: tuple[str, str]) -> None:
    url, name = served
    models = list(client(url).models.list())
    assert name == "llama"  # the folder's name: the served model's name
    assert [m.id for m in models][0] == name and models[0].object == "model"


def test_a_chat_completion_is_the_engines_reply(
    served: tuple[str, str], local: engine.Model
) -> None:
    url, name = served
    reply = client(url).chat.completions.create(
        model=name, messages=HELLO, temperature=0, max_tokens=12
    )
    assert reply.object == "chat.completion" and reply.model == name
    choice = reply.choices[0]
    assert choice.message.role == "assistant"
    assert choice.message.content == expected_chat(local, HELLO)
    assert choice.finish_reason in ("stop", "length")
    assert reply.usage is not None and reply.usage.completion_tokens == local.last_stats.new_tokens


def test_a_streamed_chat_adds_up_to_the_same_reply_and_ends_with_usage(
    served: tuple[str, str], local: engine.Model
) -> None:
    url, name = served
    stream = client(url).chat.completions.create(
        model=name,
        messages=HELLO,
        temperature=0,
        max_tokens=12,
        stream=True,
        stream_options={"include_usage": True},
    )
    chunks = list(stream)
    deltas = [c.choices[0].delta.content or "" for c in chunks if c.choices]
    assert len([d for d in deltas if d]) > 1  # it streamed, not one lump
    assert "".join(deltas) == expected_chat(local, HELLO)
    finishes = [c.choices[0].finish_reason for c in chunks if c.choices]
    assert finishes[-1] in ("stop", "length") and not any(finishes[:-1])
    assert chunks[-1].usage is not None
    assert chunks[-1].usage.completion_tokens == local.last_stats.new_tokens


def test_completions_continue_plain_text_streaming_and_not(
    served: tuple[str, str], local: engine.Model
) -> None:
    url, name = served
    expected = "".join(local.complete("Once upon a time", GREEDY))
    c = client(url)
    whole = c.completions.create(
        model=name, prompt="Once upon a time", temperature=0, max_tokens=12
    )
    assert whole.object == "text_completion" and whole.choices[0].text == expected
    stream = c.completions.create(
        model=name, prompt="Once upon a time", temperature=0, max_tokens=12, stream=True
    )
    assert "".join(chunk.choices[0].text for chunk in stream if chunk.choices) == expected


def test_a_wrong_or_missing_key_is_refused(served: tuple[str, str]) -> None:
    url, name = served
    with pytest.raises(openai.AuthenticationError) as info:
        client(url, key="wrong").chat.completions.create(model=name, messages=HELLO)
    assert info.value.status_code == 401 and "API key" in str(info.value)
    import httpx

    assert httpx.get(f"{url}/models", timeout=TIMEOUT).status_code == 401  # no key at all


def test_an_unknown_model_is_a_404_naming_the_served_one(served: tuple[str, str]) -> None:
    url, name = served
    with pytest.raises(openai.NotFoundError) as info:
        client(url).chat.completions.create(model="gpt-99", messages=HELLO)
    assert name in str(info.value)


def test_a_bad_sampling_value_is_a_400_naming_the_field(served: tuple[str, str]) -> None:
    url, name = served
    with pytest.raises(openai.BadRequestError, match="temperature"):
        client(url).chat.completions.create(model=name, messages=HELLO, temperature=-1)


def test_two_clients_at_once_each_get_their_own_reply(
    served: tuple[str, str], local: engine.Model
) -> None:
    url, name = served
    asks = {
        "a": [{"role": "user", "content": "Tell me about the sea."}],
        "b": [{"role": "user", "content": "What is two and two?"}],
    }
    expected = {k: expected_chat(local, m) for k, m in asks.items()}
    assert expected["a"] != expected["b"]  # else the test could not tell them apart
    got: dict[str, str] = {}
    errors: list[BaseException] = []

    def ask(key: str) -> None:
        try:
            stream = client(url).chat.completions.create(
                model=name, messages=asks[key], temperature=0, max_tokens=12, stream=True
            )
            got[key] = "".join(c.choices[0].delta.content or "" for c in stream if c.choices)
        except BaseException as e:  # noqa: BLE001 - reported below, in the test's thread
            errors.append(e)

    threads = [threading.Thread(target=ask, args=(k,)) for k in asks]
    for t in threads:
        t.start()
    for t in threads:
        t.join(TIMEOUT)
    assert not errors and got == expected
