"""Write reasoning traces with an agent on a problem source (docs/traces.md).

The traces are written by the same agent path that writes episodes for TTC-Math-v0 — an agent with
`act_batch(observations, infos, seeds)` (or `write_batch`, which also reports token ids), such as
`ttc_gym.agents.llm.LLMAgent` over any engine, which the command line builds — one episode per step,
all traces of a batch of problems in one call. A trace ends when an episode commits an answer (a
`\\boxed{}`, as in TTC-Math-v0) or after `max_episodes` episodes. Nothing here calls a model
itself; the prover is not run (`ttc_gym.traces.analyze` measures J afterwards).

**Budget forcing** (`budget_forcing=W`): once a trace has ended, it is forced on W more times, each
time with one more episode that starts with the next cue of `ttc_gym.prompts.BUDGET_FORCING_CUES`
("Wait", "But wait", "Alternatively", "But hold on", in turn) and goes on as the model writes it.
This follows MRT's extrapolation analysis (GitHub CMU-AIRe/MRT, analysis/code/pass_at_k_extrapolate.py,
Appendix F of the paper), which appends those strings to a finished thought W times, and s1's budget
forcing (Muennighoff et al. 2025, §3.1), which appends "Wait" where the model would stop. The trace
records `natural_episodes` (where forcing began), so that `ttc_gym.traces.report` can show J before
and after each extension. Where we differ from MRT: the trace's commit stays in it (MRT's thought
ends at `</think>`, before the answer; here the episode that wrote `\\boxed{}` is where the model
stopped, and s1 likewise keeps the thought and appends "Wait"); an extension is one episode (a
paragraph of at most the agent's episode tokens) where MRT's runs up to 2048 tokens to the next
`</think>`; J after each extension is measured by the prover's K forced answers (MRT: R full rollouts
every second extension). A trace cut by `max_episodes` is forced on as well, as MRT forces thoughts
cut by their token limit.
"""

from __future__ import annotations

import inspect
import json
import os
import sys
from pathlib import Path
from typing import Any, Sequence

import numpy as np

from ttc_gym.answer_extraction import extract_boxed
from ttc_gym.prompts import BUDGET_FORCING_CUES
from ttc_gym.seeding import prefix_seed
from ttc_gym.traces.format import RawTrace
from ttc_gym.validation import check_int


def draw_problems(source: Any, n: int, seed: int) -> list:
    """`n` distinct problems (by id) drawn from a problem source with `np.random.default_rng(seed)`;
    ValueError when the source has fewer."""
    from ttc_gym.problems import make_source

    n = check_int("the number of problems (--n)", n, minimum=1)
    source = make_source(source)
    rng = np.random.default_rng(seed)
    problems, seen = [], set()
    for _ in range(100 * n + 100):
        if len(problems) == n:
            break
        p = source.sample(rng)
        if p.id not in seen:
            seen.add(p.id)
            problems.append(p)
    if len(problems) < n:
        raise ValueError(f"the problem source gave only {len(problems)} distinct problems; asked for {n}.")
    return problems


