"""Key-fact evaluation: does the greedy answer to each question contain its key fact?

Scores are kept per language and, for items that name one, per group (a kind of question the
eval file defines, e.g. facts vs. off-topic), each group per language."""

from __future__ import annotations

import json
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from engine.generate import Model
from engine.sampling import SamplingParams


@dataclass
class EvalItem:
    question: str
    keys: list[str]  # the answer passes when it contains any of them (case-insensitive)
    lang: str = "en"
    topic: str = ""
    group: str = ""  # reported on its own when set


@dataclass
class EvalReport:
    passed: dict[str, int] = field(default_factory=dict)
    total: dict[str, int] = field(default_factory=dict)
    failures: list[dict[str, Any]] = field(default_factory=list)
    group_passed: dict[tuple[str, str], int] = field(default_factory=dict)  # (group, lang)
    group_total: dict[tuple[str, str], int] = field(default_factory=dict)

    def score(self, lang: str) -> float:
        return self.passed.get(lang, 0) / max(1, self.total.get(lang, 0))

    def group_score(self, group: str, lang: str) -> float:
        return self.group_passed.get((group, lang), 0) / max(
            1, self.group_total.get((group, lang), 0)
        )

    def add(self, item: EvalItem, ok: bool) -> None:
        self.total[item.lang] = self.total.get(item.lang, 0) + 1
        self.passed[item.lang] = self.passed.get(item.lang, 0) + int(ok)
        if item.group:
            key = (item.group, item.lang)
            self.group_total[key] = self.group_total.get(key, 0) + 1
            self.group_passed[key] = self.group_passed.get(key, 0) + int(ok)

    def as_dict(self) -> dict[str, Any]:
        """Language → passed, total, score."""
        return {
            lang: {"passed": self.passed[lang], "total": n, "score": round(self.score(lang), 4)}
            for lang, n in sorted(self.total.items())
        }

    def groups_dict(self) -> dict[str, dict[str, Any]]:
        """Group → language → passed, total, score (groups in first-seen order)."""
        out: dict[str, dict[str, Any]] = {g: {} for g, _ in self.group_total}
        for (group, lang), n in sorted(self.group_total.items(), key=lambda kv: kv[0][1]):
            out[group][lang] = {
                "passed": self.group_passed[(group, lang)],
                "total": n,
                "score": round(self.group_score(group, lang), 4),
            }
        return out


def read_eval_items(path: Path) -> list[EvalItem]:
    items = []
    for line in path.read_text(encoding="utf-8").splitlines():
        if line.strip():
            d = json.loads(line)
            items.append(
                EvalItem(
                    d["question"],
                    list(d["keys"]),
                    d.get("lang", "en"),
                    d.get("topic", ""),
                    d.get("group", ""),
                )
            )
    return items


def contains_key(reply: str, keys: Sequence[str]) -> bool:
    low = reply.casefold()
    return any(k.casefold() in low for k in keys)


def key_fact_eval(model: Model, items: Iterable[EvalItem], max_new_tokens: int = 96) -> EvalReport:
    """Answer each question greedily in a fresh one-turn chat and check for its key fact."""
    params = SamplingParams(temperature=0.0, max_new_tokens=max_new_tokens)
    report = EvalReport()
    for item in items:
        reply = "".join(model.chat([{"role": "user", "content": item.question}], params))
        ok = contains_key(reply, item.keys)
        report.add(item, ok)
        if not ok:
            failure: dict[str, Any] = {"lang": item.lang}
            failure.update({k: v for k, v in (("group", item.group), ("topic", item.topic)) if v})
            failure.update(question=item.question, keys=item.keys, reply=reply)
            report.failures.append(failure)
    return report
