"""Tokenizer (``tokenizers.Tokenizer`` from ``tokenizer.json``) and the chat template."""

from __future__ import annotations

import json
from collections.abc import Sequence
from datetime import datetime
from pathlib import Path
from typing import Any

from jinja2 import TemplateError
from jinja2.sandbox import ImmutableSandboxedEnvironment
from tokenizers import Tokenizer as HFTokenizer

from engine.errors import ModelLoadError

# Used when a model ships no template of its own.
CHATML_TEMPLATE = (
    "{% for message in messages %}"
    "{{ '<|im_start|>' + message['role'] + '\n' + message['content'] + '<|im_end|>' + '\n' }}"
    "{% endfor %}"
    "{% if add_generation_prompt %}{{ '<|im_start|>assistant\n' }}{% endif %}"
)

# Gemma's turn format, for Gemma files that ship no template (base models): the tokens are in
# its vocabulary, and a format the model has seen beats ChatML, which it has not. A system
# message goes into the first user turn, as Gemma's own template does.
GEMMA_TEMPLATE = (
    "{{ bos_token }}"
    "{% if messages and messages[0]['role'] == 'system' %}"
    "{% set first = messages[0]['content'] + '\n\n' %}{% set turns = messages[1:] %}"
    "{% else %}{% set first = '' %}{% set turns = messages %}{% endif %}"
    "{% for message in turns %}"
    "{% set role = 'model' if message['role'] == 'assistant' else 'user' %}"
    "{{ '<start_of_turn>' + role + '\n' + (first if loop.first else '') "
    "+ message['content'] | trim + '<end_of_turn>\n' }}"
    "{% endfor %}"
    "{% if add_generation_prompt %}{{ '<start_of_turn>model\n' }}{% endif %}"
)

# Tokens that end an assistant turn in the common chat formats.
END_OF_TURN_TOKENS = ("<|im_end|>", "<|eot_id|>", "<|end|>", "<end_of_turn>", "<|endoftext|>")

Message = dict[str, str]


class TemplateRenderError(ValueError):
    """The chat template failed to render these messages."""


def _special_token_text(value: Any) -> str | None:
    # tokenizer_config.json stores special tokens as strings or AddedToken dicts.
    if isinstance(value, dict):
        return value.get("content")
    return value if isinstance(value, str) else None


