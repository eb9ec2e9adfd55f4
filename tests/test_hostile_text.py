"""Text from a model, the database, a model file or a config never reaches the terminal raw:
escape sequences are shown as text (␛), Rich markup in data stays literal."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest
from fakes import FakeModel, async_test, fake_loader, wait_until
from textual.app import App

from chatapp.cli import main
from chatapp.console_text import printable, strip_control
from chatapp.core.store import Store
from chatapp.tui.app import ChatApp
from chatapp.tui.screens.history_search import HistorySearch
from chatapp.tui.screens.model_picker import ModelPicker
from chatapp.tui.widgets.chat_view import AssistantMessage

# Writes the clipboard (OSC 52), sets the window title (OSC 0), clears the screen (CSI 2J), and
# a C1 CSI (U+009B) that some terminals honour too.
HOSTILE = "a\x1b]52;c;ZWNobyBwd25lZA==\x07b\x1b]0;pwned\x07c\x1b[2Jd\x9b31me"
SIZE = (110, 32)


def controls(text: str) -> list[str]:
    return [c for c in text if (ord(c) < 0x20 and c not in "\n\t") or 0x7F <= ord(c) <= 0x9F]


def screen_controls(app: App[object]) -> list[str]:
    """Control characters anywhere on the rendered screen (the SVG screenshot holds the text of
    every cell; the app's own styling is not in it)."""
    return controls(app.export_screenshot())


def test_printable_shows_controls_and_keeps_text() -> None:
    assert printable("x\x1b[2Jy\tz\n") == "x␛[2Jy\tz\n"
    assert printable("a\x9bb\x7fc\x00") == "a\ufffdb␡c␀"
    assert printable("line\r\nnext\r") == "line\nnext"  # CR carries no text
    assert printable("naïve 中文 🙂") == "naïve 中文 🙂"  # only controls change
    assert strip_control(HOSTILE) == "a]52;c;ZWNobyBwd25lZA==b]0;pwnedc[2Jd31me"


class Info:
    def __init__(self, name: str, architecture: str) -> None:
        self.name, self.architecture, self.parameters = name, architecture, 1_000_000
        self.context_length, self.size_bytes = 512, 4_000_000


@async_test
async def test_escape_sequences_from_a_reply_are_shown_not_sent_in_every_view(
    chatapp_home: Path,
) -> None:
    model = FakeModel(chunks=["ok ", HOSTILE, " [b]end[/b]"], name="evil\x1b]0;t\x07")
    models = [Info("evil\x1b[2J[/]", "Llama\x9b31m")]
    app = ChatApp("fake", loader=fake_loader(model), list_models=lambda: models)
    async with app.run_test(size=SIZE) as pilot:
        await wait_until(pilot, lambda: app.session.model_ready)
        app.chat.prompt.text = "hi " + HOSTILE
        await pilot.press("enter")
        await wait_until(
            pilot, lambda: bool(app.chat.query(AssistantMessage)) and not app.chat.streaming
        )
        view = app.chat.query_one(AssistantMessage)
        assert view.text == "ok " + HOSTILE + " [b]end[/b]"  # kept as the model wrote it
        assert "␛]52;c;" in app.export_screenshot()  # shown, so the user sees it was there
        assert screen_controls(app) == []  # chat, status bar (model name)

        await pilot.press("ctrl+b")  # the sidebar: the title comes from the prompt
        await wait_until(pilot, lambda: app.chat.query_one("ConversationList").option_count == 1)
        assert screen_controls(app) == []

        await pilot.press("ctrl+o")  # the picker: names and architectures come from files
        await wait_until(pilot, lambda: isinstance(app.screen, ModelPicker))
        await wait_until(pilot, lambda: app.screen.query_one("DataTable").row_count == 1)  # type: ignore[attr-defined]
        assert "evil␛[2J[/]" in app.export_screenshot()
        assert screen_controls(app) == []
        await pilot.press("escape")

        await pilot.press("ctrl+r")  # past prompts, from the database
        await wait_until(pilot, lambda: isinstance(app.screen, HistorySearch))
        await pilot.pause()
        assert screen_controls(app) == []
        await pilot.press("enter")  # the chosen prompt comes back as text
        await wait_until(pilot, lambda: not isinstance(app.screen, HistorySearch))
        assert controls(app.chat.prompt.text) == [] and app.chat.prompt.text.startswith(
            "hi a]52;c;"
        )


@async_test
async def test_a_stored_chat_with_escape_sequences_reopens_safely(chatapp_home: Path) -> None:
    store = Store(chatapp_home / "chatapp.db")
    conv = store.create_conversation(title="t\x1b]0;title\x07itle", model="fake")
    user = store.add_message(conv, "user", "q\x1b[2J")
    store.add_message(conv, "assistant", HOSTILE, parent_id=user)
    store.close()
    app = ChatApp("fake", loader=fake_loader(FakeModel()))
    async with app.run_test(size=SIZE) as pilot:
        await wait_until(pilot, lambda: app.session.model_ready)
        await app.chat.open_conversation(conv)
        await pilot.press("ctrl+b")
        await wait_until(pilot, lambda: bool(app.chat.query(AssistantMessage)))
        await pilot.pause()
        assert "␛[2J" in app.export_screenshot()
        assert screen_controls(app) == []


@async_test
async def test_a_paste_with_escape_sequences_enters_the_prompt_as_text() -> None:
    app = ChatApp("fake", loader=fake_loader(FakeModel()))
    async with app.run_test(size=SIZE) as pilot:
        app.chat.prompt.focus()
        await pilot.pause()
        from textual import events

        app.post_message(events.Paste("x\x1b[2Jy\r\nz"))  # as the terminal delivers it
        await wait_until(pilot, lambda: bool(app.chat.prompt.text))
        assert app.chat.prompt.text == "x[2Jy\nz"
        assert screen_controls(app) == []


@async_test
async def test_a_theme_with_markup_in_config_is_a_warning_not_a_crash(chatapp_home: Path) -> None:
    from chatapp.core.settings import config_path

    config_path().parent.mkdir(parents=True, exist_ok=True)
    config_path().write_text('theme = "[/]\\u001b[2J"\n', encoding="utf-8")
    app = ChatApp("fake", loader=fake_loader(FakeModel()))
    async with app.run_test(size=SIZE) as pilot:
        await wait_until(pilot, lambda: bool(app._notifications))
        await pilot.pause()
        (note,) = list(app._notifications)
        assert "[/]" in note.message and not note.markup
        assert screen_controls(app) == []


def test_models_and_show_print_markup_and_escapes_from_files_as_text(
    tiny_models: dict[str, Path],
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("COLUMNS", "400")  # long temp paths stay on one line
    src = shutil.copytree(tiny_models["llama"], tmp_path / "evil[/]\x1b]0;x\x07")
    config = src / "tokenizer_config.json"
    data = json.loads(config.read_text()) if config.exists() else {}
    data["chat_template"] = "{{ '\x1b[2J' }}{% for m in messages %}{{ m.content }}{% endfor %}"
    config.write_text(json.dumps(data))
    assert main(["import", str(src), "--name", "evil"]) == 0
    capsys.readouterr()
    assert main(["models"]) == 0
    out = capsys.readouterr().out
    assert "evil[/]␛]0;x␇" in "".join(out.split())  # the source column may fold
    assert controls(out) == []
    assert main(["show", "evil"]) == 0
    out = capsys.readouterr().out
    assert "evil[/]␛]0;x␇" in "".join(out.split()) and "{{ '␛[2J' }}" in out
    assert controls(out) == []
