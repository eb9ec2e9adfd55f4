"""The prompt's tools in the chat TUI: $EDITOR (Ctrl+G, /editor), config.toml's [keys],
/theme and /preset (with a fake engine model)."""

from __future__ import annotations

import contextlib
import os
import shlex
import sys
from pathlib import Path

import pytest
from fakes import FakeModel, async_test, fake_loader, wait_until
from textual.command import CommandList

from chatapp.core.config_file import tomllib
from chatapp.core.settings import config_path
from chatapp.core.store import Store
from chatapp.tui.app import ChatApp
from chatapp.tui.keymap import check_keymap, normalize_keys
from chatapp.tui.screens.dialogs import HelpScreen
from chatapp.tui.widgets.chat_view import Notice, UserMessage

SIZE = (100, 32)

# A stand-in editor: records the file it was given, then writes known text into it (or fails).
EDITOR_SCRIPT = """\
import sys
from pathlib import Path
path = Path(sys.argv[-1])
Path(sys.argv[1]).write_text(repr(sys.argv[2:-1]) + "\\n" + path.read_text("utf-8"), "utf-8")
if sys.argv[2] == "--fail":
    sys.exit(3)
path.write_text("edited in the editor\\nsecond line\\n", "utf-8")
"""


def make_app() -> tuple[ChatApp, FakeModel]:
    model = FakeModel()
    return ChatApp("fake", loader=fake_loader(model)), model


async def ready(pilot, app: ChatApp) -> None:
    await wait_until(pilot, lambda: app.session.model_ready)


async def send(pilot, app: ChatApp, text: str) -> None:
    app.chat.prompt.text = text
    app.chat.prompt.focus()
    await pilot.press("enter")


def notices(app: ChatApp, error: bool | None = None) -> list[str]:
    return [
        str(n.render())
        for n in app.chat.query(Notice)
        if error is None or n.has_class("error") == error
    ]


def write_config(text: str) -> Path:
    path = config_path()
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text, encoding="utf-8")
    return path


