"""Build the guide's training conversations and its held-out eval set from the fact tables and
the scope topics (off-topic questions, greetings, identity: ``scope.py``).

    train, evals = build_corpus(seed=0)
    paths = write_corpus(out_dir, seed=0)  # out_dir/train.jsonl, out_dir/eval.jsonl

Deterministic: the same seed gives byte-identical files (one ``random.Random(seed)``, no set or
hash ordering). Eval questions come from framings and subject phrasings that training never
uses, and any that still match a training question after normalisation are dropped. Training
does show every content word of an eval question with its topic (``coverage.py``), so the eval
tests new combinations of known words, not unseen vocabulary. Training questions get light
noise: casing, punctuation, filler words added or dropped, a typo, a synonym swapped.

Each eval item names its ``group``: ``facts`` for a fact-table topic, the scope topic's id
otherwise; the trainer's eval reports every group on its own.
"""

from __future__ import annotations

import json
import random
from collections.abc import Callable, Iterable, Sequence
from pathlib import Path
from typing import Any, TypeVar

from chatapp.guide import facts_en, facts_zh, scope
from chatapp.guide.templates import frame, framings
from chatapp.guide.topics import Topic
from chatapp.guide.units import normalize

T = TypeVar("T")

# The fact tables, then the scope topics (off-topic, greetings, identity: ``scope.py``).
LANGS: dict[str, list[Topic]] = {
    "en": facts_en.TOPICS + scope.TOPICS["en"],
    "zh": facts_zh.TOPICS + scope.TOPICS["zh"],
}

SINGLE_PER_TOPIC = 44  # single-turn conversations per topic and language
MULTI_FRACTION = 0.25  # multi-turn conversations, as a fraction of the single-turn ones
SYSTEM_FRACTION = 0.05
EVAL_PER_TOPIC = 4
MAX_CHARS = {"en": 1100, "zh": 300}  # one conversation's text; the model's context is 512

SYSTEM_PROMPTS = {
    "en": [
        "You are a helpful assistant.",
        "You are the chatapp guide.",
        "Answer briefly.",
        "You are a friendly assistant that explains chatapp.",
        "Be concise.",
    ],
    "zh": [
        "你是一个乐于助人的助手。",
        "你是 chatapp 的向导。",
        "请简短回答。",
        "你是一个讲解 chatapp 的友好助手。",
        "回答要简洁。",
    ],
}

_EN_PREFIXES = ["hey ", "so ", "ok, ", "hi, ", "um "]
_EN_SUFFIXES = [" please", " thanks", "??", " pls"]
_ZH_PREFIXES = ["请问", "那个，", "你好，", "问一下，"]
_ZH_SUFFIXES = ["呢", "啊", "？？", "，谢谢"]


# Questions ------------------------------------------------------------------------------------


def _typo(text: str, rng: random.Random) -> str:
    """Swap two adjacent letters inside one plain lowercase word of 4+ letters."""
    words = text.split(" ")
    spots = [i for i, w in enumerate(words) if len(w) >= 4 and w.isalpha() and w.islower()]
    if not spots:
        return text
    i = rng.choice(spots)
    w = words[i]
    j = rng.randrange(1, len(w) - 2)
    words[i] = w[:j] + w[j + 1] + w[j] + w[j + 2 :]
    return " ".join(words)


def _casual(text: str, lang: str, rng: random.Random, filler: bool = True) -> str:
    """A sloppier variant of a question: lowercase, no final punctuation, filler words (unless
    ``filler`` is false: greetings and small talk), a typo."""
    if lang == "en":
        r = rng.random()
        if r < 0.35:
            text = text.lower()
        if rng.random() < 0.5:
            text = text.rstrip("?.!")
        if filler and rng.random() < 0.2:
            text = rng.choice(_EN_PREFIXES) + text[:1].lower() + text[1:]
        elif filler and rng.random() < 0.2:
            text = text.rstrip("?.!") + rng.choice(_EN_SUFFIXES)
        if rng.random() < 0.15:
            text = _typo(text, rng)
        return text
    if rng.random() < 0.5:
        text = text.rstrip("？。！")
    if filler and rng.random() < 0.3:
        text = rng.choice(_ZH_PREFIXES) + text
    elif filler and rng.random() < 0.3:
        text = text.rstrip("？。！") + rng.choice(_ZH_SUFFIXES)
    if rng.random() < 0.2:
        text = text.replace("？", "?")
    return text


