"""Pilot tests of the chat TUI with a fake engine model (scripted chunks, delays, pauses)."""

from __future__ import annotations

import threading
from pathlib import Path
from typing import Any

import pytest
from fakes import FakeModel, async_test, fake_loader, wait_until
from textual.command import CommandList
from textual.widgets import Label, TextArea
from textual.widgets.text_area import Selection

from chatapp.core.store import Store
from chatapp.tui.app import ChatApp
from chatapp.tui.reply_stream import FLUSH_MAX_SECONDS, FLUSH_SECONDS, ReplyStream, next_delay
from chatapp.tui.screens.dialogs import ConfirmScreen, HelpScreen
from chatapp.tui.screens.history_search import HistorySearch
from chatapp.tui.widgets.chat_view import AssistantMessage, Notice, UserMessage
from chatapp.tui.widgets.prompt import PromptInput
from chatapp.tui.widgets.status_bar import StatusBar

SIZE = (100, 32)


def make_app(model: FakeModel | None = None, source: str = "fake", load_delay: float = 0.0):
    model = model or FakeModel()
    return ChatApp(source, loader=fake_loader(model, load_delay)), model


async def ready(pilot, app: ChatApp) -> None:
    await wait_until(pilot, lambda: app.session.model_ready)


async def send(pilot, app: ChatApp, text: str) -> None:
    app.chat.prompt.text = text
    app.chat.prompt.focus()
    await pilot.press("enter")


async def reply_done(pilot, app: ChatApp, count: int = 1) -> AssistantMessage:
    def done() -> bool:
        views = app.chat.query(AssistantMessage)
        return len(views) >= count and not app.chat.streaming

    await wait_until(pilot, done)
    return list(app.chat.query(AssistantMessage))[count - 1]


def notices(app: ChatApp) -> list[str]:
    return [str(n.render()) for n in app.chat.query(Notice)]


def status(app: ChatApp) -> str:
    return str(app.chat.query_one(StatusBar).render())


@async_test
async def test_reply_streams_into_the_chat_and_is_stored_with_stats(chatapp_home: Path) -> None:
    model = FakeModel(chunks=["Use [bold]x[/] ", "and **y**", "."], delay=0.01)
    app, _ = make_app(model)
    async with app.run_test(size=SIZE) as pilot:
        await ready(pilot, app)
        await send(pilot, app, "hello there")
        view = await reply_done(pilot, app)
        assert view.text == "Use [bold]x[/] and **y**."  # Rich markup is kept as text
        assert [str(u.render()) for u in app.chat.query(UserMessage)] == ["hello there"]
        assert "42.0 tok/s" in status(app) and "3 tokens " in status(app)
        assert "TTFT 125 ms" in status(app)
        assert str(view.meta.render()) == "3 tokens · 42.0 tok/s · TTFT 125 ms"  # one wording
        assert model.calls[-1] == [{"role": "user", "content": "hello there"}]
        assert app.chat.prompt.text == ""
    store = Store(chatapp_home / "chatapp.db")
    (conv,) = store.list_conversations()
    assert conv.title == "hello there"
    msgs = store.messages(conv.id)
    assert [(m.role, m.content) for m in msgs] == [
        ("user", "hello there"),
        ("assistant", "Use [bold]x[/] and **y**."),
    ]
    assert msgs[1].parent_id == msgs[0].id
    assert msgs[1].stats is not None and msgs[1].stats.new_tokens == 3


@async_test
async def test_a_long_reply_shows_as_it_streams_and_ends_whole() -> None:
    gate = threading.Event()
    model = FakeModel(chunks=["a"] * 300, gate=gate, pause_after=150)
    app, _ = make_app(model)
    async with app.run_test(size=SIZE) as pilot:
        await ready(pilot, app)
        await send(pilot, app, "go")
        view = app.chat.query(AssistantMessage).first()
        # The model is paused half-way: the half it wrote is on screen before the reply ends.
        await wait_until(pilot, lambda: view.text == "a" * 150)
        assert app.chat.streaming and view.has_class("streaming")
        gate.set()
        view = await reply_done(pilot, app)
        assert view.text == "a" * 300 and not view.has_class("streaming")


@async_test
async def test_the_deltas_between_two_ticks_reach_the_view_as_one_update() -> None:
    class View:
        def __init__(self) -> None:
            self.updates: list[str] = []

        async def append(self, text: str) -> None:
            self.updates.append(text)

    view = View()
    stream = ReplyStream(view)  # type: ignore[arg-type]
    for _ in range(300):  # the engine thread, between two ticks
        stream.buffer.append("a")
    await stream.flush()
    await stream.flush()  # nothing new: no update
    assert view.updates == ["a" * 300]


def test_ticks_slow_down_when_showing_the_text_gets_costly() -> None:
    assert next_delay(0.0) == FLUSH_SECONDS
    assert FLUSH_SECONDS < next_delay(0.01) < FLUSH_MAX_SECONDS
    assert next_delay(1.0) == FLUSH_MAX_SECONDS


@async_test
async def test_escape_stops_the_reply_keeps_the_partial_text_and_focuses_the_prompt(
    chatapp_home: Path,
) -> None:
    gate = threading.Event()
    model = FakeModel(chunks=["partial ", "answer", " never"], gate=gate, pause_after=2)
    app, _ = make_app(model)
    async with app.run_test(size=SIZE) as pilot:
        await ready(pilot, app)
        await send(pilot, app, "tell me")
        await wait_until(
            pilot, lambda: app.chat.query(AssistantMessage).first().text == "partial answer"
        )
        assert app.chat.streaming
        app.chat.query_one("#chat").focus()
        await pilot.press("escape")
        view = await reply_done(pilot, app)
        assert view.text == "partial answer"
        assert view.has_class("stopped")
        assert "stopped" in str(view.meta.render())
        assert app.focused is app.chat.prompt
    store = Store(chatapp_home / "chatapp.db")
    (conv,) = store.list_conversations()
    last = store.messages(conv.id)[-1]
    assert (last.content, last.stopped) == ("partial answer", True)


