"""Small modal screens: confirm, ask for a line of text, show the key bindings."""

from __future__ import annotations

from collections.abc import Iterable

from rich.text import Text
from textual.app import ComposeResult
from textual.binding import Binding, BindingType
from textual.containers import Horizontal, Vertical, VerticalScroll
from textual.screen import ModalScreen
from textual.widgets import Button, Input, Label, Static

from chatapp.console_text import printable, strip_control

KEY_LABELS = {"escape": "Esc", "question_mark": "?", "delete": "Del"}

# A titled list of (keys, what they do), as the help shows it.
KeySection = tuple[str, list[tuple[str, str]]]


def key_label(key: str) -> str:
    """A Textual key name as people write it: ``ctrl+n`` → ``Ctrl+N``, ``escape`` → ``Esc``."""
    *mods, last = key.strip().split("+")
    name = KEY_LABELS.get(last) or (last.upper() if len(last) == 1 else last.capitalize())
    return "+".join([*(m.capitalize() for m in mods), name])


def key_rows(bindings: Iterable[BindingType]) -> list[tuple[str, str]]:
    """The help's rows for ``bindings``: one per help text (the binding's tooltip, else its
    description), with every key that does it, in the order they first appear."""
    rows: dict[str, list[str]] = {}
    for binding in Binding.make_bindings(bindings):
        keys = rows.setdefault(binding.tooltip or binding.description, [])
        keys.extend(key_label(k) for k in binding.key.split(","))
    return [(" / ".join(dict.fromkeys(keys)), what) for what, keys in rows.items()]


class ConfirmScreen(ModalScreen[bool]):
    BINDINGS = [
        Binding("escape", "dismiss(False)", "Cancel", id="dialog_cancel"),
        Binding("y", "dismiss(True)", "Yes", id="confirm_yes"),
    ]

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
    BINDINGS = [Binding("escape", "dismiss(None)", "Cancel", id="dialog_cancel")]

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
    BINDINGS = [Binding("escape,f1,q,question_mark", "dismiss(None)", "Close", id="close_help")]

    def __init__(self, keys: list[KeySection], commands: list[tuple[str, str]]) -> None:
        super().__init__(classes="dialog")
        self.keys = keys
        self.commands = commands

    def compose(self) -> ComposeResult:
        sections = [
            *self.keys,
            ("\nCommands (type them in the prompt, or use Ctrl+P)", self.commands),
        ]
        text = Text()
        for title, rows in sections:
            width = max(len(k) for k, _ in rows)
            text.append(f"{title}\n", style="bold underline")
            for key, what in rows:
                text.append(f"  {key:<{width}}  ", style="bold")
                text.append(f"{what}\n")
        text.append("\nEsc closes this help.", style="italic")
        with VerticalScroll(id="help"):
            yield Static(text, markup=False)
