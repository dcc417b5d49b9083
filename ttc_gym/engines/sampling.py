"""Picking the next token of each decoding row, from the row's own random numbers (`TransformersEngine`).

Every row samples with its own `torch.Generator`, seeded from its prompt's seed and its sample index
(`row_seeds`), from softmax(logits / T) (nucleus-filtered when top_p < 1) by a two-level draw (a
block of the vocabulary by inverse CDF, then a token of the block by Gumbel-max; see `draw`), so a
row's token does not depend on the other rows of the batch: prompts sampled together give the texts
each gives alone with its seed. The only caveat is float rounding: if batched matrix products round
differently from unbatched ones (~1e-7 relative), a draw lying that close to a tie could flip; the
two-level draw keeps that chance around 1e-6 per token even for flat distributions. Greedy rows take
the argmax. Global RNG state is never touched.

That is sampler version 1, the transformers loop's (`decoding.KVDecoder`). The static loop
(`static_decoding.StaticDecoder`, the default) uses version 2 (`pick_tokens_v2`, below): the same row
seeds and the same distributions, drawn from SplitMix64 uniforms computed on tensors for every row at
once, so the same seed gives other texts than version 1 (`SAMPLER_VERSIONS`).
"""

from __future__ import annotations

import secrets
from collections.abc import Sequence
from typing import Any

import torch
import torch.nn.functional as F

from ttc_gym.engines.base import SamplingConfig
from ttc_gym.seeding import text_seed
from ttc_gym.validation import check_int

# Vocabulary entries per block of the two-level draw (see `draw`).
BLOCK = 256
# Uniform numbers a row uses per token: one picks the block, BLOCK pick the token in it.
UNIFORMS_PER_ROW = 1 + BLOCK


def pick_tokens(logits: torch.Tensor, uniforms: torch.Tensor | None, sampling: SamplingConfig) -> torch.Tensor:
    """Next token per row of `logits` [rows, vocab]: the argmax when `sampling` is greedy (then
    `uniforms` may be None), else a draw from softmax(logits / T), nucleus-filtered when top_p < 1
    (the most likely tokens until their mass reaches top_p; the first always stays), made with the
    row's own `uniforms` [rows, UNIFORMS_PER_ROW] in [0, 1) (see `draw`)."""
    logits = logits.float()
    if sampling.greedy:
        return logits.argmax(dim=-1)
    if uniforms is None:
        raise ValueError("pick_tokens needs uniforms [rows, UNIFORMS_PER_ROW] unless the sampling is greedy.")
    scaled = logits / sampling.temperature
    if sampling.top_p < 1.0:
        probs, order = torch.softmax(scaled, dim=-1).sort(dim=-1, descending=True, stable=True)
        weights = probs * ((probs.cumsum(dim=-1) - probs) < sampling.top_p)
        return order.gather(-1, draw(weights, uniforms)[:, None]).squeeze(-1)
    return draw(torch.softmax(scaled, dim=-1), uniforms)


