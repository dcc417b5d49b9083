"""The LLM trainer learns, not only runs: a short seeded MRT run on the micro task raises the
micro-reasoner's held-out accuracy above the base checkpoint's by more than run-to-run noise.

Measured on 2 shared CPU cores (torch 2.13 CPU, one thread), with exactly this test's settings
(MRT, lr 1e-4, 16 iterations of 8 problems x 8 rollouts of `micro:1`, H = 4, K = 4, episodes at
temperature 1.0; held-out: 32 other `micro:1` problems x 4 rollouts, evaluation seeds 777 and 778):

    base checkpoint          0.461, 0.516   (per evaluation seed)   pooled 0.488
    MRT, training seed 0     0.523, 0.555                            pooled 0.539   (+0.051)
    MRT, training seed 1     0.547, 0.563                            pooled 0.555   (+0.066)

Noise: the same model's accuracy moves by 0.055 between the two evaluation seeds (128 rollouts each;
binomial standard error ~0.044 at p ~ 0.5), so a pooled 256-rollout estimate has a standard error of
~0.03; the two training seeds differ by 0.016. THRESHOLD = 0.03 is one such standard error and
twice the seed-to-seed spread; both seeds clear it (the gain is modest: ~1.7-2.2 standard errors).
Everything is seeded, so on one torch build the test is deterministic. "MRT" here is the per-episode
estimator these figures were measured with, `mrt-online-raw` since the paper's recipe took the name `mrt`.
"""

import numpy as np
import pytest
import torch

from ttc_gym.agents.llm import LLMAgent
from ttc_gym.training.llm_config import LLMTrainConfig
from ttc_gym.training.llm_rollouts import RolloutPlan, collect_batch, make_envs
from ttc_gym.training.llm_train import train
from ttc_gym.engines import make_engine
from ttc_gym.micro.checkpoint import micro_checkpoint_dir
from ttc_gym.micro.task import MicroSource

SOURCE = "micro:1"
H, K, TEMPERATURE, EPISODE_TOKENS = 4, 4, 1.0, 40
EVAL_SEEDS = (777, 778)
THRESHOLD = 0.03


def _config(out, **kw) -> LLMTrainConfig:
    base = dict(algo="mrt-online-raw", model=str(micro_checkpoint_dir()), source=SOURCE, max_episodes=H, num_prover_samples=K,
                temperature=TEMPERATURE, max_episode_tokens=EPISODE_TOKENS, problems_per_iter=8, group_size=8,
                micro_batch_size=16, lr=1e-4, iterations=16, seed=0, out=str(out), tensorboard=False)
    base.update(kw)
    return LLMTrainConfig(**base)


def heldout_accuracy(engine, problems, config, rollouts_per_problem=4, seed=777) -> float:
    """Mean graded outcome at budget H of `rollouts_per_problem` rollouts per held-out problem, with
    fixed rollout seeds (the same for every engine compared: paired)."""
    seeds = np.random.default_rng(seed).integers(0, 2**31, size=len(problems) * rollouts_per_problem)
    plans = [RolloutPlan(group=k // rollouts_per_problem, problem=problems[k // rollouts_per_problem], seed=int(s))
             for k, s in enumerate(seeds)]
    envs = make_envs(config, engine, None, None, num_envs=len(plans))
    try:
        agent = LLMAgent(engine, max_episode_tokens=EPISODE_TOKENS, temperature=TEMPERATURE, template=envs.template)
        with torch.inference_mode():
            return float(np.mean([ro.outcome for ro in collect_batch(envs, agent, plans)]))
    finally:
        envs.close()


@pytest.mark.slow
def test_short_mrt_run_beats_the_base_model(tmp_path):
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        problems = MicroSource([1]).problems(32, seed=2024)  # held out: the trainer draws its own
        config = _config(tmp_path / "run")
        base_engine = make_engine("micro")
        base = np.mean([heldout_accuracy(base_engine, problems, config, seed=s) for s in EVAL_SEEDS])
        engine = make_engine("micro")
        result = train(config, policy_engine=engine)
        trained = np.mean([heldout_accuracy(engine, problems, config, seed=s) for s in EVAL_SEEDS])
    finally:
        torch.set_num_threads(threads)
    assert result.step == 16
    assert trained - base > THRESHOLD, (base, trained)
