"""The micro-reasoner's tokenizer: a small byte-level BPE built locally from the training texts.

A digit is always a token of its own, with the space before it if any (the model does arithmetic digit
by digit: " 1", "5" for " 15"), every other piece of
text is split as GPT-2 splits it and merged by BPE; ChatML's turn markers are special tokens, and
the tokenizer carries no chat template, so `ttc_gym.engines.base.chat_prompt` formats its chats as
ChatML — the prompts the micro traces are built with (`ttc_gym.micro.traces`). Built by
`build_tokenizer` (deterministic for the same texts), wrapped as a `PreTrainedTokenizerFast`.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

IM_START = "<|im_start|>"
IM_END = "<|im_end|>"
PAD = "<|pad|>"
SPECIAL_TOKENS = (PAD, IM_START, IM_END)
DEFAULT_VOCAB_SIZE = 384


def build_tokenizer(texts: Iterable[str], vocab_size: int = DEFAULT_VOCAB_SIZE) -> Any:
    """A `PreTrainedTokenizerFast` whose BPE merges are learnt from `texts` (at most `vocab_size`
    tokens, the 256 byte tokens and the special tokens included); end of sequence `<|im_end|>`,
    padding `<|pad|>`, no BOS."""
    from tokenizers import Regex, Tokenizer, decoders, models, pre_tokenizers, trainers
    from transformers import PreTrainedTokenizerFast

    if vocab_size < 256 + len(SPECIAL_TOKENS):
        raise ValueError(f"vocab_size must hold the 256 byte tokens and {len(SPECIAL_TOKENS)} special tokens "
                         f"(>= {256 + len(SPECIAL_TOKENS)}), got {vocab_size}.")
    tok = Tokenizer(models.BPE())
    tok.pre_tokenizer = pre_tokenizers.Sequence([
        pre_tokenizers.Split(Regex(r" ?[0-9]"), behavior="isolated"),  # a digit (and a space before it)
        pre_tokenizers.ByteLevel(add_prefix_space=False, use_regex=True),
    ])
    tok.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(vocab_size=vocab_size, special_tokens=list(SPECIAL_TOKENS), show_progress=False,
                                  initial_alphabet=pre_tokenizers.ByteLevel.alphabet())
    tok.train_from_iterator(texts, trainer=trainer)
    return PreTrainedTokenizerFast(tokenizer_object=tok, eos_token=IM_END, pad_token=PAD,
                                   additional_special_tokens=[IM_START], clean_up_tokenization_spaces=False)
