"""The LLM trainer sampling its rollouts on another engine (vLLM) and across Ray workers, on a CPU:
a vLLM-shaped fake over the tiny random model (`ttc_gym.engines.testing.TorchVLLM`)."""

from __future__ import annotations

import copy

import pytest
import torch

from ttc_gym.agents.llm import LLMAgent
from ttc_gym.training.llm_config import LLMTrainConfig
from ttc_gym.training.llm_rollouts import collect_batch, make_envs, plan_iteration
from ttc_gym.training.llm_train import train
from ttc_gym.engines.testing import tiny_random_engine, torch_vllm_engine
from ttc_gym.problems import make_source

FAST = dict(algo="mrt-online", iterations=2, problems_per_iter=2, group_size=2, max_episodes=2, max_episode_tokens=8,
            num_prover_samples=2, env_kwargs={"max_answer_tokens": 4}, micro_batch_size=4, lr=1e-2,
            tensorboard=False)


def _config(tmp_path, **kw) -> LLMTrainConfig:
    return LLMTrainConfig(**{**FAST, "out": str(tmp_path / "run"), **kw})


def _vllm_copy(engine):
    """A vLLM engine (the fake) serving its own copy of `engine`'s model, as a real vLLM serves its own weights."""
    own = tiny_random_engine(seed=0)
    own.model.load_state_dict(copy.deepcopy(engine.model.state_dict()))
    return torch_vllm_engine(own)


def test_the_vllm_path_gets_the_trained_weights_and_a_reset_cache_every_iteration(tmp_path):
    policy = tiny_random_engine(seed=3)
    sampler = torch_vllm_engine(tiny_random_engine(seed=9))  # other weights until the first sync
    llm = sampler.llm
    policy_calls = []
    original = policy.generate
    policy.generate = lambda *a, **k: (policy_calls.append(1), original(*a, **k))[1]
    loads_seen = []
    result = train(_config(tmp_path, iterations=3), policy_engine=policy, sampling_engine=sampler,
                   log=lambda row: loads_seen.append((llm.served.loads, llm.resets)))
    # One push before the first iteration, then one after each update; each push resets the cache once.
    assert loads_seen == [(2, 2), (3, 3), (4, 4)]
    assert llm.calls > 0 and not policy_calls  # the rollouts (and the policy prover's J) came from vLLM
    assert sampler.weights_version == 4  # one bump per load_weights
    served = llm.engine.model.state_dict()
    for name, value in policy.model.state_dict().items():
        torch.testing.assert_close(served[name], value, rtol=0, atol=0)
    assert result.step == 3


def test_a_frozen_prover_on_another_engine_and_never_the_sampling_one(tmp_path):
    policy, prover = tiny_random_engine(seed=3), tiny_random_engine(seed=4)
    sampler = _vllm_copy(policy)
    prover_calls = []
    original = prover.generate
    prover.generate = lambda *a, **k: (prover_calls.append(1), original(*a, **k))[1]
    train(_config(tmp_path, iterations=1, prover="frozen"), policy_engine=policy, sampling_engine=sampler,
          prover_engine=prover)
    assert prover_calls and sampler.llm.served.loads == 2
    with pytest.raises(ValueError, match="frozen prover must not share"):
        train(_config(tmp_path / "b", iterations=1, prover="frozen"), policy_engine=policy,
              sampling_engine=sampler, prover_engine=sampler)


def test_vllm_rollouts_equal_transformers_rollouts_for_the_same_sampled_ids(tmp_path):
    """Greedy sampling (policy and prover): the fake samples exactly the transformers engine's ids, so
    everything the env says must agree; the prompt ids are those each engine conditioned on."""
    config = _config(tmp_path, temperature=0.0, env_kwargs={"max_answer_tokens": 4, "prover_temperature": 0.0})
    engine = tiny_random_engine(seed=5)
    sampler = _vllm_copy(engine)
    runs = []
    for e in (engine, sampler):
        envs = make_envs(config, e)
        agent = LLMAgent(e, max_episode_tokens=config.max_episode_tokens, temperature=0.0,
                         template=envs.template, seed=config.seed)
        runs.append(collect_batch(envs, agent, plan_iteration(config, make_source(config.source), 0)))
        envs.close()
    plain, served = runs
    assert sum(len(ro.episodes) for ro in plain) > len(plain)  # the trace grew past one episode somewhere
    for a, b in zip(plain, served, strict=True):
        assert (a.group, a.prompts, a.episodes, a.episode_ids) == (b.group, b.prompts, b.episodes, b.episode_ids)
        assert (a.progress, a.cost, a.reward, a.outcome, a.j0, a.j_final) == \
            (b.progress, b.cost, b.reward, b.outcome, b.j0, b.j_final)
        assert b.prompt_ids == [sampler.encode(p) for p in b.prompts]
        assert a.prompt_ids == [engine.encode(p) for p in a.prompts]