@pytest.fixture
def editor(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """$EDITOR is the stand-in with arguments (``python ed.py LOG --wait``); App.suspend is a
    no-op, as a headless run cannot hand a terminal over. Returns the log it writes."""
    script = tmp_path / "ed.py"
    script.write_text(EDITOR_SCRIPT, encoding="utf-8")
    log = tmp_path / "editor.log"
    command = f"{shlex.quote(sys.executable)} {shlex.quote(str(script))} {shlex.quote(str(log))}"
    monkeypatch.setenv("EDITOR", command + " --wait")
    monkeypatch.delenv("VISUAL", raising=False)
    monkeypatch.setattr(ChatApp, "suspend", lambda self: contextlib.nullcontext())
    return log


# $EDITOR --------------------------------------------------------------------------------------


@async_test
async def test_ctrl_g_edits_the_prompt_in_the_editor_and_brings_it_back_unsent(
    editor: Path,
) -> None:
    app, model = make_app()
    async with app.run_test(size=SIZE) as pilot:
        await ready(pilot, app)
        app.chat.prompt.text = "a draft\nof two lines"
        await pilot.press("ctrl+g")
        await wait_until(pilot, lambda: app.chat.prompt.text.startswith("edited"))
        assert app.chat.prompt.text == "edited in the editor\nsecond line"
        assert app.focused is app.chat.prompt
        assert not app.chat.query(UserMessage) and model.calls == []  # not sent
    args, _, given = editor.read_text(encoding="utf-8").partition("\n")
    assert args == "['--wait']"  # the editor command's own arguments (shlex)
    assert given == "a draft\nof two lines"  # the editor got the prompt's text


@async_test
async def test_slash_editor_failing_editor_is_one_line_and_the_prompt_is_kept(
    editor: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    app, _ = make_app()
    async with app.run_test(size=SIZE) as pilot:
        await ready(pilot, app)
        await send(pilot, app, "/editor")  # /editor from an empty prompt
        await wait_until(pilot, lambda: app.chat.prompt.text.startswith("edited"))
        monkeypatch.setenv("EDITOR", os.environ["EDITOR"].replace("--wait", "--fail"))
        app.chat.prompt.text = "keep me"
        await pilot.press("ctrl+g")
        await wait_until(pilot, lambda: bool(notices(app, error=True)))
        (line,) = notices(app, error=True)
        assert "exited with status 3" in line and "the prompt is unchanged" in line
        assert "\n" not in line and app.chat.prompt.text == "keep me"


@async_test
async def test_a_missing_editor_or_no_terminal_to_suspend_is_one_line(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("VISUAL", "no-such-editor-here --wait")
    app, _ = make_app()
    async with app.run_test(size=SIZE) as pilot:
        await ready(pilot, app)
        app.chat.prompt.text = "my long prompt"
        await pilot.press("ctrl+g")
        await wait_until(pilot, lambda: bool(notices(app, error=True)))
        assert "'no-such-editor-here' is not on PATH" in notices(app, error=True)[-1]
        monkeypatch.setenv("VISUAL", sys.executable)  # found, but the headless run can't suspend
        await pilot.press("ctrl+g")
        await wait_until(pilot, lambda: len(notices(app, error=True)) == 2)
        assert "cannot open an editor here" in notices(app, error=True)[-1]
        assert app.chat.prompt.text == "my long prompt"


# [keys] ---------------------------------------------------------------------------------------


@async_test
async def test_a_remapped_key_works_the_old_one_does_not_and_f1_shows_it() -> None:
    write_config('[keys]\nnew_chat = "ctrl+t"\nshow_help = "f2"\n')
    app, _ = make_app()
    async with app.run_test(size=SIZE) as pilot:
        await ready(pilot, app)
        assert not app._notifications  # nothing to warn about
        await send(pilot, app, "first")
        await wait_until(
            pilot, lambda: len(app.chat.query(UserMessage)) == 1 and not app.chat.streaming
        )
        await pilot.press("ctrl+n")
        await pilot.pause()
        assert len(app.chat.query(UserMessage)) == 1  # the old key no longer starts a chat
        await pilot.press("ctrl+t")
        await wait_until(pilot, lambda: not app.chat.query(UserMessage))
        assert app.session.conversation_id is None
        rows = dict(row for _, section in app.key_help() for row in section)
        assert rows["Ctrl+T"] == "new conversation" and "Ctrl+N" not in rows
        assert rows["F2"] == "this help"
        assert "F2 shows every key" in app.chat.welcome_text()
        await pilot.press("f1")
        await pilot.pause()
        assert not isinstance(app.screen, HelpScreen)
        await pilot.press("f2")
        await wait_until(pilot, lambda: isinstance(app.screen, HelpScreen))


@async_test
async def test_unknown_ids_and_conflicts_are_one_warning_each_and_keep_the_defaults() -> None:
    write_config(
        '[keys]\nnwe_chat = "ctrl+t"\ntoggle_sidebar = "ctrl+n"\npick_model = "ctrl+t"\n'
        'search_history = "ctrl+t"\n'
    )
    app, _ = make_app()
    async with app.run_test(size=SIZE) as pilot:
        await ready(pilot, app)
        warnings = [n.message for n in app._notifications]
        assert len(warnings) == 3 and all("\n" not in w for w in warnings)
        assert all(str(config_path()) in w for w in warnings)
        assert "unknown binding id 'nwe_chat'; did you mean new_chat" in warnings[0]
        assert "Ctrl+N would be both new_chat and toggle_sidebar" in warnings[1]
        assert "toggle_sidebar keeps Ctrl+B" in warnings[1]
        assert "Ctrl+T would be both pick_model and search_history" in warnings[2]
        assert app.keymap == {}
        await pilot.press("ctrl+b")  # the default still works
        await wait_until(pilot, lambda: app.chat.query_one("#sidebar").display)


def test_a_key_taken_by_the_prompt_or_its_own_keys_is_a_conflict() -> None:
    contexts = ChatApp.keymap_contexts()
    keymap, warnings = check_keymap(
        {"new_chat": "Ctrl+A", "quit": "enter", "pick_model": "ctrl+b", "toggle_sidebar": "ctrl+o"},
        contexts,
        "config.toml",
    )
    # A swap is fine; Ctrl+A is the prompt's start of line; Enter sends the prompt.
    assert keymap == {"pick_model": "ctrl+b", "toggle_sidebar": "ctrl+o"}
    assert any("Ctrl+A would be both new_chat and cursor_line_start" in w for w in warnings)
    assert any("Enter would be both" in w and "send the prompt" in w for w in warnings)
    assert normalize_keys(" Ctrl+T , ? ") == "ctrl+t,question_mark"


def test_every_binding_of_the_app_and_its_widgets_has_an_id() -> None:
    from chatapp.tui.screens import dialogs, history_search, model_picker
    from chatapp.tui.widgets import chat_view, prompt, sidebar

    classes = [
        ChatApp,
        prompt.PromptInput,
        sidebar.ConversationList,
        dialogs.ConfirmScreen,
        dialogs.TextInputScreen,
        dialogs.HelpScreen,
        history_search.HistorySearch,
        model_picker.ModelPicker,
        chat_view.Selectable,
    ]
    for cls in classes:
        for binding in cls.BINDINGS:
            assert binding.id, (cls.__name__, binding)  # type: ignore[union-attr]


# /theme ---------------------------------------------------------------------------------------


@async_test
async def test_slash_theme_switches_and_is_remembered_keeping_the_rest_of_config() -> None:
    path = write_config('# mine\nmodel = "fake"\n\n[sampling]\ntemperature = 0.5\n')
    app, _ = make_app()
    async with app.run_test(size=SIZE) as pilot:
        await ready(pilot, app)
        await pilot.press(*"/theme dra", "tab")
        assert app.chat.prompt.text == "/theme dracula"
        await pilot.press("enter")
        await wait_until(pilot, lambda: "theme = " in path.read_text(encoding="utf-8"))
        assert app.theme == "dracula"
        text = path.read_text(encoding="utf-8")
        assert (
            text == 'theme = "dracula"\n# mine\nmodel = "fake"\n\n[sampling]\ntemperature = 0.5\n'
        )
        await send(pilot, app, "/theme")
        assert notices(app)[-1].startswith("theme: dracula · /theme NAME picks one of: ")
        assert "nord" in notices(app)[-1]
        await send(pilot, app, "/theme drakula")
        assert notices(app, error=True) == [
            "unknown theme 'drakula'; did you mean dracula? /theme lists them"
        ]
        assert app.theme == "dracula"
    app, _ = make_app()
    async with app.run_test(size=SIZE) as pilot:
        assert app.theme == "dracula"  # the next start uses it


@async_test
async def test_the_palettes_change_theme_is_remembered_too() -> None:
    app, _ = make_app()
    async with app.run_test(size=SIZE) as pilot:
        await ready(pilot, app)
        app.action_change_theme()  # the palette's "Theme" command
        await wait_until(pilot, lambda: bool(app.screen.query(CommandList)))
        await pilot.press(*"gruvbox")

        def offered() -> bool:
            lists = app.screen.query(CommandList)
            return bool(lists) and lists.first().option_count > 0

        await wait_until(pilot, offered)
        await pilot.press("enter")
        await wait_until(pilot, lambda: app.theme == "gruvbox")
        await wait_until(pilot, lambda: config_path().is_file())
        data = tomllib.loads(config_path().read_text(encoding="utf-8"))
        assert data == {"theme": "gruvbox"}


# /preset --------------------------------------------------------------------------------------


@async_test
async def test_a_builtin_preset_sets_the_chats_sampling_and_is_stored_with_it() -> None:
    app, model = make_app()
    async with app.run_test(size=SIZE) as pilot:
        await ready(pilot, app)
        await send(pilot, app, "/set max_tokens 64")
        await send(pilot, app, "/preset precise")
        assert app.session.sampling == {
            "max_tokens": 64,
            "temperature": 0.2,
            "top_k": 40,
            "top_p": 0.9,
        }
        assert notices(app)[-1] == "preset precise: temperature=0.2 top_k=40 top_p=0.9"
        await send(pilot, app, "hi")
        await wait_until(pilot, lambda: bool(model.params) and not app.chat.streaming)
        params = model.params[-1]
        assert (params.temperature, params.top_p, params.max_new_tokens) == (0.2, 0.9, 64)
        await send(pilot, app, "/preset creative")  # after the chat exists: saved too
        await send(pilot, app, "/preset sloppy")
        assert notices(app, error=True) == [
            "unknown preset 'sloppy'; use one of: precise, balanced, creative"
        ]
    (conv,) = Store().list_conversations()
    assert conv.params == {"max_tokens": 64, "temperature": 1.1, "top_k": 100, "top_p": 0.98}


@async_test
async def test_preset_save_writes_config_and_the_next_start_lists_and_applies_it() -> None:
    path = write_config('theme = "nord"\n')
    app, _ = make_app()
    async with app.run_test(size=SIZE) as pilot:
        await ready(pilot, app)
        await send(pilot, app, "/preset save mine")
        assert "nothing to save" in notices(app, error=True)[-1]
        await send(pilot, app, "/set temperature 0.33")
        await send(pilot, app, "/set seed 5")
        await send(pilot, app, "/preset save mine")
        assert notices(app)[-1] == f"preset mine saved in {path}: temperature=0.33 seed=5"
        await send(pilot, app, "/preset save bad name")
        assert "a preset name is letters" in notices(app, error=True)[-1]
    data = tomllib.loads(path.read_text(encoding="utf-8"))
    assert data == {"theme": "nord", "presets": {"mine": {"temperature": 0.33, "seed": 5}}}
    app, _ = make_app()
    async with app.run_test(size=SIZE) as pilot:
        await ready(pilot, app)
        await send(pilot, app, "/preset")
        listing = notices(app)[-1]
        assert (
            "precise: temperature=0.2" in listing
            and "saved: mine (temperature=0.33 seed=5)" in listing
        )
        await pilot.press(*"/preset m", "tab")
        assert app.chat.prompt.text == "/preset mine"
        await pilot.press("enter")
        await wait_until(pilot, lambda: app.session.sampling == {"temperature": 0.33, "seed": 5})


@async_test
async def test_a_bad_saved_preset_is_one_line_naming_config_toml() -> None:
    path = write_config("[presets.hot]\ntemperature = 500\n")
    app, _ = make_app()
    async with app.run_test(size=SIZE) as pilot:
        await ready(pilot, app)
        (warning,) = [n.message for n in app._notifications]
        assert str(path) in warning and "presets.hot" in warning
        await send(pilot, app, "/preset hot")
        (line,) = notices(app, error=True)
        assert line == (
            f"preset hot in {path} is not usable: temperature must be in [0, 100], got 500"
        )
        assert app.session.sampling == {}


def test_the_readme_names_every_binding_id_and_its_example_keymap_is_clean() -> None:
    import re

    readme = (Path(__file__).resolve().parent.parent / "README.md").read_text(encoding="utf-8")
    ids = {b.id for bindings in ChatApp.keymap_contexts() for b in bindings if b.id}
    assert ids and all(f"`{i}`" in readme for i in ids), sorted(
        i for i in ids if f"`{i}`" not in readme
    )
    example = re.search(r"\[keys\][^\n]*\n((?:\w+ = .*\n)+)", readme)
    assert example is not None
    keys = tomllib.loads(example.group(1))
    keymap, warnings = check_keymap(keys, ChatApp.keymap_contexts(), "config.toml")
    assert warnings == [] and set(keymap) == set(keys)
