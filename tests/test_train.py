"""The trainer: data reading and masks, tokenizer, schedule, determinism, resume, atomic
checkpoints, transformers compatibility, the CLI, and 2-process DDP against one process."""

from __future__ import annotations

import json
import os
import random
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file

import engine
from chatapp.cli import main
from engine.tokenizer import Tokenizer
from engine.train import DataError, TrainConfig, TrainSpec, prepare, train
from engine.train import checkpoint as ckpt
from engine.train.data import (
    encode_conversation,
    pack_conversations,
    read_conversations,
    read_texts,
)
from engine.train.tokenizer_train import IM_END, SPECIAL_TOKENS, train_tokenizer
from engine.train.trainer import lr_at

FACTS = {
    "stop": ("Press Esc to stop a reply.", ["how do i stop a reply", "stop the answer?"]),
    "quit": ("Press Ctrl+Q to quit.", ["how to quit", "exit the app?"]),
    "new": ("Press Ctrl+N for a new chat.", ["new chat?", "start a new conversation"]),
    "history": ("Press Ctrl+R to search.", ["search history", "find an old prompt"]),
}


def write_chats(path: Path, n: int = 240, seed: int = 0) -> Path:
    rng = random.Random(seed)
    with path.open("w", encoding="utf-8") as f:
        for _ in range(n):
            answer, questions = FACTS[rng.choice(sorted(FACTS))]
            msgs = [
                {"role": "user", "content": rng.choice(questions)},
                {"role": "assistant", "content": answer},
            ]
            f.write(json.dumps({"messages": msgs}) + "\n")
    return path


@pytest.fixture
def chats(tmp_path: Path) -> Path:
    return write_chats(tmp_path / "chats.jsonl")


def nano_spec(out: Path, chat: Path, steps: int = 12, **cfg: object) -> TrainSpec:
    config = TrainConfig(
        **({"steps": steps, "batch_size": 8, "micro_batch": 4, "lr": 3e-3, "warmup": 3} | cfg)  # type: ignore[arg-type]
    )
    return TrainSpec(out=out, chat=[chat], preset="nano", vocab_size=320, config=config)


# --- data -------------------------------------------------------------------------------------


def test_malformed_jsonl_names_file_and_line(tmp_path: Path) -> None:
    f = tmp_path / "bad.jsonl"
    good = json.dumps({"messages": [{"role": "assistant", "content": "hi"}]})
    f.write_text(good + "\n\n{not json\n", encoding="utf-8")
    with pytest.raises(DataError, match=r"bad.jsonl:3: not valid JSON"):
        read_conversations([f])
    f.write_text(good + '\n{"messages": [{"role": "bot", "content": "x"}]}\n', encoding="utf-8")
    with pytest.raises(DataError, match=r"bad.jsonl:2: message 0 has role 'bot'"):
        read_conversations([f])
    f.write_text('{"messages": [{"role": "user", "content": "x"}]}\n', encoding="utf-8")
    with pytest.raises(DataError, match=r"bad.jsonl:1: .*no assistant message"):
        read_conversations([f])


def test_empty_inputs_are_errors(tmp_path: Path) -> None:
    (tmp_path / "empty.jsonl").write_text("\n", encoding="utf-8")
    with pytest.raises(DataError, match="no conversations"):
        read_conversations([tmp_path / "empty.jsonl"])
    (tmp_path / "docs").mkdir()
    with pytest.raises(DataError, match="no text files"):
        read_texts([tmp_path / "docs"])
    (tmp_path / "docs" / "a.txt").write_text("  \n", encoding="utf-8")
    with pytest.raises(DataError, match="empty"):
        read_texts([tmp_path / "docs"])


def test_text_too_small_for_context(tmp_path: Path) -> None:
    (tmp_path / "a.txt").write_text("a short text " * 20, encoding="utf-8")
    spec = TrainSpec(out=tmp_path / "m", text=[tmp_path / "a.txt"], preset="nano", vocab_size=300)
    with pytest.raises(DataError, match="too small for a context of 128 tokens"):
        prepare(spec)


