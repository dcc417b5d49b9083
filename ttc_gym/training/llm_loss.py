"""The LLM trainer's losses over rollouts: token log-probabilities of each episode given its prompt
(`episode_logprobs`), attached to trajectories (`attach_logprobs`), and the batch's token-mean loss
backwarded in micro-batches (`accumulate`). The losses themselves are `algorithms.py`'s."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

import torch

from ttc_gym.training import algorithms as alg
from ttc_gym.training.llm_rollouts import Rollout


def episode_logprobs(model: Any, prompt_ids: Sequence[int], episode_ids: Sequence[int],
                     entropies: list | None = None, entropy_grad: bool = False) -> torch.Tensor:
    """Log-probabilities (1-D, one per id of `episode_ids`) of an episode's tokens following the
    prompt's, under `model`, from one forward pass. Both are token ids as the engine used them
    (`TransformersEngine.encode(prompt)` and the sampled `Completion.token_ids`): re-tokenizing the
    texts can give other tokens (a prompt's trailing paragraph break, say). Differentiable unless
    called under no_grad. With `entropies` (a list), also appends the sum over the episode's tokens
    of the policy's entropy (nats, over the whole vocabulary; no gradient): the "entropy" the
    trainer logs, as TRL's GRPOTrainer logs it); with `entropy_grad`, that sum is appended as a scalar
    tensor with gradient instead (the entropy bonus's)."""
    device = next(model.parameters()).device
    if not episode_ids:
        return torch.zeros(0, device=device)
    ids = torch.tensor([list(prompt_ids) + list(episode_ids)], device=device)
    logits = model(input_ids=ids).logits[0, len(prompt_ids) - 1 : -1].float()
    targets = torch.tensor(list(episode_ids), device=device)
    log_probs = torch.log_softmax(logits, dim=-1)
    if entropies is not None:
        with torch.set_grad_enabled(entropy_grad and torch.is_grad_enabled()):
            total = alg.mean_entropy(log_probs) * len(episode_ids)
        entropies.append(total if entropy_grad else float(total))
    return log_probs.gather(-1, targets[:, None]).squeeze(-1)


def attach_logprobs(trajectories, rollouts, model, ref: Callable | None,
                    entropies: list | None = None, entropy_grad: bool = False) -> None:
    """Fill each trajectory's per-episode token log-probs (with gradient) and, when `ref` is given,
    the reference's (no gradient); `entropies`, `entropy_grad`: as `episode_logprobs`'s, one entry per
    episode."""
    for t, ro in zip(trajectories, rollouts):
        pairs = list(zip(ro.prompt_ids, ro.episode_ids))
        t.logprobs = [episode_logprobs(model, p, e, entropies, entropy_grad) for p, e in pairs]
        if ref is not None:
            with torch.no_grad(), ref() as ref_model:
                t.ref_logprobs = [episode_logprobs(ref_model, p, e) for p, e in pairs]


def token_count(rollouts: Sequence[Rollout]) -> int:
    return sum(len(ids) for ro in rollouts for ids in ro.episode_ids)


def accumulate(config, rollouts, loss_fn, model, ref, entropy_grad: bool = False) -> tuple[float, float, float]:
    """Backward the token-mean loss of the whole batch in micro-batches; returns (loss, mean k3 KL,
    mean per-token entropy of the policy before the step). `loss_fn(trajectories, offset, entropy)`
    gets the micro-batch's mean per-token entropy (a scalar tensor, with gradient when
    `entropy_grad`: the entropy bonus's) and returns its token-mean loss."""
    total = token_count(rollouts)
    loss_sum, kl_sum, entropy_sum = 0.0, 0.0, 0.0
    if total == 0:
        return float("nan"), float("nan"), float("nan")
    model.train()
    for start in range(0, len(rollouts), config.micro_batch_size):
        micro = rollouts[start : start + config.micro_batch_size]
        n = token_count(micro)
        if n == 0:
            continue
        trajs = [ro.trajectory() for ro in micro]
        entropies: list = []
        attach_logprobs(trajs, micro, model, ref, entropies, entropy_grad)
        entropy = (sum(entropies) if entropy_grad else torch.tensor(sum(entropies))) / n
        entropy_sum += float(entropy.detach()) * n
        loss = loss_fn(trajs, start, entropy) * (n / total)
        loss.backward()
        loss_sum += float(loss.detach())
        if ref is not None:
            lp, _, rp = alg.flatten_batch(trajs)
            delta = (rp - lp).detach()
            kl_sum += float((torch.exp(delta) - delta - 1.0).sum())
    model.eval()
    return loss_sum, (kl_sum / total if ref is not None else float("nan")), entropy_sum / total
