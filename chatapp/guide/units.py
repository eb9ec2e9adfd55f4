"""How the guide's questions are compared: ``normalize`` (are two questions the same?) and
``content_units`` (which words does a question key on?), with ``Vocabulary``, the units a set of
training questions shows. Used by the corpus, the scope generator and ``coverage.py``.

Content units of a subject:

- English: the lowercase word tokens (``[a-z0-9]+``; "top-k" is "top" and "k") minus
  ``EN_STOP``, a list of function words (articles, pronouns, auxiliaries, prepositions, question
  words).
- Chinese: every 2-character substring of a run of Han characters in which neither character is
  in ``ZH_STOP_CHARS`` (particles, pronouns, question words: "模型是怎样学会的" gives 模型, 学会;
  "可以" counts as a break), plus the Latin word tokens as in English.

An English unit is covered when it is a token of some of the questions; a Chinese bigram when it
is a substring of one.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from dataclasses import dataclass

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


def normalize(text: str) -> str:
    """Case, whitespace and punctuation folded away: how eval and train questions are compared."""
    return re.sub(r"[\W_]+", "", text.lower())


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


@dataclass(frozen=True)
class Vocabulary:
    """What some questions show: their word tokens and their text."""

    words: frozenset[str]
    text: str

    @classmethod
    def of(cls, questions: Iterable[str]) -> Vocabulary:
        qs = list(questions)
        return cls(frozenset(w for q in qs for w in _WORD.findall(q.lower())), "\n".join(qs))

    def missing(self, subject: str, lang: str) -> list[str]:
        """The content units of ``subject`` these questions never show."""
        return [
            u
            for u in content_units(subject, lang)
            if (u not in self.words if u.isascii() else u not in self.text)
        ]
