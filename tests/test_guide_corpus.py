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

from chatapp.guide import facts_en, facts_zh, scope, scope_en, scope_zh
from chatapp.guide.corpus import build_corpus, normalize, write_corpus
from chatapp.guide.families import family, split
from chatapp.guide.keys import APP_ACTIONS, CHAT_LIST_KEYS, KEY_NAMES, PROMPT_KEYS
from chatapp.guide.topics import KINDS, Topic

ROOT = Path(__file__).resolve().parent.parent
TABLES: dict[str, list[Topic]] = {"en": facts_en.TOPICS, "zh": facts_zh.TOPICS}
ALL_ANSWERS = [(lang, t, a) for lang, ts in TABLES.items() for t in ts for a in t.answers]
SCOPE_ANSWERS = [(lang, t, a) for lang, ts in scope.TOPICS.items() for t in ts for a in t.answers]
# Every reply the guide learns, checked against the code (commands, options, keys).
EVERY_ANSWER = ALL_ANSWERS + SCOPE_ANSWERS


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
    # 44 single-turn conversations per fact topic and language, a quarter more multi-turn ones,
    # and the scope topics (scope.SHARES, ~7% of the conversations) on top.
    assert 6000 <= len(train) <= 10000
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
        assert set(e) == {"lang", "topic", "group", "question", "keys"}
        assert e["lang"] in ("en", "zh") and e["keys"] and e["question"].strip()
        assert e["group"] == (e["topic"] if e["topic"] in scope.SHARES else "facts")


# Fact tables ----------------------------------------------------------------------------------


def test_tables_cover_the_same_topics_with_short_answers() -> None:
    ids = {lang: [t.id for t in ts] for lang, ts in TABLES.items()}
    assert ids["en"] == ids["zh"]
    assert len(set(ids["en"])) == len(ids["en"])
    assert 50 <= len(ids["en"]) <= 85
    answers = [a for _lang, _t, a in EVERY_ANSWER]
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
            if e["lang"] == lang and e["group"] == "facts":
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
    for _lang, t, answer in EVERY_ANSWER:
        assert replies[answer] >= 5, (t.id, answer)


# Scope: off-topic questions, greetings, identity ----------------------------------------------

HAN = re.compile(r"[\u4e00-\u9fff]")
SCOPE_FAMILIES = {
    "en": {
        "offtopic": scope_en.OFFTOPIC_FAMILIES,
        "greeting": scope_en.GREETING_FAMILIES,
        "identity": scope_en.IDENTITY_FAMILIES,
    },
    "zh": {
        "offtopic": scope_zh.OFFTOPIC_FAMILIES,
        "greeting": scope_zh.GREETING_FAMILIES,
        "identity": scope_zh.IDENTITY_FAMILIES,
    },
}


def _turns(train: list[dict[str, Any]]) -> list[tuple[str, str]]:
    """(question, reply) of every turn of every conversation."""
    out = []
    for conv in train:
        msgs = [m for m in conv["messages"] if m["role"] != "system"]
        out += [(q["content"], a["content"]) for q, a in zip(msgs[::2], msgs[1::2], strict=True)]
    return out


def _scope_topic(lang: str, id: str) -> Topic:
    return next(t for t in scope.TOPICS[lang] if t.id == id)


def test_families_hold_out_new_combinations() -> None:
    fam = family(
        ["Write a poem about {x}.", "Tell me a story about {x}.", "Make up a joke about {x}."],
        ["the sea", "autumn"],
    )  # held out: (template i, filler j) with (i + j) % 3 == 0
    train, held = split([fam], "en")
    assert held == ["Write a poem about the sea.", "Make up a joke about autumn."]
    assert train == [
        "Write a poem about autumn.",
        "Tell me a story about the sea.",
        "Tell me a story about autumn.",
        "Make up a joke about the sea.",
    ]
    zh = family(["{x}", "{x}，向导"], ["你好", "嗨"])
    assert split([zh], "zh") == (["嗨", "你好，向导", "嗨，向导"], ["你好"])
    for lang, kinds in SCOPE_FAMILIES.items():
        for fams in kinds.values():
            for fam in fams:  # every template and every filler trains with other partners
                train, held = split([fam], lang)
                assert held and not set(train) & set(held)
                for x in fam.fillers:
                    assert any(x.lower() in q.lower() for q in train), x
                for tpl in fam.templates:
                    before, _, after = tpl.partition("{x}")
                    assert any(
                        q.lower().startswith(before.lower().rstrip()) and q.endswith(after.lstrip())
                        for q in train
                    ), tpl
    with pytest.raises(ValueError):
        family(["{x}"], ["hi", "hello"])


def test_scope_kinds_train_and_eval_in_both_languages(corpus: Any) -> None:
    """Off-topic, greeting and identity questions are in training and in the eval (as their own
    groups, with the number of items ``scope.SHARES`` asks for), a modest share of the corpus."""
    train, evals = corpus
    topic_of = {a: (lang, t.id) for lang, t, a in EVERY_ANSWER}
    replies = Counter(topic_of[a] for _q, a in _turns(train))
    per = Counter((e["lang"], e["group"]) for e in evals)
    for lang in ("en", "zh"):
        assert per[(lang, "facts")] >= 3 * len(TABLES[lang])
        for id, share in scope.SHARES.items():
            assert replies[(lang, id)] >= 44 * share.train, (lang, id)
            assert per[(lang, id)] == share.eval, (lang, id)
            for e in evals:
                if e["group"] == id and e["lang"] == lang:
                    assert e["topic"] == id and e["keys"] == list(_scope_topic(lang, id).keys)
    in_scope = sum(1 for c in train if any(topic_of[a][1] in scope.SHARES for _q, a in _turns([c])))
    assert 0.04 <= in_scope / len(train) <= 0.09