def test_engine_options_are_checked_before_any_model_loads(tmp_path):
    for bad in ("vllm:", "vllm: ", "sglang", ""):
        with pytest.raises(ValueError, match="engine must be one of"):
            _config(tmp_path, engine=bad)
    with pytest.raises(ValueError, match="configure a vLLM engine"):
        _config(tmp_path, engine_kwargs={"gpu_memory_utilization": 0.4})
    with pytest.raises(TypeError, match="engine_kwargs must be a dict"):
        _config(tmp_path, engine="vllm", engine_kwargs=[1])
    assert _config(tmp_path).vllm_model is None
    assert _config(tmp_path, engine="vllm:org/name").vllm_model == "org/name"
    assert _config(tmp_path, engine="vllm", model="transformers:org/name").vllm_model == "org/name"
    frozen = _config(tmp_path, prover_model="vllm:org/prover")  # a vLLM prover is checked when built
    assert frozen.prover == "frozen" and frozen.prover_model == "vllm:org/prover"


@pytest.fixture(scope="module")
def local_ray():
    ray = pytest.importorskip("ray")
    ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False, ignore_reinit_error=True)
    yield ray
    ray.shutdown()


def test_ray_sharded_rollouts_equal_one_process_rollouts(tmp_path, local_ray):
    from functools import partial

    from ttc_gym.training.llm_ray import RayRollouts, shards

    assert shards(5, 2) == [(0, 3), (3, 5)] and shards(1, 2) == [(0, 1), (1, 1)]
    config = _config(tmp_path, problems_per_iter=3)
    plans = plan_iteration(config, make_source(config.source), 0)
    engine = tiny_random_engine(seed=6)
    envs = make_envs(config, engine)
    agent = LLMAgent(engine, max_episode_tokens=config.max_episode_tokens, temperature=config.temperature,
                     top_p=config.top_p, template=envs.template, seed=config.seed)
    with torch.inference_mode():
        alone = collect_batch(envs, agent, plans)
    envs.close()
    remote = RayRollouts(config, 2, engine_factory=partial(tiny_random_engine, seed=6), make_envs=make_envs,
                         collect_batch=collect_batch)
    try:
        sharded = remote.collect(plans)
        assert [vars(r) for r in sharded] == [vars(r) for r in alone]
        # Broadcast other weights: every worker loads them, and the rollouts become those of the new weights.
        other = tiny_random_engine(seed=7)
        assert remote.sync(other.model.state_dict()) == [1, 1]
        envs = make_envs(config, other)
        agent = LLMAgent(other, max_episode_tokens=config.max_episode_tokens, temperature=config.temperature,
                         top_p=config.top_p, template=envs.template, seed=config.seed)
        with torch.inference_mode():
            alone_other = collect_batch(envs, agent, plans)
        envs.close()
        assert [vars(r) for r in remote.collect(plans)] == [vars(r) for r in alone_other] != [vars(r) for r in alone]
    finally:
        remote.close()


def test_training_with_ray_workers_matches_one_process(tmp_path, local_ray):
    from functools import partial

    rows = {}
    for workers in (0, 2):
        result = train(_config(tmp_path / str(workers), ray_workers=workers), policy_engine=tiny_random_engine(seed=6),
                       ray_engine_factory=partial(tiny_random_engine, seed=0))  # the first sync overwrites seed 0
        rows[workers] = [{k: ("nan" if v != v else v) for k, v in row.items() if k != "wall_s"}
                         for row in result.history]
    assert rows[2] == rows[0] and len(rows[0]) == 2