def _dedupe(items: Iterable[T], text: Callable[[T], str]) -> list[T]:
    """``items`` without those whose text normalises to nothing or to an earlier one's."""
    seen: set[str] = set()
    out = []
    for item in items:
        n = normalize(text(item))
        if n and n not in seen:
            seen.add(n)
            out.append(item)
    return out


def _augment(text: str, lang: str, rng: random.Random) -> str:
    """Light noise that keeps a question's content words: drop one filler word, or swap one word
    for its synonym from a small per-language table (``SYNONYMS``)."""
    if lang == "en":
        words = text.split(" ")
        if rng.random() < 0.5:
            spots = [i for i, w in enumerate(words) if w.lower() in _EN_FILLERS]
            if spots and len(words) > 3:
                del words[rng.choice(spots)]
                return " ".join(words)
        spots = [i for i, w in enumerate(words) if w.lower() in SYNONYMS["en"]]
        if spots:
            i = rng.choice(spots)
            swap = rng.choice(SYNONYMS["en"][words[i].lower()])
            words[i] = swap.capitalize() if words[i][:1].isupper() else swap
            if i and words[i - 1].lower() in ("a", "an"):  # "an earlier" → "a previous"
                article = "an" if swap[:1] in "aeiou" else "a"
                words[i - 1] = article.capitalize() if words[i - 1][:1].isupper() else article
        return " ".join(words)
    if rng.random() < 0.5:
        found = [f for f in _ZH_FILLERS if f in text and text != f]
        if found:
            return text.replace(rng.choice(found), "", 1)
    found = [w for w in SYNONYMS["zh"] if w in text]
    if found:
        w = rng.choice(found)
        return text.replace(w, rng.choice(SYNONYMS["zh"][w]), 1)
    return text


def _synonyms(pairs: Sequence[tuple[str, str]]) -> dict[str, list[str]]:
    table: dict[str, list[str]] = {}
    for a, b in pairs:
        table.setdefault(a, []).append(b)
        table.setdefault(b, []).append(a)
    return table


# Swapped both ways in training questions; each pair means the same in every topic it occurs in.
SYNONYMS: dict[str, dict[str, list[str]]] = {
    "en": _synonyms(
        [
            ("chat", "conversation"),
            ("chats", "conversations"),
            ("delete", "remove"),
            ("see", "view"),
            ("show", "display"),
            ("pick", "choose"),
            ("start", "begin"),
            ("answer", "reply"),
            ("answers", "replies"),
            ("reply", "response"),
            ("quit", "exit"),
            ("folder", "directory"),
            ("change", "modify"),
            ("find", "locate"),
            ("previous", "earlier"),
        ]
    ),
    "zh": _synonyms(
        [
            ("对话", "会话"),
            ("删除", "删掉"),
            ("查看", "看看"),
            ("回答", "回复"),
            ("修改", "更改"),
            ("怎么", "怎样"),
            ("打开", "开启"),
            ("显示", "展示"),
            ("以前", "之前"),
        ]
    ),
}
_EN_FILLERS = frozenset({"the", "a", "an", "my", "please", "just"})
_ZH_FILLERS = ("请问", "一下", "我的", "一个", "这个")


def train_questions(t: Topic, lang: str, rng: random.Random) -> list[str]:
    """Every training phrasing of a topic (framings × subjects, explicit questions, and their
    casual and augmented variants), unique after normalisation, in a seed-dependent order that
    takes one phrasing of each subject and explicit question in turn (the first of each a plain
    one), so that the first few dozen cover every subject's words."""
    groups = [
        [frame(tpl, s, lang) for tpl in framings(lang, t.kind, s, eval=False)] for s in t.subjects
    ]
    groups += [[q] for q in t.questions]
    chat = t.kind == "chat"
    seen: set[str] = set()
    rounds: list[list[str]] = []
    for base in groups:
        rng.shuffle(base)
        variants = [_casual(q, lang, rng, filler=not chat) for q in base]
        if chat:  # few phrasings: more sloppy variants of each
            variants += [_casual(q, lang, rng, filler=False) for q in base]
        else:
            variants += [_casual(_augment(q, lang, rng), lang, rng) for q in base]
        rest = base[1:] + variants
        rng.shuffle(rest)
        group = []
        for q in [base[0], *rest]:
            n = normalize(q)
            if n and n not in seen:
                seen.add(n)
                group.append(q)
        rounds.append(group)
    rng.shuffle(rounds)
    pool: list[str] = []
    for i in range(max((len(g) for g in rounds), default=0)):
        pool += [g[i] for g in rounds if i < len(g)]
    return pool


