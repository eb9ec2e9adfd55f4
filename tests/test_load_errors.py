"""Everything engine.load cannot load is a ModelLoadError with one line a user can act on."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file, save_file

import engine
from engine.formats.safetensors_file import read_safetensors


def copy(src: Path, dst: Path) -> Path:
    shutil.copytree(src, dst)
    return dst


def load_error(source: object) -> str:
    with pytest.raises(engine.ModelLoadError) as info:
        engine.load(source)  # type: ignore[arg-type]
    message = str(info.value)
    assert "\n" not in message
    return message


def test_missing_path_says_what_to_give(tmp_path: Path) -> None:
    msg = load_error(tmp_path / "nope")
    assert "no model at" in msg and "chatapp models" in msg


def test_unknown_name_is_looked_up_in_the_data_dir() -> None:
    assert "no model at 'my-model'" in load_error("my-model")


def test_name_of_an_installed_model_loads(tiny_models: dict[str, Path]) -> None:
    copy(tiny_models["gpt2"], engine.models_dir() / "tiny-gpt2")
    model = engine.load("tiny-gpt2")
    assert model.config.architecture == "GPT2LMHeadModel" and model.name == "tiny-gpt2"


def test_missing_config(tiny_models: dict[str, Path], tmp_path: Path) -> None:
    d = copy(tiny_models["llama"], tmp_path / "m")
    (d / "config.json").unlink()
    assert "has no config.json" in load_error(d)


def test_unknown_architecture_names_it_and_the_supported_ones(
    tiny_models: dict[str, Path], tmp_path: Path
) -> None:
    d = copy(tiny_models["llama"], tmp_path / "m")
    cfg = json.loads((d / "config.json").read_text())
    cfg["architectures"] = ["MambaForCausalLM"]
    (d / "config.json").write_text(json.dumps(cfg))
    msg = load_error(d)
    assert "'MambaForCausalLM'" in msg and "LlamaForCausalLM" in msg and "GPT2LMHeadModel" in msg


def test_broken_config_json(tiny_models: dict[str, Path], tmp_path: Path) -> None:
    d = copy(tiny_models["llama"], tmp_path / "m")
    (d / "config.json").write_text("{not json")
    assert "config.json is not valid JSON" in load_error(d)


def test_missing_tokenizer(tiny_models: dict[str, Path], tmp_path: Path) -> None:
    d = copy(tiny_models["llama"], tmp_path / "m")
    (d / "tokenizer.json").unlink()
    assert "has no tokenizer.json" in load_error(d)


def test_missing_weights(tiny_models: dict[str, Path], tmp_path: Path) -> None:
    d = copy(tiny_models["llama"], tmp_path / "m")
    (d / "model.safetensors").unlink()
    assert "has no model.safetensors" in load_error(d)


def test_truncated_safetensors(tiny_models: dict[str, Path], tmp_path: Path) -> None:
    d = copy(tiny_models["llama"], tmp_path / "m")
    data = (d / "model.safetensors").read_bytes()
    (d / "model.safetensors").write_bytes(data[: len(data) // 2])
    msg = load_error(d)
    assert "model.safetensors is corrupt or truncated" in msg and "download it again" in msg


def test_garbage_safetensors(tiny_models: dict[str, Path], tmp_path: Path) -> None:
    d = copy(tiny_models["llama"], tmp_path / "m")
    (d / "model.safetensors").write_bytes(b"\x00" * 100)
    assert "corrupt or truncated" in load_error(d)


def test_wrong_shape_names_the_tensor_and_both_shapes(
    tiny_models: dict[str, Path], tmp_path: Path
) -> None:
    d = copy(tiny_models["llama"], tmp_path / "m")
    tensors = load_file(d / "model.safetensors")
    name = "model.layers.1.mlp.up_proj.weight"
    tensors[name] = tensors[name][:, :10].contiguous()
    save_file(tensors, d / "model.safetensors")
    msg = load_error(d)
    assert "'layers.1.mlp.up_proj.weight'" in msg and "(128, 10)" in msg and "(128, 64)" in msg


def test_missing_tensor_is_named(tiny_models: dict[str, Path], tmp_path: Path) -> None:
    d = copy(tiny_models["llama"], tmp_path / "m")
    tensors = load_file(d / "model.safetensors")
    del tensors["model.norm.weight"]
    save_file(tensors, d / "model.safetensors")
    assert "lack tensor 'norm.weight'" in load_error(d)


@pytest.mark.parametrize("filename", ["pytorch_model.bin", "model.pt"])
def test_pickle_checkpoint_folder_is_refused(
    filename: str, tiny_models: dict[str, Path], tmp_path: Path
) -> None:
    d = copy(tiny_models["llama"], tmp_path / "m")
    (d / "model.safetensors").unlink()
    marker = tmp_path / "pwned"
    # A pickle that would create a file if it were ever unpickled.
    payload = b"cos\nsystem\n(S'touch " + str(marker).encode() + b"'\ntR."
    (d / filename).write_bytes(payload)
    msg = load_error(d)
    assert "pickle checkpoint" in msg and "convert it to safetensors" in msg
    assert not marker.exists()


def test_pickle_file_is_refused(tmp_path: Path) -> None:
    f = tmp_path / "model.bin"
    f.write_bytes(b"junk")
    assert "never loaded" in load_error(f)


def test_unknown_dtype(tiny_models: dict[str, Path]) -> None:
    with pytest.raises(engine.ModelLoadError, match="unknown dtype 'float8'"):
        engine.load(tiny_models["llama"], dtype="float8")


def test_bfloat16_load_runs(tiny_models: dict[str, Path]) -> None:
    model = engine.load(tiny_models["llama"], dtype="bfloat16")
    ids = model.tokenizer.encode("Hello")
    assert model.logits(ids).dtype.is_floating_point
    assert (
        len(list(model.generate(ids, engine.SamplingParams(max_new_tokens=3), ignore_eos=True)))
        == 3
    )


def test_safetensors_cut_inside_the_data_names_the_tensor(
    tiny_models: dict[str, Path], tmp_path: Path
) -> None:
    d = copy(tiny_models["llama"], tmp_path / "m")
    data = (d / "model.safetensors").read_bytes()
    (d / "model.safetensors").write_bytes(data[:-1])
    msg = load_error(d)
    assert "corrupt or truncated" in msg and "ends at byte" in msg


def test_safetensors_header_longer_than_the_file(
    tiny_models: dict[str, Path], tmp_path: Path
) -> None:
    d = copy(tiny_models["llama"], tmp_path / "m")
    (d / "model.safetensors").write_bytes((1 << 40).to_bytes(8, "little") + b"{}")
    assert "header length" in load_error(d)


def write_raw_safetensors(path: Path, header: dict[str, object], data: bytes) -> None:
    raw = json.dumps(header).encode()
    path.write_bytes(len(raw).to_bytes(8, "little") + raw + data)


def test_safetensors_offsets_that_disagree_with_the_shape(
    tiny_models: dict[str, Path], tmp_path: Path
) -> None:
    d = copy(tiny_models["llama"], tmp_path / "m")
    header = {"w": {"dtype": "F32", "shape": [2, 3], "data_offsets": [0, 20]}}
    write_raw_safetensors(d / "model.safetensors", header, b"\x00" * 24)
    assert "spans 20 bytes but its shape [2, 3] needs 24" in load_error(d)


def test_safetensors_unsupported_dtype_is_named(
    tiny_models: dict[str, Path], tmp_path: Path
) -> None:
    d = copy(tiny_models["llama"], tmp_path / "m")
    header = {"w": {"dtype": "C64", "shape": [1], "data_offsets": [0, 8]}}
    write_raw_safetensors(d / "model.safetensors", header, b"\x00" * 8)
    assert "unsupported dtype C64" in load_error(d)


@pytest.mark.parametrize(
    "dtype",
    [
        torch.float32,
        torch.float16,
        torch.bfloat16,
        torch.int64,
        torch.int32,
        torch.uint8,
        torch.bool,
    ],
)
def test_safetensors_reader_matches_the_library(dtype: torch.dtype, tmp_path: Path) -> None:
    g = torch.Generator().manual_seed(0)
    tensors = {
        "a": (torch.randn(3, 5, generator=g) * 50).to(dtype),
        "scalar": torch.tensor(7).to(dtype),
        "empty": torch.zeros(0, 4, dtype=dtype),
    }
    save_file(tensors, tmp_path / "x.safetensors", metadata={"format": "pt"})
    got = read_safetensors(tmp_path / "x.safetensors")
    want = load_file(tmp_path / "x.safetensors")
    assert got.keys() == want.keys()
    for k in want:
        assert got[k].dtype == want[k].dtype and torch.equal(got[k], want[k])


def test_safetensors_reader_casts_floats_only(tmp_path: Path) -> None:
    tensors = {"w": torch.randn(4, 4), "ids": torch.arange(4)}
    save_file(tensors, tmp_path / "x.safetensors")
    got = read_safetensors(tmp_path / "x.safetensors", torch.bfloat16)
    assert got["w"].dtype == torch.bfloat16 and torch.equal(got["w"], tensors["w"].bfloat16())
    assert got["ids"].dtype == torch.int64 and torch.equal(got["ids"], tensors["ids"])


def test_a_model_larger_than_the_free_memory_is_refused_early(
    tiny_models: dict[str, Path], monkeypatch: pytest.MonkeyPatch
) -> None:
    import engine.loader

    monkeypatch.setattr(engine.loader, "available_bytes", lambda: 1000)
    msg = load_error(tiny_models["llama"])
    assert "needs about" in msg and "GB is available" in msg and "\n" not in msg


def test_the_mapped_reader_gives_views_of_the_file_that_outlive_it(tmp_path: Path) -> None:
    """``mapped=True``: the same tensors as the library's, floats still cast (read, not
    mapped), a change in place private to the process, and the views alive after the file
    is gone (a cache folder replaced under a running model)."""
    g = torch.Generator().manual_seed(0)
    tensors = {
        "blocks": torch.randint(0, 255, (7, 18), dtype=torch.uint8, generator=g),
        "norm": torch.randn(5, generator=g).bfloat16(),
        "wide": torch.randn(3, 3, generator=g),
        "empty": torch.zeros(0, 4, dtype=torch.bfloat16),
    }
    path = tmp_path / "x.safetensors"
    save_file(tensors, path)
    got = read_safetensors(path, torch.bfloat16, mapped=True)
    assert got.keys() == tensors.keys()
    for k, want in tensors.items():
        cast = want.bfloat16() if want.is_floating_point() else want
        assert got[k].dtype == cast.dtype and torch.equal(got[k], cast)
    got["norm"].add_(1)
    assert torch.equal(load_file(path)["norm"], tensors["norm"])  # the file is untouched
    path.unlink()
    assert torch.equal(got["blocks"], tensors["blocks"])
    assert torch.equal(got["norm"], tensors["norm"] + 1)


def test_where_the_file_cannot_be_mapped_it_is_read(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A file system without maps (some network or FUSE mounts) loads by plain reads."""
    import mmap

    def refuse(*args: object, **kwargs: object) -> None:
        raise OSError(19, "No such device")

    monkeypatch.setattr(mmap, "mmap", refuse)
    tensors = {"w": torch.arange(6, dtype=torch.uint8)}
    save_file(tensors, tmp_path / "x.safetensors")
    got = read_safetensors(tmp_path / "x.safetensors", mapped=True)
    assert torch.equal(got["w"], tensors["w"])