@async_test
async def test_esc_reads_cancel_edit_while_a_prompt_is_edited_and_leaves_the_edit() -> None:
    app, _ = make_app()
    async with app.run_test(size=SIZE) as pilot:
        await ready(pilot, app)
        assert "escape" not in app.screen.active_bindings  # nothing to stop or leave
        await send(pilot, app, "first")
        await reply_done(pilot, app)
        app.chat.begin_edit()
        await pilot.pause()
        assert app.chat.prompt.text == "first"
        shown = app.screen.active_bindings["escape"].binding
        assert (shown.action, shown.description) == ("cancel_edit", "Cancel edit")
        await pilot.press("escape")
        assert app.chat.prompt.text == "" and app.chat.prompt.border_title is None
        assert "escape" not in app.screen.active_bindings


@async_test
async def test_the_model_loads_and_every_reply_runs_on_one_thread() -> None:
    """torch's OpenMP keeps a team per calling thread; two teams slowed decode 2x (see
    engine.engine_thread). So the load and the replies all run on the engine thread."""
    threads: list[threading.Thread] = []

    class Recording(FakeModel):
        def chat(self, *args: Any, **kwargs: Any) -> Any:
            threads.append(threading.current_thread())
            return super().chat(*args, **kwargs)

    model = Recording()
    load = fake_loader(model)

    def loader(source: str) -> FakeModel:
        threads.append(threading.current_thread())
        return load(source)

    app = ChatApp("fake", loader=loader)
    async with app.run_test(size=SIZE) as pilot:
        await ready(pilot, app)
        for i in range(3):
            await send(pilot, app, f"question {i}")
            await reply_done(pilot, app, i + 1)
    assert len(threads) == 4 and len(set(threads)) == 1
    assert threads[0].name.startswith("engine")  # the engine's, whichever worker asked


