"""An LLM policy for TTC-Math-v0: it writes the next episode of reasoning with an engine.

One episode is one paragraph: generation stops at the template's paragraph break (where MRT's
episode markers — "Wait", "Alternatively", ... — begin a new episode) or at a token cap. When the
model ends its turn without writing anything, it is asked for its final answer instead, and the
episode commits it (`\\boxed{}`).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Sequence

from ttc_gym.agent import problem_seed
from ttc_gym.engines.base import SamplingConfig, generate_per_prompt
from ttc_gym.engines.registry import make_engine
from ttc_gym.prompts import PromptTemplate
from ttc_gym.seeding import prefix_seed
from ttc_gym.validation import check_float, check_int


def commit_text(answer: str) -> str:
    """The episode that commits `answer` as the final answer."""
    return f"The final answer is $\\boxed{{{answer}}}$."


@dataclass(frozen=True)
class Episode:
    """An episode the agent wrote, with what a trainer scores it by.

    text: the episode (the env's action).
    token_ids: the token ids sampled for it; empty when the text was not sampled as such (a
        committed final answer) or the engine does not report ids.
    prompt: the prompt the episode continues (the template's reasoning prompt of the trace).
    prompt_ids: that prompt's token ids as the engine encoded it for generation (`engine.encode`;
        empty when the engine has no `encode`). Re-tokenizing `prompt` can give other ids.
    """

    text: str
    token_ids: tuple[int, ...] = ()
    prompt: str = ""
    prompt_ids: tuple[int, ...] = ()


class LLMAgent:
    """Writes one episode per step.

    Args:
        engine: an Engine, an engine spec for `make_engine`, or None for the default model. The
            bench factories pass the env's own engine so that one model is loaded once.
        max_episode_tokens: token cap of one episode (also capped by `info["tokens_left"]`).
        temperature, top_p: sampling of the episodes (0.2 by default: small models stay coherent;
            RL training usually samples hotter).
        template: the prompts (must match the env's to continue the same trace).
        seed: base seed. `reset(seed=s)` derives the problem's seed from it and s; each episode's
            seed derives from that and the trace, so the same trace always gets the same next episode.
    """

    def __init__(
        self,
        engine: Any = None,
        *,
        max_episode_tokens: int = 64,
        temperature: float = 0.2,
        top_p: float = 1.0,
        template: PromptTemplate | None = None,
        seed: int = 0,
    ):
        self.engine = make_engine(engine)
        self.max_episode_tokens = check_int("max_episode_tokens", max_episode_tokens, minimum=1)
        self.temperature = check_float("temperature", temperature, minimum=0.0)
        self.top_p = check_float("top_p", top_p, minimum=0.0, maximum=1.0)
        self.template = template or PromptTemplate()
        self.base_seed = check_int("seed", seed)
        self.seed = self.base_seed  # the seed of the current problem (see `reset`)

    def reset(self, seed: int | None = None) -> None:
        """Before each problem (`ttc_gym.agent.Agent`): with the problem's seed, `seed` (what each
        episode's sampling seed derives from, with the trace) becomes `problem_seed(base_seed, seed)`,
        so problem i is sampled alike whatever ran before it; with None it stays. No other state."""
        if seed is not None:
            self.seed = problem_seed(self.base_seed, seed)

    def act(self, obs: dict, info: dict) -> str:
        return self.act_batch([obs], [info])[0]

    def act_batch(self, observations: Sequence[dict], infos: Sequence[dict],
                  seeds: Sequence[int] | None = None) -> list[str]:
        """The texts of `write_batch`."""
        return [episode.text for episode in self.write_batch(observations, infos, seeds)]

    def write_batch(self, observations: Sequence[dict], infos: Sequence[dict],
                    seeds: Sequence[int] | None = None, cues: Sequence[str] | None = None) -> list[Episode]:
        """Next episodes for several traces in one engine call (one per distinct token cap), each
        with its prompt and token ids (`Episode`).

        Each trace is sampled with its own seed, derived from the agent's seed and that trace, so
        `act_batch([o], [i]) == [act(o, i)]` and a batch gives what acting on each trace alone gives
        (on engines with per-prompt seeds; others get one call per trace). `seeds` (one per trace)
        replaces the agent's seed trace by trace: `act_batch(obs, infos, seeds)[k]` is what an
        agent with `seed=seeds[k]` writes for trace k (e.g. the G rollouts of a training group).
        `cues` (one per trace, "" for none) start the episodes: trace k's episode is `cues[k]` and what
        the model writes after it (the reasoning prompt ends with the cue; `token_ids` are the written
        part's). Budget forcing uses it (`ttc_gym.prompts.BUDGET_FORCING_CUES`). An empty cue leaves
        the episode and its seed as without `cues`.
        """
        if len(observations) != len(infos):
            raise ValueError(f"act_batch needs one info per observation, got {len(observations)} and {len(infos)}.")
        if seeds is None:
            seeds = [self.seed] * len(observations)
        elif len(seeds) != len(observations):
            raise ValueError(f"act_batch needs one seed per observation, got {len(seeds)} for {len(observations)}.")
        else:
            seeds = [check_int(f"seeds[{k}]", s) for k, s in enumerate(seeds)]
        if cues is None:
            cues = [""] * len(observations)
        elif len(cues) != len(observations) or not all(isinstance(c, str) for c in cues):
            raise ValueError(f"write_batch needs one cue (a string) per observation, got {cues!r:.120} for "
                             f"{len(observations)} observations.")
        groups: dict[int, list[int]] = {}
        for i, info in enumerate(infos):
            groups.setdefault(self._token_cap(info), []).append(i)
        written: list[Episode] = [Episode("")] * len(observations)
        for max_tokens, rows in groups.items():
            sampling = SamplingConfig(
                max_new_tokens=max_tokens, temperature=self.temperature, top_p=self.top_p,
                stop=(self.template.separator,),
            )
            prompts, row_seeds = [], []
            for i in rows:
                question, episodes = observations[i]["problem"], list(observations[i]["episodes"])
                prompts.append(self.template.reasoning_prompt(self.engine, question, episodes, cues[i]))
                cued = (cues[i],) if cues[i] else ()  # no cue: the seed of an uncued episode
                row_seeds.append(prefix_seed(seeds[i], "episode", question, *episodes, "\x00", *cued))
            encode = getattr(self.engine, "encode", None)
            completions = generate_per_prompt(self.engine, prompts, sampling, row_seeds)
            for i, prompt, row in zip(rows, prompts, completions):
                c = row[0]
                prompt_ids = tuple(encode(prompt)) if encode is not None else ()
                text = cues[i] + c.text
                written[i] = (Episode(text, c.token_ids, prompt, prompt_ids) if text.strip()
                              else Episode(commit_text(self.final_answer(observations[i])), (), prompt, prompt_ids))
        return written

    def answer_batch(self, observations: Sequence[dict], seeds: Sequence[int]) -> list[Episode]:
        """The policy's own answer, forced now, for each trace: the episode that commits it (MRT's
        terminating branch, "close the thinking and answer").

        The answer is sampled at the agent's temperature after the template's forced-answer prompt
        (`PromptTemplate.forced_answer_prompt`, as the prover's), trace k with a seed derived from
        `seeds[k]` and the trace. The Episode's `text` commits it (`commit_text`; an empty answer
        commits "none", graded wrong), its `prompt` / `prompt_ids` are the forced-answer prompt and
        its `token_ids` the sampled answer tokens: a trainer scores those given that prompt."""
        if len(seeds) != len(observations):
            raise ValueError(f"answer_batch needs one seed per observation, got {len(seeds)} for {len(observations)}.")
        sampling = self.template.answer_sampling(self.template.answer_tokens, self.temperature)
        prompts, row_seeds = [], []
        for obs, seed in zip(observations, seeds):
            question, episodes = obs["problem"], list(obs["episodes"])
            prompts.append(self.template.forced_answer_prompt(self.engine, question, episodes))
            row_seeds.append(prefix_seed(check_int("seed", seed), "answer", question, *episodes, "\x00"))
        encode = getattr(self.engine, "encode", None)
        written = []
        for prompt, row in zip(prompts, generate_per_prompt(self.engine, prompts, sampling, row_seeds)):
            c = row[0]
            answer = self.template.answer_of(c.text) or "none"
            written.append(Episode(commit_text(answer), c.token_ids, prompt, tuple(encode(prompt)) if encode else ()))
        return written

    def _token_cap(self, info: dict) -> int:
        left = info.get("tokens_left")
        return self.max_episode_tokens if left is None else max(1, min(self.max_episode_tokens, int(left)))

    def final_answer(self, obs: dict) -> str:
        """The model's answer when forced to stop now (greedy)."""
        prompt = self.template.forced_answer_prompt(self.engine, obs["problem"], list(obs["episodes"]))
        sampling = self.template.answer_sampling(self.template.answer_tokens, 0.0)
        answer = self.template.answer_of(self.engine.generate([prompt], sampling, seed=0)[0][0].text)
        return answer or "0"
