"""One registry of chat commands, used by the prompt's ``/slash`` commands and Tab completion
and by Textual's command palette (ctrl+p)."""

from __future__ import annotations

import difflib
from collections.abc import Awaitable, Callable, Iterator
from dataclasses import dataclass
from functools import partial
from typing import TYPE_CHECKING, Any, Protocol

from textual.command import DiscoveryHit, Hit, Hits, Provider

from chatapp.core.presets import (
    BUILTIN_PRESETS,
    PresetError,
    describe,
    preset_names,
    preset_values,
    save_preset,
)
from chatapp.core.settings import SAMPLING_KEYS, ConfigWriteError, sampling_params

if TYPE_CHECKING:
    from chatapp.core.session import ChatSession


class ChatControls(Protocol):
    """What a command may do to the chat it runs in: the narrow face of the chat that commands
    are written against (``ChatScreen`` has it; a test can pass anything that does)."""

    @property
    def session(self) -> ChatSession: ...

    def show_notice(self, text: str, error: bool = False) -> object: ...

    def refresh_status(self) -> None: ...

    def describe(self) -> str: ...

    def known_model_names(self) -> list[str]: ...

    def switch_model(self, source: str) -> None: ...

    def fill_prompt(self, text: str) -> None: ...

    async def run_command(self, text: str) -> None: ...

    def action_show_help(self) -> None: ...

    def action_new_chat(self, keep_settings: bool = False) -> None: ...

    def action_pick_model(self) -> None: ...

    async def action_regenerate(self, message_id: int | None = None) -> None: ...

    def begin_edit(self, message_id: int | None = None) -> None: ...

    async def fork_chat(self) -> None: ...

    def copy_text(self, text: str, what: str) -> None: ...

    def search_chats(self, query: str) -> None: ...

    def export_chat(self, fmt: str, path: str) -> None: ...

    def action_open_editor(self) -> None: ...

    # Textual's: the theme's name (setting it switches the theme) and the registered ones.
    theme: str

    @property
    def available_themes(self) -> dict[str, Any]: ...

    def exit(self) -> None: ...


Handler = Callable[[ChatControls, str], "Awaitable[None] | None"]
Completer = Callable[[ChatControls, str], list[str]]


class CommandError(ValueError):
    """A command was mistyped or given a bad value; the message is one line."""


@dataclass(frozen=True)
class Command:
    name: str
    help: str
    handler: Handler
    args: str = ""  # how the argument is shown in /help, e.g. "NAME"; empty: none
    complete: Completer | None = None  # completions of the argument
    # The palette runs it bare even though it takes an argument: its bare form only opens a
    # chooser. Any other command with an argument goes into the prompt for it.
    palette_runs: bool = False

    @property
    def usage(self) -> str:
        return f"/{self.name} {self.args}".rstrip()


class CommandRegistry:
    def __init__(self) -> None:
        self._commands: dict[str, Command] = {}

    def command(
        self,
        name: str,
        help: str,
        args: str = "",
        complete: Completer | None = None,
        palette_runs: bool = False,
    ) -> Callable[[Handler], Handler]:
        def register(handler: Handler) -> Handler:
            self._commands[name] = Command(name, help, handler, args, complete, palette_runs)
            return handler

        return register

    def __iter__(self) -> Iterator[Command]:
        return iter(self._commands.values())

    def get(self, name: str) -> Command | None:
        return self._commands.get(name)

    def parse(self, text: str) -> tuple[Command, str]:
        """``/name arg...`` → the command and its argument text."""
        name, _, arg = text.strip().removeprefix("/").partition(" ")
        command = self._commands.get(name.lower())
        if command is None:
            near = difflib.get_close_matches(name.lower(), list(self._commands), n=3, cutoff=0.5)
            hint = f"did you mean {' or '.join('/' + n for n in near)}? " if near else ""
            raise CommandError(f"unknown command /{name}; {hint}type /help for the list")
        if command.args and not arg.strip() and not command.args.startswith("["):
            raise CommandError(f"usage: {command.usage}")
        return command, arg.strip()

    def completions(self, app: ChatControls | None, text: str) -> list[str]:
        """Full prompt texts that complete ``text`` (a single-line /command)."""
        if not text.startswith("/") or "\n" in text:
            return []
        name, space, arg = text[1:].partition(" ")
        if not space:
            return [
                f"/{c.name}{' ' if c.args else ''}" for c in self if c.name.startswith(name.lower())
            ]
        command = self._commands.get(name.lower())
        if command is None or command.complete is None or app is None:
            return []
        return [f"/{command.name} {c}" for c in command.complete(app, arg)]

    async def run(self, app: ChatControls, text: str) -> None:
        command, arg = self.parse(text)
        result = command.handler(app, arg)
        if result is not None:
            await result


COMMANDS = CommandRegistry()
SYSTEM_CLEAR = "clear"  # ``/system clear`` removes the system prompt


def _complete_set(app: ChatControls, arg: str) -> list[str]:
    key, space, _ = arg.partition(" ")
    if space:
        return []
    return [f"{k} " for k in SAMPLING_KEYS if k.startswith(key)]


