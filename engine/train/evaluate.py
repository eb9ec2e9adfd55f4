"""Key-fact evaluation: does the greedy answer to each question contain its key fact?"""

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


@dataclass
class EvalReport:
    passed: dict[str, int] = field(default_factory=dict)
    total: dict[str, int] = field(default_factory=dict)
    failures: list[dict[str, Any]] = field(default_factory=list)

    def score(self, lang: str) -> float:
        return self.passed.get(lang, 0) / max(1, self.total.get(lang, 0))

    def as_dict(self) -> dict[str, Any]:
        return {
            lang: {"passed": self.passed[lang], "total": n, "score": round(self.score(lang), 4)}
            for lang, n in sorted(self.total.items())
        }


def read_eval_items(path: Path) -> list[EvalItem]:
    items = []
    for line in path.read_text(encoding="utf-8").splitlines():
        if line.strip():
            d = json.loads(line)
            items.append(
                EvalItem(d["question"], list(d["keys"]), d.get("lang", "en"), d.get("topic", ""))
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
        report.total[item.lang] = report.total.get(item.lang, 0) + 1
        report.passed[item.lang] = report.passed.get(item.lang, 0) + int(ok)
        if not ok:
            report.failures.append(
                {"lang": item.lang, "question": item.question, "keys": item.keys, "reply": reply}
            )
    return report