def test_loss_mask_covers_assistant_tokens_only() -> None:
    tok = train_tokenizer(["Hello there. 你好！ How are you? Fine 😀"] * 20, 320)
    msgs = [
        {"role": "system", "content": "Be brief."},
        {"role": "user", "content": "Hello there."},
        {"role": "assistant", "content": "你好！"},
        {"role": "user", "content": "How are you?"},
        {"role": "assistant", "content": "Fine 😀"},
    ]
    ids, mask = encode_conversation(tok, msgs)
    assert ids == tok.encode_chat(msgs)[: len(ids)]  # the same ids the engine would see
    learned = tok.decode(
        [i for i, m in zip(ids, mask, strict=True) if m], skip_special_tokens=False
    )
    assert learned == f"你好！{IM_END}\nFine 😀{IM_END}\n"


def test_packing_keeps_conversations_whole(tmp_path: Path, chats: Path) -> None:
    convs = read_conversations([chats])
    tok = train_tokenizer([m["content"] for c in convs for m in c], 320)
    rows = pack_conversations(tok, convs, 256, pad_id=0)
    assert rows.ids.shape[1] == 257
    assert len(rows) < len(convs) / 2  # several per row
    starts = (rows.ids == tok.hf.token_to_id("<|im_start|>")).sum()
    assert int(starts) == 2 * len(convs)  # nothing dropped or split


def test_loss_on_prompt_learns_every_token(chats: Path) -> None:
    convs = read_conversations([chats])
    tok = train_tokenizer([m["content"] for c in convs for m in c], 320)
    only_replies = pack_conversations(tok, convs, 256, pad_id=0)
    everything = pack_conversations(tok, convs, 256, pad_id=0, loss_on_prompt=True)
    assert torch.equal(only_replies.ids, everything.ids)
    assert everything.target_tokens == int((everything.ids[:, 1:] != 0).sum())
    assert everything.target_tokens > 2 * only_replies.target_tokens


def test_tokenizer_specials_and_round_trip() -> None:
    text = "Esc stops a reply. 按 Esc 停止回复。 emoji 🤖 tabs\tand  spaces"
    tok = train_tokenizer([text] * 50, 400)
    assert [tok.hf.token_to_id(t) for t in SPECIAL_TOKENS] == [0, 1, 2]
    assert tok.decode(tok.encode(text)) == text
    assert tok.hf.token_to_id(IM_END) in tok.eos_ids
    with pytest.raises(ValueError, match="vocab_size must be at least"):
        train_tokenizer([text], 100)


def test_isolate_cjk_keeps_each_han_character_one_token(tmp_path: Path) -> None:
    text = "想把问题发给模型的话应该怎么做？ press Enter to send 😀"
    merged = train_tokenizer([text] * 50, 400)
    isolated = train_tokenizer([text] * 50, 400, isolate_cjk=True)
    pieces = [isolated.decode([i]) for i in isolated.encode("发给模型的话")]
    assert pieces == list("发给模型的话")  # one token per character, no cross-word merges
    assert len(merged.encode("发给模型的话")) < len(pieces)  # GPT-2's rule merges the run
    english = [[tok.decode([i]) for i in tok.encode("Enter to send")] for tok in (merged, isolated)]
    assert english[0] == english[1]  # English is split as before
    assert isolated.decode(isolated.encode(text)) == text
    isolated.save(tmp_path)  # the pre-tokenizer travels in tokenizer.json
    assert Tokenizer.from_dir(tmp_path).encode(text) == isolated.encode(text)


def test_lr_schedule_warmup_then_cosine() -> None:
    cfg = TrainConfig(steps=100, warmup=10, lr=1e-3, min_lr_ratio=0.1)
    assert lr_at(0, cfg) == pytest.approx(1e-4)
    assert lr_at(9, cfg) == pytest.approx(1e-3)
    assert lr_at(55, cfg) == pytest.approx(0.55e-3)
    assert lr_at(100, cfg) == pytest.approx(1e-4)
    lrs = [lr_at(s, cfg) for s in range(10, 100)]
    assert lrs == sorted(lrs, reverse=True)


