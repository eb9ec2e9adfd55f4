"""The shape of one fact table entry, shared by the English and Chinese tables."""

from __future__ import annotations

from dataclasses import dataclass

# Question kinds: which framing templates (``templates.py``) wrap a topic's subject phrasings.
# "offtopic": the scope topics' generated questions (``scope.py``), no framings.
KINDS = ("key", "howto", "what", "where", "chat", "offtopic")


@dataclass(frozen=True)
class Topic:
    """One fact: the key strings a correct answer must contain, the answers (each contains every
    key verbatim, early), and what a user may ask. ``subjects`` and ``questions`` feed training;
    ``eval_subjects`` and ``eval_questions`` are held out for the eval set only."""

    id: str
    kind: str
    keys: tuple[str, ...]
    answers: tuple[str, ...]
    subjects: tuple[str, ...] = ()
    eval_subjects: tuple[str, ...] = ()
    questions: tuple[str, ...] = ()
    eval_questions: tuple[str, ...] = ()


def topic(
    id: str,
    kind: str,
    keys: str | tuple[str, ...],
    answers: tuple[str, ...] | list[str],
    subjects: tuple[str, ...] | list[str] = (),
    eval_subjects: tuple[str, ...] | list[str] = (),
    questions: tuple[str, ...] | list[str] = (),
    eval_questions: tuple[str, ...] | list[str] = (),
) -> Topic:
    return Topic(
        id,
        kind,
        (keys,) if isinstance(keys, str) else tuple(keys),
        tuple(answers),
        tuple(subjects),
        tuple(eval_subjects),
        tuple(questions),
        tuple(eval_questions),
    )