@async_test
async def test_a_new_chat_started_as_a_reply_ends_is_no_crash(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Ctrl+N while the finished reply is being shown (an await in between): the reply is
    stored in its own chat, and the new chat starts clean."""
    app, model = make_app()
    real_finish = AssistantMessage.finish

    async def finish_while_the_user_leaves(self: AssistantMessage, result: Any) -> None:
        app.chat.action_new_chat()
        await real_finish(self, result)

    async with app.run_test(size=SIZE) as pilot:
        await ready(pilot, app)
        monkeypatch.setattr(AssistantMessage, "finish", finish_while_the_user_leaves)
        await send(pilot, app, "first")
        await wait_until(
            pilot, lambda: app.session.conversation_id is None and not app.chat.streaming
        )
        monkeypatch.setattr(AssistantMessage, "finish", real_finish)
        await send(pilot, app, "second")
        await reply_done(pilot, app)
        assert app.session.messages == [
            {"role": "user", "content": "second"},
            {"role": "assistant", "content": "Hello, world!"},
        ]
    stored = [[m.content for m in Store().messages(c.id)] for c in Store().list_conversations()]
    assert sorted(stored) == [["first", "Hello, world!"], ["second", "Hello, world!"]]


@async_test
async def test_ctrl_c_stops_a_streaming_reply() -> None:
    gate = threading.Event()
    app, _ = make_app(FakeModel(chunks=["one ", "two"], gate=gate, pause_after=1))
    async with app.run_test(size=SIZE) as pilot:
        await ready(pilot, app)
        await send(pilot, app, "count")
        await wait_until(pilot, lambda: app.chat.query(AssistantMessage).first().text == "one ")
        await pilot.press("ctrl+c")
        view = await reply_done(pilot, app)
        assert view.text == "one " and view.has_class("stopped")


@async_test
async def test_ctrl_c_copies_the_selection_when_no_reply_streams() -> None:
    app, _ = make_app()
    async with app.run_test(size=SIZE) as pilot:
        await ready(pilot, app)
        app.chat.prompt.text = "hello world"
        app.chat.prompt.focus()
        app.chat.prompt.selection = Selection((0, 0), (0, 5))
        await pilot.press("ctrl+c")
        await pilot.pause()
        assert app.clipboard == "hello"
        assert app.chat.prompt.text == "hello world"


@async_test
async def test_a_prompt_sent_while_the_model_loads_waits_for_it() -> None:
    model, loaded = FakeModel(), threading.Event()

    def slow_load(source: str) -> FakeModel:
        loaded.wait(10)  # until the test lets the load finish (no timing assumptions)
        return model

    app = ChatApp("fake", loader=slow_load)
    async with app.run_test(size=SIZE) as pilot:
        assert app.session.loading
        assert "loading" in status(app)
        await send(pilot, app, "early bird")  # the prompt is usable at once
        assert app.chat.query(AssistantMessage).first().text == ""
        loaded.set()
        view = await reply_done(pilot, app)
        assert view.text == "Hello, world!"
        assert model.calls[0][-1]["content"] == "early bird"


@async_test
async def test_a_model_load_error_is_one_readable_line() -> None:
    app, _ = make_app(source="missing")
    async with app.run_test(size=SIZE) as pilot:
        await wait_until(pilot, lambda: bool(app.chat.query(Notice)))
        (line,) = notices(app)
        assert line.startswith("no model at 'missing'")
        assert "\n" not in line and "Traceback" not in line
        await send(pilot, app, "anyone?")
        view = await reply_done(pilot, app)
        assert "no model at" in str(view.meta.render())


@async_test
async def test_without_any_model_the_app_says_how_to_get_one(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    # The real resolution: nothing configured, used, embedded (no assets here) or installed.
    monkeypatch.setenv("CHATAPP_ASSETS", str(tmp_path / "no-assets"))
    monkeypatch.delenv("CHATAPP_MODEL", raising=False)
    app = ChatApp(None, loader=fake_loader(FakeModel()))
    async with app.run_test(size=SIZE) as pilot:
        await wait_until(pilot, lambda: bool(app.chat.query(Notice)))
        assert "chatapp pull smollm2" in notices(app)[0]
        assert "/model PATH" in notices(app)[0]


@async_test
async def test_enter_sends_but_ctrl_j_and_paste_keep_a_multi_line_prompt() -> None:
    app, model = make_app()
    async with app.run_test(size=SIZE) as pilot:
        await ready(pilot, app)
        await pilot.press(*"line1", "ctrl+j", *"line2")
        assert app.chat.prompt.text == "line1\nline2"
        await pilot.press("shift+enter")
        assert app.chat.prompt.text == "line1\nline2\n"
        app.chat.prompt.text = ""
        app.post_message(__import__("textual").events.Paste("a\nb\nc"))
        await wait_until(pilot, lambda: app.chat.prompt.text == "a\nb\nc")
        await pilot.press("enter")
        await reply_done(pilot, app)
        assert model.calls[0][-1]["content"] == "a\nb\nc"


@async_test
async def test_up_and_down_recall_prompts_and_keep_the_draft() -> None:
    app, _ = make_app()
    async with app.run_test(size=SIZE) as pilot:
        await ready(pilot, app)
        for i, text in enumerate(["first", "second\nmore"], start=1):
            await send(pilot, app, text)
            await reply_done(pilot, app, i)
        await pilot.press(*"draft")
        await pilot.press("up")
        assert app.chat.prompt.text == "second\nmore"
        await pilot.press("up")  # the cursor is on the last line: Up moves it first
        assert app.chat.prompt.text == "second\nmore" and app.chat.prompt.cursor_location[0] == 0
        await pilot.press("up")
        assert app.chat.prompt.text == "first"
        await pilot.press("up")  # nothing older
        assert app.chat.prompt.text == "first"
        await pilot.press("down")
        assert app.chat.prompt.text == "second\nmore"
        await pilot.press("down")
        assert app.chat.prompt.text == "draft"


@async_test
async def test_history_is_shared_across_runs_and_searchable_with_ctrl_r() -> None:
    app, _ = make_app()
    async with app.run_test(size=SIZE) as pilot:
        await ready(pilot, app)
        for i, text in enumerate(["explain rope scaling", "write a haiku", "write a haiku"], 1):
            await send(pilot, app, text)
            await reply_done(pilot, app, i)
    assert Store().prompts() == ["explain rope scaling", "write a haiku"]  # repeats once
    app, _ = make_app()
    async with app.run_test(size=SIZE) as pilot:
        await ready(pilot, app)
        await pilot.press("up")
        assert app.chat.prompt.text == "write a haiku"
        app.chat.prompt.text = ""
        await pilot.press("ctrl+r")
        await wait_until(pilot, lambda: isinstance(app.screen, HistorySearch))
        await pilot.press(*"rpsc")  # fuzzy: r-o-P-e S-Cal...
        screen = app.screen
        assert isinstance(screen, HistorySearch)
        assert screen.matches == ["explain rope scaling"]
        assert "Past prompts" in str(screen.query_one("#history-title", Label).render())
        await pilot.press("z", "z")
        await pilot.pause()
        assert screen.matches == []
        assert "No past prompt matches 'rpsczz'" in str(
            screen.query_one("#history-title", Label).render()
        )
        await pilot.press("backspace", "backspace")
        await pilot.pause()
        await pilot.press("enter")
        await wait_until(pilot, lambda: app.chat.prompt.text == "explain rope scaling")


@async_test
async def test_history_can_be_turned_off_in_config(chatapp_home: Path) -> None:
    chatapp_home.mkdir(parents=True, exist_ok=True)
    (chatapp_home / "config.toml").write_text("[history]\nenabled = false\n")
    app, _ = make_app()
    async with app.run_test(size=SIZE) as pilot:
        await ready(pilot, app)
        await send(pilot, app, "secret")
        await reply_done(pilot, app)
    assert Store().prompts() == []


@async_test
async def test_conversations_new_switch_rename_and_delete(chatapp_home: Path) -> None:
    app, model = make_app()
    async with app.run_test(size=SIZE) as pilot:
        await ready(pilot, app)
        await send(pilot, app, "first chat")
        await reply_done(pilot, app)
        await pilot.press("ctrl+n")
        await wait_until(pilot, lambda: not app.chat.query(UserMessage))
        await send(pilot, app, "second chat")
        await reply_done(pilot, app)
        assert model.calls[-1] == [{"role": "user", "content": "second chat"}]  # fresh context
        await pilot.press("ctrl+b")
        sidebar = app.chat.query_one("ConversationList")
        await wait_until(pilot, lambda: sidebar.option_count == 2)
        assert str(sidebar.get_option_at_index(0).prompt) == "second chat"  # newest first
        assert app.focused is sidebar
        await pilot.press("down", "enter")  # open "first chat"
        await wait_until(pilot, lambda: app.session.title == "first chat")
        await wait_until(pilot, lambda: len(app.chat.query(AssistantMessage)) == 1)
        assert [str(u.render()) for u in app.chat.query(UserMessage)] == ["first chat"]
        await send(pilot, app, "and more")
        await reply_done(pilot, app)
        assert [m["content"] for m in model.calls[-1]] == [
            "first chat",
            "Hello, world!",
            "and more",
        ]
        sidebar.focus()
        await pilot.press("r")
        await wait_until(pilot, lambda: app.screen.query("Input"))
        app.screen.query_one("Input").value = "Renamed"  # type: ignore[attr-defined]
        await pilot.press("enter")
        await wait_until(
            pilot, lambda: "Renamed" in [c.title for c in Store().list_conversations()]
        )
        sidebar.focus()
        sidebar.highlighted = [c.title for c in Store().list_conversations()].index("Renamed")
        await pilot.press("delete")
        await wait_until(pilot, lambda: isinstance(app.screen, ConfirmScreen))
        await pilot.press("y")
        await wait_until(pilot, lambda: sidebar.option_count == 1)
        assert [c.title for c in Store().list_conversations()] == ["second chat"]
        assert app.session.conversation_id is None  # the open chat was deleted: a new one


@async_test
async def test_slash_commands_change_settings_and_report_bad_values() -> None:
    app, model = make_app()
    async with app.run_test(size=SIZE) as pilot:
        await ready(pilot, app)
        await send(pilot, app, "/set temperature 0.25")
        await send(pilot, app, "/set max_tokens 64")
        await send(pilot, app, "/system Be brief.")
        assert "temp=0.25" in status(app) and "max=64" in status(app)
        await send(pilot, app, "/set temperature hot")
        await send(pilot, app, "/set top_p 2")
        await send(pilot, app, "/set flavour 1")
        await send(pilot, app, "/frobnicate")
        errors = [str(n.render()) for n in app.chat.query(Notice) if n.has_class("error")]
        assert errors == [
            "temperature must be a number, got 'hot'",
            "top_p must be in (0, 1] (1 = off), got 2.0",
            "unknown setting 'flavour'; use one of: temperature, top_k, top_p, min_p, "
            "repetition_penalty, max_tokens, seed",
            "unknown command /frobnicate; type /help for the list",
        ]
        await send(pilot, app, "/show")
        assert "temperature=0.25" in notices(app)[-1] and "Be brief." in notices(app)[-1]
        await send(pilot, app, "hi")
        await reply_done(pilot, app)
        params = model.params[-1]
        assert (params.temperature, params.max_new_tokens) == (0.25, 64)
        assert model.calls[-1][0] == {"role": "system", "content": "Be brief."}
        await send(pilot, app, "/help")
        await wait_until(pilot, lambda: isinstance(app.screen, HelpScreen))


@async_test
async def test_settings_are_saved_with_the_conversation_and_restored_on_reopen() -> None:
    app, _ = make_app()
    async with app.run_test(size=SIZE) as pilot:
        await ready(pilot, app)
        await send(pilot, app, "/set top_k 7")
        await send(pilot, app, "remember me")
        await reply_done(pilot, app)
        await send(pilot, app, "/set seed 3")  # after the chat exists: saved too
    (conv,) = Store().list_conversations()
    app, model = make_app()
    async with app.run_test(size=SIZE) as pilot:
        await ready(pilot, app)
        assert app.session.sampling == {}  # a new chat starts from the defaults
        await app.chat.open_conversation(conv.id)
        assert app.session.sampling == {"top_k": 7, "seed": 3}
        await send(pilot, app, "again")
        await reply_done(pilot, app, 2)
        assert (model.params[-1].top_k, model.params[-1].seed) == (7, 3)


@async_test
async def test_tab_completes_commands_and_setting_names() -> None:
    app, _ = make_app()
    async with app.run_test(size=SIZE) as pilot:
        await pilot.press("/", "s", "e", "t", "tab")
        assert app.chat.prompt.text == "/set "
        await pilot.press("t", "e", "tab")
        assert app.chat.prompt.text == "/set temperature "


@async_test
async def test_the_command_palette_runs_the_same_commands() -> None:
    app, _ = make_app()
    async with app.run_test(size=SIZE) as pilot:
        await ready(pilot, app)
        await pilot.press("ctrl+p")
        await pilot.press(*"/set temperature 0.3")

        def offered() -> bool:  # the palette lists the typed command as a hit to run
            lists = app.screen.query(CommandList)
            return bool(lists) and any(
                "Run /set temperature 0.3" in str(lists.first().get_option_at_index(i).prompt)
                for i in range(lists.first().option_count)
            )

        await wait_until(pilot, offered)
        await pilot.press("enter")
        await wait_until(pilot, lambda: app.session.sampling.get("temperature") == 0.3)


@async_test
async def test_f1_and_question_mark_show_the_key_bindings() -> None:
    app, _ = make_app()
    async with app.run_test(size=SIZE) as pilot:
        await pilot.press("f1")
        assert isinstance(app.screen, HelpScreen)
        await pilot.press("escape")
        assert not isinstance(app.screen, HelpScreen)
        await pilot.press("?")  # the prompt is empty: help
        assert isinstance(app.screen, HelpScreen)
        await pilot.press("escape")
        await pilot.press("a", "?")  # inside text it is just a character
        assert app.chat.prompt.text == "a?"


@async_test
async def test_broken_config_gives_defaults_and_one_warning(chatapp_home: Path) -> None:
    chatapp_home.mkdir(parents=True, exist_ok=True)
    (chatapp_home / "config.toml").write_text("[sampling\ntemperature = ")
    app, _ = make_app()
    async with app.run_test(size=SIZE) as pilot:
        await ready(pilot, app)
        assert len(app._notifications) == 1
        (note,) = list(app._notifications)
        assert "not valid TOML" in note.message and "\n" not in note.message


def test_prompt_is_a_text_area() -> None:
    assert issubclass(PromptInput, TextArea)


@async_test
async def test_a_tiny_real_model_streams_a_reply_with_stats(tiny_models: dict[str, Path]) -> None:
    app = ChatApp(str(tiny_models["llama"]))  # the real engine loader, in the worker
    async with app.run_test(size=SIZE) as pilot:
        await send(pilot, app, "/set seed 1")
        await send(pilot, app, "/set max_tokens 24")
        await send(pilot, app, "Hello world!")
        view = await reply_done(pilot, app)
        assert app.session.model is not None and app.session.model.name == "llama"
        stats = app.session.last_stats
        assert stats is not None and 0 < stats.new_tokens <= 24
        assert view.text  # random weights: gibberish, but streamed text
        assert f"{stats.new_tokens} tokens " in status(app)
        assert f"/{app.session.model.context_length}" in status(app)
    (conv,) = Store().list_conversations()
    assert Store().messages(conv.id)[-1].content == view.text
    assert conv.model == str(tiny_models["llama"])  # the chat keeps the model it was held with


@async_test
async def test_keys_typed_right_after_enter_start_a_new_prompt() -> None:
    app, _ = make_app()
    async with app.run_test(size=SIZE) as pilot:
        await pilot.press(*"/set top_k 5", "enter", *"/set top_p 0.5", "enter")
        await wait_until(pilot, lambda: app.session.sampling == {"top_k": 5, "top_p": 0.5})
        assert not [n for n in app.chat.query(Notice) if n.has_class("error")]


class Info:
    def __init__(self, name: str) -> None:
        self.name, self.architecture, self.parameters = name, "LlamaForCausalLM", 1_000_000
        self.context_length, self.size_bytes = 512, 4_000_000


@async_test
async def test_model_switches_with_slash_model_and_the_picker_and_reopen_restores_it() -> None:
    loaded: list[str] = []

    def loader(source: str) -> FakeModel:
        loaded.append(source)
        return FakeModel(name=source, chunks=[f"from {source}"])

    app = ChatApp("alpha", loader=loader, list_models=lambda: [Info("alpha"), Info("beta")])
    async with app.run_test(size=SIZE) as pilot:
        await ready(pilot, app)
        await send(pilot, app, "hi")
        assert (await reply_done(pilot, app)).text == "from alpha"
        await send(pilot, app, "/model be")  # Tab-completable too; here typed in full below
        await wait_until(pilot, lambda: app.session.model_ready and loaded[-1] == "be")
        await pilot.press(*"/model b", "tab")
        assert app.chat.prompt.text == "/model beta"
        app.chat.prompt.text = ""
        await pilot.press("ctrl+o")
        await wait_until(pilot, lambda: bool(app.screen.query("DataTable")))
        table = app.screen.query_one("DataTable")
        await wait_until(pilot, lambda: table.row_count == 2)  # type: ignore[attr-defined]
        await pilot.press("down", "enter")
        await wait_until(pilot, lambda: app.session.model_ready and loaded[-1] == "beta")
        await send(pilot, app, "again")
        assert (await reply_done(pilot, app, 2)).text == "from beta"
        conversation = app.session.conversation_id
        assert conversation is not None
        await pilot.press("ctrl+n")
        await send(pilot, app, "/model alpha")
        await wait_until(pilot, lambda: app.session.model_ready and loaded[-1] == "alpha")
        await app.chat.open_conversation(conversation)
        await wait_until(pilot, lambda: app.session.model_ready and loaded[-1] == "beta")
    assert Store().get_conversation(conversation).model == "beta"  # type: ignore[union-attr]


@pytest.mark.parametrize("how", ["ctrl+q", "SIGTERM", "SIGHUP"])
@async_test
async def test_quitting_mid_reply_keeps_the_partial_reply(how: str) -> None:
    """Ctrl+Q, `kill PID` (SIGTERM) and the terminal closing (SIGHUP) all store the
    partial reply."""
    import os
    import signal

    gate = threading.Event()
    app, _ = make_app(FakeModel(chunks=["half ", "of it"], gate=gate, pause_after=1))
    async with app.run_test(size=SIZE) as pilot:
        await ready(pilot, app)
        await send(pilot, app, "start")
        await wait_until(pilot, lambda: app.chat.query(AssistantMessage).first().text == "half ")
        if how == "ctrl+q":
            await pilot.press("ctrl+q")
        else:
            os.kill(os.getpid(), getattr(signal, how))
            await wait_until(pilot, lambda: not app.is_running)
    (conv,) = Store().list_conversations()
    last = Store().messages(conv.id)[-1]
    assert (last.role, last.content, last.stopped) == ("assistant", "half ", True)


@async_test
async def test_a_models_load_warnings_are_shown_in_the_chat() -> None:
    note = "unknown pre-tokenizer 'martian': GPT-2's split rules are used"
    app, _ = make_app(FakeModel(warnings=[note]))
    async with app.run_test(size=SIZE) as pilot:
        await ready(pilot, app)
        await wait_until(pilot, lambda: any(note in n for n in notices(app)))


@async_test
async def test_a_full_disk_when_sending_keeps_the_prompt_and_the_app(chatapp_home: Path) -> None:
    import sqlite3

    app, model = make_app()
    async with app.run_test(size=SIZE) as pilot:
        await ready(pilot, app)
        real = app.store.add_prompt

        def full(text: str) -> None:
            raise sqlite3.OperationalError("database or disk is full")

        app.store.add_prompt = full  # type: ignore[method-assign]
        await send(pilot, app, "an important question")
        await wait_until(pilot, lambda: any("disk is full" in n for n in notices(app)))
        assert app.chat.prompt.text == "an important question"  # nothing typed is lost
        assert not app.chat.query(UserMessage) and model.calls == []
        app.store.add_prompt = real  # type: ignore[method-assign]
        await pilot.press("enter")  # the disk has room again: the same prompt goes out
        assert (await reply_done(pilot, app)).text == "Hello, world!"


@async_test
async def test_a_full_disk_during_a_reply_keeps_the_reply_on_screen() -> None:
    import sqlite3

    app, _ = make_app(FakeModel(chunks=["kept ", "on screen"]))
    async with app.run_test(size=SIZE) as pilot:
        await ready(pilot, app)
        real = app.store.add_message

        def full(conversation_id: int, role: str, content: str, **kw: object) -> int:
            if role == "assistant":
                raise sqlite3.OperationalError("database or disk is full")
            return real(conversation_id, role, content, **kw)  # type: ignore[arg-type]

        app.store.add_message = full  # type: ignore[method-assign]
        await send(pilot, app, "hi")
        view = await reply_done(pilot, app)
        assert view.text == "kept on screen"
        assert "could not be saved" in str(view.meta.render())


@async_test
async def test_a_chat_deleted_by_another_chatapp_is_one_line_and_nothing_is_lost(
    chatapp_home: Path,
) -> None:
    app, _ = make_app()
    async with app.run_test(size=SIZE) as pilot:
        await ready(pilot, app)
        await send(pilot, app, "first")
        await reply_done(pilot, app)
        other = Store(chatapp_home / "chatapp.db")  # a second instance deletes this chat
        other.delete_conversation(app.session.conversation_id)  # type: ignore[arg-type]
        other.close()
        await send(pilot, app, "second")
        await wait_until(pilot, lambda: any("could not save" in n for n in notices(app)))
        assert app.chat.prompt.text == "second"
        await pilot.press("ctrl+b")  # the sidebar and the rest of the app still work
        await pilot.press("ctrl+n")
        await wait_until(pilot, lambda: not app.chat.query(UserMessage))
        app.chat.prompt.focus()
        await pilot.press("enter")  # the kept prompt, in a new chat
        assert (await reply_done(pilot, app)).text == "Hello, world!"


@async_test
async def test_the_context_gauge_never_shows_more_than_the_context() -> None:
    model = FakeModel(chunks=["a", "b"], context_length=16)
    app, _ = make_app(model)
    async with app.run_test(size=SIZE) as pilot:
        await ready(pilot, app)
        await send(pilot, app, "fill it")
        await reply_done(pilot, app)
        app.session.context_used = 17  # a reply that ran into the end of the context
        app.chat.refresh_status()
        assert "ctx 16/16" in status(app)


@async_test
async def test_a_reply_finishing_after_the_user_switched_chats_stays_in_its_own_chat() -> None:
    """The reply is stored in the chat it was asked in; the chat the user switched to meanwhile
    gets neither the reply nor a parent link into the other chat."""
    app, model = make_app()
    async with app.run_test(size=SIZE) as pilot:
        await ready(pilot, app)
        await send(pilot, app, "chat b")
        await reply_done(pilot, app)
        chat_b = app.session.conversation_id
        assert chat_b is not None
        await pilot.press("ctrl+n")
        await wait_until(pilot, lambda: not app.chat.query(UserMessage))

        storing, release = threading.Event(), threading.Event()
        real = app.store.add_message

        def slow(conversation_id: int, role: str, content: str, **kw: object) -> int:
            if role == "assistant":  # the reply is done: hold it until the user has moved on
                storing.set()
                release.wait(10)
            return real(conversation_id, role, content, **kw)  # type: ignore[arg-type]

        app.store.add_message = slow  # type: ignore[method-assign]
        await send(pilot, app, "chat a")
        await wait_until(pilot, storing.is_set)
        chat_a = app.session.conversation_id
        await app.chat.open_conversation(chat_b)
        release.set()
        await wait_until(pilot, lambda: len(Store().messages(chat_a)) == 2)  # type: ignore[arg-type]
        app.store.add_message = real  # type: ignore[method-assign]
        await send(pilot, app, "next")
        await reply_done(pilot, app, 2)
        assert model.calls[-1] == [
            {"role": "user", "content": "chat b"},
            {"role": "assistant", "content": "Hello, world!"},
            {"role": "user", "content": "next"},
        ]
    stored = Store().messages(chat_b)
    assert [m.content for m in stored] == ["chat b", "Hello, world!", "next", "Hello, world!"]
    assert [m.parent_id for m in stored[1:]] == [m.id for m in stored[:-1]]


def test_the_help_table_is_read_from_the_bindings() -> None:
    app, _ = make_app()
    all_rows = [row for _, section in app.key_help() for row in section]
    rows = dict(all_rows)
    esc = [what for keys, what in all_rows if keys == "Esc / Ctrl+C"]
    assert esc == ["stop the reply", "leave the edit of an earlier prompt"]
    assert rows["F1 / ?"] == "this help"
    assert rows["Up / Down"].startswith("earlier prompts")
    assert rows["Del / D"] == "delete it"
    for binding in ChatApp.BINDINGS:  # a new binding is in the help without a second table
        assert binding.tooltip in [what for _, what in all_rows]  # type: ignore[union-attr]


def test_the_fake_model_has_the_engine_interface() -> None:
    """The tests' fake is an ``engine.Model`` whose ``chat`` takes the same arguments."""
    import inspect

    import engine

    def shape(fn: object) -> list[tuple[str, object, object]]:
        params = inspect.signature(fn).parameters.values()  # type: ignore[arg-type]
        return [(p.name, p.kind, p.default) for p in params]

    assert isinstance(FakeModel(), engine.Model)
    assert shape(FakeModel.chat) == shape(engine.Model.chat)


# --- the first ten minutes (issue 16) -----------------------------------------------------


def welcome(app: ChatApp) -> str:
    from chatapp.tui.widgets.chat_view import Welcome

    return "".join(str(w.render()) for w in app.chat.query(Welcome))


def errors(app: ChatApp) -> list[str]:
    return [str(n.render()) for n in app.chat.query(Notice) if n.has_class("error")]


@async_test
async def test_a_failed_model_switch_keeps_the_current_model_loaded_and_usable() -> None:
    app, model = make_app()
    async with app.run_test(size=SIZE) as pilot:
        await ready(pilot, app)
        before = status(app)
        await send(pilot, app, "/model missing")
        await wait_until(pilot, lambda: any("no model at 'missing'" in e for e in errors(app)))
        await wait_until(pilot, lambda: app.session.model_ready)
        assert app.session.model is model and app.session.model_source == "fake"
        assert "still using fake" in errors(app)[-1]
        assert status(app) == before  # not "missing (not loaded)"
        assert not [n for n in notices(app) if n.startswith("loading")]  # gone with the load
        await send(pilot, app, "still there?")
        assert (await reply_done(pilot, app)).text == "Hello, world!"
        await pilot.press("ctrl+n")
        await wait_until(pilot, lambda: not app.chat.query(UserMessage))
        await send(pilot, app, "a new chat")
        assert (await reply_done(pilot, app)).text == "Hello, world!"


@async_test
async def test_the_guide_and_installed_models_go_by_name_alias_or_prefix_in_the_chat(
    tiny_models: dict[str, Path], monkeypatch: pytest.MonkeyPatch
) -> None:
    """The real loader: ``guide`` is a name, ``/model smollm2`` is the pull alias, a typo
    offers the closest name and keeps the model loaded."""
    from chatapp.models.importer import import_model

    monkeypatch.delenv("CHATAPP_MODEL", raising=False)
    import_model(tiny_models["llama"], "smollm2-135m-instruct")
    app = ChatApp(None)  # the default: the built-in guide
    async with app.run_test(size=SIZE) as pilot:
        await wait_until(pilot, lambda: app.session.model_ready, timeout=30)
        # model_ready is set in the loading thread; the status line follows on the UI thread.
        await wait_until(pilot, lambda: "guide" in status(app))
        assert app.session.model_source == "guide"
        await send(pilot, app, "/model smolm")
        await wait_until(pilot, lambda: bool(errors(app)), timeout=30)  # real loads: slack
        assert errors(app)[-1] == (
            "no model named 'smolm'; did you mean smollm2-135m-instruct?; still using guide"
        )
        await wait_until(pilot, lambda: app.session.model_ready, timeout=30)
        assert app.session.model is not None and app.session.model.name == "guide"
        await send(pilot, app, "/model smollm2")
        await wait_until(pilot, lambda: app.session.model_source == "smollm2-135m-instruct")
        await wait_until(pilot, lambda: app.session.model_ready, timeout=30)
        await send(pilot, app, "/model guide")
        await wait_until(pilot, lambda: app.session.model_source == "guide")
        await wait_until(pilot, lambda: app.session.model_ready, timeout=30)
        assert app.session.model.name == "guide"


@async_test
async def test_the_picker_lists_the_guide_marked_built_in() -> None:
    app = ChatApp("fake", loader=fake_loader(FakeModel()))  # the real list of models
    async with app.run_test(size=SIZE) as pilot:
        await ready(pilot, app)
        await pilot.press("ctrl+o")
        await wait_until(pilot, lambda: bool(app.screen.query("DataTable")))
        table = app.screen.query_one("DataTable")
        await wait_until(pilot, lambda: table.row_count == 1)  # type: ignore[attr-defined]
        name = str(table.get_row_at(0)[0])  # type: ignore[attr-defined]
        assert name == "guide (built-in)"


@async_test
async def test_the_chat_opens_with_the_default_model_that_ask_uses(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """No model of the chat's own: a model used last time does not replace the default."""
    from chatapp.models.choice import default_model

    monkeypatch.delenv("CHATAPP_MODEL", raising=False)
    loaded: list[str] = []

    def loader(source: str) -> FakeModel:
        loaded.append(source)
        return FakeModel(name=source)

    app = ChatApp("alpha", loader=loader)
    async with app.run_test(size=SIZE) as pilot:
        await ready(pilot, app)
        await send(pilot, app, "hi")
        await reply_done(pilot, app)
    app = ChatApp(None, loader=loader)
    async with app.run_test(size=SIZE) as pilot:
        await ready(pilot, app)
    assert loaded == ["alpha", default_model().name] and loaded[-1] == "guide"


@async_test
async def test_an_empty_chat_says_which_model_it_is_and_the_keys_that_matter() -> None:
    app, _ = make_app()
    async with app.run_test(size=SIZE) as pilot:
        await ready(pilot, app)
        await wait_until(pilot, lambda: "fake" in welcome(app))
        text = welcome(app)
        for key in ("Enter", "Esc", "Ctrl+O", "F1"):
            assert key in text
        await send(pilot, app, "hello")
        await reply_done(pilot, app)
        assert welcome(app) == ""  # until the first message
        await pilot.press("ctrl+n")
        await wait_until(pilot, lambda: "fake" in welcome(app))  # and again in a new chat


@async_test
async def test_the_guide_welcome_says_what_it_knows_and_how_to_get_a_real_model() -> None:
    app, _ = make_app(FakeModel(name="guide"), source="guide")
    async with app.run_test(size=SIZE) as pilot:
        await ready(pilot, app)
        await wait_until(pilot, lambda: "chatapp pull smollm2" in welcome(app))
        assert "chatapp" in welcome(app) and "English and Chinese" in welcome(app)


@async_test
async def test_a_base_model_welcome_points_to_plain_completion() -> None:
    note = "base has no chat template, so it is probably a base model"
    app, _ = make_app(FakeModel(name="base", base_model_note=note))
    async with app.run_test(size=SIZE) as pilot:
        await ready(pilot, app)
        await wait_until(pilot, lambda: "base model" in welcome(app))
        assert "chatapp ask --raw" in welcome(app)


async def palette_pick(pilot, app: ChatApp, typed: str) -> None:
    await pilot.press("ctrl+p")
    await pilot.press(*typed)

    def hits() -> bool:
        lists = app.screen.query(CommandList)
        return bool(lists) and lists.first().option_count > 0

    await wait_until(pilot, hits)
    await pilot.press("enter")


@async_test
async def test_the_palette_puts_a_command_with_an_argument_into_the_prompt() -> None:
    app, _ = make_app()
    async with app.run_test(size=SIZE) as pilot:
        await ready(pilot, app)
        await send(pilot, app, "/system Be brief.")
        await palette_pick(pilot, app, "set")  # ranks /system and /set first
        await wait_until(pilot, lambda: app.chat.prompt.text.startswith("/s"))
        assert app.chat.prompt.text in ("/system ", "/set ")
        assert app.chat.prompt.cursor_location == (0, len(app.chat.prompt.text))
        assert app.session.system == "Be brief."  # nothing ran


@async_test
async def test_system_without_text_shows_it_and_clear_removes_it() -> None:
    app, model = make_app()
    async with app.run_test(size=SIZE) as pilot:
        await ready(pilot, app)
        await send(pilot, app, "/system")
        assert notices(app)[-1] == "no system prompt"
        await send(pilot, app, "/system Be brief.")
        await send(pilot, app, "/system")
        assert notices(app)[-1] == "system prompt: Be brief."
        assert app.session.system == "Be brief."
        await send(pilot, app, "/system clear")
        assert notices(app)[-1] == "system prompt cleared" and app.session.system == ""


@async_test
async def test_a_reply_cut_off_at_the_end_of_the_context_is_marked() -> None:
    app, _ = make_app(FakeModel(stop_reason="context", context_length=64))
    async with app.run_test(size=SIZE) as pilot:
        await ready(pilot, app)
        await send(pilot, app, "go on and on")
        view = await reply_done(pilot, app)
        assert str(view.meta.render()).startswith("■ cut off: the context is full")
        assert view.has_class("stopped")
        conversation = app.session.conversation_id
        await pilot.press("ctrl+n")
        await app.chat.open_conversation(conversation)  # type: ignore[arg-type]
        view = app.chat.query(AssistantMessage).first()
        assert str(view.meta.render()).startswith("■ cut off: the context is full")


@async_test
async def test_the_chat_marks_where_older_turns_left_the_models_view() -> None:
    from chatapp.tui.widgets.chat_view import ContextCut

    model = FakeModel(context_length=64)
    app, _ = make_app(model)
    async with app.run_test(size=SIZE) as pilot:
        await ready(pilot, app)
        for i in (1, 2):
            await send(pilot, app, f"turn {i}")
            await reply_done(pilot, app, i)
        assert not app.chat.query(ContextCut)
        model.dropped_messages = 2  # turn 1 and its reply no longer fit
        await send(pilot, app, "turn 3")
        await reply_done(pilot, app, 3)
        await wait_until(pilot, lambda: bool(app.chat.query(ContextCut)))
        (cut,) = app.chat.query(ContextCut)
        assert "2 messages above" in str(cut.render()) and "64-token context" in str(cut.render())
        shown = [w for w in app.chat.chat_view.children if isinstance(w, (UserMessage, ContextCut))]
        assert [str(w.render()) if isinstance(w, UserMessage) else "cut" for w in shown] == [
            "turn 1",
            "cut",
            "turn 2",
            "turn 3",
        ]
        conversation = app.session.conversation_id
        stored = Store().messages(conversation)[-1]  # type: ignore[arg-type]
        assert stored.stats is not None and stored.stats.dropped_messages == 2
        await pilot.press("ctrl+n")
        await app.chat.open_conversation(conversation)  # type: ignore[arg-type]
        shown = [w for w in app.chat.chat_view.children if isinstance(w, (UserMessage, ContextCut))]
        assert [type(w).__name__ for w in shown] == [
            "UserMessage",
            "ContextCut",
            "UserMessage",
            "UserMessage",
        ]  # reopened, the chat still shows where the model's view begins


@async_test
async def test_the_status_bar_never_shows_max_tokens_beyond_the_context() -> None:
    app, _ = make_app(FakeModel(context_length=128))
    async with app.run_test(size=SIZE) as pilot:
        await ready(pilot, app)
        assert "max=128" in status(app) and "max=512" not in status(app)
        await send(pilot, app, "/set max_tokens 64")
        assert "max=64" in status(app)


@async_test
async def test_a_bad_max_tokens_is_named_as_typed() -> None:
    app, _ = make_app()
    async with app.run_test(size=SIZE) as pilot:
        await ready(pilot, app)
        await send(pilot, app, "/set max_tokens -3")
        assert errors(app) == ["max_tokens must be an integer in [1, 1,000,000], got -3"]


@async_test
async def test_a_mistyped_slash_command_suggests_the_closest() -> None:
    app, _ = make_app()
    async with app.run_test(size=SIZE) as pilot:
        await send(pilot, app, "/modle x")
        assert errors(app) == [
            "unknown command /modle; did you mean /model? type /help for the list"
        ]


@async_test
async def test_the_completions_strip_follows_the_prompt_and_goes_when_it_is_cleared() -> None:
    app, _ = make_app()
    async with app.run_test(size=SIZE) as pilot:
        strip = app.chat.query_one("#completions")
        await pilot.press("/", "s", "tab")
        assert strip.display and "/system" in str(strip.render()) and "/set" in str(strip.render())
        await pilot.press("y")  # "/sy": /system only
        await wait_until(pilot, lambda: not strip.display)
        await pilot.press("backspace", "tab")
        assert strip.display
        await pilot.press("backspace", "backspace")  # the prompt is empty
        await wait_until(pilot, lambda: not strip.display)
        assert not app._notifications  # no toast left behind either


@async_test
async def test_ctrl_c_with_nothing_streaming_or_selected_says_what_it_does() -> None:
    app, _ = make_app()
    async with app.run_test(size=SIZE) as pilot:
        await ready(pilot, app)
        await pilot.press("ctrl+c")
        await wait_until(pilot, lambda: bool(app._notifications))
        (note,) = list(app._notifications)
        assert "Ctrl+C stops a reply" in note.message and "Ctrl+Q quits" in note.message


@async_test
async def test_a_read_only_database_shows_the_saved_chats_and_says_once_nothing_new_is_saved(
    chatapp_home: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import chatapp.core.store as store_module

    db = Store(chatapp_home / "chatapp.db")
    chat = db.create_conversation("an old chat", "fake")
    said = db.add_message(chat, "user", "what was said")
    db.add_message(chat, "assistant", "and the answer", parent_id=said)
    db.close()
    before = (chatapp_home / "chatapp.db").read_bytes()
    # What a read-only file or folder looks like to chatapp (chmod cannot show it to root).
    monkeypatch.setattr(store_module, "_can_write", lambda path: False)
    app, model = make_app()
    async with app.run_test(size=SIZE) as pilot:
        await ready(pilot, app)
        assert app.store.read_only
        said = [n for n in notices(app) if "read-only" in n]
        assert len(said) == 1 and "not saved" in said[0] and "\n" not in said[0]
        await pilot.press("ctrl+b")
        sidebar = app.chat.query_one("ConversationList")
        await wait_until(pilot, lambda: sidebar.option_count == 1)
        await pilot.press("enter")  # open it
        await wait_until(pilot, lambda: len(app.chat.query(AssistantMessage)) == 1)
        assert [str(u.render()) for u in app.chat.query(UserMessage)] == ["what was said"]
        assert app.chat.query(AssistantMessage).first().text == "and the answer"
        await send(pilot, app, "a new question")
        await wait_until(pilot, lambda: any("could not save" in n for n in notices(app)))
        assert app.chat.prompt.text == "a new question" and model.calls == []  # the prompt is kept
        assert "read-only" in [n for n in notices(app) if "could not save" in n][0]
        await send(pilot, app, "/set temperature 0.5")
        await wait_until(pilot, lambda: any("is not saved" in n for n in notices(app)))
        assert app.is_running
    assert (chatapp_home / "chatapp.db").read_bytes() == before  # nothing was written
