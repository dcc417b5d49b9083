"""`--algo mrt` in the LLM trainer (ttc_gym/training/llm_branches.py): prefixes written by a behaviour
policy, branches that continue or terminate on TTC-Math-v0 reset to the prefix, and a loss whose
gradient reaches only the branches' own tokens, never the prefix's (tiny random engines)."""

from __future__ import annotations

import csv

import numpy as np
import torch

from ttc_gym.agents.llm import LLMAgent
from ttc_gym.engines.testing import tiny_random_engine
from ttc_gym.problems import make_source
from ttc_gym.training import algorithms as alg
from ttc_gym.training.llm_branches import plan_branches, write_prefixes
from ttc_gym.training.llm_config import LLMTrainConfig
from ttc_gym.training.llm_loss import accumulate
from ttc_gym.training.llm_rollouts import collect_batch, make_envs
from ttc_gym.training.llm_policy import stale_copy
from ttc_gym.training.llm_train import train

FAST = dict(algo="mrt", iterations=1, problems_per_iter=2, group_size=2, terminations=1, max_episodes=3,
            max_episode_tokens=6, num_prover_samples=2, env_kwargs={"max_answer_tokens": 4}, micro_batch_size=4,
            lr=1e-2, tensorboard=False, temperature=1.0)


def _config(tmp_path, **kw) -> LLMTrainConfig:
    return LLMTrainConfig(**{**FAST, "out": str(tmp_path / "run"), **kw})


def _branches(tmp_path, seed=0, **kw):
    config = _config(tmp_path, **kw)
    engine = tiny_random_engine(seed=seed)
    envs = make_envs(config, engine, num_envs=config.problems_per_iter * (config.group_size + config.terminations))
    agent = LLMAgent(engine, max_episode_tokens=6, temperature=1.0, template=envs.template)
    plans = plan_branches(config, make_source(config.source), 0, agent)
    with torch.inference_mode():
        rollouts = collect_batch(envs, agent, plans)
    return config, engine, plans, rollouts


def test_branches_start_after_their_prefix_and_terminating_ones_answer_at_once(tmp_path):
    config, engine, plans, rollouts = _branches(tmp_path)
    assert [p.branch for p in plans] == ["continue", "continue", "terminate"] * 2
    for p, ro in zip(plans, rollouts):
        assert len(p.prefix) < config.max_episodes and ro.prefix_episodes == len(p.prefix)
        assert ro.branch == p.branch and ro.group == p.group
        for episode in p.prefix:  # the prefix is in the branch's prompt ...
            assert episode.strip() in ro.prompts[0]
        if p.branch == "terminate":  # ... and a terminating branch writes one episode: its committed answer
            assert len(ro.episodes) == 1 and "\\boxed{" in ro.episodes[0] and ro.episode_ids[0]
        else:
            assert 1 <= len(ro.episodes) <= config.max_episodes - len(p.prefix)  # the budget counts the prefix
    # The branches of one prefix share J at the prefix, the prover's (their j0).
    for g in range(config.problems_per_iter):
        assert len({ro.j0 for ro in rollouts if ro.group == g}) == 1


def test_a_prefix_is_reasoning_only():
    engine = tiny_random_engine(seed=3)

    class Commits:
        """Writes a reasoning episode, then commits an answer."""

        def __init__(self):
            self.agent = LLMAgent(engine, max_episode_tokens=4, temperature=1.0)

        def write_batch(self, obs, infos, seeds):
            out = self.agent.write_batch(obs, [{"tokens_left": None}] * len(obs), seeds=seeds)
            return [e if len(o["episodes"]) == 0 else type(e)("So \\boxed{3}.") for e, o in zip(out, obs)]

    problems = [make_source("procedural").sample(np.random.default_rng(k)) for k in range(2)]
    prefixes = write_prefixes(Commits(), problems, [3, 0], [1, 2])
    assert len(prefixes[0]) == 1 and prefixes[1] == ()  # stopped before the answer; k = 0 writes nothing


def test_no_gradient_reaches_the_prefix_tokens(tmp_path):
    config, engine, plans, rollouts = _branches(tmp_path, seed=1)
    model = engine.model
    captured = []
    def keep(module, inputs, out):  # returns None: the output is left as it is
        out.retain_grad()
        captured.append(out)

    hook = model.lm_head.register_forward_hook(keep)
    try:
        trajs = [ro.trajectory() for ro in rollouts]
        alg.mrt_advantages(trajs, alpha=1.0)  # the credit is defined on these branches ...
        advantages = [np.ones(t.num_episodes) for t in trajs]  # ... but any nonzero one shows where the gradient goes
        accumulate(config, rollouts, lambda t, off, _entropy: alg.pg_loss(t, advantages[off: off + len(t)]), model, None)
    finally:
        hook.remove()
    pairs = [(p, e) for ro in rollouts for p, e in zip(ro.prompt_ids, ro.episode_ids) if e]
    assert len(captured) == len(pairs)
    some_prefix = False
    for logits, (prompt_ids, episode_ids) in zip(captured, pairs):
        grad = logits.grad[0].abs().sum(-1)  # per position: the loss's gradient w.r.t. its logits
        n_prompt = len(prompt_ids)
        # Positions 0..n_prompt-2 predict prompt tokens (the problem AND the prefix): no loss term there.
        assert torch.all(grad[: n_prompt - 1] == 0)
        # The positions that predict the branch's own sampled tokens carry the gradient.
        assert torch.all(grad[n_prompt - 1: n_prompt - 1 + len(episode_ids)] > 0)
    for p, ro in zip(plans, rollouts):
        some_prefix |= bool(p.prefix) and any(len(ids) > 0 for ids in ro.prompt_ids)
    assert some_prefix  # at least one branch had a non-empty prefix in its prompt


