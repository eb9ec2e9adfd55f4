"""Question framings per language and kind. The ``EVAL`` framings are never used for training,
so an eval question is phrased differently from every training question by construction.

A subject is either a noun phrase ("the KV cache") or a clause ("how attention works"); the
``*_NOUN`` framings only take noun phrases."""

from __future__ import annotations

import re

EN_TRAIN: dict[str, list[str]] = {
    "key": [
        "How do I {x}?",
        "How can I {x}?",
        "What's the key to {x}?",
        "Which key do I press to {x}?",
        "how to {x}",
        "Tell me how to {x}.",
        "What is the shortcut to {x}?",
        "I want to {x}.",
        "Help me {x}.",
        "Is there a shortcut to {x}?",
        "How do you {x}?",
        "Can I {x}?",
        "What key lets me {x}?",
        "how do i {x} in chatapp",
    ],
    "howto": [
        "How do I {x}?",
        "How can I {x}?",
        "how to {x}",
        "Tell me how to {x}.",
        "I want to {x}.",
        "Can I {x}?",
        "What's the way to {x}?",
        "Explain how to {x}.",
        "Show me how to {x}.",
        "What command do I use to {x}?",
        "How do you {x}?",
        "Help me {x}.",
        "I'd like to {x}.",
        "how would one {x}",
    ],
    "what": [
        "Explain {x}.",
        "Tell me about {x}.",
        "Can you explain {x}?",
        "Describe {x}.",
        "I don't understand {x}.",
        "Give me a short explanation of {x}.",
        "{x}?",
        "Say something about {x}.",
        "I have a question about {x}.",
    ],
    "where": [
        "Where does chatapp keep {x}?",
        "Where can I find {x}?",
        "where does chatapp store {x}",
        "What's the location of {x}?",
        "Which folder holds {x}?",
        "Where do I find {x}?",
        "Where does chatapp save {x}?",
        "Tell me the path of {x}.",
        "Where do I look for {x}?",
    ],
}
EN_TRAIN_NOUN: dict[str, list[str]] = {
    "what": [
        "What is {x}?",
        "what's {x}",
        "What does {x} mean?",
        "What is {x} for?",
        "What is {x} in chatapp?",
    ],
}
EN_EVAL: dict[str, list[str]] = {
    "key": [
        "What do I press to {x}?",
        "Which keyboard shortcut lets me {x}?",
        "In chatapp, how would I {x}?",
        "Quick question: how do you {x}?",
    ],
    "howto": [
        "What's the best way to {x}?",
        "Could you tell me how I can {x}?",
        "In chatapp, how would I {x}?",
        "Is it possible to {x}, and how?",
    ],
    "what": [
        "Could you describe {x} briefly?",
        "Help me understand {x}.",
        "Please give me an overview of {x}.",
    ],
    "where": [
        "In which directory does chatapp save {x}?",
        "Where would I look for {x}?",
        "Tell me where chatapp puts {x}.",
    ],
}
EN_EVAL_NOUN: dict[str, list[str]] = {
    "what": ["What exactly is {x}?", "In simple words, what is {x}?"],
}

