"""The one interface every model engine implements (`Engine`, and `TrainableEngine` for trainers),
its value types, and the helpers every backend shares (stop rules, argument checks, chat prompts).

An engine turns prompts into sampled completions. Everything above it (envs, the prover, agents)
talks to this interface only, so a CPU transformers model and a GPU vLLM server are interchangeable.

This module imports no backend (and neither torch nor transformers); engines are built from specs by
`ttc_gym.engines.registry.make_engine`.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol, runtime_checkable

from ttc_gym.answer_extraction import closing_brace  # the one brace scanner, re-exported for the engines
from ttc_gym.validation import check_float, check_int, check_temperature

FINISH_REASONS = ("stop", "length")


@dataclass(frozen=True)
class SamplingConfig:
    """How to sample completions.

    Attributes:
        max_new_tokens: most tokens generated per completion (>= 1).
        temperature: softmax temperature (>= 0); 0 means greedy decoding (then every one of the
            `n` completions of a prompt is the same text).
        top_p: nucleus-sampling mass in (0, 1]; 1.0 disables it. No top-k filtering is applied.
        stop: strings that end a completion. The completion's text is cut just BEFORE the earliest
            occurrence of any of them (the stop string itself is excluded) and the matched string
            is recorded in `Completion.stop_reason`. A single string is accepted as a 1-tuple.
        n: completions sampled per prompt (>= 1).
        stop_at_closing_brace: also end a completion at its first `}` that closes a brace the
            prompt left open (a `}` matching no `{` of the completion), e.g. the end of the answer
            after a prompt that ends with `\\boxed{`. The text is cut before that brace and
            `stop_reason` is "}". A forced answer is then done in a few tokens, instead of running
            on after its box closes (see `closing_brace`).
    """

    max_new_tokens: int = 256
    temperature: float = 0.7
    top_p: float = 1.0
    stop: tuple[str, ...] = ()
    n: int = 1
    stop_at_closing_brace: bool = False

    def __post_init__(self) -> None:
        set_ = object.__setattr__
        set_(self, "max_new_tokens", check_int("max_new_tokens", self.max_new_tokens, minimum=1))
        set_(self, "temperature", check_temperature("temperature", self.temperature))
        top_p = check_float("top_p", self.top_p, maximum=1.0)
        if top_p <= 0.0:
            raise ValueError(f"top_p must be in (0, 1], got {top_p}.")
        set_(self, "top_p", top_p)
        set_(self, "stop", _check_stop(self.stop))
        set_(self, "n", check_int("n", self.n, minimum=1))
        if not isinstance(self.stop_at_closing_brace, bool):
            raise TypeError(f"stop_at_closing_brace must be a bool, got {self.stop_at_closing_brace!r}.")

    @property
    def greedy(self) -> bool:
        return self.temperature == 0.0


def _check_stop(stop: Any) -> tuple[str, ...]:
    if isinstance(stop, str):
        stop = (stop,)
    try:
        items = tuple(stop)
    except TypeError:
        raise TypeError(
            f"stop must be a sequence of strings such as ('\\n\\n',), got {stop!r} "
            f"({type(stop).__name__})."
        ) from None
    for i, s in enumerate(items):
        if not isinstance(s, str):
            raise TypeError(f"stop[{i}] must be a string, got {s!r} ({type(s).__name__}).")
        if not s:
            raise ValueError(f"stop[{i}] is an empty string; every stop string must be non-empty.")
    return items


CLOSING_BRACE = "}"


def find_stop(text: str, sampling: SamplingConfig) -> tuple[int, str] | None:
    """(index, stop) where `sampling`'s stop rules cut `text`: the earliest stop string (the longest
    on a tie) or, with `stop_at_closing_brace`, the closing brace ("}"); None when nothing matches.
    Every engine cuts its completions here."""
    best: tuple[int, str] | None = None
    for s in sampling.stop:
        k = text.find(s)
        if k >= 0 and (best is None or k < best[0] or (k == best[0] and len(s) > len(best[1]))):
            best = (k, s)
    if sampling.stop_at_closing_brace:
        k = closing_brace(text)
        if k is not None and (best is None or k < best[0]):
            best = (k, CLOSING_BRACE)
    return best


def tokens_to_stop(token_ids: Sequence[int], sampling: SamplingConfig, decode: Any) -> int:
    """Fewest leading tokens of `token_ids` whose text (`decode(ids)`) `sampling`'s stop rules cut,
    by binary search (all of them when none do): a completion's `num_tokens`."""
    lo, hi = 1, len(token_ids)
    while lo < hi:
        mid = (lo + hi) // 2
        if find_stop(decode(token_ids[:mid]), sampling) is not None:
            hi = mid
        else:
            lo = mid + 1
    return hi