def test_invalid_config_values() -> None:
    with pytest.raises(ValueError, match="steps must be at least 1"):
        TrainConfig(steps=0)
    with pytest.raises(ValueError, match="precision"):
        TrainConfig(precision="fp8")


# --- training ---------------------------------------------------------------------------------


def test_training_learns_and_saves_a_loadable_model(tmp_path: Path, chats: Path) -> None:
    events: list[dict[str, object]] = []
    result = train(nano_spec(tmp_path / "m", chats, steps=40, eval_every=20), events.append)
    evals = [e for e in events if e["kind"] == "eval"]
    assert [e["step"] for e in evals] == [20, 40]
    assert result.best_val_loss < float(evals[0]["val_loss"]) + 1e-9 < 6.0
    first = next(e for e in events if e["kind"] == "step")
    assert result.train_loss < float(first["loss"]) / 2
    model = engine.load(tmp_path / "m", dtype="float32")
    assert model.num_parameters() == events[0]["parameters"]
    reply = "".join(
        model.chat(
            [{"role": "user", "content": "how to quit"}],
            engine.SamplingParams(temperature=0, max_new_tokens=16),
        )
    )
    assert isinstance(reply, str)


def test_same_seed_same_run(tmp_path: Path, chats: Path) -> None:
    train(nano_spec(tmp_path / "a", chats))
    train(nano_spec(tmp_path / "b", chats))
    a = load_file(str(tmp_path / "a" / "model.safetensors"))
    b = load_file(str(tmp_path / "b" / "model.safetensors"))
    assert all(torch.equal(a[k], b[k]) for k in a)
    train(nano_spec(tmp_path / "c", chats, seed=1))
    c = load_file(str(tmp_path / "c" / "model.safetensors"))
    assert not all(torch.equal(a[k], c[k]) for k in a)


def test_resume_continues_exactly(tmp_path: Path, chats: Path) -> None:
    train(nano_spec(tmp_path / "full", chats, steps=12, eval_every=6))

    def kill_at_step_8(event: dict[str, object]) -> None:
        if event.get("step") == 8:
            raise KeyboardInterrupt  # after the checkpoint of step 6

    with pytest.raises(KeyboardInterrupt):
        train(nano_spec(tmp_path / "half", chats, steps=12, eval_every=6), kill_at_step_8)
    assert ckpt.read_state(tmp_path / "half")["step"] == 6
    spec = nano_spec(tmp_path / "half", chats, steps=12, eval_every=6)
    spec.resume = True
    result = train(spec)
    assert result.steps == 12
    full = load_file(str(tmp_path / "full" / "training" / "model.safetensors"))
    half = load_file(str(tmp_path / "half" / "training" / "model.safetensors"))
    for k in full:
        torch.testing.assert_close(half[k], full[k], rtol=1e-5, atol=1e-6)


