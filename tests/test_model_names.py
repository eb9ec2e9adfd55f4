"""Model names and the default model: the built-in ``guide`` is a model like the others, pull
aliases and unique prefixes name models, a miss suggests the closest names, and one default
model (``chatapp default``) is shared by the chat and ``chatapp ask``."""

from __future__ import annotations

import json
import shutil
import sys
from pathlib import Path

import pytest

import engine
from chatapp.cli import main
from chatapp.models.importer import import_model

SMOLLM2 = "smollm2-135m-instruct"  # the name `chatapp pull smollm2` installs


def config_text() -> str:
    from chatapp.core.settings import config_path

    return config_path().read_text(encoding="utf-8") if config_path().is_file() else ""


def configured_model() -> str | None:
    from chatapp.core.settings import load_settings

    return load_settings()[0].model


@pytest.fixture(autouse=True)
def no_env_model(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("CHATAPP_MODEL", raising=False)


# --- the built-in model -------------------------------------------------------------------


def test_the_guide_is_listed_as_a_built_in_model(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["models"]) == 0
    out = capsys.readouterr().out
    row = next(line for line in out.splitlines() if " guide " in f" {line} ")
    assert "built-in" in row and "*" in row  # and, with nothing set, the default
    assert "chatapp pull smollm2" in out  # the guide alone: how to get a real model


def test_the_guide_is_not_removable_and_its_name_is_not_for_imports(
    tiny_models: dict[str, Path], capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["rm", "guide", "--yes"]) == 1
    err = capsys.readouterr().err
    assert err.startswith("chatapp: error: guide is the built-in model") and err.count("\n") == 1
    assert main(["import", str(tiny_models["llama"]), "--name", "guide"]) == 1
    assert "built-in" in capsys.readouterr().err


def test_show_and_ask_take_the_guide_by_name(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["show", "guide"]) == 0
    assert '"architectures"' in capsys.readouterr().out
    argv = ["ask", "What does Ctrl+N do?", "--model", "guide", "--max-tokens", "4", "--json"]
    assert main(argv) == 0
    assert json.loads(capsys.readouterr().out)["model"] == "guide"


# --- aliases, prefixes and near misses ----------------------------------------------------


def test_a_pull_alias_or_a_unique_prefix_names_a_model(
    tiny_models: dict[str, Path], capsys: pytest.CaptureFixture[str]
) -> None:
    from chatapp.models.choice import require_model

    import_model(tiny_models["llama"], SMOLLM2)
    assert require_model("smollm2") == SMOLLM2  # `chatapp pull smollm2`'s name
    assert require_model("smol") == SMOLLM2
    assert require_model("gui") == "guide"
    assert main(["show", "smollm2"]) == 0
    assert SMOLLM2 in capsys.readouterr().out
    argv = ["ask", "Hi", "--model", "smol", "--max-tokens", "3", "--json"]
    assert main(argv) == 0
    assert json.loads(capsys.readouterr().out)["model"] == SMOLLM2


def test_a_mistyped_model_name_suggests_the_closest_names(
    tiny_models: dict[str, Path], capsys: pytest.CaptureFixture[str]
) -> None:
    import_model(tiny_models["llama"], SMOLLM2)
    import_model(tiny_models["gpt2"], "qa-1")
    import_model(tiny_models["gpt2"], "qa-2")
    for argv in (["show", "smollm3"], ["ask", "hi", "--model", "smollm3"], ["default", "smolm"]):
        assert main(argv) == 1
        err = capsys.readouterr().err
        assert err == f"chatapp: error: no model named {argv[-1]!r}; did you mean {SMOLLM2}?\n"
    assert main(["show", "qa"]) == 1  # a prefix of two: both are offered
    assert "did you mean qa-1 or qa-2?" in capsys.readouterr().err
    assert main(["rm", "smollm3", "--yes"]) == 1
    assert f"did you mean {SMOLLM2}?" in capsys.readouterr().err


def test_a_pullable_model_that_is_not_installed_says_how_to_get_it(
    capsys: pytest.CaptureFixture[str],
) -> None:
    for argv in (["show", "smollm2"], ["ask", "hi", "--model", "smol"]):
        assert main(argv) == 1
        err = capsys.readouterr().err
        assert err == (
            f"chatapp: error: no model named {argv[-1]!r}; `chatapp pull smollm2` installs it\n"
        )


def test_rm_takes_a_pull_alias_but_not_a_prefix(tiny_models: dict[str, Path]) -> None:
    import_model(tiny_models["llama"], SMOLLM2)
    assert main(["rm", "smol", "--yes"]) == 1  # too loose for deleting
    assert main(["rm", "smollm2", "--yes"]) == 0
    assert engine.list_models() == []


def test_a_model_that_is_neither_a_name_nor_a_path_fails_before_the_chat_opens(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    from chatapp.tui.app import ChatApp

    opened: list[str | None] = []
    monkeypatch.setattr(ChatApp, "run", lambda self: opened.append(self.requested_model))
    monkeypatch.setattr(sys.stdin, "isatty", lambda: True, raising=False)
    monkeypatch.setattr(sys.stdout, "isatty", lambda: True, raising=False)
    assert main(["--model", "nope"]) == 1
    assert (
        capsys.readouterr().err == "chatapp: error: no model named 'nope' (see `chatapp models`)\n"
    )
    assert opened == []
    assert main(["--model", "gui"]) == 0  # a unique prefix: the chat opens with its full name
    assert opened == ["guide"]


def test_a_mistyped_subcommand_suggests_the_closest(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["modles"]) == 2
    err = capsys.readouterr().err
    assert err.startswith("chatapp: error: unknown command 'modles'; did you mean models")
    assert err.count("\n") == 1


# --- the default model --------------------------------------------------------------------


def test_default_prints_the_default_model_and_where_it_comes_from(
    tiny_models: dict[str, Path], capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["default"]) == 0
    assert capsys.readouterr().out == "guide (the built-in model: no default is set)\n"
    import_model(tiny_models["qwen2"], "q")
    assert main(["default", "q"]) == 0
    assert "The default model is now q" in capsys.readouterr().out
    assert configured_model() == "q"
    assert main(["default"]) == 0
    out = capsys.readouterr().out
    assert out.startswith("q (`model` in ") and "config.toml" in out
    assert main(["models"]) == 0
    out = capsys.readouterr().out
    marked = [ln.split()[1] for ln in out.splitlines() if ln.split()[:1] == ["*"]]
    assert marked == ["q", "the"] and "* the default model: q (`model` in" in out


def test_setting_the_default_keeps_the_rest_of_config_toml(
    tiny_models: dict[str, Path],
) -> None:
    from chatapp.core.settings import config_path

    import_model(tiny_models["qwen2"], "q")
    config_path().parent.mkdir(parents=True, exist_ok=True)
    config_path().write_text('# mine\nmodel = "guide"  # old\n\n[sampling]\ntemperature = 0.5\n')
    assert main(["default", "q"]) == 0
    assert config_text() == '# mine\nmodel = "q"\n\n[sampling]\ntemperature = 0.5\n'
    config_path().write_text("[sampling]\ntemperature = 0.5\n")
    assert main(["default", "guide"]) == 0
    assert config_text() == 'model = "guide"\n[sampling]\ntemperature = 0.5\n'


def test_a_broken_config_toml_is_not_overwritten(
    capsys: pytest.CaptureFixture[str],
) -> None:
    from chatapp.core.settings import config_path

    config_path().parent.mkdir(parents=True, exist_ok=True)
    config_path().write_text("model = [unclosed\n")
    assert main(["default", "guide"]) == 1
    assert "not valid TOML" in capsys.readouterr().err
    assert config_text() == "model = [unclosed\n"


def test_the_first_import_becomes_the_default_and_says_so(
    tiny_models: dict[str, Path], capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["import", str(tiny_models["llama"]), "--name", "first"]) == 0
    assert "first is now the default model" in capsys.readouterr().out
    assert configured_model() == "first"
    assert main(["import", str(tiny_models["gpt2"]), "--name", "second"]) == 0
    assert "Make it the default model: chatapp default second" in capsys.readouterr().out
    assert configured_model() == "first"


def test_ask_answers_with_the_default_model(
    tiny_models: dict[str, Path], capsys: pytest.CaptureFixture[str]
) -> None:
    import_model(tiny_models["llama"], "mine")
    assert main(["ask", "Hi", "--max-tokens", "2", "--json"]) == 0
    assert json.loads(capsys.readouterr().out)["model"] == "guide"  # nothing set yet
    assert main(["default", "mine"]) == 0
    capsys.readouterr()
    assert main(["ask", "Hi", "--max-tokens", "2", "--json"]) == 0
    assert json.loads(capsys.readouterr().out)["model"] == "mine"


def test_removing_the_default_model_removes_the_default(
    tiny_models: dict[str, Path], capsys: pytest.CaptureFixture[str]
) -> None:
    import_model(tiny_models["llama"], "mine")
    assert main(["default", "mine"]) == 0
    assert main(["rm", "mine", "--yes"]) == 0
    assert "the default is now guide" in capsys.readouterr().out
    assert configured_model() is None


def test_default_takes_a_path_and_keeps_it_absolute(
    tiny_models: dict[str, Path], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    folder = shutil.copytree(tiny_models["llama"], tmp_path / "here" / "m")
    monkeypatch.chdir(folder.parent)
    assert main(["default", "m"]) == 0
    assert configured_model() == str(folder)


def test_a_replaced_model_is_freed_although_the_load_froze_the_gc() -> None:
    """load_model freezes what is alive after a load (no full collections during replies); a
    model switched away from must still go: nothing in a Model holds a cycle."""
    import gc
    import weakref

    from chatapp.models.loading import load_model

    model = load_model("guide")
    "".join(
        model.chat([{"role": "user", "content": "hi"}], engine.SamplingParams(max_new_tokens=4))
    )
    gone, net = weakref.ref(model), weakref.ref(model.net)
    replacement = load_model("guide")  # the old one is alive, and frozen, during this load
    assert gc.get_freeze_count() > 0
    del model
    assert gone() is None and net() is None
    assert replacement.name
