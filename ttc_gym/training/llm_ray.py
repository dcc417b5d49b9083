"""Ray-sharded rollouts for the LLM trainer (`--ray-workers N`): the rollouts of an iteration split
across Ray actors, each with its own engine (and prover), the trained weights broadcast to all after
every update.

    ttc-gym train --env TTC-Math-v0 --algo mrt-online --ray-workers 4 --engine vllm ...   # one GPU per worker

Each worker (`RolloutWorker`) builds its engine once (`engine_factory()`, in the trainer its own
choice from the config: `--engine`, else `--model` on `--device`), its prover (`--prover policy`: the
same engine; frozen: `--prover-model`) and, per call, a vectorized TTC-Math-v0 of its shard's size
(`llm_rollouts.make_envs`). `RayRollouts.collect(plans)` gives worker w a contiguous slice of the plans
and returns the rollouts in plan order: since a rollout of `collect_batch` depends only on its own plan
(seed, problem) and the weights, the result equals one process's `collect_batch` (tested with
`ray.init(num_cpus=2)`). `RayRollouts.sync(weights)` puts the state dict into Ray's object store once
and every worker loads it (`engine.load_weights`, which resets its prefix cache).
"""

from __future__ import annotations

from typing import Any, Callable, Sequence

from ttc_gym.training.llm_config import LLMTrainConfig

RAY_PURPOSE = "Ray-sharded rollouts (ray_workers > 0)"


def default_engine_factory(config: LLMTrainConfig, build_policy_engine: Callable[[LLMTrainConfig], Any]) -> Callable[[], Any]:
    """The engine a worker samples with when none is given: `--engine vllm[:model]`, else
    `build_policy_engine(config)` (the trainer's, `llm_policy.build_policy_engine`)."""

    def build() -> Any:
        from ttc_gym.engines.registry import make_engine

        if config.vllm_model is not None:
            return make_engine("vllm:" + config.vllm_model, **config.engine_kwargs)
        return build_policy_engine(config)

    return build


class RolloutWorker:
    """The actor: its own engine, prover and problem source; collects the rollouts of a shard."""

    def __init__(self, config: LLMTrainConfig, engine_factory: Callable[[], Any],
                 prover_factory: Callable[[], Any] | None, make_envs: Callable[..., Any],
                 collect_batch: Callable[..., list]):
        import torch

        from ttc_gym.problems import make_source

        torch.manual_seed(config.seed)
        self.config = config
        self.engine = engine_factory()
        self.prover = prover_factory() if prover_factory is not None else None
        self.source = make_source(config.source)
        self.version = 0
        self.make_envs, self.collect_batch = make_envs, collect_batch

    def load_weights(self, weights: dict) -> int:
        """Load the trained weights (the engine resets its prefix cache); returns how many loads so far."""
        import torch

        with torch.no_grad():
            self.engine.load_weights(weights)
        self.version += 1
        return self.version

    def collect(self, plans: Sequence[Any]) -> list:
        import torch

        from ttc_gym.agents.llm import LLMAgent

        if not plans:
            return []
        config = self.config
        envs = self.make_envs(config, self.engine, self.prover, self.source, num_envs=len(plans))
        try:
            agent = LLMAgent(self.engine, max_episode_tokens=config.max_episode_tokens,
                             temperature=config.temperature, top_p=config.top_p, template=envs.template,
                             seed=config.seed)
            model = getattr(self.engine, "model", None)
            if hasattr(model, "eval"):
                model.eval()
            with torch.inference_mode():
                return self.collect_batch(envs, agent, plans)
        finally:
            envs.close()


def shards(n: int, workers: int) -> list[tuple[int, int]]:
    """Contiguous [start, stop) slices of n items over `workers`, sizes differing by at most one."""
    base, extra = divmod(n, workers)
    out, start = [], 0
    for w in range(workers):
        stop = start + base + (1 if w < extra else 0)
        out.append((start, stop))
        start = stop
    return out


class RayRollouts:
    """`workers` Ray actors (`RolloutWorker`) that collect an iteration's rollouts together.

    Args:
        config: the trainer's config (its ray_workers is not read here: `workers` is).
        workers: actors to start (>= 1).
        make_envs, collect_batch: the trainer's (`llm_rollouts.make_envs`, `llm_rollouts.collect_batch`),
            given here so that this module does not import the trainer that imports it.
        engine_factory: a picklable `() -> engine` each worker calls once (e.g.
            `default_engine_factory(config, llm_policy.build_policy_engine)`).
        prover_factory: a picklable `() -> engine` for a frozen prover (None: the policy's engine
            with `--prover policy`, `--prover-model` with `--prover frozen`).
        num_gpus_per_worker: GPUs Ray reserves per actor (1 for a vLLM engine).
        address: a Ray cluster's address (None: a running Ray, else a local one).
    """

    def __init__(self, config: LLMTrainConfig, workers: int, *, make_envs: Callable[..., Any],
                 collect_batch: Callable[..., list], engine_factory: Callable[[], Any],
                 prover_factory: Callable[[], Any] | None = None, num_gpus_per_worker: float = 0.0,
                 address: str | None = None):
        from ttc_gym.optional import require
        from ttc_gym.validation import check_int

        check_int("workers", workers, minimum=1)
        ray = require("ray", extra="ray", purpose=RAY_PURPOSE)
        if not ray.is_initialized():
            ray.init(address=address, ignore_reinit_error=True, log_to_driver=False)
        if prover_factory is None and config.prover == "frozen":
            prover_factory = _frozen_prover_factory(config)
        self._ray = ray
        actor = ray.remote(RolloutWorker).options(num_cpus=1, num_gpus=num_gpus_per_worker)
        self.workers = [actor.remote(config, engine_factory, prover_factory, make_envs, collect_batch)
                        for _ in range(workers)]

    def collect(self, plans: Sequence[Any]) -> list:
        """The rollouts of `plans`, in order, each worker collecting a contiguous shard."""
        plans = list(plans)
        parts = [(w, plans[a:b]) for w, (a, b) in zip(self.workers, shards(len(plans), len(self.workers))) if b > a]
        results = self._ray.get([w.collect.remote(p) for w, p in parts])
        return [ro for part in results for ro in part]

    def sync(self, weights: dict) -> list[int]:
        """Broadcast `weights` (a state dict; moved to the CPU) to every worker; returns their load counts."""
        ref = self._ray.put({k: v.detach().cpu() for k, v in weights.items()})
        return self._ray.get([w.load_weights.remote(ref) for w in self.workers])

    def close(self) -> None:
        for w in self.workers:
            self._ray.kill(w)
        self.workers = []


def _frozen_prover_factory(config: LLMTrainConfig) -> Callable[[], Any]:
    def build() -> Any:
        from ttc_gym.engines.registry import make_engine

        if config.prover_model.startswith("vllm:"):
            return make_engine(config.prover_model)
        return make_engine(None if config.prover_model == "default" else config.prover_model,
                           device=config.prover_device or config.device)

    return build