def collect_traces(agent: Any, problems: Sequence[Any], *, traces_per_problem: int = 2, max_episodes: int = 6,
                   seed: int = 0, batch_problems: int = 4, model: str | None = None,
                   count_tokens: Any = None, progress: bool = False, budget_forcing: int = 0) -> list[RawTrace]:
    """`traces_per_problem` traces of each problem, written by `agent` one episode per step.

    Trace m of problem p is sampled with the seed `prefix_seed(seed, p.id, m)`, so a trace does not
    depend on which others share its batch. Episode token counts come from the agent's token ids
    (`write_batch`) or from `count_tokens(text)`; a forced episode's also count its cue.
    `budget_forcing`: W extensions of every trace after it ended (module docstring); they need an
    agent whose `write_batch` takes `cues`.
    """
    check_int("traces_per_problem", traces_per_problem, minimum=1)
    check_int("budget_forcing", budget_forcing, minimum=0)
    if budget_forcing and not _takes_cues(agent):
        raise TypeError(f"budget forcing needs an agent with write_batch(observations, infos, seeds, cues) "
                        f"(e.g. ttc_gym.agents.llm.LLMAgent), got {type(agent).__name__}.")
    check_int("max_episodes", max_episodes, minimum=1)
    check_int("batch_problems", batch_problems, minimum=1)
    count = count_tokens or getattr(getattr(agent, "engine", None), "count_tokens", None)
    traces: list[RawTrace] = []
    bar = None
    if progress:
        from tqdm import tqdm

        bar = tqdm(total=len(problems), desc="problems", unit="problem", file=sys.stderr, dynamic_ncols=True)
    for b in range(0, len(problems), batch_problems):
        batch = [(p, m) for p in problems[b:b + batch_problems] for m in range(traces_per_problem)]
        episodes: list[list[str]] = [[] for _ in batch]
        tokens: list[list[int]] = [[] for _ in batch]
        done = [False] * len(batch)

        def write(live: list[int], cue: str = "") -> None:  # one more episode of each trace in `live`
            obs = [{"problem": batch[i][0].question, "episodes": tuple(episodes[i])} for i in live]
            seeds = [prefix_seed(seed, batch[i][0].id, str(batch[i][1])) for i in live]
            infos = [{} for _ in live]
            if hasattr(agent, "write_batch"):
                written = (agent.write_batch(obs, infos, seeds, cues=[cue] * len(live)) if cue
                           else agent.write_batch(obs, infos, seeds))
                texts = [w.text for w in written]
                counts = [len(w.token_ids) + (_count(count, cue) if cue else 0) if w.token_ids else None
                          for w in written]
            else:
                texts, counts = list(agent.act_batch(obs, infos, seeds)), [None] * len(live)
            for i, text, n in zip(live, texts, counts):
                episodes[i].append(text)
                tokens[i].append(n if n is not None else _count(count, text))
                if not cue and extract_boxed(text) is not None:
                    done[i] = True

        for _ in range(max_episodes):
            live = [i for i in range(len(batch)) if not done[i]]
            if not live:
                break
            write(live)
        natural = [len(eps) for eps in episodes]
        finals = [extract_boxed(eps[-1]) if eps else None for eps in episodes]
        for w in range(budget_forcing):
            write(list(range(len(batch))), BUDGET_FORCING_CUES[w % len(BUDGET_FORCING_CUES)])
        for (p, m), eps, toks, n, final in zip(batch, episodes, tokens, natural, finals):
            traces.append(RawTrace(problem_id=p.id, problem=p.question, answer=p.answer,
                                   trace="\n\n".join(e.strip() for e in eps), trace_id=f"{p.id}#{m}", model=model,
                                   tokens=sum(toks), episodes=tuple(eps), episode_tokens=tuple(toks),
                                   final_answer=final, natural_episodes=n if budget_forcing else None))
        if bar is not None:
            bar.update(len(problems[b:b + batch_problems]))
    if bar is not None:
        bar.close()
    return traces


def _takes_cues(agent: Any) -> bool:
    write = getattr(agent, "write_batch", None)
    if write is None:
        return False
    try:
        params = inspect.signature(write).parameters
    except (TypeError, ValueError):  # a builtin without a signature: let the call tell
        return True
    return "cues" in params or any(p.kind is inspect.Parameter.VAR_KEYWORD for p in params.values())


def _count(count_tokens: Any, text: str) -> int:
    return count_tokens(text) if count_tokens else len(text.split())


def write_raw_traces(traces: Sequence[RawTrace], path: str | Path) -> Path:
    """Write raw traces as JSONL (via a temporary file, then renamed: never a half-written file)."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + ".tmp")
    with tmp.open("w", encoding="utf-8") as f:
        for t in traces:
            f.write(json.dumps(t.to_row(), ensure_ascii=False) + "\n")
    os.replace(tmp, path)
    return path
