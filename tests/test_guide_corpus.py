"""The guide's corpus: deterministic, eval held out by construction, and true to the app."""

from __future__ import annotations

import ast
import importlib.util
import inspect
import json
import os
import re
import subprocess
import sys
from collections import Counter
from pathlib import Path
from typing import Any

import pytest

from chatapp.guide import facts_en, facts_zh
from chatapp.guide.corpus import build_corpus, normalize, write_corpus
from chatapp.guide.keys import APP_ACTIONS, CHAT_LIST_KEYS, KEY_NAMES, PROMPT_KEYS
from chatapp.guide.topics import KINDS, Topic

ROOT = Path(__file__).resolve().parent.parent
TABLES: dict[str, list[Topic]] = {"en": facts_en.TOPICS, "zh": facts_zh.TOPICS}
ALL_ANSWERS = [(lang, t, a) for lang, ts in TABLES.items() for t in ts for a in t.answers]


@pytest.fixture(scope="module")
def corpus() -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    return build_corpus(seed=0)


# Determinism and shape ------------------------------------------------------------------------


def test_same_seed_same_bytes_different_seed_differs(tmp_path: Path) -> None:
    a = write_corpus(tmp_path / "a", seed=0)
    b = write_corpus(tmp_path / "b", seed=0)
    c = write_corpus(tmp_path / "c", seed=1)
    assert set(a) == {"train", "eval"}
    assert a["train"] == tmp_path / "a" / "train.jsonl"
    for k in ("train", "eval"):
        assert a[k].read_bytes() == b[k].read_bytes()
    assert a["train"].read_bytes() != c["train"].read_bytes()
    assert a["eval"].read_bytes() != c["eval"].read_bytes()
    # Same content, other order and sampling: both seeds cover every topic.
    ev0 = {
        (e["lang"], e["topic"]) for e in map(json.loads, a["eval"].read_text("utf-8").splitlines())
    }
    ev1 = {
        (e["lang"], e["topic"]) for e in map(json.loads, c["eval"].read_text("utf-8").splitlines())
    }
    assert ev0 == ev1