def test_a_killed_save_leaves_the_previous_checkpoint(
    tmp_path: Path, chats: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    out = tmp_path / "m"
    train(nano_spec(out, chats, steps=6, eval_every=6))
    before = (out / "model.safetensors").read_bytes()

    def killed(*args: object, **kwargs: object) -> None:
        raise KeyboardInterrupt

    monkeypatch.setattr(ckpt.torch, "save", killed)
    spec = nano_spec(out, chats, steps=12, eval_every=6)
    spec.resume = True
    with pytest.raises(KeyboardInterrupt):
        train(spec)
    assert (out / "model.safetensors").read_bytes() == before
    assert ckpt.read_state(out)["step"] == 6
    assert sorted(p.name for p in tmp_path.iterdir()) == ["chats.jsonl", "m"]  # no temp left
    # Killed between the two renames: the old folder is put back on the next load.
    out.rename(tmp_path / ".m.old")
    assert ckpt.read_state(out)["step"] == 6


def test_resume_without_state_is_a_clear_error(tmp_path: Path, chats: Path) -> None:
    spec = nano_spec(tmp_path / "none", chats)
    spec.resume = True
    with pytest.raises(engine.ModelLoadError):
        train(spec)


def test_checkpoint_loads_in_transformers(tmp_path: Path, chats: Path) -> None:
    transformers = pytest.importorskip("transformers")
    train(nano_spec(tmp_path / "m", chats, steps=4))
    ours = engine.load(tmp_path / "m", dtype="float32")
    ref = transformers.AutoModelForCausalLM.from_pretrained(tmp_path / "m").float().eval()
    ids = ours.tokenizer.encode_chat([{"role": "user", "content": "how do i stop a reply"}])
    with torch.no_grad():
        theirs = ref(torch.tensor([ids])).logits[0]
    torch.testing.assert_close(ours.logits(ids), theirs, atol=1e-4, rtol=1e-4)


def test_fine_tune_from_a_base_checkpoint(tmp_path: Path, chats: Path) -> None:
    train(nano_spec(tmp_path / "base", chats, steps=4))
    spec = nano_spec(tmp_path / "tuned", chats, steps=4)
    spec.base = str(tmp_path / "base")
    train(spec)
    base = json.loads((tmp_path / "base" / "tokenizer.json").read_text(encoding="utf-8"))
    tuned = json.loads((tmp_path / "tuned" / "tokenizer.json").read_text(encoding="utf-8"))
    assert base["model"]["vocab"] == tuned["model"]["vocab"]  # the base's tokenizer is reused


# --- the command ------------------------------------------------------------------------------


def cli_args(chats: Path, *extra: str) -> list[str]:
    return [
        "train",
        "--chat",
        str(chats),
        "--preset",
        "nano",
        "--vocab-size",
        "320",
        "--batch-size",
        "8",
        "--micro-batch",
        "4",
        "--lr",
        "3e-3",
        "--warmup",
        "3",
        *extra,
    ]


def test_cli_trains_into_the_data_dir(chats: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(cli_args(chats, "--name", "mine", "--steps", "6", "--json")) == 0
    result = json.loads(capsys.readouterr().out)
    assert result["steps"] == 6 and result["parameters"] > 0
    assert [m.name for m in engine.list_models()] == ["mine"]
    assert main(cli_args(chats, "--name", "mine", "--steps", "6")) == 1
    assert "exists: pass --resume" in capsys.readouterr().err
    assert main(cli_args(chats, "--name", "../x", "--steps", "6")) == 1
    assert "bad model name" in capsys.readouterr().err


def test_cli_recipe_with_generator_eval_and_export(
    tmp_path: Path, chats: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    gen = tmp_path / "fake_corpus.py"
    gen.write_text(
        "import shutil, json\n"
        "from pathlib import Path\n"
        "def write_corpus(out, seed=0):\n"
        "    out = Path(out); out.mkdir(parents=True, exist_ok=True)\n"
        f"    shutil.copy({str(chats)!r}, out / 'train.jsonl')\n"
        "    items = [{'lang': 'en', 'question': 'how can I quit?', 'keys': ['Ctrl+Q']},\n"
        "             {'lang': 'en', 'question': 'hi', 'keys': ['Hello'], 'group': 'greeting'},\n"
        "             {'lang': 'zh', 'question': '你好', 'keys': ['你好'], 'group': 'greeting'}]\n"
        "    (out / 'eval.jsonl').write_text(''.join(json.dumps(i) + '\\n' for i in items))\n"
        "    return {'train': out / 'train.jsonl', 'eval': out / 'eval.jsonl'}\n",
        encoding="utf-8",
    )
    monkeypatch.syspath_prepend(str(tmp_path))
    recipe = tmp_path / "r.toml"
    recipe.write_text(
        'name = "rec"\nexport = "exported"\ndescription = "A test model."\n'
        '[data]\ngenerator = "fake_corpus"\nseed = 3\n'
        '[model]\npreset = "nano"\nvocab_size = 320\n'
        "[train]\nsteps = 5\nbatch_size = 8\nlr = 3e-3\nwarmup = 2\n",
        encoding="utf-8",
    )
    assert main(["train", "--recipe", str(recipe), "--steps", "4", "--json"]) == 0
    result = json.loads(capsys.readouterr().out)
    assert result["steps"] == 4  # the flag overrides the recipe
    scores, groups = result["eval"]["scores"], result["eval"]["groups"]
    assert scores["en"]["total"] == 2 and scores["zh"]["total"] == 1  # every item, by language
    assert list(groups) == ["greeting"]  # only the items that name a group, by group and language
    assert groups["greeting"]["en"]["total"] == groups["greeting"]["zh"]["total"] == 1
    card = (tmp_path / "exported" / "MODEL_CARD.md").read_text(encoding="utf-8")
    assert "chatapp train --recipe" in card and "A test model." in card
    assert "| en |" in card and "| zh |" in card
    g = groups["greeting"]["zh"]
    assert f"| greeting | zh | {g['passed']}/1 | {g['score']:.1%} |" in card
    assert not (tmp_path / "exported" / "training").exists()
    assert engine.load(tmp_path / "exported").config.num_layers == 2


def test_cli_bad_recipe_is_one_line(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    bad = tmp_path / "bad.toml"
    bad.write_text("name = \n", encoding="utf-8")
    assert main(["train", "--recipe", str(bad)]) == 1
    err = capsys.readouterr().err
    assert "not valid TOML" in err and len(err.strip().splitlines()) == 1


# --- data parallel ----------------------------------------------------------------------------


@pytest.mark.slow
def test_two_process_ddp_matches_one_process(tmp_path: Path, chats: Path) -> None:
    """torchrun with 2 CPU processes (gloo), global batch 8 = 2 x 4, against one process with
    the same global batch: the same weights up to float rounding."""
    args = cli_args(chats, "--steps", "8", "--eval-every", "4", "--json")
    env = os.environ | {"OMP_NUM_THREADS": "1"}
    one = subprocess.run(
        [sys.executable, "-m", "chatapp", *args, "--out", str(tmp_path / "one")],
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert one.returncode == 0, one.stderr
    two = subprocess.run(
        [
            sys.executable,
            "-m",
            "torch.distributed.run",
            "--standalone",
            "--nproc_per_node",
            "2",
            "-m",
            "chatapp",
            *args,
            "--out",
            str(tmp_path / "two"),
        ],
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert two.returncode == 0, two.stderr
    r1, r2 = json.loads(one.stdout), json.loads(two.stdout)  # rank 0 prints, rank 1 is quiet
    assert r1["best_val_loss"] == pytest.approx(r2["best_val_loss"], abs=1e-4)
    w1 = load_file(str(tmp_path / "one" / "training" / "model.safetensors"))
    w2 = load_file(str(tmp_path / "two" / "training" / "model.safetensors"))
    for k in w1:
        torch.testing.assert_close(w2[k], w1[k], rtol=1e-4, atol=1e-5)


def test_train_help_describes_every_option_and_lists_the_presets(
    capsys: pytest.CaptureFixture[str],
) -> None:
    from chatapp.cli.train import CHOICES, HELP, OPTIONS
    from engine.train.presets import PRESETS

    assert set(HELP) == set(OPTIONS) and CHOICES["preset"] == PRESETS
    with pytest.raises(SystemExit):
        main(["train", "--help"])
    out = " ".join(capsys.readouterr().out.split())
    assert "--preset {nano,tiny,small,base}" in out
    for text in HELP.values():
        assert " ".join(text.split()) in out


def test_the_progress_bar_shows_the_best_validation_loss_the_run_ends_on() -> None:
    from chatapp.cli.train import Display

    display = Display(enabled=True)
    display.event({"kind": "eval", "step": 200, "val_loss": 2.5, "best_val_loss": 2.25})
    assert display.val == "2.5000 (best 2.2500)"