def eval_pairs(t: Topic, lang: str) -> list[tuple[str, str]]:
    """Held-out phrasings, each with the text the coverage check reads (its *subject*): the
    subject phrasing of a framed question, the whole question otherwise. Explicit eval questions
    come first, then eval framings of every subject, then any framing of an eval subject."""
    out = [(q, q) for q in t.eval_questions]
    for s in t.subjects + t.eval_subjects:
        out += [(frame(tpl, s, lang), s) for tpl in framings(lang, t.kind, s, eval=True)]
    for s in t.eval_subjects:
        out += [(frame(tpl, s, lang), s) for tpl in framings(lang, t.kind, s, eval=False)]
    return _dedupe(out, lambda pair: pair[0])


def eval_candidates(t: Topic, lang: str) -> list[str]:
    """The held-out phrasings of ``eval_pairs``, without their subjects."""
    return [q for q, _ in eval_pairs(t, lang)]


# The corpus -----------------------------------------------------------------------------------


Conversation = dict[str, list[dict[str, str]]]


def _length(messages: list[dict[str, str]]) -> int:
    return sum(len(m["content"]) for m in messages)


def build_corpus(
    seed: int = 0, per_topic: int = SINGLE_PER_TOPIC
) -> tuple[list[Conversation], list[dict[str, Any]]]:
    """(training conversations, eval items); see the module docstring. ``per_topic`` single-turn
    conversations per topic and language (the questions cycle through the topic's pool), scaled
    by ``scope.SHARES`` for a scope topic, which also sets its number of eval questions."""
    rng = random.Random(seed)
    train: list[Conversation] = []
    evals: list[dict[str, Any]] = []
    for lang, topics in LANGS.items():
        pools = {t.id: train_questions(t, lang, rng) for t in topics}
        seen = {normalize(q) for pool in pools.values() for q in pool}
        convs: list[list[dict[str, str]]] = []
        for t in topics:
            pool = pools[t.id]
            share = scope.SHARES.get(t.id)
            # A scope topic's pool starts with its generated questions, each shown at least once.
            n = max(round(per_topic * share.train), len(t.questions)) if share else per_topic
            for i in range(n):
                question = pool[i % len(pool)]
                convs.append(_turn(question, rng.choice(t.answers)))
        for _ in range(int(len(convs) * MULTI_FRACTION)):
            picked = rng.sample(topics, rng.choice((2, 2, 3)))
            messages: list[dict[str, str]] = []
            for t in picked:
                turn = _turn(rng.choice(pools[t.id]), rng.choice(t.answers))
                if messages and _length(messages + turn) > MAX_CHARS[lang]:
                    break
                messages += turn
            convs.append(messages)
        for messages in convs:
            if rng.random() < SYSTEM_FRACTION:
                messages.insert(0, {"role": "system", "content": rng.choice(SYSTEM_PROMPTS[lang])})
            train.append({"messages": messages})
        for t in topics:
            share = scope.SHARES.get(t.id)
            fresh = [q for q in eval_candidates(t, lang) if normalize(q) not in seen]
            explicit = [] if share else [q for q in fresh if q in t.eval_questions][:2]
            rest = [q for q in fresh if q not in explicit]
            rng.shuffle(rest)
            for q in (explicit + rest)[: share.eval if share else EVAL_PER_TOPIC]:
                evals.append(
                    {
                        "lang": lang,
                        "topic": t.id,
                        "group": scope.group(t.id),
                        "question": q,
                        "keys": list(t.keys),
                    }
                )
    rng.shuffle(train)
    return train, evals


def _turn(question: str, answer: str) -> list[dict[str, str]]:
    return [{"role": "user", "content": question}, {"role": "assistant", "content": answer}]


def _write_jsonl(path: Path, rows: Sequence[Any]) -> None:
    text = "".join(json.dumps(r, ensure_ascii=False) + "\n" for r in rows)
    path.write_bytes(text.encode("utf-8"))


def write_corpus(
    out_dir: Path | str, seed: int = 0, per_topic: int = SINGLE_PER_TOPIC
) -> dict[str, Path]:
    """Write ``train.jsonl`` and ``eval.jsonl`` into ``out_dir`` (created if missing)."""
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    train, evals = build_corpus(seed, per_topic)
    paths = {"train": out / "train.jsonl", "eval": out / "eval.jsonl"}
    _write_jsonl(paths["train"], train)
    _write_jsonl(paths["eval"], evals)
    return paths
