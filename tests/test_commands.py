"""The command registry shared by slash commands and the command palette."""

from __future__ import annotations

import pytest

from chatapp.tui.commands import COMMANDS, ChatCommands, CommandError


def test_every_command_of_the_issue_is_registered() -> None:
    names = {c.name for c in COMMANDS}
    assert {"new", "model", "system", "set", "show", "clear", "quit", "help"} <= names


def test_parse_splits_the_argument_and_rejects_unknown_or_incomplete_commands() -> None:
    command, arg = COMMANDS.parse("/set temperature 0.7")
    assert (command.name, arg) == ("set", "temperature 0.7")
    with pytest.raises(CommandError, match="unknown command /nope"):
        COMMANDS.parse("/nope")
    with pytest.raises(CommandError, match="usage: /set KEY VALUE"):
        COMMANDS.parse("/set")
    assert COMMANDS.parse("/model")[1] == ""  # optional argument: opens the picker


def test_completion_of_names_and_setting_keys() -> None:
    assert COMMANDS.completions(None, "/s") == ["/system ", "/set ", "/show", "/search "]
    assert COMMANDS.completions(None, "/q") == ["/quit"]
    assert COMMANDS.completions(None, "hello") == []

    class App:
        def known_model_names(self) -> list[str]:
            return ["guide", "smollm2"]

    app = App()
    assert COMMANDS.completions(app, "/set top_") == ["/set top_k ", "/set top_p "]  # type: ignore[arg-type]
    assert COMMANDS.completions(app, "/model sm") == ["/model smollm2"]  # type: ignore[arg-type]


def test_the_palette_provider_is_built_on_the_same_registry() -> None:
    from chatapp.tui.app import ChatApp

    assert ChatCommands in ChatApp.COMMANDS
