"""Does training show every word an eval question keys on? The guide model is trained from
scratch, so an eval question can only test *recombination* of words it has seen with its topic.

The content units of an eval question are read from its *subject*: the subject phrasing when the
question is a framing (``templates.py``) around one, the whole question when it is an explicit
eval question. Framing text is left out: it is shared by every topic of a kind, and the eval
framings are new on purpose.

- English: the lowercase word tokens (``[a-z0-9]+``; "top-k" is "top" and "k") minus
  ``EN_STOP``, a list of function words (articles, pronouns, auxiliaries, prepositions, question
  words).
- Chinese: every 2-character substring of a run of Han characters in which neither character is
  in ``ZH_STOP_CHARS`` (particles, pronouns, question words: "模型是怎样学会的" gives 模型, 学会;
  "可以" counts as a break),
  plus the Latin word tokens as in English.

An English unit is covered when it is a token of some training question of the same topic and
language; a Chinese bigram when it is a substring of one.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from typing import Any

from chatapp.guide.corpus import LANGS, eval_pairs, normalize

_EN_STOP_TEXT = """a an the i me my mine you your yours we us our it its this that these those there
    they them their he she his her
    is are am was were be been being do does did doing have has had
    to of in on at for with from by about into as
    and or but not no so if than then
    how what where which why who whom when whether
    can could would should will shall may might must
    please s t m ll re ve d"""
EN_STOP = frozenset(_EN_STOP_TEXT.split())
ZH_STOP_CHARS = frozenset(
    "的了是吗呢吧啊么怎什你我他它这那个一在和与把被让给就都也还要能可得地着有没不很又再哪些样如何为之呀"
)

_WORD = re.compile(r"[a-z0-9]+")
_HAN_RUN = re.compile(r"[\u4e00-\u9fff]+")


def content_units(text: str, lang: str) -> list[str]:
    """The content units of a subject (see the module docstring), in order, without repeats."""
    units = [w for w in _WORD.findall(text.lower()) if w not in EN_STOP]
    if lang == "zh":
        for run in _HAN_RUN.findall(text.replace("可以", " ")):
            units += [
                run[i : i + 2]
                for i in range(len(run) - 1)
                if run[i] not in ZH_STOP_CHARS and run[i + 1] not in ZH_STOP_CHARS
            ]
    return list(dict.fromkeys(units))


def training_questions(train: Iterable[dict[str, Any]]) -> dict[tuple[str, str], list[str]]:
    """(lang, topic id) → the user questions that topic's answers reply to in ``train``."""
    topic_of = {a: (lang, t.id) for lang, ts in LANGS.items() for t in ts for a in t.answers}
    out: dict[tuple[str, str], list[str]] = {}
    for conv in train:
        msgs = conv["messages"]
        for q, a in zip(msgs, msgs[1:], strict=False):
            if q["role"] == "user" and a["role"] == "assistant":
                out.setdefault(topic_of[a["content"]], []).append(q["content"])
    return out


def coverage_gaps(
    train: Iterable[dict[str, Any]], evals: Iterable[dict[str, Any]]
) -> list[tuple[str, str, str, list[str]]]:
    """(lang, topic, eval question, uncovered units) for every eval question with any."""
    asked = training_questions(train)
    subject_of = {
        (lang, t.id, normalize(q)): s
        for lang, ts in LANGS.items()
        for t in ts
        for q, s in eval_pairs(t, lang)
    }
    words: dict[tuple[str, str], set[str]] = {}
    text: dict[tuple[str, str], str] = {}
    for key, qs in asked.items():
        words[key] = {w for q in qs for w in _WORD.findall(q.lower())}
        text[key] = "\n".join(qs)
    gaps = []
    for e in evals:
        key = (e["lang"], e["topic"])
        subject = subject_of[(e["lang"], e["topic"], normalize(e["question"]))]
        missing = [
            u
            for u in content_units(subject, e["lang"])
            if (u not in words.get(key, set()) if u.isascii() else u not in text.get(key, ""))
        ]
        if missing:
            gaps.append((e["lang"], e["topic"], e["question"], missing))
    return gaps
