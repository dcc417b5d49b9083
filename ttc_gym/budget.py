"""The test-time budget: at most H episodes and/or C0 tokens (docs/formulation.md §1)."""

from __future__ import annotations

from dataclasses import dataclass

from ttc_gym.validation import check_int


#: The most episodes a budget allows (TTC-Sim-v0's cap too): observations count episodes in
#: numpy integers, and no reasoning run needs more.
MAX_EPISODES = 1000
#: The most tokens a budget allows (a billion; token counts are numpy integers in observations).
MAX_TOKENS = 10**9

@dataclass(frozen=True)
class Budget:
    """How much test-time compute one problem may use.

    Attributes:
        max_episodes: H, the most episodes (env steps that think); None for no episode limit.
        max_tokens: C0, the most generated tokens over all episodes; None for no token limit.
    """

    max_episodes: int | None = 8
    max_tokens: int | None = None

    def __post_init__(self) -> None:
        if self.max_episodes is None and self.max_tokens is None:
            raise ValueError("Budget needs max_episodes (H) or max_tokens (C0); both were None.")
        if self.max_episodes is not None:
            check_int("max_episodes (H)", self.max_episodes, minimum=1, maximum=MAX_EPISODES)
        if self.max_tokens is not None:
            check_int("max_tokens (C0)", self.max_tokens, minimum=1, maximum=MAX_TOKENS)

    def exhausted(self, episodes: int, tokens: int = 0) -> bool:
        """True once `episodes` episodes or `tokens` tokens use up the budget."""
        if self.max_episodes is not None and episodes >= self.max_episodes:
            return True
        return self.max_tokens is not None and tokens >= self.max_tokens

    def tokens_left(self, tokens: int) -> int | None:
        """Tokens still allowed (None when there is no token limit)."""
        return None if self.max_tokens is None else max(0, self.max_tokens - tokens)
