"""The LLM trainer's entropy bonus (`LLMTrainConfig.entropy_coef`, PPO Eq. 9): its config checks, that
alone (zero advantages) it raises the policy's per-token entropy, that without it a zero-advantage
loss has no gradient, and that under `mrt` its gradient reaches the branches' own tokens only, never
the prefix (tiny random engines, as tests/apps/test_llm_branches.py)."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from ttc_gym.training import algorithms as alg
from ttc_gym.training.llm_config import LLMTrainConfig
from ttc_gym.training.llm_loss import accumulate

from test_llm_branches import FAST, _branches


@pytest.mark.parametrize("kwargs, match", [
    ({"entropy_coef": -0.1}, r"entropy_coef must be >= 0"),
    ({"algo": "star", "entropy_coef": 0.1, "terminations": None}, "applies to the policy-gradient algorithms"),
])
def test_bad_entropy_settings_fail_before_any_model_loads(tmp_path, kwargs, match):
    with pytest.raises(ValueError, match=match):
        LLMTrainConfig(**{**FAST, "out": str(tmp_path / "run"), **kwargs})


def _bonus_loss(advantages, coef):
    def loss_fn(trajs, offset, entropy):
        return alg.pg_loss(trajs, advantages[offset: offset + len(trajs)], entropy=entropy, entropy_coef=coef)

    return loss_fn


def test_the_bonus_reaches_the_branches_own_tokens_and_alone_raises_the_entropy(tmp_path):
    """One set of mrt branches (building them is the slow part): (1) with zero advantages and no bonus
    the loss has no gradient; (2) the bonus's gradient reaches the positions that predict a branch's
    own tokens, never the problem's or the prefix's; (3) one gradient step on it raises the entropy."""
    torch.manual_seed(0)
    config, engine, plans, rollouts = _branches(tmp_path, seed=1)
    assert any(p.prefix for p in plans)
    model = engine.model
    with torch.no_grad():  # a tiny random model is almost uniform (entropy ~ log V): make it peaked first
        model.lm_head.weight.mul_(20.0)
    zero = [np.zeros(ro.trajectory().num_episodes) for ro in rollouts]
    params = [p for p in model.parameters() if p.requires_grad]
    model.zero_grad(set_to_none=True)
    _, _, before = accumulate(config, rollouts, _bonus_loss(zero, 0.0), model, None)
    assert all(p.grad is None or not p.grad.any() for p in params)

    captured = []

    def keep(module, inputs, out):
        out.retain_grad()
        captured.append(out)

    model.zero_grad(set_to_none=True)
    hook = model.lm_head.register_forward_hook(keep)
    try:
        _, _, again = accumulate(config, rollouts, _bonus_loss(zero, 1.0), model, None, entropy_grad=True)
    finally:
        hook.remove()
    assert again == pytest.approx(before, rel=1e-5)  # the logged entropy does not depend on the bonus
    pairs = [(p, e) for ro in rollouts for p, e in zip(ro.prompt_ids, ro.episode_ids) if e]
    assert len(captured) == len(pairs)
    for logits, (prompt_ids, episode_ids) in zip(captured, pairs):
        grad = logits.grad[0].abs().sum(-1)
        n_prompt = len(prompt_ids)
        assert torch.all(grad[: n_prompt - 1] == 0)  # the problem and the prefix: no bonus there
        assert torch.all(grad[n_prompt - 1: n_prompt - 1 + len(episode_ids)] > 0)

    with torch.no_grad():
        for p in params:
            if p.grad is not None:
                p -= 0.05 * p.grad  # one plain gradient step on -entropy
    model.zero_grad(set_to_none=True)
    _, _, after = accumulate(config, rollouts, _bonus_loss(zero, 0.0), model, None)
    assert after > before + 1e-3, (before, after)
