"""Every ttc-gym environment, registered with Gymnasium by string entry points.

Registration happens on `import ttc_gym` and loads nothing heavy: the env modules are imported by
`gym.make` only when an env is made. `gym.make("ttc_gym:TTC-Sim-v0")` imports ttc_gym first.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import gymnasium as gym


@dataclass(frozen=True)
class EnvEntry:
    id: str
    entry_point: str
    summary: str
    vector_entry_point: str | None = None
    nondeterministic: bool = False
    kwargs: dict = field(default_factory=dict)


ENVS: tuple[EnvEntry, ...] = (
    EnvEntry(
        id="TTC-Sim-v0",
        entry_point="ttc_gym.envs.sim:TTCSimEnv",
        vector_entry_point="ttc_gym.envs.sim_vector:TTCSimVectorEnv",
        summary="Simulated reasoner: discrete meta-actions over episodes, exact prover, DP oracle.",
    ),
    EnvEntry(
        id="TTC-Math-v0",
        entry_point="ttc_gym.envs.math_text:TTCMathEnv",
        vector_entry_point="ttc_gym.envs.math_vector:TTCMathVectorEnv",
        summary="LLM reasoning on math problems: action = next episode (text), LLM prover's progress reward.",
    ),
    EnvEntry(
        id="TTC-Micro-v0",
        entry_point="ttc_gym.envs.micro:TTCMicroEnv",
        vector_entry_point="ttc_gym.envs.micro:TTCMicroVectorEnv",
        summary="TTC-Math-v0 on the shipped 1.1 M-parameter micro-reasoner and its arithmetic chains: trainable on a CPU.",
    ),
    EnvEntry(
        id="TTC-MathMeta-v0",
        entry_point="ttc_gym.envs.math_meta:TTCMathMetaEnv",
        summary="LLM reasoning with discrete meta-actions (continue/explore/verify/answer); numeric obs.",
    ),
    EnvEntry(
        id="TTC-Replay-v0",
        entry_point="ttc_gym.envs.replay:TTCReplayEnv",
        summary="Meta-decisions (continue/switch/answer) over stored analysed traces: real LLM reasoning at sim speed.",
    ),
)


def register_envs() -> None:
    """Register every env in ENVS (idempotent)."""
    for entry in ENVS:
        if entry.id in gym.registry:
            continue
        gym.register(
            id=entry.id,
            entry_point=entry.entry_point,
            vector_entry_point=entry.vector_entry_point,
            nondeterministic=entry.nondeterministic,
            kwargs=dict(entry.kwargs),
        )


def env_ids() -> list[str]:
    return [entry.id for entry in ENVS]
