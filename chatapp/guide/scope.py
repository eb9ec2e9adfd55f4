"""The guide's scope, besides the fact tables: what it says to questions outside chatapp and how
language models work (``offtopic``: it only knows those, and ``chatapp pull smollm2`` gets a
general model), to greetings (``greeting``: a greeting back that says what it helps with) and to
questions about itself (``identity``: it is the guide, chatapp's small built-in model). Always in
the language of the question.

The three are ``Topic``s like the fact tables' (the corpus, ``coverage.py`` and the stats treat
them alike), with questions generated as templates × fillers and held-out pairs as their eval
(``families.py``); the tables are in ``scope_en.py`` and ``scope_zh.py``. ``SHARES`` sets their
weight: the guide trains a fixed number of steps, so what they add displaces the facts; they
stay a small share of the corpus (about 6%).
"""

from __future__ import annotations

from dataclasses import dataclass
from types import ModuleType

from chatapp.guide import scope_en, scope_zh
from chatapp.guide.families import generated_topic
from chatapp.guide.topics import Topic


@dataclass(frozen=True)
class Share:
    train: float  # single-turn conversations, in units of one fact topic's (``per_topic``)
    eval: int  # held-out eval questions per language


SHARES: dict[str, Share] = {
    "offtopic": Share(3.0, 24),  # the widest kind: many families
    "greeting": Share(1.0, 10),
    "identity": Share(1.0, 10),
}
FACTS = "facts"  # the eval group of every fact-table topic


def group(topic_id: str) -> str:
    """The eval group a topic's questions are reported under: its own id for a scope topic,
    ``facts`` for a fact-table one."""
    return topic_id if topic_id in SHARES else FACTS


def _topics(t: ModuleType, lang: str) -> list[Topic]:
    """The scope topics of one language's table (``scope_en`` or ``scope_zh``)."""
    return [
        generated_topic(
            "offtopic", "offtopic", lang,
            t.OFFTOPIC_KEYS, t.OFFTOPIC_ANSWERS, t.OFFTOPIC_FAMILIES, t.OFFTOPIC_EXTRA,
        ),
        generated_topic(
            "greeting", "chat", lang,
            t.GREETING_KEYS, t.GREETING_ANSWERS, t.GREETING_FAMILIES, t.GREETING_EXTRA,
        ),
        generated_topic(
            "identity", "chat", lang,
            t.IDENTITY_KEYS, t.IDENTITY_ANSWERS, t.IDENTITY_FAMILIES, t.IDENTITY_EXTRA,
        ),
    ]  # fmt: skip


TOPICS: dict[str, list[Topic]] = {"en": _topics(scope_en, "en"), "zh": _topics(scope_zh, "zh")}