def _complete_model(app: ChatControls, arg: str) -> list[str]:
    return [n for n in app.known_model_names() if n.startswith(arg)]


@COMMANDS.command("help", "Show the commands and key bindings")
def _help(app: ChatControls, arg: str) -> None:
    app.action_show_help()


@COMMANDS.command("new", "Start a new conversation")
def _new(app: ChatControls, arg: str) -> None:
    app.action_new_chat()


@COMMANDS.command("model", "Switch the model of this chat (no name: open the picker)", "[NAME]",
                  _complete_model, palette_runs=True)  # fmt: skip
def _model(app: ChatControls, arg: str) -> None:
    if arg:
        app.switch_model(arg)
    else:
        app.action_pick_model()


@COMMANDS.command("system", "Set the system prompt (no text: show it; "
                  f"`{SYSTEM_CLEAR}`: remove it)", "[TEXT]")  # fmt: skip
def _system(app: ChatControls, arg: str) -> None:
    if not arg:
        current = app.session.system
        app.show_notice(f"system prompt: {current}" if current else "no system prompt")
        return
    if arg.lower() == SYSTEM_CLEAR:
        app.session.set_system("")
        app.show_notice("system prompt cleared")
    else:
        app.session.set_system(arg)
        app.show_notice(f"system prompt: {arg}")
    app.refresh_status()


@COMMANDS.command("set", "Set a sampling value: " + ", ".join(SAMPLING_KEYS), "KEY VALUE",
                  _complete_set)  # fmt: skip
def _set(app: ChatControls, arg: str) -> None:
    key, _, value = arg.partition(" ")
    if not value.strip():
        raise CommandError(f"usage: /set KEY VALUE, with KEY one of {', '.join(SAMPLING_KEYS)}")
    try:
        stored = app.session.set_sampling(key.strip().lower(), value)
    except ValueError as e:
        raise CommandError(str(e)) from None
    app.show_notice(f"{key.strip().lower()} = {stored}")
    app.refresh_status()


@COMMANDS.command("show", "Show the current settings and model")
def _show(app: ChatControls, arg: str) -> None:
    app.show_notice(app.describe())


@COMMANDS.command("clear", "Start a fresh chat that keeps this one's model and settings")
def _clear(app: ChatControls, arg: str) -> None:
    app.action_new_chat(keep_settings=True)


@COMMANDS.command("quit", "Quit chatapp")
def _quit(app: ChatControls, arg: str) -> None:
    app.exit()


@COMMANDS.command("regen", "Regenerate the last reply (a new alternative; ← → on it steps "
                  "through them)")  # fmt: skip
async def _regen(app: ChatControls, arg: str) -> None:
    await app.action_regenerate()


@COMMANDS.command("edit", "Edit the last prompt and resend it as a new branch (the old one is "
                  "kept)")  # fmt: skip
def _edit(app: ChatControls, arg: str) -> None:
    app.begin_edit()


@COMMANDS.command("fork", "Copy this branch of the chat into a new chat")
async def _fork(app: ChatControls, arg: str) -> None:
    await app.fork_chat()


def code_blocks(markdown: str) -> list[str]:
    """The code blocks of a Markdown text (fenced or indented), in order, as written."""
    from markdown_it import MarkdownIt

    tokens = MarkdownIt("commonmark").parse(markdown)
    return [t.content for t in tokens if t.type in ("fence", "code_block")]


@COMMANDS.command("copy", "Copy the last reply, or its N-th code block", "[N]")
def _copy(app: ChatControls, arg: str) -> None:
    reply = next((m for m in reversed(app.session.branch) if m.role == "assistant"), None)
    if reply is None or not reply.content:
        raise CommandError("no reply to copy yet")
    if not arg:
        app.copy_text(reply.content, "the last reply")
        return
    blocks = code_blocks(reply.content)
    try:
        n = int(arg)
    except ValueError:
        raise CommandError(f"usage: /copy [N], N a code block's number, got {arg!r}") from None
    if not blocks:
        raise CommandError("the last reply has no code block; /copy copies all of it")
    if not 1 <= n <= len(blocks):
        raise CommandError(
            f"the last reply has {len(blocks)} code blocks: /copy 1 to {len(blocks)}"
        )
    app.copy_text(blocks[n - 1], f"code block {n}")


@COMMANDS.command("search", "Search the messages of every chat", "[TEXT]", palette_runs=True)
def _search(app: ChatControls, arg: str) -> None:
    app.search_chats(arg)


EXPORT_FORMATS = ("md", "json")


def _complete_export(app: ChatControls, arg: str) -> list[str]:
    return [f"{f} " for f in EXPORT_FORMATS if f.startswith(arg) and " " not in arg]


@COMMANDS.command("export", "Save this chat to a file: md (this branch) or json (all of it)",
                  "md|json [PATH]", _complete_export)  # fmt: skip
def _export(app: ChatControls, arg: str) -> None:
    fmt, _, path = arg.partition(" ")
    if fmt.lower() not in EXPORT_FORMATS:
        raise CommandError(f"usage: /export md|json [PATH], got {fmt!r}")
    app.export_chat(fmt.lower(), path.strip())


