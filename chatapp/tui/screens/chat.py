"""The chat screen: the conversation list, the chat, the prompt and the status line, and what
they do — streaming replies, opening and branching conversations, acting on a message.

The app (``chatapp.tui.app``) owns what every screen shares: the settings, the store, the
``ChatSession``, the key table and the theme. Slash commands work against this screen
through ``ChatControls``.
"""

from __future__ import annotations

import sqlite3
import threading
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any, cast

from rich.text import Text
from textual import on, work
from textual.app import ComposeResult, SuspendNotSupported
from textual.containers import Horizontal, Vertical
from textual.screen import Screen
from textual.widgets import OptionList, Static

from chatapp.console_text import printable, strip_control
from chatapp.core.export import ChatFileError, export_json, export_markdown
from chatapp.core.session import (
    ChatSession,
    ModelUnavailable,
    ReplyRequest,
    ReplyResult,
    one_line,
)
from chatapp.core.settings import Settings
from chatapp.core.store import SearchHit, Store, StoreError
from chatapp.models.choice import BUILTIN
from chatapp.tui.commands import COMMANDS, CommandError
from chatapp.tui.editor import EditorError, edit_text, editor_command
from chatapp.tui.reply_stream import ReplyFinished, ReplyStream
from chatapp.tui.screens.chat_search import ChatSearch
from chatapp.tui.screens.dialogs import ConfirmScreen, TextInputScreen
from chatapp.tui.screens.history_search import HistorySearch
from chatapp.tui.screens.model_picker import ModelPicker
from chatapp.tui.widgets.chat_view import ChatView, MessageAction, Notice
from chatapp.tui.widgets.footer import ChatFooter
from chatapp.tui.widgets.prompt import PromptInput
from chatapp.tui.widgets.sidebar import ConversationList, Sidebar
from chatapp.tui.widgets.status_bar import StatusBar

if TYPE_CHECKING:
    from chatapp.tui.app import ChatApp


def free_path(folder: Path, stem: str, suffix: str) -> Path:
    """``folder/stem.suffix``, or ``stem-2.suffix`` and on when that file exists."""
    target, n = folder / f"{stem}.{suffix}", 1
    while target.exists():
        n += 1
        target = folder / f"{stem}-{n}.{suffix}"
    return target


