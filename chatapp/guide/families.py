"""Questions generated as templates × fillers, with held-out pairs for the eval.

A *family* is a few templates ("Write a poem about {x}.") and a few fillers ("the sea",
"autumn"). The pair (template i, filler j) is held out when ``(i + j) % HOLD == 0`` and trains
otherwise, so every template and every filler trains with other partners (a family needs two of
each) and an eval question is a new combination of words training shows with its topic, never
a training question: held out by construction. A held-out pair that still equals a training
question after normalisation, or that shows a content unit no training question of its topic
does (in Chinese a bigram can span the template and the filler), is dropped.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from chatapp.guide.templates import frame
from chatapp.guide.topics import Topic
from chatapp.guide.units import Vocabulary, normalize

HOLD = 3


@dataclass(frozen=True)
class Family:
    templates: tuple[str, ...]
    fillers: tuple[str, ...]


def family(templates: Sequence[str], fillers: Sequence[str]) -> Family:
    if len(templates) < 2 or len(fillers) < 2:
        raise ValueError("a family needs two templates and two fillers")
    return Family(tuple(templates), tuple(fillers))


def _ask(template: str, filler: str, lang: str) -> str:
    q = frame(template, filler, lang)
    return q[:1].upper() + q[1:] if lang == "en" else q


def split(families: Sequence[Family], lang: str) -> tuple[list[str], list[str]]:
    """(training questions, held-out questions) of ``families``, in table order."""
    train: list[str] = []
    held: list[str] = []
    for fam in families:
        for i, template in enumerate(fam.templates):
            for j, filler in enumerate(fam.fillers):
                (held if (i + j) % HOLD == 0 else train).append(_ask(template, filler, lang))
    return train, held


def generated_topic(
    id: str,
    kind: str,
    lang: str,
    keys: tuple[str, ...],
    answers: tuple[str, ...],
    families: Sequence[Family],
    extra: Sequence[str] = (),
) -> Topic:
    """A topic whose training questions are ``extra`` (fixed ones) and the families' training
    pairs, and whose eval questions are the held-out pairs that pass the checks above."""
    pairs, held = split(families, lang)
    train = list(dict.fromkeys([*extra, *pairs]))
    asked = {normalize(q) for q in train}
    seen = Vocabulary.of(train)
    evals = [q for q in held if normalize(q) not in asked and not seen.missing(q, lang)]
    return Topic(id, kind, keys, answers, questions=tuple(train), eval_questions=tuple(evals))
