"""Remote models: ``chatapp remote``, the client against ``chatapp serve`` (a real server on
127.0.0.1) and against a fake endpoint that fails in each of the ways servers fail."""

from __future__ import annotations

import asyncio
import json
import threading
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import pytest
from fakes import FakeModel, async_test
from http_servers import Server
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response, StreamingResponse
from starlette.routing import Route

import engine
from chatapp.cli import main
from chatapp.console_text import strip_control
from chatapp.models.loading import load_model
from chatapp.remote.client import RemoteModel, RemoteReplyError
from chatapp.remote.registry import Remote, find_remote, list_remotes
from chatapp.server.app import EngineHost, create_app

CHAT = [{"role": "user", "content": "Hello"}]
GREEDY = engine.SamplingParams(temperature=0, max_new_tokens=12)


@pytest.fixture
def served(tiny_models: dict[str, Path]) -> Iterator[tuple[str, engine.Model]]:
    model = engine.load(tiny_models["llama"])
    host = EngineHost(str(tiny_models["llama"]), engine.load, "tiny")
    host.model, host.source = model, str(tiny_models["llama"])
    with Server(create_app(host, api_key="k3y")) as base:
        yield f"{base}/v1", model


def test_remote_add_lists_the_servers_models_and_never_stores_the_key(
    served: tuple[str, engine.Model],
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    url, _ = served
    monkeypatch.setenv("MY_KEY", "k3y")
    assert main(["remote", "add", "box", url, "--api-key-env", "MY_KEY"]) == 0
    assert find_remote("box") == Remote("box", url, "tiny", "MY_KEY")
    stored = (engine.data_dir() / "remotes.json").read_text()
    assert "k3y" not in stored and "MY_KEY" in stored
    assert main(["remote", "list"]) == 0
    assert "box" in capsys.readouterr().out
    # a model the server does not have is refused, naming those it has
    assert main(["remote", "add", "other", url, "--model", "nope", "--api-key-env", "MY_KEY"]) == 1
    assert "tiny" in capsys.readouterr().err
    # a wrong key is one line that says which variable to check
    monkeypatch.setenv("MY_KEY", "wrong")
    assert main(["remote", "add", "x", url, "--api-key-env", "MY_KEY"]) == 1
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "API key" in err and "$MY_KEY" in err
    assert main(["remote", "rm", "box"]) == 0 and list_remotes() == []


def test_the_remote_client_streams_the_servers_reply(
    served: tuple[str, engine.Model], monkeypatch: pytest.MonkeyPatch
) -> None:
    url, local = served
    monkeypatch.setenv("MY_KEY", "k3y")
    expected = "".join(local.chat(CHAT, GREEDY))
    remote = RemoteModel(Remote("box", url, "tiny", "MY_KEY"))
    assert "".join(remote.chat(CHAT, GREEDY)) == expected
    stats = remote.last_stats
    assert stats.new_tokens == local.last_stats.new_tokens and stats.time_to_first_token > 0
    assert stats.stop_reason in ("eos", "length")
    assert remote.last_server_timings["predicted_n"] == local.last_stats.new_tokens
    assert "".join(remote.complete("Once", GREEDY)) == "".join(local.complete("Once", GREEDY))


def test_ask_uses_a_remote_model_by_name(
    served: tuple[str, engine.Model],
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    url, local = served
    monkeypatch.setenv("MY_KEY", "k3y")
    assert main(["remote", "add", "box", url, "--api-key-env", "MY_KEY"]) == 0
    capsys.readouterr()
    assert main(["ask", "Hello", "--model", "box", "--temperature", "0", "--max-tokens", "12"]) == 0
    expected = strip_control("".join(local.chat(CHAT, GREEDY)))  # ask prints text only
    assert capsys.readouterr().out.rstrip("\n") == expected.rstrip("\n")
    assert isinstance(load_model("box"), RemoteModel)


def test_cancel_closes_the_stream_and_the_server_stops() -> None:
    slow = FakeModel(["tok "] * 2000, delay=0.01, name="slow")
    host = EngineHost("slow", lambda _s: slow, "slow")
    host.model, host.source = slow, "slow"
    with Server(create_app(host)) as base:
        remote = RemoteModel(Remote("slow", f"{base}/v1"))
        cancel = threading.Event()
        got = []
        for delta in remote.chat(CHAT, cancel=cancel):
            got.append(delta)
            if len(got) == 3:
                cancel.set()  # Esc
        assert len(got) <= 4 and remote.last_stats.stop_reason == "cancelled"
        for _ in range(250):  # the server saw the disconnect and stopped its generation
            if slow.last_stats.stop_reason == "cancelled":
                break
            threading.Event().wait(0.02)
        assert slow.last_stats.stop_reason == "cancelled" and slow.last_stats.new_tokens < 500


# --- a server that fails --------------------------------------------------------------------

FAULTS = {
    "401": (401, {"error": {"message": "bad key"}}),
    "403": (403, {"error": "forbidden"}),
    "404": (404, {"error": {"message": "model 'x' not found"}}),
    "429": (429, {"error": {"message": "slow down"}}),
    "500": (500, {"detail": "boom"}),
}


def faulty_app() -> Starlette:
    async def chat(request: Request) -> Response:
        body = json.loads(await request.body())
        fault = body.get("model", "")
        if fault in FAULTS:
            status, payload = FAULTS[fault]
            return JSONResponse(payload, status_code=status)

        async def events() -> AsyncIterator[str]:
            for word in ("Hal", "f a ", "reply"):
                chunk = {"choices": [{"index": 0, "delta": {"content": word}}]}
                yield f"data: {json.dumps(chunk)}\n\n"
                await asyncio.sleep(0)
            if fault == "malformed":
                yield "data: {not json\n\n"
            elif fault == "error-event":
                yield 'data: {"error": {"message": "out of memory"}}\n\n'
            # "cut": the stream just ends, with no finish_reason and no [DONE]

        return StreamingResponse(events(), media_type="text/event-stream")

    return Starlette(routes=[Route("/v1/chat/completions", chat, methods=["POST"])])


@pytest.mark.parametrize(
    ("fault", "words"),
    [
        ("401", "refused the API key"),
        ("403", "refused access"),
        ("404", "does not have that model"),
        ("429", "busy"),
        ("500", "server failed"),
        ("cut", "cut off mid-reply"),
        ("malformed", "malformed chunk"),
        ("error-event", "out of memory"),
    ],
)
def test_each_server_failure_is_one_clear_line_and_the_partial_reply_stays(
    fault: str, words: str
) -> None:
    with Server(faulty_app()) as base:
        remote = RemoteModel(Remote("flaky", f"{base}/v1", fault))
        got: list[str] = []
        with pytest.raises(RemoteReplyError) as info:
            for delta in remote.chat(CHAT):
                got.append(delta)
    message = str(info.value)
    assert words in message and "\n" not in message and message.startswith("flaky: ")
    if fault in ("cut", "malformed", "error-event"):
        assert "".join(got) == "Half a reply"  # what came before the fault was delivered


def test_a_server_that_is_down_is_one_line(capsys: pytest.CaptureFixture[str]) -> None:
    remote = RemoteModel(Remote("gone", "http://127.0.0.1:9/v1"))  # nothing listens there
    with pytest.raises(RemoteReplyError, match="cannot reach the server"):
        list(remote.chat(CHAT))
    assert main(["remote", "add", "gone", "http://127.0.0.1:9"]) == 1
    assert "cannot reach" in capsys.readouterr().err


@async_test
async def test_the_chat_streams_a_remote_model_and_esc_stops_it_at_the_server(
    chatapp_home: Path,
) -> None:
    from fakes import wait_until

    from chatapp.core.store import Store
    from chatapp.remote.registry import add_remote
    from chatapp.tui.app import ChatApp
    from chatapp.tui.widgets.chat_view import AssistantMessage

    gate = threading.Event()
    served = FakeModel(["far ", "away ", "never"], gate=gate, pause_after=2, name="srv")
    host = EngineHost("srv", lambda _s: served, "srv")
    host.model, host.source = served, "srv"
    with Server(create_app(host)) as base:
        add_remote(Remote("box", f"{base}/v1", "srv"))
        app = ChatApp("box")  # the real loader: the name is a remote model
        async with app.run_test(size=(100, 32)) as pilot:
            await wait_until(pilot, lambda: app.session.model_ready)
            assert isinstance(app.session.model, RemoteModel)
            app.chat.prompt.text = "hi"
            app.chat.prompt.focus()
            await pilot.press("enter")
            await wait_until(
                pilot, lambda: app.chat.query(AssistantMessage).first().text == "far away "
            )
            await pilot.press("escape")
            await wait_until(pilot, lambda: not app.chat.streaming)
            view = app.chat.query(AssistantMessage).first()
            assert view.text == "far away " and view.has_class("stopped")
            # the server saw the disconnect: its generation ended as cancelled
            await wait_until(pilot, lambda: served.last_stats.stop_reason == "cancelled")
            assert served.calls[-1][-1] == {"role": "user", "content": "hi"}
        gate.set()
    (conv,) = Store(chatapp_home / "chatapp.db").list_conversations()
    assert conv.model == "box"  # the chat remembers the remote model by name


@async_test
async def test_a_stream_cut_off_mid_reply_is_one_line_and_the_partial_reply_stays(
    chatapp_home: Path,
) -> None:
    from fakes import wait_until

    from chatapp.core.store import Store
    from chatapp.remote.registry import add_remote
    from chatapp.tui.app import ChatApp
    from chatapp.tui.widgets.chat_view import AssistantMessage

    with Server(faulty_app()) as base:
        add_remote(Remote("flaky", f"{base}/v1", "cut"))
        app = ChatApp("flaky")
        async with app.run_test(size=(100, 32)) as pilot:
            await wait_until(pilot, lambda: app.session.model_ready)
            app.chat.prompt.text = "hi"
            app.chat.prompt.focus()
            await pilot.press("enter")
            await wait_until(
                pilot, lambda: not app.chat.streaming and bool(app.chat.query(AssistantMessage))
            )
            view = app.chat.query(AssistantMessage).first()
            await wait_until(pilot, lambda: "cut off" in str(view.meta.render()))
            assert view.text == "Half a reply" and view.has_class("stopped")
            meta = str(view.meta.render())
            assert "■ stopped" in meta and "flaky: the reply stream was cut off mid-reply" in meta
    (conv,) = Store(chatapp_home / "chatapp.db").list_conversations()
    last = Store(chatapp_home / "chatapp.db").messages(conv.id)[-1]
    assert (last.content, last.stopped) == ("Half a reply", True)


def test_remote_models_are_listed_marked_remote(capsys: pytest.CaptureFixture[str]) -> None:
    from chatapp.models.choice import available_models, model_names
    from chatapp.remote.registry import add_remote

    add_remote(Remote("box", "http://127.0.0.1:9/v1", "qwen-7b"))
    assert "box" in model_names()
    (entry,) = [m for m in available_models() if m.name == "box"]
    assert entry.architecture == "remote" and "qwen-7b at http://127.0.0.1:9/v1" in entry.source
    assert main(["models"]) == 0
    line = next(ln for ln in capsys.readouterr().out.splitlines() if "box" in ln)
    assert "remote" in line and "qwen-7b" in line


@async_test
async def test_the_model_picker_offers_remote_models(chatapp_home: Path) -> None:
    from fakes import fake_loader, wait_until
    from textual.widgets import DataTable

    from chatapp.remote.registry import add_remote
    from chatapp.tui.app import ChatApp
    from chatapp.tui.screens.model_picker import ModelPicker

    add_remote(Remote("box", "http://127.0.0.1:9/v1", "qwen-7b"))
    app = ChatApp("fake", loader=fake_loader(FakeModel()))
    async with app.run_test(size=(100, 32)) as pilot:
        await wait_until(pilot, lambda: app.session.model_ready)
        await pilot.press("ctrl+o")
        await wait_until(pilot, lambda: isinstance(app.screen, ModelPicker))
        table = app.screen.query_one(DataTable)
        await wait_until(pilot, lambda: table.row_count > 0)
        assert "box" in [k.value for k in table.rows]
        row = table.get_row("box")
        assert "(remote)" in str(row[0]) and "qwen-7b" in str(row[1])


def test_replies_reuse_one_connection_and_a_stopped_one_does_not_break_the_next() -> None:
    """Keep-alive: the second turn does not pay for a new connection (nor a new client);
    after Esc hung one up, the next reply opens a fresh one and arrives whole."""
    peers: list[tuple[str, int]] = []

    async def chat(request: Request) -> Response:
        assert request.client is not None
        peers.append((request.client.host, request.client.port))
        body = json.loads(await request.body())
        words = ["w "] * (500 if body["messages"][-1]["content"] == "long" else 3)

        async def events() -> AsyncIterator[str]:
            for word in words:
                yield f"data: {json.dumps({'choices': [{'delta': {'content': word}}]})}\n\n"
                await asyncio.sleep(0.002)
            yield 'data: {"choices": [{"delta": {}, "finish_reason": "stop"}]}\n\ndata: [DONE]\n\n'

        return StreamingResponse(events(), media_type="text/event-stream")

    app = Starlette(routes=[Route("/v1/chat/completions", chat, methods=["POST"])])
    with Server(app) as base:
        remote = RemoteModel(Remote("box", f"{base}/v1"))
        assert "".join(remote.chat(CHAT)) == "w w w "
        assert "".join(remote.chat(CHAT)) == "w w w "
        assert peers[0] == peers[1]  # the same TCP connection, kept alive
        cancel = threading.Event()
        for i, _ in enumerate(remote.chat([{"role": "user", "content": "long"}], cancel=cancel)):
            if i == 2:
                cancel.set()
        assert remote.last_stats.stop_reason == "cancelled"
        assert "".join(remote.chat(CHAT)) == "w w w "
        assert remote.last_stats.stop_reason == "eos"
        assert peers[3] != peers[0]  # the hung-up connection was not reused


@async_test
async def test_a_chat_with_a_remote_model_reopens_while_its_server_is_down(
    chatapp_home: Path,
) -> None:
    """The history shows; sending says, in one line, that the server cannot be reached, and
    the chat goes on working."""
    from fakes import wait_until

    from chatapp.core.store import Store
    from chatapp.remote.registry import add_remote
    from chatapp.tui.app import ChatApp
    from chatapp.tui.widgets.chat_view import AssistantMessage, UserMessage

    add_remote(Remote("gone", "http://127.0.0.1:9/v1", "big"))  # nothing listens there
    db = Store(chatapp_home / "chatapp.db")
    chat = db.create_conversation("from yesterday", "gone")
    said = db.add_message(chat, "user", "hello server")
    db.add_message(chat, "assistant", "hello user", parent_id=said)
    db.close()
    app = ChatApp("gone")
    async with app.run_test(size=(100, 32)) as pilot:
        await wait_until(pilot, lambda: app.session.model_ready)
        await pilot.press("ctrl+b")
        sidebar = app.chat.query_one("ConversationList")
        await wait_until(pilot, lambda: sidebar.option_count == 1)
        await pilot.press("enter")
        await wait_until(pilot, lambda: len(app.chat.query(AssistantMessage)) == 1)
        assert [str(u.render()) for u in app.chat.query(UserMessage)] == ["hello server"]
        assert app.chat.query(AssistantMessage).first().text == "hello user"
        app.chat.prompt.text = "are you there?"
        app.chat.prompt.focus()
        await pilot.press("enter")
        await wait_until(
            pilot, lambda: len(app.chat.query(AssistantMessage)) == 2 and not app.chat.streaming
        )
        await wait_until(
            pilot,
            lambda: "cannot reach" in str(list(app.chat.query(AssistantMessage))[-1].meta.render()),
        )
        meta = str(list(app.chat.query(AssistantMessage))[-1].meta.render())
        assert "gone: cannot reach the server at http://127.0.0.1:9/v1" in meta
        assert "\n" not in meta.strip()
    messages = Store(chatapp_home / "chatapp.db").messages(chat)
    assert [m.content for m in messages[:3]] == ["hello server", "hello user", "are you there?"]
