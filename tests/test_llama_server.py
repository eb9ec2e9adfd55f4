"""chatapp against a real llama.cpp server: llama-cpp-python's OpenAI-compatible
``llama_cpp.server`` on 127.0.0.1, serving the SmolLM2 GGUF. ``chatapp ask --model REMOTE``
streams its answer; in the chat (Pilot) the reply streams, Esc stops it and the server sees
the disconnect. Skipped without llama-cpp-python (the ``llamacpp`` extra, which .ci/run
installs) or without the GGUF."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from fakes import async_test, wait_until

pytest.importorskip("llama_cpp.server.app", reason="llama-cpp-python[server] is not installed")
httpx = pytest.importorskip("httpx")

import engine  # noqa: E402
from chatapp.cli import main  # noqa: E402
from chatapp.console_text import strip_control  # noqa: E402
from chatapp.remote.client import RemoteModel, request_fields  # noqa: E402
from chatapp.remote.registry import Remote, add_remote  # noqa: E402

pytestmark = [pytest.mark.real_model, pytest.mark.slow]

ALIAS = "smollm2"
START_TIMEOUT = 120.0  # importing llama_cpp and loading the GGUF, on a busy machine
CALL_TIMEOUT = 60.0


class LlamaServer:
    """The running server: its API base URL and what it has printed so far."""

    def __init__(self, url: str, log: Path) -> None:
        self.url, self.log = url, log

    def output(self) -> str:
        return self.log.read_text(encoding="utf-8", errors="replace")


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@pytest.fixture(scope="module")
def llama_server(
    smollm2_gguf: Path, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[LlamaServer]:
    log = tmp_path_factory.mktemp("llama-server") / "server.log"
    port = _free_port()
    cmd = [sys.executable, "-m", "llama_cpp.server", "--model", str(smollm2_gguf),
           "--model_alias", ALIAS, "--host", "127.0.0.1", "--port", str(port),
           "--n_ctx", "2048", "--n_threads", "1", "--n_threads_batch", "1"]  # fmt: skip
    env = os.environ | {"PYTHONUNBUFFERED": "1"}  # its prints reach the log as they happen
    with log.open("wb") as out:
        proc = subprocess.Popen(cmd, stdout=out, stderr=subprocess.STDOUT, env=env,
                                stdin=subprocess.DEVNULL)  # fmt: skip
    url = f"http://127.0.0.1:{port}/v1"
    server = LlamaServer(url, log)
    try:
        deadline = time.monotonic() + START_TIMEOUT
        while True:
            try:
                if httpx.get(f"{url}/models", timeout=2).status_code == 200:
                    break
            except httpx.HTTPError:
                pass
            if proc.poll() is not None or time.monotonic() > deadline:
                pytest.fail(f"llama_cpp.server did not start: {server.output()[-2000:]}")
            time.sleep(0.25)
        yield server
    finally:
        proc.terminate()
        try:
            proc.wait(30)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(30)


GREEDY = engine.SamplingParams(temperature=0, max_new_tokens=24)
HELLO = [{"role": "user", "content": "What is the capital of France?"}]


def test_remote_add_takes_the_servers_only_model(
    llama_server: LlamaServer, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["remote", "add", "llama", llama_server.url]) == 0
    assert f"Added llama: {ALIAS} at {llama_server.url}" in capsys.readouterr().out


def test_ask_streams_the_llama_cpp_servers_answer(
    llama_server: LlamaServer, capsys: pytest.CaptureFixture[str]
) -> None:
    add_remote(Remote("llama", llama_server.url, ALIAS))
    # The same request, not streamed: what the server answers by itself (greedy, so the same).
    body = {"model": ALIAS, "messages": HELLO, **request_fields(GREEDY)}
    whole = httpx.post(f"{llama_server.url}/chat/completions", json=body, timeout=CALL_TIMEOUT)
    expected = whole.json()["choices"][0]["message"]["content"]
    assert expected.strip()
    argv = ["ask", HELLO[0]["content"], "--model", "llama", "--temperature", "0"]
    assert main([*argv, "--max-tokens", "24"]) == 0
    assert capsys.readouterr().out.rstrip("\n") == strip_control(expected).rstrip("\n")
    # ...and it came as a stream of deltas, with the stream's stats
    remote = RemoteModel(Remote("llama", llama_server.url, ALIAS))
    deltas = list(remote.chat(HELLO, GREEDY))
    assert len(deltas) > 3 and "".join(deltas) == expected
    stats = remote.last_stats
    assert stats.new_tokens > 3 and stats.time_to_first_token > 0
    assert stats.stop_reason in ("eos", "length")


@async_test
async def test_the_chat_streams_from_llama_cpp_and_esc_stops_it_at_the_server(
    llama_server: LlamaServer, chatapp_home: Path
) -> None:
    from chatapp.core.store import Store
    from chatapp.tui.app import ChatApp
    from chatapp.tui.widgets.chat_view import AssistantMessage

    add_remote(Remote("llama", llama_server.url, ALIAS))
    disconnects = llama_server.output().count("Disconnected from client")
    app = ChatApp("llama")  # the real loader: a remote model by name
    async with app.run_test(size=(100, 32)) as pilot:
        await wait_until(pilot, lambda: app.session.model_ready, timeout=CALL_TIMEOUT)
        assert isinstance(app.session.model, RemoteModel)
        app.chat.prompt.text = "/set max_tokens 1500"
        app.chat.prompt.focus()
        await pilot.press("enter")
        app.chat.prompt.text = "Write a very long story about a dragon who learns to cook."
        app.chat.prompt.focus()
        await pilot.press("enter")
        view = await _first_assistant(pilot, app, AssistantMessage)
        await wait_until(pilot, lambda: len(view.text) > 20, timeout=CALL_TIMEOUT)  # streaming
        await pilot.press("escape")
        await wait_until(pilot, lambda: not app.chat.streaming, timeout=CALL_TIMEOUT)
        assert view.has_class("stopped") and view.text.strip()
        # The server saw the connection go and stopped generating (llama_cpp.server prints
        # this when its event loop finds the client gone mid-stream).
        await wait_until(
            pilot,
            lambda: llama_server.output().count("Disconnected from client") > disconnects,
            timeout=CALL_TIMEOUT,
        )
        shown = view.text
    (conv,) = Store(chatapp_home / "chatapp.db").list_conversations()
    last = Store(chatapp_home / "chatapp.db").messages(conv.id)[-1]
    assert last.stopped and last.content == shown  # the partial reply is kept, marked
    # The server is free again at once: a new request is answered (not queued behind 1500
    # tokens of an abandoned story).
    remote = RemoteModel(Remote("llama", llama_server.url, ALIAS))
    assert "".join(remote.chat(HELLO, GREEDY)).strip()


async def _first_assistant(pilot, app, kind):  # type: ignore[no-untyped-def]
    await wait_until(pilot, lambda: bool(app.chat.query(kind)), timeout=CALL_TIMEOUT)
    return app.chat.query(kind).first()