def test_scope_eval_is_held_out_by_construction(corpus: Any) -> None:
    """Every scope eval question is a held-out pair of its families (``families.split``) and
    no training question; eval items differ between seeds, their number per group does not."""
    train, evals = corpus
    asked = {normalize(q) for q, _a in _turns(train)}
    scoped = [e for e in evals if e["group"] in scope.SHARES]
    for e in scoped:
        _train, held = split(SCOPE_FAMILIES[e["lang"]][e["topic"]], e["lang"])
        assert e["question"] in held and normalize(e["question"]) not in asked, e
    _, other = build_corpus(seed=1)
    scoped1 = [e for e in other if e["group"] in scope.SHARES]
    assert Counter((e["lang"], e["group"]) for e in scoped1) == Counter(
        (e["lang"], e["group"]) for e in scoped
    )
    assert {e["question"] for e in scoped1} != {e["question"] for e in scoped}
    assert build_corpus(seed=0)[1] == evals  # deterministic by seed


def test_scope_replies_are_in_the_language_of_the_question(corpus: Any) -> None:
    """A scope reply is in its question's language (so "hi" never gets a Chinese reply), every
    off-topic reply names ``chatapp pull smollm2``, and each kind's eval key is in every answer
    of its language and in none of the other's (an answer in the wrong language fails)."""
    train, evals = corpus
    scope_of = {a: (lang, t.id) for lang, t, a in SCOPE_ANSWERS}
    langs: dict[str, set[str]] = {}
    kinds: Counter[str] = Counter()
    for q, a in _turns(train):
        if a in scope_of:
            lang, id = scope_of[a]
            kinds[id] += 1
            assert bool(HAN.search(q)) == (lang == "zh") == bool(HAN.search(a)), (q, a)
            if id == "offtopic":
                assert "chatapp pull smollm2" in a
            langs.setdefault(normalize(q), set()).add(lang)
    assert set(kinds) == set(scope.SHARES)
    assert all(len(v) == 1 for v in langs.values())
    for id in scope.SHARES:
        for lang, other in (("en", "zh"), ("zh", "en")):
            mine, theirs = _scope_topic(lang, id).answers, _scope_topic(other, id).answers
            for key in _scope_topic(lang, id).keys:
                assert all(key.casefold() in a.casefold() for a in mine), (lang, id, key)
                assert not any(key.casefold() in a.casefold() for a in theirs), (lang, id, key)
    for e in evals:
        if e["group"] in scope.SHARES:
            assert bool(HAN.search(e["question"])) == (e["lang"] == "zh"), e
            if e["group"] == "offtopic":
                assert all("chatapp pull smollm2" in k for k in e["keys"])


def test_scope_questions_train_one_topic_and_the_issues_examples_are_in(corpus: Any) -> None:
    """A question trained with a scope answer is never trained with another topic's, and the
    questions of issue 16 train the right kind: "write a poem about the sea", "what's the
    weather" (off-topic), "who are you?" (identity, not "I'm fine"), "hi" (an English greeting)."""
    train, _ = corpus
    topic_of = {a: (lang, t.id) for lang, t, a in EVERY_ANSWER}
    trained: dict[str, set[tuple[str, str]]] = {}
    for q, a in _turns(train):
        trained.setdefault(normalize(q), set()).add(topic_of[a])
    for q, topics in trained.items():
        if any(id in scope.SHARES for _lang, id in topics):
            assert len(topics) == 1, (q, topics)
    expected = {
        "write a poem about the sea": ("en", "offtopic"),
        "What's the weather?": ("en", "offtopic"),
        "who are you?": ("en", "identity"),
        "Are you ChatGPT?": ("en", "identity"),
        "hi": ("en", "greeting"),
        "hello": ("en", "greeting"),
        "good morning": ("en", "greeting"),
        "写一首关于大海的诗": ("zh", "offtopic"),
        "你是谁？": ("zh", "identity"),
        "你好": ("zh", "greeting"),
        "嗨": ("zh", "greeting"),
    }
    for q, topic in expected.items():
        assert trained.get(normalize(q)) == {topic}, q


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
    "and",
    "or",
}


def test_slash_commands_exist() -> None:
    from chatapp.core.settings import SAMPLING_KEYS
    from chatapp.tui.commands import COMMANDS

    names = {c.name for c in COMMANDS}
    seen = set()
    for _lang, t, answer in EVERY_ANSWER:
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

    for _lang, t, answer in EVERY_ANSWER:
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

    for _lang, t, answer in EVERY_ANSWER:
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
    named = {p for _lang, _t, a in EVERY_ANSWER for p in re.findall(r"assets/[\w/.-]+\w", a)}
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
    assert "delete a chat" in text.lower()  # the phrasing as written, beside its variants
    assert any("remove a chat" in q.lower() or "delete a conversation" in q.lower() for q in users)
    assert any(q.lower().startswith("how do i send message") for q in users) or any(
        " send message" in q.lower() for q in users
    )
    assert any("会话" in q for q in users) and any("删掉" in q for q in users)
