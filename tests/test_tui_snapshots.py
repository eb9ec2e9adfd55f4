"""Snapshots of the chat screen (mid-reply and after), the model picker and the help screen."""

from __future__ import annotations

import threading
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from fakes import FakeModel, fake_loader, wait_until

from chatapp.core.settings import Settings
from chatapp.tui.app import ChatApp
from chatapp.tui.screens.dialogs import HelpScreen
from chatapp.tui.widgets.chat_view import AssistantMessage

SIZE = (100, 30)
REPLY = [
    "Sure! Here is **a list**:\n\n",
    "- one item\n",
    "- two [bold]items[/]\n\n",
    "```python\nprint('hi')\n```\n",
]


@dataclass
class Info:
    name: str
    architecture: str
    parameters: int
    context_length: int
    size_bytes: int
    path: Path = Path("/nowhere")


MODELS = [
    Info("guide", "LlamaForCausalLM", 12_400_000, 1024, 49_800_000),
    Info("smollm2", "LlamaForCausalLM", 134_500_000, 8192, 538_000_000),
]


def make_app(gate: threading.Event | None = None) -> ChatApp:
    model = FakeModel(chunks=REPLY, gate=gate, pause_after=2, name="smollm2")
    return ChatApp(
        "smollm2",
        loader=fake_loader(model),
        list_models=lambda: MODELS,
        settings=Settings(),
    )


async def _ready(pilot: Any) -> None:
    app = pilot.app
    app.chat.prompt.cursor_blink = False  # a blinking cursor would make snapshots flaky
    await wait_until(pilot, lambda: app.session.model_ready)


async def _send(pilot: Any, text: str = "Give me a list") -> None:
    app = pilot.app
    await _ready(pilot)
    app.chat.prompt.text = text
    await pilot.press("enter")


def test_chat_mid_reply(snap_compare: Any) -> None:
    gate = threading.Event()
    app = make_app(gate)

    async def run_before(pilot: Any) -> None:
        await _send(pilot)
        view = app.chat.query(AssistantMessage).first()
        await wait_until(pilot, lambda: view.text.endswith("item\n"))
        await wait_until(pilot, lambda: len(view.body.query("MarkdownBullet")) == 1)

    try:
        assert snap_compare(app, terminal_size=SIZE, run_before=run_before)
    finally:
        gate.set()


def test_chat_after_reply(snap_compare: Any) -> None:
    app = make_app()

    async def run_before(pilot: Any) -> None:
        await _send(pilot)
        await wait_until(pilot, lambda: app.chat.query(AssistantMessage) and not app.chat.streaming)
        view = app.chat.query(AssistantMessage).first()  # rendered whole: the list and the code
        await wait_until(
            pilot, lambda: bool(view.body.query("MarkdownFence")) and view.meta.display
        )

    assert snap_compare(app, terminal_size=SIZE, run_before=run_before)


def test_model_picker(snap_compare: Any) -> None:
    app = make_app()

    async def run_before(pilot: Any) -> None:
        await _ready(pilot)
        await pilot.press("ctrl+o")
        await wait_until(pilot, lambda: bool(app.screen.query("DataTable")))
        await wait_until(pilot, lambda: app.screen.query_one("DataTable").row_count == 2)
        await wait_until(pilot, lambda: app.screen.query_one("DataTable").has_focus)

    assert snap_compare(app, terminal_size=SIZE, run_before=run_before)


def test_help_screen(snap_compare: Any) -> None:
    app = make_app()

    async def run_before(pilot: Any) -> None:
        await _ready(pilot)
        await pilot.press("f1")
        await wait_until(pilot, lambda: isinstance(app.screen, HelpScreen))
        await wait_until(pilot, lambda: bool(app.screen.query("#help Static")))

    assert snap_compare(app, terminal_size=(100, 40), run_before=run_before)


def test_a_selected_reply_with_alternatives(snap_compare: Any) -> None:
    """Ctrl+Up selects the reply (highlighted, its keys in the footer); after /regen it is
    marked as the second of two alternatives."""
    app = make_app()

    async def run_before(pilot: Any) -> None:
        await _send(pilot)
        await wait_until(
            pilot, lambda: len(app.chat.query(AssistantMessage)) == 1 and not app.chat.streaming
        )
        await app.chat.run_command("/regen")
        await wait_until(pilot, lambda: not app.chat.streaming and "‹2/2›" in str(
            app.chat.query_one(AssistantMessage).meta.render()))  # fmt: skip
        await pilot.press("ctrl+up")
        await pilot.pause()

    assert snap_compare(app, terminal_size=SIZE, run_before=run_before)