class Tokenizer:
    """Text <-> ids, special tokens, end-of-turn ids and the chat template of one model."""

    def __init__(
        self,
        tokenizer: HFTokenizer,
        *,
        chat_template: str | None = None,
        bos_token: str | None = None,
        eos_token: str | None = None,
        eos_ids: Sequence[int] = (),
        extra_special: dict[str, str] | None = None,
    ) -> None:
        self.hf = tokenizer
        self.chat_template = chat_template
        self.has_own_template = chat_template is not None
        self.bos_token = bos_token
        self.eos_token = eos_token
        self.extra_special = extra_special or {}
        ids = set(eos_ids)
        for tok in (eos_token, *END_OF_TURN_TOKENS):
            tid = tokenizer.token_to_id(tok) if tok else None
            if tid is not None:
                ids.add(tid)
        self.eos_ids: frozenset[int] = frozenset(ids)
        self.special_ids: frozenset[int] = frozenset(
            tid for tid, tok in tokenizer.get_added_tokens_decoder().items() if tok.special
        )
        fallback = CHATML_TEMPLATE
        self.template_name = "the model's own"
        if chat_template is None:
            gemma = tokenizer.token_to_id("<start_of_turn>") is not None
            fallback = GEMMA_TEMPLATE if gemma else CHATML_TEMPLATE
            self.template_name = "Gemma's turn format" if gemma else "ChatML"
        self._template = _compile(chat_template or fallback)

    @classmethod
    def from_dir(
        cls, path: Path, eos_ids: Sequence[int] = (), *, parsed: HFTokenizer | None = None
    ) -> Tokenizer:
        """Read ``tokenizer.json`` plus ``tokenizer_config.json`` / ``chat_template.jinja``.
        ``parsed``: the folder's ``tokenizer.json`` already in memory (its writer's object)."""
        tj = path / "tokenizer.json"
        if not tj.is_file():
            raise ModelLoadError(
                f"{path} has no tokenizer.json; copy the model's tokenizer.json into the folder"
            )
        try:
            hf = parsed if parsed is not None else HFTokenizer.from_file(str(tj))
        except Exception as e:  # the tokenizers library raises bare Exceptions
            raise ModelLoadError(f"cannot read {tj}: {str(e).splitlines()[0]}") from None
        cfg: dict[str, Any] = {}
        tc = path / "tokenizer_config.json"
        if tc.is_file():
            try:
                cfg = json.loads(tc.read_text(encoding="utf-8"))
            except (json.JSONDecodeError, UnicodeDecodeError) as e:
                raise ModelLoadError(f"{tc} is not valid JSON ({e})") from None
        template = cfg.get("chat_template")
        if isinstance(template, list):  # named templates: take "default"
            named = {t.get("name"): t.get("template") for t in template if isinstance(t, dict)}
            template = named.get("default") or next(iter(named.values()), None)
        jinja_file = path / "chat_template.jinja"
        if jinja_file.is_file():
            template = jinja_file.read_text(encoding="utf-8")
        extra = {
            k: v
            for k in ("pad_token", "unk_token")
            if (v := _special_token_text(cfg.get(k))) is not None
        }
        return cls(
            hf,
            chat_template=template if isinstance(template, str) else None,
            bos_token=_special_token_text(cfg.get("bos_token")),
            eos_token=_special_token_text(cfg.get("eos_token")),
            eos_ids=eos_ids,
            extra_special=extra,
        )

    def save(self, path: Path) -> None:
        """Write ``tokenizer.json`` and ``tokenizer_config.json`` (HF layout)."""
        self.hf.save(str(path / "tokenizer.json"))
        cfg: dict[str, Any] = {"tokenizer_class": "PreTrainedTokenizerFast"}
        if self.bos_token:
            cfg["bos_token"] = self.bos_token
        if self.eos_token:
            cfg["eos_token"] = self.eos_token
        cfg.update(self.extra_special)
        if self.chat_template is not None:
            cfg["chat_template"] = self.chat_template
        (path / "tokenizer_config.json").write_text(json.dumps(cfg, indent=2, ensure_ascii=False))

    @property
    def vocab_size(self) -> int:
        return int(self.hf.get_vocab_size(with_added_tokens=True))

    def encode(self, text: str, *, add_special_tokens: bool = True) -> list[int]:
        return list(self.hf.encode(text, add_special_tokens=add_special_tokens).ids)

    def decode(self, ids: Sequence[int], *, skip_special_tokens: bool = True) -> str:
        return str(self.hf.decode(list(ids), skip_special_tokens=skip_special_tokens))

    def render_chat(
        self, messages: Sequence[Message], *, add_generation_prompt: bool = True
    ) -> str:
        """Render ``messages`` with the model's chat template (sandboxed jinja2)."""
        try:
            return str(
                self._template.render(
                    messages=list(messages),
                    add_generation_prompt=add_generation_prompt,
                    bos_token=self.bos_token or "",
                    eos_token=self.eos_token or "",
                    **self.extra_special,
                )
            )
        except TemplateError as e:
            raise TemplateRenderError(f"chat template error: {e}") from None

    def encode_chat(self, messages: Sequence[Message]) -> list[int]:
        # The template writes BOS itself when the model wants one; don't add it twice.
        return self.encode(self.render_chat(messages), add_special_tokens=False)


def _raise_exception(message: str) -> None:
    raise TemplateError(message)


def _strftime_now(fmt: str) -> str:
    return datetime.now().strftime(fmt)


def _tojson(
    value: Any,
    ensure_ascii: bool = False,
    indent: int | None = None,
    separators: tuple[str, str] | None = None,
    sort_keys: bool = False,
) -> str:
    """transformers' ``tojson`` (templates use ``separators`` and ``sort_keys`` for tool
    schemas; jinja2's own filter escapes HTML)."""
    return json.dumps(
        value, ensure_ascii=ensure_ascii, indent=indent, separators=separators, sort_keys=sort_keys
    )


def _compile(source: str) -> Any:
    # Chat templates come from downloaded files: render them in jinja2's immutable sandbox,
    # with the same environment options and helpers that transformers gives them.
    env = ImmutableSandboxedEnvironment(
        trim_blocks=True, lstrip_blocks=True, extensions=["jinja2.ext.loopcontrols"]
    )
    env.globals["raise_exception"] = _raise_exception
    env.globals["strftime_now"] = _strftime_now
    env.filters["tojson"] = _tojson
    try:
        return env.from_string(source)
    except TemplateError as e:
        raise ModelLoadError(f"the model's chat template does not compile: {e}") from None