@dataclass(frozen=True)
class Completion:
    """One sampled completion.

    Attributes:
        text: the generated text, without the prompt, cut before the matched stop string (which is
            excluded) and without the end-of-sequence token.
        num_tokens: tokens the model generated for this completion, padding excluded: up to and
            including the token that completed the stop string, or up to and including the EOS
            token, or `max_new_tokens` when cut by length. Always between 0 and max_new_tokens.
        finish_reason: "stop" (a stop string matched or the model emitted EOS) or "length"
            (max_new_tokens reached).
        stop_reason: the stop string that matched, or None (EOS or length).
        token_ids: the ids of those `num_tokens` tokens as sampled (what a trainer scores: the
            text may tokenize differently); empty when the engine does not report them. Not
            compared by `==` (two engines giving the same text are equal).
    """

    text: str
    num_tokens: int
    finish_reason: str
    stop_reason: str | None = field(default=None)
    token_ids: tuple[int, ...] = field(default=(), compare=False)

    def __post_init__(self) -> None:
        if self.finish_reason not in FINISH_REASONS:
            raise ValueError(
                f"finish_reason must be one of {FINISH_REASONS}, got {self.finish_reason!r}."
            )
        check_int("num_tokens", self.num_tokens, minimum=0)
        object.__setattr__(self, "token_ids", tuple(int(t) for t in self.token_ids))
        if self.token_ids and len(self.token_ids) != self.num_tokens:
            raise ValueError(
                f"token_ids has {len(self.token_ids)} ids for num_tokens={self.num_tokens}; give one id per "
                "generated token, or none."
            )
        if self.stop_reason is not None and self.finish_reason != "stop":
            raise ValueError(
                f"stop_reason={self.stop_reason!r} needs finish_reason='stop', "
                f"got {self.finish_reason!r}."
            )


@runtime_checkable
class Engine(Protocol):
    """What every model engine provides.

    `name` identifies the engine (e.g. "transformers:SmolLM2-135M-Instruct.Q4_1.gguf").

    Optional: an engine whose `generate` accepts one seed per prompt sets the class attribute
    `per_prompt_seeds = True` (see `generate`); callers go through `generate_per_prompt`, which
    falls back to one call per prompt for engines without it.
    """

    name: str

    def generate(
        self, prompts: Sequence[str], sampling: SamplingConfig, *, seed: int | Sequence[int] | None
    ) -> list[list[Completion]]:
        """`sampling.n` completions for each prompt: result[i][j] is sample j of prompts[i].

        The same prompts, config and integer seed give the same texts. seed=None draws fresh
        randomness. Engines never touch global random state (torch, numpy, random).

        Engines with `per_prompt_seeds = True` also accept a sequence of seeds, one per prompt
        (len(seed) == len(prompts)): then prompts[i]'s samples depend only on prompts[i], the config
        and seed[i], so `generate(prompts, sampling, seed=seeds)[i]` equals
        `generate([prompts[i]], sampling, seed=seeds[i])[0]` (where the backend permits: up to float
        rounding of batched arithmetic), and batching prompts never changes their texts.
        """
        ...

    def count_tokens(self, text: str) -> int:
        """Tokens in `text` under this engine's tokenizer (no special tokens added)."""
        ...

    def format_chat(
        self, user: str, assistant_prefix: str = "", system: str | None = None
    ) -> str:
        """The prompt for a chat with one user message, ending inside the assistant's turn.

        The model's chat template is applied to [system?, user] with the generation prompt, then
        `assistant_prefix` is appended verbatim so that generation CONTINUES it. system=None
        keeps the template's own default system message, if it has one.
        """
        ...