def test_cli_is_independent_of_hash_seed_and_light(tmp_path: Path) -> None:
    """``python -m chatapp.guide`` under a fixed hash seed writes the same bytes as this process
    (a random hash seed), and importing the generator pulls in neither torch, the engine, Textual
    nor Rich. The files are UTF-8 JSON lines without escapes."""
    env = {**os.environ, "PYTHONHASHSEED": "1"}
    out = tmp_path / "cli"
    done = subprocess.run(
        [sys.executable, "-c",
         "import sys, runpy\n"
         "sys.argv = ['chatapp.guide', sys.argv[1], '--seed', '3']\n"
         "try:\n    runpy.run_module('chatapp.guide', run_name='__main__')\n"
         "except SystemExit as e:\n    assert not e.code, e.code\n"
         "heavy = [m for m in ('torch', 'engine', 'textual', 'rich') if m in sys.modules]\n"
         "assert not heavy, heavy\n",
         str(out)],
        capture_output=True, text=True, env=env, cwd=ROOT, check=False,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    assert "train:" in done.stdout and "eval:" in done.stdout
    here = write_corpus(tmp_path / "here", seed=3)
    for k in ("train", "eval"):
        assert (out / f"{k}.jsonl").read_bytes() == here[k].read_bytes()
    text = here["train"].read_text(encoding="utf-8")
    assert "按 Esc" in text and "\\u" not in text
    assert all(json.loads(line)["messages"] for line in text.splitlines())


def test_conversation_shape_and_mix(corpus: Any) -> None:
    train, evals = corpus
    assert 6000 <= len(train) <= 9000
    turns: Counter[int] = Counter()
    langs: Counter[str] = Counter()
    system = 0
    for conv in train:
        assert set(conv) == {"messages"}
        msgs = conv["messages"]
        if msgs[0]["role"] == "system":
            system += 1
            msgs = msgs[1:]
        assert msgs and len(msgs) % 2 == 0
        for i, m in enumerate(msgs):
            assert set(m) == {"role", "content"}
            assert m["role"] == ("user" if i % 2 == 0 else "assistant")
            assert isinstance(m["content"], str) and m["content"].strip()
        turns[len(msgs) // 2] += 1
        zh = any("\u4e00" <= ch <= "\u9fff" for ch in msgs[-1]["content"])
        langs["zh" if zh else "en"] += 1
        limit = 300 if zh else 1100
        assert sum(len(m["content"]) for m in conv["messages"]) <= limit + 60  # + system
    assert 0.4 < langs["zh"] / len(train) < 0.6
    multi = (turns[2] + turns[3]) / len(train)
    assert 0.15 <= multi <= 0.25 and set(turns) == {1, 2, 3}
    assert 0.03 <= system / len(train) <= 0.08
    for e in evals:
        assert set(e) == {"lang", "topic", "question", "keys"}
        assert e["lang"] in ("en", "zh") and e["keys"] and e["question"].strip()


# Fact tables ----------------------------------------------------------------------------------


def test_tables_cover_the_same_topics_with_short_answers() -> None:
    ids = {lang: [t.id for t in ts] for lang, ts in TABLES.items()}
    assert ids["en"] == ids["zh"]
    assert len(set(ids["en"])) == len(ids["en"])
    assert 50 <= len(ids["en"]) <= 85
    answers = [a for _lang, _t, a in ALL_ANSWERS]
    assert len(answers) == len(set(answers))  # an answer names its topic
    for lang, t, answer in ALL_ANSWERS:
        assert t.kind in KINDS
        assert 2 <= len(t.answers) <= 3, t.id
        assert t.subjects or t.questions, t.id
        if lang == "en":
            assert len(answer.split()) <= 45, answer
        else:
            assert len(answer) <= 80, answer


def test_every_key_is_in_every_answer_early() -> None:
    """Keys are compared casefolded, as the trainer's key-fact eval does ("press Esc" is in
    "Press Esc to stop a reply")."""
    for lang, t, answer in ALL_ANSWERS:
        text = answer.casefold()
        for key in t.keys:
            assert key.casefold() in text, (lang, t.id, key, answer)
        first = t.keys[0].casefold()
        assert text.index(first) <= max(40, len(answer) // 2), (lang, t.id, first, answer)


def test_eval_is_held_out_and_covers_every_topic(corpus: Any) -> None:
    train, evals = corpus
    asked = {normalize(m["content"]) for c in train for m in c["messages"] if m["role"] == "user"}
    for e in evals:
        assert normalize(e["question"]) not in asked, e
    per = Counter((e["lang"], e["topic"]) for e in evals)
    for lang, ts in TABLES.items():
        by_id = {t.id: t for t in ts}
        for t in ts:
            assert 3 <= per[(lang, t.id)] <= 5, (lang, t.id)
        for e in evals:
            if e["lang"] == lang:
                t = by_id[e["topic"]]
                assert e["keys"] == list(t.keys)
                assert all(k.casefold() in a.casefold() for k in e["keys"] for a in t.answers)
    questions = [normalize(e["question"]) for e in evals]
    assert len(questions) == len(set(questions))


def test_training_covers_every_topic(corpus: Any) -> None:
    train, _ = corpus
    replies = Counter(
        m["content"] for c in train for m in c["messages"] if m["role"] == "assistant"
    )
    for _lang, t, answer in ALL_ANSWERS:
        assert replies[answer] >= 5, (t.id, answer)


# Facts against the code -----------------------------------------------------------------------

SLASH = re.compile(r"(?<![\w.~/-])/([a-z_]+)\b")
SUBCOMMAND = re.compile(r"\bchatapp ([a-z][a-z-]*)\b")
OPTION = re.compile(r"(?<![\w-])--[a-z][a-z-]*")
KEY = re.compile(
    r"(?:Ctrl|Shift|Alt)\+\w+|\bF\d+\b|\bEsc\b|\bTab\b|\bDel\b|\bEnter\b|Up arrow|上箭头"
)
# Words that follow "chatapp" in prose, never as a subcommand.
PROSE = {
    "is",
    "runs",
    "keeps",
    "then",
    "supports",
    "lists",
    "uses",
    "trains",
    "samples",
    "reuses",
    "guide",
}


def test_slash_commands_exist() -> None:
    from chatapp.core.settings import SAMPLING_KEYS
    from chatapp.tui.commands import COMMANDS

    names = {c.name for c in COMMANDS}
    seen = set()
    for _lang, t, answer in ALL_ANSWERS:
        for name in SLASH.findall(answer):
            assert name in names, (t.id, name, answer)
            seen.add(name)
        for key in re.findall(r"/set ([a-z_]+) (?:[0-9]|none)", answer):
            assert key in SAMPLING_KEYS, (t.id, key)
    assert seen == names  # the guide knows every command


def _parsers() -> tuple[Any, dict[str, Any]]:
    from chatapp.cli import build_parser

    parser = build_parser()
    subs = next(a for a in parser._actions if a.__class__.__name__ == "_SubParsersAction")
    return parser, dict(subs.choices)


def _pending(name: str) -> bool:
    """A subcommand whose module is listed in the CLI but not written yet (e.g. ``train``)."""
    from chatapp.cli import SUBCOMMAND_MODULES

    return name in SUBCOMMAND_MODULES and importlib.util.find_spec(f"chatapp.cli.{name}") is None


def test_subcommands_and_options_exist() -> None:
    from chatapp.models.pull import SOURCES

    parser, subs = _parsers()

    def options(p: Any) -> set[str]:
        return {s for a in p._actions for s in a.option_strings}

    for _lang, t, answer in ALL_ANSWERS:
        mentions = [(m.start(), m.group(1)) for m in SUBCOMMAND.finditer(answer)]
        mentions = [(pos, name) for pos, name in mentions if name not in PROSE]
        for _pos, name in mentions:
            assert name in subs or _pending(name), (t.id, name, answer)
        for m in OPTION.finditer(answer):
            opt = m.group(0)
            if answer[: m.start()].endswith("chatapp "):
                owner = None
            else:
                before = [n for p, n in mentions if p < m.start()]
                after = [n for p, n in mentions if p > m.start()]
                owner = (before[-1:] or after[:1] or [None])[0]
            if owner is not None and owner not in subs:
                assert _pending(owner)
                continue
            allowed = options(subs[owner] if owner else parser)
            assert opt in allowed, (t.id, owner, opt, answer)
        for name in re.findall(r"chatapp pull ([a-z]+[0-9][a-z0-9]*)", answer):
            assert name in SOURCES
        for name in re.findall(r"/model ([a-z0-9.]+-[a-z0-9.-]+)", answer):
            assert name.rstrip(".") in {s.model_name for s in SOURCES.values()}


def _bindings(cls: type) -> dict[str, str]:
    out: dict[str, str] = {}
    for b in getattr(cls, "BINDINGS", []):
        key, action = (b.key, b.action) if hasattr(b, "key") else (b[0], b[1])
        for k in key.split(","):
            out.setdefault(k.strip(), action)
    return out


def test_keys_match_the_app_bindings() -> None:
    from textual.app import App

    from chatapp.tui.app import ChatApp
    from chatapp.tui.widgets.prompt import NEWLINE_KEYS, PromptInput
    from chatapp.tui.widgets.sidebar import ConversationList

    for _lang, t, answer in ALL_ANSWERS:
        for key in KEY.findall(answer):
            assert key in KEY_NAMES, (t.id, key, answer)
    app_keys = {**_bindings(App), **_bindings(ChatApp)}  # the app's own win
    app_keys[ChatApp.COMMAND_PALETTE_BINDING] = "command_palette"
    for display, action in APP_ACTIONS.items():
        assert app_keys.get(KEY_NAMES[display]) == action, display
    prompt = _bindings(PromptInput)
    on_key = inspect.getsource(PromptInput._on_key)
    for display in PROMPT_KEYS:
        name = KEY_NAMES[display]
        assert (
            name in NEWLINE_KEYS
            or f'key == "{name}"' in on_key
            or prompt.get(name) == "history_previous"
        ), display
    for display in CHAT_LIST_KEYS:
        assert _bindings(ConversationList).get(KEY_NAMES[display]) == "delete"
    assert ChatApp.COMMAND_PALETTE_BINDING == "ctrl+p"


def test_stated_defaults_match_the_engine() -> None:
    """The answers' defaults ("the default is 0.8") against ``SamplingParams`` (read from the
    source, so that torch is not imported)."""
    tree = ast.parse((ROOT / "engine" / "sampling_params.py").read_text(encoding="utf-8"))
    cls = next(n for n in tree.body if isinstance(n, ast.ClassDef) and n.name == "SamplingParams")
    defaults = {
        n.target.id: ast.literal_eval(n.value)
        for n in cls.body
        if isinstance(n, ast.AnnAssign) and isinstance(n.target, ast.Name) and n.value is not None
        and not isinstance(n.value, ast.Call)
    }  # fmt: skip
    claims = {"temperature": "temperature", "top_k": "top_k", "top_p": "top_p",
              "min_p": "min_p", "max_tokens": "max_new_tokens"}  # fmt: skip
    for lang, ts in TABLES.items():
        for t in ts:
            if t.id not in claims:
                continue
            value = defaults[claims[t.id]]
            text = " ".join(t.answers)
            shown = {0.0: "0", 1.0: "1.0"}.get(value, str(value))
            word = "default" if lang == "en" else "默认"
            v = re.escape(shown)
            near = rf"{word}\D{{0,8}}{v}(?!\d)|(?<![\d.]){v}\D{{0,25}}{word}"
            assert re.search(near, text), (lang, t.id, value)
    assert defaults["repetition_window"] == 64  # "the last 64 tokens"


def test_files_and_settings_facts() -> None:
    from chatapp.core.settings import SAMPLING_KEYS, Settings
    from chatapp.core.store import db_path

    assert db_path().name == "chatapp.db"
    paths_src = (ROOT / "engine" / "paths.py").read_text(encoding="utf-8")
    assert "CHATAPP_HOME" in paths_src and '/ "models"' in paths_src
    settings_src = (ROOT / "chatapp" / "core" / "settings.py").read_text(encoding="utf-8")
    assert "config.toml" in settings_src and '"history"' in settings_src
    assert Settings().history_enabled is True
    for key in SAMPLING_KEYS:  # every /set key has a topic of its own
        assert any(t.id == key for t in facts_en.TOPICS), key


def test_repository_paths_exist() -> None:
    """Paths the answers name (the guide's recipe), once the assets are in the checkout."""
    named = {p for _lang, _t, a in ALL_ANSWERS for p in re.findall(r"assets/[\w/.-]+\w", a)}
    assert named == {"assets/recipes/guide.toml"}
    if not (ROOT / "assets" / "recipes").is_dir():
        pytest.skip("assets/ not in this checkout")
    for path in named:
        assert (ROOT / path).is_file(), path


def test_training_shows_every_eval_content_word_with_its_topic(corpus: Any) -> None:
    """The model is trained from scratch: an eval question may combine words anew, but each of
    its content units must occur in some training question of the same topic. Units (see
    ``chatapp.guide.coverage``): English, the lowercase ``[a-z0-9]+`` tokens of the question's
    subject phrasing (the whole question for an explicit one) minus function words; Chinese,
    the 2-character substrings of its Han runs without a particle/pronoun/question character,
    plus Latin tokens. Checked on this seed's eval and on every held-out candidate."""
    from chatapp.guide.corpus import LANGS, eval_pairs
    from chatapp.guide.coverage import content_units, coverage_gaps

    train, evals = corpus
    assert coverage_gaps(train, evals) == []
    asked = {normalize(m["content"]) for c in train for m in c["messages"] if m["role"] == "user"}
    candidates = [
        {"lang": lang, "topic": t.id, "question": q, "keys": list(t.keys)}
        for lang, ts in LANGS.items()
        for t in ts
        for q, _ in eval_pairs(t, lang)
        if normalize(q) not in asked
    ]
    assert len(candidates) > 2 * len(evals)
    assert coverage_gaps(train, candidates) == []
    # The definition itself, and that it catches a gap.
    assert content_units("repeat my last question", "en") == ["repeat", "last", "question"]
    assert content_units("How does top-k change the replies?", "en") == [
        "top", "k", "change", "replies"
    ]  # fmt: skip
    assert content_units("模型是怎样学会的", "zh") == ["模型", "学会"]
    assert content_units("在对话里加载 gguf 文件", "zh") == [
        "gguf", "对话", "话里", "里加", "加载", "文件"
    ]  # fmt: skip
    recall = next(e for e in evals if e["lang"] == "en" and e["topic"] == "history_recall")
    stripped = [
        {"messages": [m for m in c["messages"] if "repeat" not in m["content"].lower()]}
        for c in train
    ]
    stripped = [c for c in stripped if len(c["messages"]) % 2 == 0 and c["messages"]]
    fake = {**recall, "question": "How do I repeat my last question?"}
    assert "repeat" in coverage_gaps(stripped, [fake])[0][3]


def test_training_questions_are_augmented(corpus: Any) -> None:
    """Training questions include filler-dropped and synonym-swapped variants, deterministic by
    seed; eval questions are untouched phrasings."""
    train, _ = corpus
    users = [m["content"] for c in train for m in c["messages"] if m["role"] == "user"]
    text = "\n".join(users)
    assert "How do I delete a chat?" in text or "how do i delete a chat" in text.lower()
    assert any("remove a chat" in q.lower() or "delete a conversation" in q.lower() for q in users)
    assert any(q.lower().startswith("how do i send message") for q in users) or any(
        " send message" in q.lower() for q in users
    )
    assert any("会话" in q for q in users) and any("删掉" in q for q in users)