@COMMANDS.command("editor", "Edit the prompt in $VISUAL / $EDITOR (also Ctrl+G); it comes back "
                  "unsent")  # fmt: skip
def _editor(app: ChatControls, arg: str) -> None:
    app.action_open_editor()


def _complete_theme(app: ChatControls, arg: str) -> list[str]:
    return sorted(n for n in app.available_themes if n.startswith(arg))


@COMMANDS.command("theme", "Switch the colour theme, remembered in config.toml (no name: list "
                  "them)", "[NAME]", _complete_theme)  # fmt: skip
def _theme(app: ChatControls, arg: str) -> None:
    names = sorted(app.available_themes)
    if not arg:
        app.show_notice(f"theme: {app.theme} · /theme NAME picks one of: {', '.join(names)}")
        return
    if arg not in names:
        near = difflib.get_close_matches(arg, names, n=3, cutoff=0.5)
        hint = f"did you mean {' or '.join(near)}? " if near else ""
        raise CommandError(f"unknown theme {arg!r}; {hint}/theme lists them")
    app.theme = arg  # the app remembers it (it watches the theme, as for the palette's)
    app.show_notice(f"theme: {arg}")


PRESET_SAVE = "save"
_BUILTINS = "; ".join(f"{n}: {describe(v)}" for n, v in BUILTIN_PRESETS.items())
# "precise (temperature 0.2, top_k 40, top_p 0.9), balanced (0.7, 50, 0.95), ..." for /help.
_SHORT = ", ".join(
    f"{n} ({', '.join(f'{k} {x}' if i == 0 else str(x) for k, x in v.items())})"
    for i, (n, v) in enumerate(BUILTIN_PRESETS.items())
)


def _complete_preset(app: ChatControls, arg: str) -> list[str]:
    names = [f"{PRESET_SAVE} ", *preset_names(app.session.settings)]
    return [n for n in names if n.startswith(arg)]


@COMMANDS.command("preset", f"Apply a sampling preset: {_SHORT}, or a saved one; "
                  f"`{PRESET_SAVE} NAME` keeps this chat's values in config.toml",
                  f"[NAME | {PRESET_SAVE} NAME]", _complete_preset)  # fmt: skip
def _preset(app: ChatControls, arg: str) -> None:
    session = app.session
    settings = session.settings
    word, _, rest = arg.partition(" ")
    if not arg:
        saved = [f"{n} ({describe(v)})" for n, v in settings.presets.items()]
        app.show_notice(
            f"presets: {_BUILTINS}"
            + (f" · saved: {', '.join(saved)}" if saved else "")
            + f" · /preset NAME applies one, /preset {PRESET_SAVE} NAME keeps this chat's values"
        )
        return
    if word.lower() == PRESET_SAVE:
        name = rest.strip()
        if not name:
            raise CommandError(f"usage: /preset {PRESET_SAVE} NAME")
        try:
            path = save_preset(name, session.sampling, settings)
        except (PresetError, ConfigWriteError) as e:
            raise CommandError(str(e)) from None
        app.show_notice(f"preset {name} saved in {path}: {describe(settings.presets[name])}")
        return
    try:
        values = preset_values(arg, settings)
        sampling_params({**session.sampling, **values})  # all or nothing, as one /set each
    except ValueError as e:
        raise CommandError(str(e)) from None
    for key, value in values.items():
        session.set_sampling(key, str(value))
    app.show_notice(f"preset {arg}: {describe(values)}")
    app.refresh_status()


class ChatCommands(Provider):
    """The registry's commands in the command palette. A command that takes an argument puts
    ``/name `` in the prompt (picking it never changes anything at once); a full
    ``/set temperature 0.5`` typed here runs as is."""

    @property
    def chat_app(self) -> ChatControls:
        return self.app.chat  # type: ignore[attr-defined, no-any-return]  # a ChatApp's chat screen

    def _action(self, command: Command) -> Callable[[], Any]:
        if command.args and not command.palette_runs:
            return partial(self.chat_app.fill_prompt, f"/{command.name} ")
        return partial(self.chat_app.run_command, f"/{command.name}")

    async def discover(self) -> Hits:
        for command in COMMANDS:
            yield DiscoveryHit(command.usage, self._action(command), help=command.help)

    async def search(self, query: str) -> Hits:
        text = query.strip()
        if text.startswith("/") and " " in text:
            try:
                command, _ = COMMANDS.parse(text)
            except CommandError:
                command = None
            if command is not None:
                yield Hit(1.0, f"Run {text}", partial(self.chat_app.run_command, text),
                          text=text, help=command.help)  # fmt: skip
                return
        matcher = self.matcher(text.removeprefix("/"))
        for command in COMMANDS:
            target = f"{command.name} {command.help}"
            score = matcher.match(target)
            if score > 0:
                yield Hit(score, matcher.highlight(command.usage), self._action(command),
                          text=command.usage, help=command.help)  # fmt: skip