@runtime_checkable
class TrainableEngine(Engine, Protocol):
    """What a trainer needs from an engine, on top of `Engine`; `TransformersEngine` and `VLLMEngine`
    both provide it under these names.

    Attributes:
        model: the torch module that generates. On `TransformersEngine` it is the policy itself (a
            trainer may update it in place); on `VLLMEngine` it is the served module when it lives in
            this process, else None (the trainer then keeps its own copy and syncs it with
            `load_weights`).
        tokenizer: the Hugging Face tokenizer the engine encodes and decodes with.
    """

    model: Any
    tokenizer: Any

    def encode(self, prompt: str) -> list[int]:
        """The token ids `generate` conditions on for `prompt`: what a trainer scores a completion
        after (`Completion.token_ids` are the ids sampled after them)."""
        ...

    def load_weights(self, weights: Mapping[str, Any] | Iterable[tuple[str, Any]]) -> str:
        """Copy new weights (a state dict, or (name, tensor) pairs named as in the Hugging Face
        checkpoint) into the generating model, then `reset_prefix_cache()`. Returns the route taken
        (e.g. "in-process")."""
        ...

    def reset_prefix_cache(self) -> None:
        """Forget every cached prompt prefix (its keys and values were computed with the old weights)."""
        ...


def generate_per_prompt(
    engine: Engine, prompts: Sequence[str], sampling: SamplingConfig, seeds: Sequence[int]
) -> list[list[Completion]]:
    """`engine.generate` with one seed per prompt: result[i] is what prompts[i] alone gets with
    seeds[i]. One batched call on engines with `per_prompt_seeds`, else one call per prompt."""
    prompts, seeds = list(prompts), list(seeds)
    if len(prompts) != len(seeds):
        raise ValueError(f"generate_per_prompt needs one seed per prompt, got {len(seeds)} for {len(prompts)}.")
    if not prompts:
        return []
    if getattr(engine, "per_prompt_seeds", False):
        return engine.generate(prompts, sampling, seed=seeds)
    return [engine.generate([p], sampling, seed=s)[0] for p, s in zip(prompts, seeds)]


def check_generate_args(prompts: Any, sampling: Any) -> list[str]:
    """The prompts of an `Engine.generate` call as a list, after checking both arguments' types."""
    if isinstance(prompts, str):
        raise TypeError("prompts must be a sequence of strings, got a single string; wrap it in a list.")
    prompts = list(prompts)
    for i, p in enumerate(prompts):
        if not isinstance(p, str):
            raise TypeError(f"prompts[{i}] must be a string, got {type(p).__name__}.")
    if not isinstance(sampling, SamplingConfig):
        raise TypeError(f"sampling must be a SamplingConfig, got {type(sampling).__name__}.")
    return prompts


# ChatML, the layout used when a tokenizer carries no chat template (SmolLM2's own format).
CHATML_SYSTEM = "<|im_start|>system\n{content}<|im_end|>\n"
CHATML_USER = "<|im_start|>user\n{content}<|im_end|>\n"
CHATML_ASSISTANT = "<|im_start|>assistant\n"


def chat_prompt(tokenizer: Any, user: str, assistant_prefix: str = "", system: str | None = None) -> str:
    """`Engine.format_chat` for any HF-style tokenizer: its chat template (ChatML without one) around
    [system?, user] with the generation prompt, then `assistant_prefix` verbatim."""
    for arg, value in (("user", user), ("assistant_prefix", assistant_prefix)):
        if not isinstance(value, str):
            raise TypeError(f"{arg} must be a string, got {type(value).__name__}.")
    if system is not None and not isinstance(system, str):
        raise TypeError(f"system must be a string or None, got {type(system).__name__}.")
    messages = [] if system is None else [{"role": "system", "content": system}]
    messages.append({"role": "user", "content": user})
    if getattr(tokenizer, "chat_template", None):
        prompt = tokenizer.apply_chat_template(messages, tokenize=False, add_generation_prompt=True)
    else:
        prompt = "".join(
            (CHATML_SYSTEM if m["role"] == "system" else CHATML_USER).format(content=m["content"])
            for m in messages
        ) + CHATML_ASSISTANT
    return prompt + assistant_prefix
