"""The chat TUI's app: what every screen shares — the settings, the store, the ``ChatSession``,
the key table (with config.toml's [keys]), the theme, F1's help and quitting. The chat itself
is ``ChatScreen`` (``chatapp.tui.screens.chat``), pushed as the app starts."""

from __future__ import annotations

import asyncio
import signal
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from textual.app import App
from textual.binding import Binding
from textual.theme import Theme

from chatapp.console_text import printable
from chatapp.core.session import ChatSession, Loader
from chatapp.core.settings import (
    ConfigWriteError,
    Settings,
    config_path,
    load_settings,
    save_setting,
)
from chatapp.core.store import Store
from chatapp.tui.commands import COMMANDS, ChatCommands
from chatapp.tui.keymap import check_keymap, merged_bindings, remapped
from chatapp.tui.screens.chat import ChatScreen
from chatapp.tui.screens.dialogs import (
    ConfirmScreen,
    HelpScreen,
    KeySection,
    TextInputScreen,
    key_label,
    key_rows,
)
from chatapp.tui.screens.history_search import HistorySearch
from chatapp.tui.screens.model_picker import ModelPicker
from chatapp.tui.widgets.chat_view import Selectable, UserMessage
from chatapp.tui.widgets.prompt import PromptInput
from chatapp.tui.widgets.sidebar import ConversationList

QUIT_SIGNALS = tuple(
    getattr(signal, name) for name in ("SIGTERM", "SIGHUP") if hasattr(signal, name)
)


def engine_list_models() -> list[Any]:
    from chatapp.models.choice import available_models

    return available_models()


