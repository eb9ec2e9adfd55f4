"""``chatapp ask``: streaming, stdin, --json, terminal safety, exit codes, model choice."""

from __future__ import annotations

import io
import json
from pathlib import Path
from typing import Any

import pytest
from fakes import FakeModel

import engine
from chatapp.cli import ask as ask_mod
from chatapp.cli import main
from chatapp.console_text import strip_control
from chatapp.models.choice import engine_source, resolve_model_source
from chatapp.models.importer import import_model


class TtyInput(io.StringIO):
    def isatty(self) -> bool:
        return True


@pytest.fixture(autouse=True)
def isolated(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    """No embedded default model, no CHATAPP_MODEL, and a terminal (not a pipe) on stdin."""
    monkeypatch.setenv("CHATAPP_ASSETS", str(tmp_path / "no-assets"))
    monkeypatch.delenv("CHATAPP_MODEL", raising=False)
    monkeypatch.setattr("sys.stdin", TtyInput(""))


def use_fake(monkeypatch: pytest.MonkeyPatch, model: FakeModel) -> list[str]:
    loaded: list[str] = []

    def load(source: str, quant: str = "auto") -> Any:
        loaded.append(source)
        return model

    monkeypatch.setattr(ask_mod, "_load", load)
    return loaded


def test_reply_streams_to_stdout(
    tiny_models: dict[str, Path], capsys: pytest.CaptureFixture[str]
) -> None:
    code = main(["ask", "Hello", "--model", str(tiny_models["llama"]), "--seed", "1",
                 "--max-tokens", "8"])  # fmt: skip
    out = capsys.readouterr().out
    assert code == 0 and out.endswith("\n")
    model = engine.load(tiny_models["llama"])
    params = engine.SamplingParams(seed=1, max_new_tokens=8)
    expected = "".join(model.chat([{"role": "user", "content": "Hello"}], params))
    assert out == strip_control(expected) + ("" if expected.endswith("\n") else "\n")


def test_json_prints_one_object_with_reply_model_and_stats(
    tiny_models: dict[str, Path], capsys: pytest.CaptureFixture[str]
) -> None:
    import_model(tiny_models["qwen2"], "q")
    args = ["ask", "Hi", "--model", "q", "--temperature", "0", "--max-tokens", "5", "--json"]
    assert main(args) == 0
    out = capsys.readouterr().out
    data = json.loads(out)
    assert out.count("\n") == 1
    assert data["model"] == "q"
    assert set(data["stats"]) >= {"prompt_tokens", "new_tokens", "time_to_first_token"}
    assert 1 <= data["stats"]["new_tokens"] <= 5 or data["stats"]["stop_reason"] == "eos"
    assert main(args) == 0  # greedy: the same reply again
    assert json.loads(capsys.readouterr().out)["reply"] == data["reply"]
    assert data["weights"] == "float32"  # a tiny float model stays float32 on the CPU


def test_quant_flag_quantizes_a_float_model_as_it_loads(
    tiny_models: dict[str, Path], capsys: pytest.CaptureFixture[str]
) -> None:
    args = ["ask", "Hi", "--model", str(tiny_models["llama"]), "--max-tokens", "3", "--json"]
    assert main([*args, "--quant", "int8"]) == 0
    assert json.loads(capsys.readouterr().out)["weights"] == "int8"


def test_piped_stdin_is_appended_to_the_prompt(monkeypatch: pytest.MonkeyPatch) -> None:
    fake = FakeModel(["ok"])
    use_fake(monkeypatch, fake)
    monkeypatch.setattr("sys.stdin", io.StringIO("diff --git a b\n+x\n"))
    assert main(["ask", "review this", "--system", "be brief", "--model", "m"]) == 0
    assert fake.calls[-1] == [
        {"role": "system", "content": "be brief"},
        {"role": "user", "content": "review this\n\ndiff --git a b\n+x\n"},
    ]


def test_stdin_that_is_not_utf8_is_read_with_a_warning(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    fake = FakeModel(["ok"])
    use_fake(monkeypatch, fake)
    latin1 = io.TextIOWrapper(io.BytesIO("café crème\n".encode("latin-1")), encoding="utf-8")
    monkeypatch.setattr("sys.stdin", latin1)
    assert main(["ask", "-", "--model", "m"]) == 0
    assert fake.calls[-1] == [{"role": "user", "content": "caf\ufffd cr\ufffdme\n"}]
    err = capsys.readouterr().err
    assert "not valid UTF-8" in err and err.count("\n") == 1 and "Traceback" not in err


def test_a_closed_pipe_ends_quietly(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """``chatapp ask … | head -c 20``: the reader leaves; no traceback, SIGPIPE's status."""
    use_fake(monkeypatch, FakeModel(["a long ", "reply"]))
    sink = (tmp_path / "sink").open("w")

    class ClosedPipe(io.StringIO):
        def write(self, text: str) -> int:
            raise BrokenPipeError(32, "Broken pipe")

        def fileno(self) -> int:
            return sink.fileno()

    monkeypatch.setattr("sys.stdout", ClosedPipe())
    assert main(["ask", "hi", "--model", "m"]) == 141
    assert "Traceback" not in capsys.readouterr().err


def test_dash_reads_the_whole_prompt_from_stdin(monkeypatch: pytest.MonkeyPatch) -> None:
    fake = FakeModel(["ok"])
    use_fake(monkeypatch, fake)
    monkeypatch.setattr("sys.stdin", TtyInput("from stdin"))
    assert main(["ask", "-", "--model", "m"]) == 0
    assert fake.calls[-1] == [{"role": "user", "content": "from stdin"}]


def test_sampling_options_reach_the_model(monkeypatch: pytest.MonkeyPatch) -> None:
    fake = FakeModel(["ok"])
    use_fake(monkeypatch, fake)
    argv = ["ask", "q", "--model", "m", "--temperature", "0.5", "--top-k", "7", "--top-p", "0.9",
            "--min-p", "0.05", "--repetition-penalty", "1.2", "--seed", "3", "--max-tokens", "9"]  # fmt: skip
    assert main(argv) == 0
    assert fake.params[-1] == engine.SamplingParams(
        temperature=0.5, top_k=7, top_p=0.9, min_p=0.05, repetition_penalty=1.2, seed=3,
        max_new_tokens=9,
    )  # fmt: skip


def test_config_toml_gives_the_defaults_and_flags_override_them(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    from chatapp.core.settings import config_path

    config_path().parent.mkdir(parents=True, exist_ok=True)
    config_path().write_text(
        'model = "from-config"\nsystem = "Be brief."\n'
        "[sampling]\ntemperature = 0.2\ntop_k = 5\nmax_tokens = 40\n"
    )
    fake = FakeModel(["ok"])
    loaded = use_fake(monkeypatch, fake)
    assert main(["ask", "q"]) == 0
    assert loaded == ["from-config"]
    assert fake.calls[-1][0] == {"role": "system", "content": "Be brief."}
    assert fake.params[-1] == engine.SamplingParams(temperature=0.2, top_k=5, max_new_tokens=40)
    assert (
        main(["ask", "q", "--model", "m", "--system", "", "--temperature", "0", "--top-k", "9"])
        == 0
    )
    assert loaded[-1] == "m"
    assert [m["role"] for m in fake.calls[-1]] == ["user"]  # --system "" drops config's
    assert fake.params[-1] == engine.SamplingParams(temperature=0.0, top_k=9, max_new_tokens=40)
    monkeypatch.setenv("CHATAPP_MODEL", "from-env")  # the environment beats the file
    assert main(["ask", "q"]) == 0
    assert loaded[-1] == "from-env"
    assert capsys.readouterr().err == ""


def test_a_broken_config_toml_is_one_warning_line_and_defaults(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    from chatapp.core.settings import config_path

    config_path().parent.mkdir(parents=True, exist_ok=True)
    config_path().write_text("model = [unclosed\n")
    fake = FakeModel(["ok"])
    use_fake(monkeypatch, fake)
    assert main(["ask", "q", "--model", "m"]) == 0
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "not valid TOML" in err
    assert fake.params[-1] == engine.SamplingParams()


def test_a_bad_value_in_config_toml_names_the_file(capsys: pytest.CaptureFixture[str]) -> None:
    from chatapp.core.settings import config_path

    config_path().parent.mkdir(parents=True, exist_ok=True)
    config_path().write_text("[sampling]\ntemperature = -1\n")
    assert main(["ask", "q", "--model", "m"]) == 1
    err = capsys.readouterr().err
    assert "temperature must be" in err and "sampling.temperature" in err and "config.toml" in err
    argv = ["ask", "q", "--model", "m", "--temperature", "0.5", "--max-tokens", "0"]
    assert main(argv) == 1  # a flag's own error
    assert "--max-tokens must be" in capsys.readouterr().err


def test_terminal_escape_sequences_never_reach_stdout(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    use_fake(
        monkeypatch, FakeModel(["\x1b[31mred\x1b[0m", "\x9b2J", "a\tb\r\nc\x07\x00\x7f", "é😀"])
    )
    assert main(["ask", "q", "--model", "m"]) == 0
    assert capsys.readouterr().out == "[31mred[0m2Ja\tb\nc" + "é😀\n"
    assert main(["ask", "q", "--model", "m", "--json"]) == 0
    assert json.loads(capsys.readouterr().out)["reply"] == "[31mred[0m2Ja\tb\nc" + "é😀"


def test_strip_control_keeps_text_newlines_and_tabs() -> None:
    text = "line 1\n\tline 2 — ünïcode 你好"
    assert strip_control(text) == text
    assert strip_control("".join(map(chr, range(0x20)))) == "\t\n"
    assert strip_control("".join(map(chr, range(0x7F, 0xA1)))) == "\xa0"


def test_ctrl_c_stops_cleanly_with_130(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    fake = FakeModel(["partial ", "more", "never"], interrupt_after=2)
    use_fake(monkeypatch, fake)
    assert main(["ask", "q", "--model", "m"]) == 130
    assert capsys.readouterr().out == "partial more\n"
    assert fake.closed


def test_unknown_model_is_a_one_line_error(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["ask", "q", "--model", "nope"]) == 1
    err = capsys.readouterr().err
    assert err.startswith("chatapp: error: no model named 'nope'") and err.count("\n") == 1


@pytest.mark.parametrize(
    ("option", "value", "field"),
    [("--temperature", "-1", "temperature"), ("--top-p", "0", "top_p"),
     ("--max-tokens", "0", "--max-tokens")],
)  # fmt: skip
def test_bad_sampling_values_are_one_line_errors(
    option: str, value: str, field: str, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["ask", "q", "--model", "m", option, value]) == 1
    err = capsys.readouterr().err
    assert err.startswith(f"chatapp: error: {field} must be") and err.count("\n") == 1


def test_a_prompt_longer_than_the_context_is_a_one_line_error(
    tiny_models: dict[str, Path], capsys: pytest.CaptureFixture[str]
) -> None:
    long = "Hello world! " * 200  # the tiny models hold 128 tokens
    assert main(["ask", long, "--model", str(tiny_models["llama"])]) == 1
    captured = capsys.readouterr()
    assert captured.out == ""
    assert captured.err.startswith("chatapp: error: ") and "context" in captured.err


def test_empty_prompt_is_refused(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["ask", "  ", "--model", "m"]) == 1
    assert "empty" in capsys.readouterr().err


def test_model_choice_order(
    tiny_models: dict[str, Path], monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    """One default for the chat and ask: $CHATAPP_MODEL, config.toml's model, the built-in
    guide, the first installed model (no "last used" model of the chat's own)."""
    with pytest.raises(engine.ModelLoadError, match="chatapp pull smollm2"):
        resolve_model_source(None)
    import_model(tiny_models["gpt2"], "b-model")
    import_model(tiny_models["gpt2"], "a-model")
    assert resolve_model_source(None) == "a-model"
    guide = tmp_path / "no-assets" / "models" / "guide"  # the embedded default appears
    guide.mkdir(parents=True)
    (guide / "config.json").write_text("{}")
    assert resolve_model_source(None) == "guide"  # by its name
    assert engine_source("guide") == str(guide)  # what the engine loads
    assert resolve_model_source(None, "b-model") == "b-model"  # config.toml's model
    monkeypatch.setenv("CHATAPP_MODEL", "b-model")
    assert resolve_model_source(None, "a-model") == "b-model"
    assert resolve_model_source("explicit") == "explicit"


def test_without_any_model_ask_says_how_to_get_one(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["ask", "q"]) == 1
    assert "chatapp pull smollm2" in capsys.readouterr().err


def test_raw_continues_the_prompt_without_a_chat_template(
    tiny_models: dict[str, Path], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    base = tmp_path / "base"
    import shutil

    shutil.copytree(tiny_models["llama"], base)
    (base / "tokenizer_config.json").write_text(json.dumps({"eos_token": "<|im_end|>"}))
    args = ["ask", "Hello", "--model", str(base), "--temperature", "0", "--max-tokens", "6"]
    assert main(args) == 0
    captured = capsys.readouterr()
    assert "probably a base model" in captured.err  # chatting with one is a surprise: say so
    assert main([*args, "--raw"]) == 0
    raw = capsys.readouterr()
    assert raw.err == ""  # a completion is what a base model is for
    model = engine.load(base)
    params = engine.SamplingParams(temperature=0, max_new_tokens=6)
    expected = "".join(model.complete("Hello", params))
    assert raw.out == strip_control(expected) + ("" if expected.endswith("\n") else "\n")
    assert model.last_stats.prompt_tokens == len(model.tokenizer.encode("Hello"))
    assert main([*args, "--raw", "--system", "Be brief."]) == 1


def test_ask_without_a_prompt_is_a_usage_error_as_the_readme_says(
    capsys: pytest.CaptureFixture[str],
) -> None:
    readme = (Path(__file__).resolve().parent.parent / "README.md").read_text(encoding="utf-8")
    assert "2 a usage error (no prompt, an unknown option)" in " ".join(readme.split())
    with pytest.raises(SystemExit) as exit_:
        main(["ask"])
    assert exit_.value.code == 2 and "PROMPT" in capsys.readouterr().err
