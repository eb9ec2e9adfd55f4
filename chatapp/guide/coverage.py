"""Does training show every word an eval question keys on? The guide model is trained from
scratch, so an eval question can only test *recombination* of words it has seen with its topic.

The content units of an eval question (``units.content_units``) are read from its *subject*:
the subject phrasing when the question is a framing (``templates.py``) around one, the whole
question when it is an explicit eval question. Framing text is left out: it is shared by every
topic of a kind, and the eval framings are new on purpose. A unit is covered when some training
question of the same topic and language shows it (``units.Vocabulary``).
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from chatapp.guide.corpus import LANGS, eval_pairs, normalize
from chatapp.guide.units import EN_STOP, ZH_STOP_CHARS, Vocabulary, content_units

__all__ = ["EN_STOP", "ZH_STOP_CHARS", "content_units", "coverage_gaps", "training_questions"]


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
    subject_of = {
        (lang, t.id, normalize(q)): s
        for lang, ts in LANGS.items()
        for t in ts
        for q, s in eval_pairs(t, lang)
    }
    seen = {key: Vocabulary.of(qs) for key, qs in training_questions(train).items()}
    nothing = Vocabulary.of([])
    gaps = []
    for e in evals:
        key = (e["lang"], e["topic"])
        subject = subject_of[(e["lang"], e["topic"], normalize(e["question"]))]
        missing = seen.get(key, nothing).missing(subject, e["lang"])
        if missing:
            gaps.append((e["lang"], e["topic"], e["question"], missing))
    return gaps