class ChatApp(App[None]):
    """``chatapp``: chat with a local model. The model loads in a thread while the UI runs."""

    CSS_PATH = "chatapp.tcss"
    TITLE = "chatapp"
    COMMANDS = App.COMMANDS | {ChatCommands}
    # The one key table: the footer shows the descriptions in this order, F1's help shows the
    # tooltips (see ``key_help``), and the ids are what config.toml's [keys] remaps
    # (``chatapp.tui.keymap``). Most are the chat's keys: their actions below hand over to
    # the chat screen. They are the app's so that the priority ones (Ctrl+C, Ctrl+R) work
    # over a dialog too and the footer keeps one order.
    BINDINGS = [
        Binding("escape", "stop_reply", "Stop", tooltip="stop the reply",
                id="stop_reply"),
        Binding("ctrl+c", "stop_reply", "Stop", show=False, priority=True,
                tooltip="stop the reply", id="stop_reply"),
        # The same keys while an earlier prompt is being edited (and no reply streams).
        Binding("escape", "cancel_edit", "Cancel edit",
                tooltip="leave the edit of an earlier prompt", id="cancel_edit"),
        Binding("ctrl+c", "cancel_edit", "Cancel edit", show=False, priority=True,
                tooltip="leave the edit of an earlier prompt", id="cancel_edit"),
        Binding("ctrl+n", "new_chat", "New chat", tooltip="new conversation",
                id="new_chat"),
        Binding("ctrl+b", "toggle_sidebar", "Chats",
                tooltip="show / hide the conversations", id="toggle_sidebar"),
        Binding("ctrl+o", "pick_model", "Model", tooltip="pick a model",
                id="pick_model"),
        Binding("ctrl+r", "search_history", "History", priority=True,
                tooltip="search past prompts", id="search_history"),
        Binding("f1", "show_help", "Help", tooltip="this help", id="show_help"),
        Binding("question_mark", "show_help", "Help", show=False, tooltip="this help",
                id="show_help"),
        Binding("ctrl+q", "quit", "Quit", show=False, priority=True, tooltip="quit", id="quit"),
        Binding("ctrl+g", "open_editor", "Editor", show=False,
                tooltip="edit the prompt in $VISUAL / $EDITOR", id="open_editor"),
        Binding("ctrl+up", "select_message", "Select",
                tooltip="select a message (then ↑ ↓ ← → e r c Del)", id="select_message"),
        Binding("f5", "regenerate", "Regenerate", show=False,
                tooltip="regenerate the last reply", id="regenerate"),
        # Textual's own palette binding, given an id so that it can be remapped too.
        Binding(App.COMMAND_PALETTE_BINDING, "command_palette", "palette", show=False,
                priority=True, tooltip="command palette", id="command_palette"),
    ]  # fmt: skip

    def __init__(
        self,
        model: str | None = None,
        *,
        loader: Loader | None = None,
        list_models: Callable[[], Sequence[Any]] | None = None,
        settings: Settings | None = None,
        db_path: Path | str | None = None,
    ) -> None:
        super().__init__()
        self.requested_model = model
        if settings is None:
            settings, self._settings_warning = load_settings()
        else:
            self._settings_warning = None
        self.settings = settings
        self.store = Store(db_path)
        self.session = ChatSession(self.store, settings, loader)
        self.chat = ChatScreen(list_models or engine_list_models)
        self._signals: list[signal.Signals] = []
        self.keymap: dict[str, str] = {}  # [keys] as applied: binding id → keys
        self._keymap_warnings = self._apply_keymap()  # before the chat's welcome names keys
        self._saved_theme = ""  # the theme config.toml holds (or the default one)
        if settings.theme and settings.theme in self.available_themes:
            self.theme = settings.theme
        elif settings.theme:
            self._settings_warning = f"unknown theme {settings.theme!r} in config.toml"

    def on_mount(self) -> None:
        if self._settings_warning:
            # It quotes config.toml's values: never parsed as markup.
            self.notify(
                printable(self._settings_warning), severity="warning", timeout=8, markup=False
            )
        for warning in self._keymap_warnings:  # it quotes config.toml: never markup
            self.notify(printable(warning), severity="warning", timeout=8, markup=False)
        self._saved_theme = self.theme
        self.theme_changed_signal.subscribe(self, self._theme_changed)
        self.push_screen(self.chat)
        self._handle_quit_signals()

    # Keys ------------------------------------------------------------------------------------

    @classmethod
    def keymap_contexts(cls) -> list[list[Binding]]:
        """The bindings active together, where a key must not do two things: the app's with
        the prompt's (and the keys it handles itself), the app's with the chat list's, each
        dialog's own."""
        app = merged_bindings(cls)
        prompt = [*merged_bindings(PromptInput), *Binding.make_bindings(PromptInput.OWN_KEYS)]
        dialogs = (ConfirmScreen, TextInputScreen, HelpScreen, ModelPicker, HistorySearch)
        return [
            app + prompt,
            app + merged_bindings(ConversationList),
            app + merged_bindings(UserMessage),  # a selected message's keys
            *(merged_bindings(d) for d in dialogs),
        ]

    def _apply_keymap(self) -> list[str]:
        """config.toml's [keys] through Textual's keymap; the bad entries' warnings (one line
        each) are returned, to be shown once the app runs."""
        keymap, warnings = check_keymap(
            self.settings.keys, self.keymap_contexts(), str(config_path())
        )
        self.keymap = keymap
        self.set_keymap(keymap)
        if "command_palette" in keymap:
            # Where the footer looks for the palette's key (a class variable in Textual).
            self.__dict__["COMMAND_PALETTE_BINDING"] = keymap["command_palette"].split(",")[0]
        return warnings

    def key_for(self, binding_id: str, default: str) -> str:
        """The key that runs ``binding_id`` now, as people write it (``Ctrl+N``)."""
        keys = self.keymap.get(binding_id)
        return key_label(keys.split(",")[0]) if keys else default

    def key_help(self) -> list[KeySection]:
        """F1's key table, read from the bindings of the app, the prompt and the chat list,
        with the keys config.toml's [keys] gave them."""
        keymap = self.keymap
        sidebar = self.key_for("toggle_sidebar", "Ctrl+B")
        return [
            ("Keys", key_rows(remapped(self.BINDINGS, keymap))),
            (
                "In the prompt",
                key_rows([*PromptInput.OWN_KEYS, *remapped(PromptInput.BINDINGS, keymap)]),
            ),
            (
                f"In the chat list ({sidebar})",
                key_rows(remapped(ConversationList.BINDINGS, keymap)),
            ),
            ("On a selected message (Ctrl+Up)", key_rows(remapped(Selectable.BINDINGS, keymap))),
        ]

    def action_show_help(self) -> None:
        if isinstance(self.screen, HelpScreen):
            return
        self.push_screen(HelpScreen(self.key_help(), [(c.usage, c.help) for c in COMMANDS]))

    # The chat's keys, handed to the chat screen (whichever screen is on top).

    def action_stop_reply(self) -> None:
        self.chat.action_stop_reply()

    def action_cancel_edit(self) -> None:
        self.chat.action_cancel_edit()

    def action_new_chat(self) -> None:
        self.chat.action_new_chat()

    def action_toggle_sidebar(self) -> None:
        self.chat.action_toggle_sidebar()

    def action_pick_model(self) -> None:
        self.chat.action_pick_model()

    def action_search_history(self) -> None:
        self.chat.action_search_history()

    def action_open_editor(self) -> None:
        self.chat.action_open_editor()

    def action_select_message(self) -> None:
        self.chat.action_select_message()

    async def action_regenerate(self) -> None:
        await self.chat.action_regenerate()

    def check_action(self, action: str, parameters: tuple[object, ...]) -> bool | None:
        if action in ("stop_reply", "cancel_edit"):
            return self.chat.check_action(action, parameters)
        return True

    # The theme, quitting ---------------------------------------------------------------------

    def _theme_changed(self, theme: Theme) -> None:
        """Remember a theme picked with /theme or the palette's "Change theme"."""
        if theme.name == self._saved_theme:
            return
        self._saved_theme = theme.name
        try:
            save_setting("theme", theme.name)
        except ConfigWriteError as e:
            self.chat.show_notice(f"could not remember the theme: {e}", error=True)

    def _handle_quit_signals(self) -> None:
        """SIGTERM (``kill``) and SIGHUP (the terminal closed) quit like Ctrl+Q: the partial
        reply is stored and the terminal is restored, instead of the process dying mid-way."""
        loop = asyncio.get_running_loop()
        for sig in QUIT_SIGNALS:
            try:
                loop.add_signal_handler(sig, lambda: self.call_later(self.action_quit))
                self._signals.append(sig)
            except (NotImplementedError, RuntimeError, ValueError):  # Windows, not main thread
                continue

    async def action_quit(self) -> None:
        self.action_stop_reply()
        self.exit()

    def on_unmount(self) -> None:
        loop = asyncio.get_running_loop()
        for sig in self._signals:
            loop.remove_signal_handler(sig)
        self.chat.finish_replies(timeout=3.0)
        self.store.close()