def test_mrt_trains_the_llm_with_a_stale_prefix_writer(tmp_path, monkeypatch):
    import ttc_gym.training.llm_train as lt

    real = lt.collect_batch

    def mixed(envs, agent, plans):  # a tiny random model never answers right: one correct branch per prefix
        rollouts = real(envs, agent, plans)
        for i, ro in enumerate(rollouts):
            ro.outcome = float(i == 0 or plans[i].group != plans[i - 1].group)
        return rollouts

    monkeypatch.setattr(lt, "collect_batch", mixed)
    for every, refreshed in ((1, True), (5, False)):
        engine = tiny_random_engine(seed=4)
        initial = {k: v.clone() for k, v in engine.model.state_dict().items()}
        writers = []
        monkeypatch.setattr(lt, "stale_copy", lambda *a: writers.append(stale_copy(*a)) or writers[-1])
        result = train(_config(tmp_path / str(every), iterations=2, stale_every=every), policy_engine=engine)
        assert result.step == 2 and len(writers) == 1 and writers[0] is not engine
        with open(tmp_path / str(every) / "run" / "log.csv", newline="") as f:
            rows = list(csv.DictReader(f))
        assert [float(r["branches_continue"]) for r in rows] == [4.0, 4.0]
        assert [float(r["branches_terminate"]) for r in rows] == [2.0, 2.0]
        assert all(0 <= float(r["prefix_episodes"]) < 3 for r in rows)
        # Iteration 0 loads the policy's (initial) weights into the writer; with stale_every=1 iteration
        # 1 loads the updated ones, with stale_every=5 the writer keeps the initial policy.
        same = all(torch.equal(v, initial[k]) for k, v in writers[0].model.state_dict().items())
        assert same is not refreshed, every
        assert not all(torch.equal(v, initial[k]) for k, v in engine.model.state_dict().items())  # it trained


def test_prefixes_from_a_stored_trace_set(tmp_path):
    from ttc_gym.training.llm_branches import TracePrefixes

    config = _config(tmp_path, prefix_source="traces", prefix_traces="micro_arith", problems_per_iter=6,
                     max_episodes=4)
    traces = TracePrefixes("micro_arith")
    agent = LLMAgent(tiny_random_engine(seed=5), max_episode_tokens=6)
    plans = plan_branches(config, traces, 0, agent)
    assert plans == plan_branches(config, traces, 0, agent)  # seeded by (seed, iteration)
    by_problem = {}
    for row in traces.rows:
        by_problem.setdefault(row["problem_id"], []).append([e["text"] for e in row["episodes"]])
    for p in plans:
        stored = by_problem[p.problem.id]  # a stored trace's problem ...
        assert any(list(p.prefix) == episodes[:len(p.prefix)] for episodes in stored)  # ... and its first episodes
        assert len(p.prefix) < 4 and not any("\\boxed" in e for e in p.prefix)
    assert any(p.prefix for p in plans)
    import pytest
    with pytest.raises(ValueError, match="needs prefix_traces"):
        _config(tmp_path, prefix_source="traces")
    with pytest.raises(ValueError, match="leave source unset"):
        _config(tmp_path, prefix_source="traces", prefix_traces="micro_arith", source="procedural:2")


def test_the_micro_reasoner_is_a_trainer_model_spec(tmp_path):
    from ttc_gym.training.llm_policy import build_policy_engine

    config = _config(tmp_path, model="micro", source="micro:1")
    engine = build_policy_engine(config)
    assert engine.name == "policy:micro" and engine.count_tokens("Step 1: 2 + 3 = 5.") > 0


def test_a_resumed_mrt_run_keeps_its_stale_writer(tmp_path, monkeypatch):
    """With stale_every=5, the writer holds the initial weights for both iterations; a run stopped after
    iteration 1 and resumed must not refresh it with the trained weights (they are in the checkpoint)."""
    import ttc_gym.training.llm_train as lt

    writers = []
    monkeypatch.setattr(lt, "stale_copy", lambda *a: writers.append(stale_copy(*a)) or writers[-1])
    real = lt.collect_batch

    def mixed(envs, agent, plans):  # nonzero credit, so that the policy moves
        rollouts = real(envs, agent, plans)
        for i, ro in enumerate(rollouts):
            ro.outcome = float(i == 0 or plans[i].group != plans[i - 1].group)
        return rollouts

    monkeypatch.setattr(lt, "collect_batch", mixed)
    initial = {k: v.clone() for k, v in tiny_random_engine(seed=6).model.state_dict().items()}
    train(_config(tmp_path, iterations=1, stale_every=5), policy_engine=tiny_random_engine(seed=6))
    result = train(_config(tmp_path, iterations=2, stale_every=5, resume=True), policy_engine=tiny_random_engine(seed=6))
    assert result.step == 2 and len(writers) == 2
    assert all(torch.equal(v, initial[k]) for k, v in writers[1].model.state_dict().items())
