"""Train a byte-level BPE tokenizer (the ``tokenizers`` library) with ChatML special tokens."""

from __future__ import annotations

from collections.abc import Iterable

from tokenizers import Regex, decoders, models, pre_tokenizers, trainers
from tokenizers import Tokenizer as HFTokenizer

from engine.tokenizer import CHATML_TEMPLATE, Tokenizer

EOS_TOKEN = "<|endoftext|>"
IM_START = "<|im_start|>"
IM_END = "<|im_end|>"
SPECIAL_TOKENS = (EOS_TOKEN, IM_START, IM_END)
MIN_VOCAB = 256 + len(SPECIAL_TOKENS)


# One Han character, CJK ideograph extension or compatibility ideograph.
CJK_IDEOGRAPH = r"[\p{Han}]"


def train_tokenizer(
    texts: Iterable[str], vocab_size: int, *, isolate_cjk: bool = False
) -> Tokenizer:
    """A byte-level BPE of at most ``vocab_size`` ids learned from ``texts``, with the chat
    special tokens at ids 0..2 and the ChatML template (the engine's default format).

    ``isolate_cjk`` makes every Chinese/Japanese ideograph its own pre-token, so merges never
    join characters into corpus-specific words ("发给模型", "的快捷键是什么"); GPT-2's
    pre-tokenizer would treat a whole run of Han characters as one word. Small Chinese corpora
    generalise better to new phrasings that way, at about twice the tokens per Chinese text."""
    if vocab_size < MIN_VOCAB:
        raise ValueError(f"vocab_size must be at least {MIN_VOCAB} (256 bytes + special tokens)")
    hf = HFTokenizer(models.BPE())
    byte_level = pre_tokenizers.ByteLevel(add_prefix_space=False, use_regex=True)
    if isolate_cjk:
        split = pre_tokenizers.Split(Regex(CJK_IDEOGRAPH), behavior="isolated")
        hf.pre_tokenizer = pre_tokenizers.Sequence([split, byte_level])
    else:
        hf.pre_tokenizer = byte_level
    hf.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(
        vocab_size=vocab_size,
        min_frequency=2,
        special_tokens=list(SPECIAL_TOKENS),
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
        show_progress=False,
    )
    hf.train_from_iterator(texts, trainer=trainer)
    return Tokenizer(hf, chat_template=CHATML_TEMPLATE, eos_token=IM_END)
