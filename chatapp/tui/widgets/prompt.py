"""The prompt: a multi-line TextArea where Enter sends, with history recall and completion."""

from __future__ import annotations

from collections.abc import Callable

from textual import events
from textual.binding import Binding
from textual.message import Message
from textual.widgets import TextArea

from chatapp.console_text import strip_control

NEWLINE_KEYS = frozenset({"shift+enter", "ctrl+j", "newline", "alt+enter"})


class PromptInput(TextArea):
    """Enter sends; shift+enter (where the terminal reports it) or ctrl+j adds a line.

    Up on the first line and Down on the last walk through past prompts; the text being
    written is kept as a draft and comes back after the newest prompt.
    """

    EARLIER = "earlier prompts (on the first / last line)"
    BINDINGS = [
        Binding(
            "up",
            "history_previous",
            "Previous prompt",
            show=False,
            tooltip=EARLIER,
            id="history_previous",
        ),
        Binding(
            "down", "history_next", "Next prompt", show=False, tooltip=EARLIER, id="history_next"
        ),
    ]
    # Keys ``_on_key`` handles itself (before TextArea sees them), for the help.
    OWN_KEYS = [
        Binding("enter", "", "send the prompt"),
        Binding("shift+enter,ctrl+j", "", "new line in the prompt"),
        Binding("tab", "", "complete a /command"),
    ]

    class Submitted(Message):
        def __init__(self, text: str) -> None:
            super().__init__()
            self.text = text

    class HelpRequested(Message):
        """``?`` typed into an empty prompt."""

    class CompletionsChanged(Message):
        """The completions to show above the prompt (none: hide them)."""

        def __init__(self, options: list[str]) -> None:
            super().__init__()
            self.options = options

    def __init__(
        self, *, completer: Callable[[str], list[str]] | None = None, id: str | None = None
    ) -> None:
        super().__init__(
            id=id,
            soft_wrap=True,
            show_line_numbers=False,
            tab_behavior="focus",
            placeholder="Message · Enter sends · Ctrl+J new line · /help · F1 keys",
        )
        self.completer = completer
        self.prompt_history: list[str] = []
        self._index = 0  # == len(history) while editing the draft
        self._draft = ""
        self._completions: list[str] = []  # shown above the prompt, while they still apply

    def set_history(self, prompts: list[str]) -> None:
        self.prompt_history = list(prompts)
        self._index = len(self.prompt_history)

    def remember(self, text: str) -> None:
        """Add a sent prompt to the in-memory history (consecutive repeats once)."""
        if text.strip() and (not self.prompt_history or self.prompt_history[-1] != text):
            self.prompt_history.append(text)
        self._index = len(self.prompt_history)
        self._draft = ""

    async def _on_key(self, event: events.Key) -> None:
        key = event.key
        handled = True
        if key == "enter":
            text = self.text
            if text.strip():
                # Cleared here, not by the app later: keys typed meanwhile start a new prompt.
                self.text = ""
                self.post_message(self.Submitted(text))
        elif key in NEWLINE_KEYS:
            self.insert("\n")
        elif key == "tab" and self.text.startswith("/") and self.completer is not None:
            self._complete()
        elif event.character == "?" and not self.text:
            self.post_message(self.HelpRequested())
        else:
            handled = False
        if handled:
            event.stop()
            event.prevent_default()

    def _complete(self) -> None:
        assert self.completer is not None
        options = self.completer(self.text)
        if not options:
            self.notify("no completion", timeout=2)
            return
        common = options[0]
        for option in options[1:]:
            while not option.startswith(common):
                common = common[:-1]
        if len(common) > len(self.text):
            self._replace_all(common)
        self._show_completions(options if len(options) > 1 else [])

    def _show_completions(self, options: list[str]) -> None:
        if options != self._completions:
            self._completions = options
            self.post_message(self.CompletionsChanged(options))

    def _on_text_area_changed(self, event: TextArea.Changed) -> None:
        # Shown completions follow the text: narrowed as it is typed, gone once it is cleared
        # or no longer a /command.
        if self._completions:
            options = self.completer(self.text) if self.completer and self.text else []
            self._show_completions(options if len(options) > 1 else [])

    def action_copy(self) -> None:
        if not self.selected_text:  # Ctrl+C with no reply to stop and nothing selected
            self.notify("nothing to stop or copy: Ctrl+C stops a reply, Ctrl+Q quits", timeout=3)
            return
        super().action_copy()

    async def _on_paste(self, event: events.Paste) -> None:
        # Runs before TextArea's own paste handler, which inserts ``event.text``: the prompt
        # shows what is sent, and an escape sequence in a paste would reach the terminal raw.
        event.text = strip_control(event.text)

    def _replace_all(self, text: str) -> None:
        """Show ``text`` (a past prompt, a completion) as the whole prompt."""
        self.text = strip_control(text)
        self.move_cursor(self.document.end)

    def action_history_previous(self) -> None:
        if self.cursor_location[0] > 0 or not self.prompt_history or self._index == 0:
            if self.cursor_location[0] > 0:
                self.action_cursor_up()
            return
        if self._index == len(self.prompt_history):
            self._draft = self.text
        self._index -= 1
        self._replace_all(self.prompt_history[self._index])

    def action_history_next(self) -> None:
        if self.cursor_location[0] < self.document.line_count - 1:
            self.action_cursor_down()
            return
        if self._index >= len(self.prompt_history):
            return
        self._index += 1
        if self._index == len(self.prompt_history):
            self._replace_all(self._draft)
        else:
            self._replace_all(self.prompt_history[self._index])