ZH_TRAIN: dict[str, list[str]] = {
    "key": [
        "怎么{x}？",
        "如何{x}？",
        "{x}按什么键？",
        "{x}的快捷键是什么？",
        "我想{x}",
        "请问怎样{x}？",
        "{x}要怎么操作？",
        "怎样才能{x}？",
        "教我{x}",
        "{x}用哪个键",
        "{x}该怎么弄？",
        "能{x}吗？",
        "麻烦问下，{x}按哪个？",
        "在 chatapp 中怎么{x}？",
        "{x}要怎么做才行？",
        "{x}用啥快捷键？",
        "我要{x}，该按什么？",
        "{x}有什么办法？",
        "打扰一下，如何{x}？",
        "{x}，怎么搞？",
    ],
    "howto": [
        "怎么{x}？",
        "如何{x}？",
        "我想{x}",
        "请问怎样{x}？",
        "{x}要怎么操作？",
        "怎样才能{x}？",
        "教我{x}",
        "能不能{x}？",
        "用什么命令{x}？",
        "{x}该怎么弄？",
        "告诉我怎么{x}",
        "麻烦问下，如何{x}？",
        "在 chatapp 中怎么{x}？",
        "{x}要怎么做才行？",
        "我要{x}，该怎么办？",
        "{x}有什么办法？",
        "打扰一下，怎样{x}？",
    ],
    "what": [
        "解释一下{x}",
        "介绍一下{x}",
        "能讲讲{x}吗？",
        "{x}？",
        "请说明{x}",
        "说说{x}",
        "我想了解{x}",
    ],
    "where": [
        "{x}在哪里？",
        "{x}放在哪儿？",
        "chatapp 把{x}存在哪里？",
        "去哪里找{x}？",
        "{x}的位置在哪？",
        "{x}保存在什么地方？",
    ],
}
ZH_TRAIN_NOUN: dict[str, list[str]] = {
    "what": ["{x}是什么？", "什么是{x}？", "{x}是什么意思？", "{x}有什么用？", "{x}是啥"],
}
ZH_EVAL: dict[str, list[str]] = {
    "key": [
        "在 chatapp 里要{x}该按哪个键？",
        "想{x}的话应该怎么做？",
        "有没有办法{x}？",
        "请教一下，{x}用什么快捷键？",
    ],
    "howto": [
        "在 chatapp 里想{x}该怎么做？",
        "有没有办法{x}？",
        "想{x}的话应该怎么做？",
        "请教一下，怎么才可以{x}？",
    ],
    "what": ["简单说说{x}吧", "我不太懂{x}，能帮我理解吗？", "用通俗的话讲讲{x}"],
    "where": ["{x}存放在哪个目录？", "我该去哪个文件夹找{x}？", "请告诉我{x}存放的位置"],
}
ZH_EVAL_NOUN: dict[str, list[str]] = {
    "what": ["{x}到底是什么？", "通俗地说，{x}是什么？"],
}

TEMPLATES = {
    "en": (EN_TRAIN, EN_TRAIN_NOUN, EN_EVAL, EN_EVAL_NOUN),
    "zh": (ZH_TRAIN, ZH_TRAIN_NOUN, ZH_EVAL, ZH_EVAL_NOUN),
}

_EN_CLAUSE = re.compile(r"^(how|what|where|whether|why|which|who)\b", re.IGNORECASE)
_ZH_CLAUSE = re.compile(r"怎么|怎样|什么|哪|会不会|是否|多少|为什么")


def is_clause(subject: str, lang: str) -> bool:
    pattern = _EN_CLAUSE if lang == "en" else _ZH_CLAUSE
    return bool(pattern.search(subject))


def framings(lang: str, kind: str, subject: str, *, eval: bool) -> list[str]:
    """The framing templates that fit ``subject`` for the training or the eval set."""
    train, train_noun, ev, ev_noun = TEMPLATES[lang]
    plain, noun = (ev, ev_noun) if eval else (train, train_noun)
    out = list(plain.get(kind, []))
    if not is_clause(subject, lang):
        out += noun.get(kind, [])
    return out


def _cjk(ch: str) -> bool:
    return "\u4e00" <= ch <= "\u9fff" or ch in "，。？！：；、“”（）"


def frame(template: str, subject: str, lang: str = "en") -> str:
    """``template`` with ``subject`` in it; in Chinese, a space between Han characters and a
    subject that starts or ends with a Latin letter or digit ("我不太懂 Transformer 架构")."""
    if lang != "zh":
        return template.format(x=subject)
    before, _, after = template.partition("{x}")
    if (
        before
        and subject[:1].isascii()
        and subject[:1].isalnum()
        and _cjk(before[-1])
        and before[-1] not in "，。？！：；、“”（）"
    ):
        before += " "
    if (
        after
        and subject[-1:].isascii()
        and subject[-1:].isalnum()
        and _cjk(after[0])
        and after[0] not in "，。？！：；、“”（）"
    ):
        after = " " + after
    return before + subject + after