def draw(weights: torch.Tensor, uniforms: torch.Tensor) -> torch.Tensor:
    """One index per row drawn in proportion to the non-negative `weights` [rows, n], from the
    row's uniforms [rows, UNIFORMS_PER_ROW] in [0, 1): the first picks a block of BLOCK entries by
    inverse CDF over the block totals, the rest pick an entry of that block by the Gumbel-max trick
    (argmax of log w - log(-log u)). Exactly the distribution of the weights, and robust to float
    noise: a perturbation eps of the weights changes the draw only when u lies within ~eps of a
    block boundary (blocks are wide) or two Gumbel scores tie within ~eps. Each row is computed on
    its own: the result never depends on the other rows."""
    rows, n = weights.shape
    nb = -(-n // BLOCK)
    if nb * BLOCK != n:
        weights = F.pad(weights, (0, nb * BLOCK - n))
    blocks = weights.view(rows, nb, BLOCK)
    cum = blocks.sum(dim=-1).double().cumsum(dim=-1)
    target = uniforms[:, :1].double() * cum[:, -1:]
    j = torch.searchsorted(cum, target, right=True)
    # Rounding at the very top could point past the last block with any weight: stop there.
    j = torch.minimum(j, (cum < cum[:, -1:]).sum(dim=-1, keepdim=True))
    chosen = blocks[torch.arange(rows, device=weights.device), j[:, 0]].double()
    scores = chosen.log() - (-uniforms[:, 1:].double().log()).log()
    return (j[:, 0] * BLOCK + scores.argmax(dim=-1)).clamp_(max=n - 1)


def row_generators(seeds: Sequence[int]) -> list[torch.Generator]:
    """One CPU generator per row, seeded with the row's seed."""
    return [torch.Generator().manual_seed(int(s)) for s in seeds]


def row_uniforms(generators: Sequence[torch.Generator]) -> torch.Tensor:
    """The next [rows, UNIFORMS_PER_ROW] float64 uniforms, row r drawn from generators[r] alone."""
    return torch.stack([torch.rand(UNIFORMS_PER_ROW, generator=g, dtype=torch.float64) for g in generators])


def row_seed(seed: int, index: int) -> int:
    """The seed of row `index` of a prompt seeded with `seed`: 63 bits, stable across processes."""
    return text_seed(f"ttc-row:{seed}:{index}")


def row_seeds(seed: Any, num_prompts: int, n: int) -> list[list[int]]:
    """Per prompt, the seeds of its n sample rows.

    One integer seed s: row r of the call (prompt-major, r = i * n + j) gets row_seed(s, r), so
    a call's prompts and samples all differ. A sequence (one seed s_i per prompt): sample j of
    prompt i gets row_seed(s_i, j), which is what prompt i alone with seed s_i gets. None: fresh.
    """
    if seed is None:
        return [[row_seed(secrets.randbits(63), j) for j in range(n)] for _ in range(num_prompts)]
    if isinstance(seed, (str, bytes)) or not isinstance(seed, Sequence) and not hasattr(seed, "__len__"):
        seed = check_int("seed", seed, minimum=0)
        return [[row_seed(seed, i * n + j) for j in range(n)] for i in range(num_prompts)]
    seeds = [check_int(f"seed[{i}]", s, minimum=0) for i, s in enumerate(seed)]
    if len(seeds) != num_prompts:
        raise ValueError(f"seed has {len(seeds)} entries for {num_prompts} prompts; give one seed per prompt.")
    return [[row_seed(s, j) for j in range(n)] for s in seeds]


# -- version 2: the static decode loop's sampler (`ttc_gym.engines.static_decoding`) ----------------
#
# Seeds keep their meaning up to the row seeds (`row_seeds`); what a row seed draws changed: row r's
# uniform at step t is output t of SplitMix64 started at the row seed (Steele, Lea & Flood 2014,
# "Fast splittable pseudorandom number generators"; the constants and mix of Vigna's splitmix64.c),
# computed for every row and step at once on tensors (no generator objects, no per-row Python
# work), and the token is drawn by inverse CDF over softmax(logits / T) in float64 with that one
# uniform. Same distribution as version 1, other texts for the same seed: `SAMPLER_VERSIONS`.

SAMPLER_VERSIONS = {"hf": 1, "static": 2}

_MASK64 = (1 << 64) - 1
SPLITMIX_GAMMA = 0x9E3779B97F4A7C15
SPLITMIX_M1 = 0xBF58476D1CE4E5B9
SPLITMIX_M2 = 0x94D049BB133111EB


def _signed(value: int) -> int:
    """A 64-bit pattern as the int64 torch stores."""
    return value - (1 << 64) if value >= 1 << 63 else value


def _shr(x: torch.Tensor, k: int) -> torch.Tensor:
    """Logical right shift of int64 bit patterns (torch's >> is arithmetic)."""
    return (x >> k) & ((1 << (64 - k)) - 1)


def splitmix64_uniforms(seeds: torch.Tensor, steps: int) -> torch.Tensor:
    """[rows, steps] float64 uniforms in [0, 1): entry (r, t) is output t of SplitMix64 seeded with
    seeds[r] (int64), i.e. mix(seed + (t + 1) * gamma) mod 2^64, top 53 bits. int64 products wrap
    modulo 2^64 on every torch backend (two's complement); a test checks against Python integers."""
    counters = torch.arange(1, steps + 1, dtype=torch.int64, device=seeds.device) * _signed(SPLITMIX_GAMMA)
    z = seeds.to(torch.int64)[:, None] + counters[None, :]
    z = (z ^ _shr(z, 30)) * _signed(SPLITMIX_M1)
    z = (z ^ _shr(z, 27)) * _signed(SPLITMIX_M2)
    z = z ^ _shr(z, 31)
    return _shr(z, 11).double() * 2.0**-53


def splitmix64_reference(seed: int, t: int) -> float:
    """`splitmix64_uniforms` for one (seed, step) in Python integers (for tests)."""
    z = (seed + (t + 1) * SPLITMIX_GAMMA) & _MASK64
    z = ((z ^ (z >> 30)) * SPLITMIX_M1) & _MASK64
    z = ((z ^ (z >> 27)) * SPLITMIX_M2) & _MASK64
    z ^= z >> 31
    return (z >> 11) * 2.0**-53


def pick_tokens_v2(logits: torch.Tensor, uniforms: torch.Tensor, sampling: SamplingConfig) -> torch.Tensor:
    """Next token per row of `logits` [rows, vocab]: the argmax when greedy, else the inverse-CDF draw
    with the row's one uniform ([rows] float64 in [0, 1)) from softmax(logits / T), nucleus-filtered
    when top_p < 1 (as `pick_tokens`). Each row on its own; the CDF is summed in float64, so float
    rounding of the logits (~1e-7) moves a draw only when its uniform lies that close to a boundary."""
    if sampling.greedy:
        return logits.argmax(dim=-1)
    probs = torch.softmax(logits.float() / sampling.temperature, dim=-1)
    order = None
    if sampling.top_p < 1.0:
        probs, order = probs.sort(dim=-1, descending=True, stable=True)
        probs = probs * ((probs.cumsum(dim=-1) - probs) < sampling.top_p)
    cum = probs.double().cumsum(dim=-1)
    total = cum[:, -1:]
    index = torch.searchsorted(cum, uniforms[:, None] * total, right=True)
    # Rounding at the very top could point past the last token with any mass: stop there.
    index = torch.minimum(index, (cum < total).sum(dim=-1, keepdim=True))
    if order is not None:
        index = order.gather(-1, index)
    return index[:, 0]
