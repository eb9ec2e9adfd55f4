"""Chat templates (sandboxed), the ChatML fallback, context overflow and listing models."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest

import engine
from engine.tokenizer import TemplateRenderError

USER = [{"role": "user", "content": "Hi"}]


def test_chatml_fallback_when_the_model_has_no_template(tiny_models: dict[str, Path]) -> None:
    model = engine.load(tiny_models["llama"])
    assert (
        model.tokenizer.render_chat(USER)
        == "<|im_start|>user\nHi<|im_end|>\n<|im_start|>assistant\n"
    )


def test_template_from_tokenizer_config_with_hf_variables(
    tiny_models: dict[str, Path], tmp_path: Path
) -> None:
    d = shutil.copytree(tiny_models["llama"], tmp_path / "m")
    template = (
        "{{ bos_token }}{% for m in messages %}"
        "{% if m['role'] == 'tool' %}{{ raise_exception('no tools') }}{% endif %}"
        "[{{ m['role'] }}]{{ m['content'] | trim }}{{ eos_token }}{% endfor %}"
        "{% if add_generation_prompt %}[assistant]{% endif %}"
    )
    cfg = json.loads((d / "tokenizer_config.json").read_text())
    (d / "tokenizer_config.json").write_text(json.dumps(cfg | {"chat_template": template}))
    tok = engine.load(d).tokenizer
    assert tok.render_chat(USER) == "<|endoftext|>[user]Hi<|im_end|>[assistant]"
    with pytest.raises(TemplateRenderError, match="no tools"):
        tok.render_chat([{"role": "tool", "content": "x"}])


def test_chat_template_jinja_file_wins(tiny_models: dict[str, Path], tmp_path: Path) -> None:
    d = shutil.copytree(tiny_models["llama"], tmp_path / "m")
    (d / "chat_template.jinja").write_text("{% for m in messages %}<{{ m.content }}>{% endfor %}")
    assert engine.load(d).tokenizer.render_chat(USER) == "<Hi>"


def test_templates_may_break_out_of_loops_and_format_json_like_transformers(
    tiny_models: dict[str, Path], tmp_path: Path
) -> None:
    d = shutil.copytree(tiny_models["llama"], tmp_path / "m")
    (d / "chat_template.jinja").write_text(
        "{% for m in messages %}{% if loop.index > 1 %}{% break %}{% endif %}"
        "{{ m.content }}{% endfor %}|{{ {'b': 1, 'a': [1, 2]} | tojson(separators=(',', ':'), "
        "sort_keys=true) }}"
    )
    many = [{"role": "user", "content": "one"}, {"role": "assistant", "content": "two"}]
    assert engine.load(d).tokenizer.render_chat(many) == 'one|{"a":[1,2],"b":1}'


def test_template_cannot_escape_the_sandbox(tiny_models: dict[str, Path], tmp_path: Path) -> None:
    d = shutil.copytree(tiny_models["llama"], tmp_path / "m")
    evil = "{{ ''.__class__.__mro__[1].__subclasses__() }}"
    (d / "chat_template.jinja").write_text(evil)
    with pytest.raises(TemplateRenderError):
        engine.load(d).tokenizer.render_chat(USER)


def test_chat_yields_text_and_stats(tiny_models: dict[str, Path]) -> None:
    model = engine.load(tiny_models["qwen2"])
    params = engine.SamplingParams(temperature=0, max_new_tokens=8)
    text = "".join(model.chat(USER, params))
    stats = model.last_stats
    assert isinstance(text, str)
    assert stats.prompt_tokens == len(model.tokenizer.encode_chat(USER))
    assert stats.stop_reason in ("eos", "length")
    assert set(stats.as_dict()) >= {
        "prompt_tokens",
        "reused_tokens",
        "new_tokens",
        "time_to_first_token",
        "prefill_tokens_per_second",
        "decode_tokens_per_second",
        "stop_reason",
        "dropped_messages",
    }


def test_oldest_turns_are_dropped_but_the_system_message_is_kept(
    tiny_models: dict[str, Path],
) -> None:
    model = engine.load(tiny_models["llama"])  # context 128
    msgs = [{"role": "system", "content": "Be brief."}]
    for i in range(6):
        msgs += [
            {"role": "user", "content": f"question {i} about the cache"},
            {"role": "assistant", "content": f"answer {i} about keys and values"},
        ]
    msgs.append({"role": "user", "content": "last question"})
    params = engine.SamplingParams(temperature=0, max_new_tokens=16)
    list(model.chat(msgs, params))
    stats = model.last_stats
    assert stats.dropped_messages > 0 and stats.dropped_messages % 2 == 0
    assert stats.messages[0]["role"] == "system" and stats.messages[1]["role"] == "user"
    assert stats.messages[-1]["content"] == "last question"
    assert stats.prompt_tokens + 16 <= model.context_length


def test_one_message_longer_than_the_context_is_a_clear_error(
    tiny_models: dict[str, Path],
) -> None:
    model = engine.load(tiny_models["llama"])
    huge = [{"role": "user", "content": "cache " * 400}]
    with pytest.raises(engine.ContextOverflowError, match="context holds only 128; shorten it"):
        model.chat(huge)
    with pytest.raises(engine.ContextOverflowError):
        list(model.generate(list(range(5, 200))))


def test_generation_stops_when_the_context_is_full(tiny_models: dict[str, Path]) -> None:
    model = engine.load(tiny_models["gpt2"])  # context 128
    ids = model.tokenizer.encode("cache " * 20)
    out = list(model.generate(ids, engine.SamplingParams(max_new_tokens=500), ignore_eos=True))
    assert len(ids) + len(out) == model.context_length + 1
    assert model.last_stats.stop_reason == "context"


def test_list_models_describes_installed_models(tiny_models: dict[str, Path]) -> None:
    assert engine.list_models() == []
    shutil.copytree(tiny_models["qwen2"], engine.models_dir() / "q")
    (engine.models_dir() / "broken").mkdir()
    (engine.models_dir() / "broken" / "config.json").write_text("{")
    [info] = engine.list_models()
    model = engine.load("q")
    assert info.name == "q" and info.architecture == "Qwen2ForCausalLM"
    assert info.parameters == model.num_parameters()
    assert info.context_length == 128 and info.size_bytes > 0


def test_a_long_chat_keeps_its_cut_for_several_turns(tiny_models: dict[str, Path]) -> None:
    """Dropping old turns leaves slack, so the prompt's start (and its cached keys and
    values) stays the same over the next turns instead of moving every turn."""
    model = engine.load(tiny_models["llama"])  # context 128
    msgs: list[dict[str, str]] = [{"role": "system", "content": "Be brief."}]
    dropped = []
    for i in range(14):
        msgs += [{"role": "user", "content": f"q{i} cache"}]
        ids, kept, n = model.fit_messages(msgs, reserve=16)
        assert len(ids) + 16 <= model.context_length and kept[-1] == msgs[-1]
        dropped.append(n)
        msgs += [{"role": "assistant", "content": f"a{i} keys"}]
    cutting = [n for n in dropped if n]
    assert cutting, "the chat outgrew the context"
    changes = sum(1 for a, b in zip(cutting, cutting[1:], strict=False) if a != b)
    assert changes < len(cutting) / 2  # the cut moves in steps, not on every turn


ALTERNATING = (
    "{% for m in messages %}"
    "{% if (m['role'] == 'user') != (loop.index0 % 2 == 0) %}"
    "{{ raise_exception('Conversation roles must alternate user/assistant/user/assistant') }}"
    "{% endif %}[{{ m['role'] }}]{{ m['content'] }}{% endfor %}[assistant]"
)


def test_a_turn_without_a_reply_does_not_break_role_alternation(
    tiny_models: dict[str, Path], tmp_path: Path
) -> None:
    """Esc before any text (or a failed load, or a prompt too long) leaves a prompt with no
    reply; the next turn must still render with a template that enforces alternation."""
    import threading

    from chatapp.core.session import ChatSession
    from chatapp.core.settings import Settings
    from chatapp.core.store import Store

    d = shutil.copytree(tiny_models["llama"], tmp_path / "m")
    (d / "chat_template.jinja").write_text(ALTERNATING)
    session = ChatSession(Store(tmp_path / "db.sqlite"), Settings(), loader=engine.load)
    session.load_model(str(d), session.begin_load(str(d)))
    session.add_user_message("first")
    stopped = threading.Event()
    stopped.set()  # Esc at once: an empty, stopped reply
    first = session.begin_reply()
    result = session.run_reply(first, stopped, lambda _t: None)
    assert result.stopped and session.apply_reply(first, result)
    session.add_user_message("second")
    conversation = session.conversation_id
    result = session.run_reply(session.begin_reply(), threading.Event(), lambda _t: None)
    assert result.error is None, result.error  # the template did not refuse the turn
    assert conversation is not None
    session.open_conversation(conversation)  # reopened: the same view of it
    roles = [m["role"] for m in session.engine_messages()]
    assert roles[0] == "user"
    assert all(a != b for a, b in zip(roles, roles[1:], strict=False))
