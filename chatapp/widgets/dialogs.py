"""Small modal screens: confirm, ask for a line of text, show the key bindings."""

from __future__ import annotations

from rich.text import Text
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Horizontal, Vertical, VerticalScroll
from textual.screen import ModalScreen
from textual.widgets import Button, Input, Label, Static

from chatapp.console_text import printable, strip_control

KEYS = [
    ("Enter", "send the prompt"),
    ("Shift+Enter / Ctrl+J", "new line in the prompt"),
    ("Up / Down", "earlier prompts (on the first / last line)"),
    ("Ctrl+R", "search past prompts"),
    ("Esc / Ctrl+C", "stop the reply"),
    ("Tab", "complete a /command"),
    ("Ctrl+N", "new conversation"),
    ("Ctrl+B", "show / hide the conversations"),
    ("Ctrl+O", "pick a model"),
    ("Ctrl+P", "command palette"),
    ("F1 or ?", "this help"),
    ("Ctrl+Q", "quit"),
    ("Enter / R / Del", "in the chat list: open / rename / delete"),
]


class ConfirmScreen(ModalScreen[bool]):
    BINDINGS = [Binding("escape", "dismiss(False)", "Cancel"), Binding("y", "dismiss(True)", "Yes")]

    def __init__(self, question: str) -> None:
        super().__init__(classes="dialog")
        self.question = question

    def compose(self) -> ComposeResult:
        with Vertical():
            yield Label(Text(printable(self.question)), markup=False)
            with Horizontal(classes="buttons"):
                yield Button("Yes", variant="error", id="yes")
                yield Button("No", variant="primary", id="no")

    def on_mount(self) -> None:
        self.query_one("#no", Button).focus()

    def on_button_pressed(self, event: Button.Pressed) -> None:
        self.dismiss(event.button.id == "yes")


class TextInputScreen(ModalScreen[str | None]):
    BINDINGS = [Binding("escape", "dismiss(None)", "Cancel")]

    def __init__(self, title: str, value: str = "") -> None:
        super().__init__(classes="dialog")
        self.title_text = title
        self.value = value

    def compose(self) -> ComposeResult:
        with Vertical():
            yield Label(Text(printable(self.title_text)), markup=False)
            # The value is edited and sent back: controls removed, not pictured.
            yield Input(strip_control(self.value).replace("\n", " "), select_on_focus=True)

    def on_input_submitted(self, event: Input.Submitted) -> None:
        self.dismiss(event.value.strip() or None)


class HelpScreen(ModalScreen[None]):
    BINDINGS = [Binding("escape,f1,q,question_mark", "dismiss(None)", "Close")]

    def __init__(self, commands: list[tuple[str, str]]) -> None:
        super().__init__(classes="dialog")
        self.commands = commands

    def compose(self) -> ComposeResult:
        text = Text()
        text.append("Keys\n", style="bold underline")
        width = max(len(k) for k, _ in KEYS)
        for key, what in KEYS:
            text.append(f"  {key:<{width}}  ", style="bold")
            text.append(f"{what}\n")
        text.append("\nCommands (type them in the prompt, or use Ctrl+P)\n", style="bold underline")
        width = max(len(u) for u, _ in self.commands)
        for usage, what in self.commands:
            text.append(f"  {usage:<{width}}  ", style="bold")
            text.append(f"{what}\n")
        text.append("\nEsc closes this help.", style="italic")
        with VerticalScroll(id="help"):
            yield Static(text, markup=False)