class ChatScreen(Screen[None]):
    """The chat. Its keys are in the app's one key table (``ChatApp.BINDINGS``), whose actions
    hand over to the ``action_*`` methods here; the messages of its widgets (a prompt sent, a
    message acted on, a chat picked in the list) and the reply worker's are handled here."""

    def __init__(self, list_models: Callable[[], Sequence[Any]]) -> None:
        super().__init__()
        self._list_models = list_models
        self._model_names: list[str] = []
        self._stream: ReplyStream | None = None  # the reply streaming now
        self._loading_notice: Notice | None = None  # "loading NAME…", until the load ends
        self._replies_running = threading.Semaphore(1)  # held while a reply worker runs
        self._editing: int | None = None  # the prompt being edited (its message id)

    # Layout ----------------------------------------------------------------------------------

    def compose(self) -> ComposeResult:
        with Horizontal():
            yield Sidebar(id="sidebar")
            with Vertical(id="main"):
                yield ChatView(id="chat")
                yield Static(id="completions", markup=False)
                yield PromptInput(id="prompt", completer=self._complete)
                yield StatusBar(id="status")
        yield ChatFooter()

    def on_mount(self) -> None:
        prompt = self.query_one(PromptInput)
        prompt.set_history(self.store.prompts())
        prompt.focus()
        self.query_one(Sidebar).display = False
        self.query_one("#completions").display = False
        self.load_model(self.chat_app.requested_model)
        self.chat_view.show_welcome(self.welcome_text())
        if self.store.read_only:
            self.show_notice(
                f"{self.store.path} is read-only: the saved chats can be read, "
                "but new messages are not saved",
                error=True,
            )

    @property
    def chat_view(self) -> ChatView:
        return self.query_one(ChatView)

    @property
    def prompt(self) -> PromptInput:
        return self.query_one(PromptInput)

    @property
    def streaming(self) -> bool:
        return self._stream is not None

    # What the app shares ---------------------------------------------------------------------

    @property
    def chat_app(self) -> ChatApp:
        return cast("ChatApp", self.app)

    @property
    def session(self) -> ChatSession:
        return self.chat_app.session

    @property
    def store(self) -> Store:
        return self.chat_app.store

    @property
    def settings(self) -> Settings:
        return self.chat_app.settings

    def key_for(self, binding_id: str, default: str) -> str:
        return self.chat_app.key_for(binding_id, default)

    def action_show_help(self) -> None:
        self.chat_app.action_show_help()

    # The theme and quitting are the app's; commands reach them through this screen.
    @property
    def theme(self) -> str:
        return self.app.theme

    @theme.setter
    def theme(self, name: str) -> None:
        self.app.theme = name

    @property
    def available_themes(self) -> dict[str, Any]:
        return self.app.available_themes

    def exit(self) -> None:
        self.app.exit()

    # The model -------------------------------------------------------------------------------

    def load_model(self, source: str | None) -> None:
        serial = self.session.begin_load(source)
        self.refresh_status()
        self._load_model(source, serial)

    @work(thread=True, exclusive=True, group="load", exit_on_error=False)
    def _load_model(self, source: str | None, serial: int) -> None:
        try:
            model = self.session.load_model(source, serial)
        except ModelUnavailable as e:
            self.app.call_from_thread(self._model_failed, str(e))
            return
        if model is not None:
            self.app.call_from_thread(self._model_loaded)

    def _model_loaded(self) -> None:
        self._end_loading_notice()
        model = self.session.model
        if model is not None:
            for warning in model.warnings:
                self.show_notice(f"{model.name}: {warning}", error=True)
        self.refresh_status()
        self.refresh_sidebar()
        self.chat_view.show_welcome(self.welcome_text())

    def _model_failed(self, message: str) -> None:
        self._end_loading_notice()
        self.show_notice(message, error=True)
        self.refresh_status()
        self.chat_view.show_welcome(self.welcome_text())

    def welcome_text(self) -> str:
        """The welcome of an empty chat: which model this is, what the built-in one knows and
        how to get a real one, a base model's note, the keys that matter."""
        session = self.session
        model = session.model
        name = (model.name if model is not None else "") or session.model_source
        if session.model_source == BUILTIN:
            about = (
                f"You are chatting with {BUILTIN}, chatapp's small built-in model. It knows "
                "chatapp (keys, commands, settings) and how language models work, in English "
                "and Chinese, and little else. For a general model: chatapp pull smollm2 "
                "(then /model smollm2)."
            )
        elif name:
            about = f"You are chatting with {name}."
        else:
            about = "No model is loaded: /model NAME or Ctrl+O picks one."
        lines = [about]
        if model is not None and model.base_model_note:
            lines.append(
                f"{name} has no chat template, so it is probably a base model: it continues "
                'text rather than answering. For plain completion: chatapp ask --raw "TEXT".'
            )
        lines.append(
            f"Enter sends · {self.key_for('stop_reply', 'Esc')} stops a reply · "
            f"{self.key_for('pick_model', 'Ctrl+O')} picks a model · "
            f"{self.key_for('show_help', 'F1')} shows every key and command"
        )
        return "\n\n".join(lines)

    def _end_loading_notice(self) -> None:
        if self._loading_notice is not None:
            self._loading_notice.remove()
            self._loading_notice = None

    def switch_model(self, source: str) -> None:
        """Load another model for this chat (``/model NAME`` or the picker); the one loaded
        now stays in use if this one fails to load."""
        self.action_stop_reply()
        self._end_loading_notice()
        self._loading_notice = self.show_notice(f"loading {source}…")
        self.load_model(source)

    def known_model_names(self) -> list[str]:
        if not self._model_names:
            try:
                self._model_names = [m.name for m in self._list_models()]
            except Exception:  # noqa: BLE001 - completion is best effort
                return []
        return self._model_names

    # Status ----------------------------------------------------------------------------------

    def refresh_status(self) -> None:
        session = self.session
        if session.loading:
            state = "loading…"
        elif session.model is None:
            state = "not loaded"
        elif self.streaming:
            state = "replying…"
        else:
            state = ""
        model = session.model
        name = model.name if model is not None else ""
        self.query_one(StatusBar).show(
            model=name or Path(session.model_source).name or session.model_source,
            state=state,
            settings=session.describe_settings() if model is not None else dict(session.sampling),
            context_used=session.context_used,
            context_size=model.context_length if model is not None else None,
            stats=session.last_stats,
        )

    def describe(self) -> str:
        s = self.session
        model = s.model
        parts = [f"model: {(model.name if model else '') or s.model_source or 'none'}"]
        if model is not None:
            parts.append(f"context {s.context_used}/{model.context_length}")
            if model.path:
                parts.append(f"from {model.path}")
        settings = s.describe_settings() if model is not None else s.sampling
        parts.append(" ".join(f"{k}={v}" for k, v in settings.items()) or "engine defaults")
        parts.append(f"system: {s.system!r}" if s.system else "no system prompt")
        return " · ".join(parts)

    def show_notice(self, text: str, error: bool = False) -> Notice:
        return self.chat_view.add_notice(text, error)

    # Sending and streaming -------------------------------------------------------------------

    def fill_prompt(self, text: str) -> None:
        self.prompt.text = strip_control(text)  # e.g. a stored prompt: text, no sequences
        self.prompt.move_cursor(self.prompt.document.end)
        self.prompt.focus()

    async def run_command(self, text: str) -> None:
        try:
            await COMMANDS.run(self, text)
        except CommandError as e:
            self.show_notice(str(e), error=True)
        except (sqlite3.Error, StoreError) as e:  # a read-only or full database
            self.show_notice(f"the change is not saved ({one_line(e)})", error=True)

    def _complete(self, text: str) -> list[str]:
        return COMMANDS.completions(self, text)

    async def on_prompt_input_submitted(self, message: PromptInput.Submitted) -> None:
        text = message.text
        if text.startswith("/") and "\n" not in text.strip():
            await self.run_command(text)
            return
        if self.streaming:
            if not self.prompt.text:
                self.fill_prompt(text)  # keep it for when the reply is done
            self.notify("a reply is still streaming: Esc stops it", timeout=3)
            return
        editing, self._editing = self._editing, None
        self._show_editing()
        try:
            if self.settings.history_enabled:
                self.store.add_prompt(text)
            self.session.add_user_message(text, instead_of=editing)
        except (sqlite3.Error, StoreError) as e:
            # A full disk, a chat deleted by another chatapp, a damaged database: one line,
            # and the prompt goes back into the box so nothing typed is lost.
            self.fill_prompt(text)
            self._editing = editing
            self._show_editing()
            self.show_notice(
                f"could not save the message ({one_line(e)}); it is still in the prompt",
                error=True,
            )
            return
        self.prompt.remember(text)
        self.chat_view.hide_welcome()
        if editing is not None:  # a new branch from the edited prompt: show that branch
            await self.show_branch()
        else:
            await self.chat_view.add_user(text, self.session.leaf_id)
        await self._stream_reply(self.session.begin_reply())

    async def _stream_reply(self, request: ReplyRequest) -> None:
        """Show a reply view and stream ``request``'s reply into it (from a worker)."""
        waiting = "…" if self.session.model_ready else "waiting for the model to load…"
        view = await self.chat_view.add_assistant(meta=waiting)
        self.chat_view.anchor()
        view.start_stream(waiting)
        self._stream = stream = ReplyStream(view)
        stream.start(self)
        self.refresh_bindings()  # shows Esc "Stop" in the footer
        self.refresh_status()
        self.refresh_sidebar()
        self._reply(request, stream)

    @work(thread=True, exclusive=True, group="reply", exit_on_error=False)
    def _reply(self, request: ReplyRequest, stream: ReplyStream) -> None:
        self._replies_running.acquire()
        try:
            result = self.session.run_reply(request, stream.cancel, stream.buffer.append)
        except Exception as e:  # noqa: BLE001 - e.g. the database vanished: one line
            result = ReplyResult("", stopped=False, error=str(e))
        finally:
            self._replies_running.release()
        # The session's state is the UI thread's: the result is applied there.
        self.post_message(ReplyFinished(stream, request, result))

    async def on_reply_finished(self, message: ReplyFinished) -> None:
        applied = self.session.apply_reply(message.request, message.result)
        stream = message.stream
        if stream is not self._stream:
            return  # a reply of a chat the user has left
        await stream.flush()
        await stream.view.finish(message.result)
        if stream is not self._stream:
            return  # the chat was left during those awaits (Ctrl+N as the reply ended)
        if applied and message.result.message_id is not None:
            stream.view.message_id = message.result.message_id
            stream.view.set_alternatives(*self.session.alternatives(message.result.message_id))
            await self.chat_view.trim(self.session.branch)
        elif message.request.leaf_id != message.request.parent_id and not message.result.text:
            # A regenerated reply that failed before any text: the old reply is shown again,
            # and why the new one failed below it.
            self._end_stream()
            await self.show_branch()
            if message.result.error:
                self.show_notice(message.result.error, error=True)
            self.refresh_status()
            return
        if message.result.stats is not None:
            dropped = message.result.stats.dropped_messages
            await self._mark_context_cut(message.request.messages, dropped)
        self._end_stream()
        self.refresh_status()
        if message.result.stopped:
            self.prompt.focus()

    async def _mark_context_cut(self, messages: list[dict[str, str]], dropped: int) -> None:
        """Show where the turns the model no longer sees end: the first ``dropped`` of
        ``messages`` (system prompt aside) were left out to fit the context."""
        if not dropped:
            return
        turns = [m for m in messages if m["role"] != "system"]
        kept = sum(m["role"] == "user" for m in turns[dropped:])
        model = self.session.model
        size = f"{model.context_length}-token " if model is not None else ""
        await self.chat_view.mark_context_cut(
            kept,
            f"⋯ the model no longer sees the {dropped} messages above: its {size}context is "
            "full (Ctrl+N starts a new chat)",
        )

    def _end_stream(self) -> None:
        if self._stream is not None:
            self._stream.stop()
            self._stream = None
        self.refresh_bindings()

    def action_stop_reply(self) -> None:
        if self._stream is not None:
            self._stream.cancel.set()
            self.prompt.focus()

    def action_cancel_edit(self) -> None:
        """Esc while editing an earlier prompt: the edit is left and the prompt cleared."""
        if self._editing is not None:
            self._cancel_edit()
            self.prompt.text = ""
            self.prompt.focus()

    def _detach_reply(self) -> None:
        """Stop the reply and forget its view (the chat is being replaced)."""
        self.action_stop_reply()
        self._end_stream()

    def check_action(self, action: str, parameters: tuple[object, ...]) -> bool | None:
        # Otherwise Esc / Ctrl+C keep their usual meaning (Ctrl+C copies in the prompt).
        if action == "stop_reply":
            return self.streaming
        if action == "cancel_edit":
            return not self.streaming and self._editing is not None
        return True

    # Conversations ---------------------------------------------------------------------------

    def action_new_chat(self, keep_settings: bool = False) -> None:
        self._detach_reply()
        self._cancel_edit()
        self.session.new_conversation(keep_settings=keep_settings)
        self.call_later(self._reset_view)

    async def _reset_view(self) -> None:
        await self.chat_view.clear()
        self.chat_view.show_welcome(self.welcome_text())
        self.refresh_status()
        self.refresh_sidebar()
        self.prompt.focus()

    def refresh_sidebar(self) -> None:
        sidebar = self.query_one(Sidebar)
        if sidebar.display:
            try:
                conversations = self.store.list_conversations()
            except (sqlite3.Error, StoreError) as e:
                self.show_notice(f"could not read the saved chats ({one_line(e)})", error=True)
                return
            sidebar.show(conversations, self.session.conversation_id)

    def action_toggle_sidebar(self) -> None:
        sidebar = self.query_one(Sidebar)
        sidebar.display = not sidebar.display
        if sidebar.display:
            self.refresh_sidebar()
            self.query_one(ConversationList).focus()
        else:
            self.prompt.focus()

    @on(OptionList.OptionSelected, "ConversationList")
    async def _open_selected(self, event: OptionList.OptionSelected) -> None:
        if event.option.id is not None:
            await self.open_conversation(int(event.option.id))

    async def open_conversation(self, conversation_id: int, at_message: int | None = None) -> None:
        """Show a saved chat (``at_message``: on the branch through that message, selected)."""
        self._detach_reply()
        self._cancel_edit()
        try:
            stored = self.session.open_conversation(conversation_id, at_message)
            conv = self.store.get_conversation(conversation_id)
        except KeyError:  # deleted meanwhile (by another chatapp, say)
            self.show_notice("that chat no longer exists", error=True)
            self.refresh_sidebar()
            return
        except (sqlite3.Error, StoreError) as e:
            self.show_notice(f"could not open the chat ({one_line(e)})", error=True)
            return
        await self.show_branch()
        if not stored:
            self.chat_view.show_welcome(self.welcome_text())
        if conv is not None and conv.model and conv.model != self.session.model_source:
            self.load_model(conv.model)
        self.refresh_status()
        self.refresh_sidebar()
        selected = self.chat_view.message_widget(at_message) if at_message is not None else None
        if selected is not None:
            selected.focus()
            self.call_after_refresh(selected.scroll_visible, animate=False)
        else:
            self.prompt.focus()

    async def show_branch(self) -> None:
        """Show the session's current branch (after opening a chat or moving between
        alternatives), with its context-cut mark, scrolled to the end."""
        session = self.session
        await self.chat_view.show_branch(session.branch, session.alternatives)
        last = session.last_stats
        await self._mark_context_cut(session.messages, last.dropped_messages if last else 0)
        self.chat_view.scroll_end(animate=False)

    def on_conversation_list_action(self, message: ConversationList.Action) -> None:
        conv = self.store.get_conversation(message.conversation_id)
        if conv is None:
            return

        def renamed(title: str | None) -> None:
            if title and conv is not None:
                try:
                    self.store.update_conversation(conv.id, title=title)
                except (sqlite3.Error, StoreError) as e:
                    self.show_notice(f"could not rename the chat ({one_line(e)})", error=True)
                    return
                if conv.id == self.session.conversation_id:
                    self.session.title = title
            self.refresh_sidebar()

        def confirmed(yes: bool | None) -> None:
            if yes and conv is not None:
                try:
                    self.store.delete_conversation(conv.id)
                except (sqlite3.Error, StoreError) as e:
                    self.show_notice(f"could not delete the chat ({one_line(e)})", error=True)
                    return
                if conv.id == self.session.conversation_id:
                    self.action_new_chat()
            self.refresh_sidebar()

        if message.action == "rename":
            self.app.push_screen(TextInputScreen("Rename conversation", conv.title), renamed)
        elif message.action == "delete":
            self.app.push_screen(ConfirmScreen(f"Delete “{conv.title}”? (y/n)"), confirmed)

    # Branches: regenerate, edit, alternatives, the selected message --------------------------

    def action_select_message(self) -> None:
        """Select the newest message (then ↑ ↓ move, and its keys act on it)."""
        messages = [w for w in self.chat_view.messages() if w.message_id is not None]
        if messages:
            messages[-1].focus()
            messages[-1].scroll_visible(animate=False)

    async def action_regenerate(self, message_id: int | None = None) -> None:
        """A new alternative of the last reply (or of the reply ``message_id``); the old one
        is kept beside it."""
        if self.streaming:
            self.notify("a reply is still streaming: Esc stops it", timeout=3)
            return
        request = self.session.begin_regenerate(message_id)
        if request is None:
            self.show_notice("nothing to regenerate yet: send a message first", error=True)
            return
        self._cancel_edit()
        branch = self.session.tree.path(request.parent_id)
        await self.chat_view.show_branch(branch, self.session.alternatives)
        await self._stream_reply(request)

    def begin_edit(self, message_id: int | None = None) -> None:
        """Put a prompt (the last one, or ``message_id``) into the box to edit; Enter sends
        it as a new branch from that point, Esc leaves the edit."""
        branch = self.session.branch
        prompts = [m for m in branch if m.role == "user" and m.id == (message_id or m.id)]
        if not prompts:
            self.show_notice("no prompt to edit yet", error=True)
            return
        self._editing = prompts[-1].id
        self.fill_prompt(prompts[-1].content)
        self._show_editing()

    def _cancel_edit(self) -> None:
        if self._editing is not None:
            self._editing = None
            self._show_editing()

    def _show_editing(self) -> None:
        self.prompt.border_title = (
            "editing a prompt: Enter sends it as a new branch · Esc cancels"
            if self._editing is not None
            else None
        )
        self.refresh_bindings()

    async def step_alternative(self, message_id: int, step: int) -> None:
        if self.streaming:
            self.notify("a reply is still streaming: Esc stops it", timeout=3)
            return
        try:
            chosen = self.session.step_alternative(message_id, step)
        except (sqlite3.Error, StoreError) as e:
            self.show_notice(f"could not switch branches ({one_line(e)})", error=True)
            return
        if chosen is None:
            return
        self._cancel_edit()
        await self.show_branch()
        self.refresh_status()
        widget = self.chat_view.message_widget(chosen)
        if widget is not None:
            widget.focus()
            self.call_after_refresh(widget.scroll_visible, animate=False)

    def copy_text(self, text: str, what: str) -> None:
        """Put ``text`` on the clipboard (OSC 52: it works over SSH) and say so."""
        self.app.copy_to_clipboard(text)
        lines = text.count("\n") + 1
        self.notify(f"copied {what} ({len(text)} characters, {lines} lines)", timeout=3)

    def delete_message(self, message_id: int) -> None:
        def confirmed(yes: bool | None) -> None:
            if yes:
                self.run_worker(self._delete(message_id), group="delete")

        below = len(self.session.tree.subtree(message_id)) - 1
        also = f" and the {below} messages after it" if below else ""
        self.app.push_screen(ConfirmScreen(f"Delete this message{also}? (y/n)"), confirmed)

    async def _delete(self, message_id: int) -> None:
        if self.streaming:
            self._detach_reply()
        try:
            self.session.delete_message(message_id)
        except (sqlite3.Error, StoreError) as e:
            self.show_notice(f"could not delete the message ({one_line(e)})", error=True)
            return
        await self.show_branch()
        if not self.session.branch:
            self.chat_view.show_welcome(self.welcome_text())
        self.refresh_status()
        self.prompt.focus()

    async def on_message_action(self, message: MessageAction) -> None:
        tree = self.session.tree
        if message.action == "back":
            self.prompt.focus()
            return
        m = tree.by_id.get(message.message_id)
        if m is None:
            return
        if message.action in ("previous", "next"):
            await self.step_alternative(m.id, -1 if message.action == "previous" else 1)
        elif message.action == "edit":
            if m.role == "user":
                self.begin_edit(m.id)
            else:
                self.notify("only prompts can be edited: r regenerates a reply", timeout=3)
        elif message.action == "regenerate":
            await self.action_regenerate(m.id)  # a reply, or the reply to a prompt
        elif message.action == "copy":
            self.copy_text(m.content, "the message")
        elif message.action == "delete":
            self.delete_message(m.id)

    async def fork_chat(self) -> None:
        """``/fork``: this branch becomes a chat of its own, opened at once."""
        try:
            new_id = self.session.fork()
        except (sqlite3.Error, StoreError) as e:
            self.show_notice(f"could not fork the chat ({one_line(e)})", error=True)
            return
        await self.open_conversation(new_id)
        self.show_notice(f"this branch is now a chat of its own: {self.session.title}")

    def on_sidebar_search_requested(self, message: Sidebar.SearchRequested) -> None:
        self.search_chats(message.text)

    def search_chats(self, query: str) -> None:
        def chosen(hit: SearchHit | None) -> None:
            if hit is not None:
                self.run_worker(self.open_conversation(hit.conversation_id, hit.message_id))
            else:
                self.prompt.focus()

        self.app.push_screen(ChatSearch(self.store.search, query), chosen)

    def export_chat(self, fmt: str, path: str) -> None:
        """``/export md|json [PATH]``: the chat into a file (by default ``chat-ID.md`` in the
        current folder, never over an existing file)."""
        cid = self.session.conversation_id
        if cid is None:
            self.show_notice("nothing to export yet: send a message first", error=True)
            return
        try:
            text = (
                export_json(self.store, [cid])
                if fmt == "json"
                else export_markdown(self.store, [cid])
            )
            target = Path(path).expanduser() if path else free_path(Path.cwd(), f"chat-{cid}", fmt)
            target.write_text(text, encoding="utf-8")
        except (OSError, sqlite3.Error, StoreError, ChatFileError) as e:
            self.show_notice(f"could not export the chat ({one_line(e)})", error=True)
            return
        self.show_notice(f"saved the chat to {target}")

    # The prompt's helpers: completions, help, the model picker, the editor, past prompts -----

    def on_prompt_input_completions_changed(self, message: PromptInput.CompletionsChanged) -> None:
        strip = self.query_one("#completions", Static)
        # Completions include model names (from disk): text, never markup.
        strip.update(Text(printable("  ".join(o.strip() for o in message.options))))
        strip.display = bool(message.options)

    def on_prompt_input_help_requested(self) -> None:
        self.action_show_help()

    def action_pick_model(self) -> None:
        def chosen(name: str | None) -> None:
            if name:
                self._model_names = []
                self.switch_model(name)
            self.prompt.focus()

        model = self.session.model
        current = (model.name if model is not None else "") or self.session.model_source
        self.app.push_screen(ModelPicker(self._list_models, current), chosen)

    def action_open_editor(self) -> None:
        """Ctrl+G / ``/editor``: edit the prompt's text in $VISUAL / $EDITOR; the edited text
        comes back into the prompt, unsent. Anything that goes wrong is one line, and the
        prompt keeps its text."""
        text = self.prompt.text
        try:
            argv = editor_command()
            with self.app.suspend():
                edited = edit_text(text, argv)
        except SuspendNotSupported:
            self.show_notice(
                "cannot open an editor here: this terminal cannot hand the screen over",
                error=True,
            )
            return
        except EditorError as e:
            self.show_notice(f"{e}; the prompt is unchanged", error=True)
            return
        self.fill_prompt(edited)

    def action_search_history(self) -> None:
        def chosen(text: str | None) -> None:
            if text is not None:
                self.fill_prompt(text)

        prompts = self.store.prompts(limit=5000) if self.settings.history_enabled else []
        prompts = prompts or self.prompt.prompt_history
        self.app.push_screen(HistorySearch(prompts), chosen)

    def finish_replies(self, timeout: float) -> None:
        """Quitting mid-reply: stop it and let the worker store the partial reply first."""
        if self._stream is not None:
            self._stream.cancel.set()
        if self._replies_running.acquire(timeout=timeout):
            self._replies_running.release()
