"""A Ray executor for the benchmark runner: shard problems over Ray actors, on one machine or a cluster.

    from ttc_gym.bench import BenchConfig, run_bench
    from ttc_gym.bench.ray_executor import ray_executor
    run_bench(BenchConfig(env_id="TTC-Math-v0", env_kwargs={"engine": "vllm:Qwen/Qwen2.5-Math-1.5B"}),
              executor=ray_executor(num_gpus_per_worker=1))

or `ttc-gym bench --ray [--ray-workers N] [--ray-address ADDR]`.

Each worker is a Ray actor holding its own copy of the runner's evaluator, so it builds its own envs,
agents and engine: a model per worker, one GPU each for "vllm:<model>" engines on a GPU cluster (or
with `num_gpus_per_worker=1`), CPU workers otherwise. The runner's `executor(items, evaluate)` seam
is all it implements: it yields each record as its worker returns it, and the runner appends it to
the same `results.jsonl`, so a Ray run is resumable like any other and gives the same summary as a
single-process run with the same seeds.

Scheduling: items are grouped by (agent, budget); a free worker keeps to the group it has built
(building may mean training an agent or loading a model), else takes the first group nobody works
on, else joins the largest one. Fast items travel in batches sized so that a call takes about
`target_call_s`; slow ones (LLM problems) one at a time, so records stream as they finish.

Failures: a worker that dies (killed, out of memory, node lost) has its unfinished items put back
and retried on another worker, one at a time, and a replacement worker is started (at most
`max_worker_restarts` in a run). An item whose worker died `max_item_retries + 1` times while it
ran alone, or the loss of every worker, ends the run with `WorkersLost` (a RuntimeError), and
`--resume` continues it later from `results.jsonl`. An exception raised by the evaluation itself
(a bug, bad arguments) is not retried: it propagates as is.
"""

from __future__ import annotations

import collections
import math
import time
from typing import Any, Callable, Iterator, Sequence

from ttc_gym.errors import TTCGymError
from ttc_gym.validation import check_float, check_int

RAY_PURPOSE = "Ray workers (ttc-gym bench --ray)"


class WorkersLost(TTCGymError, RuntimeError):
    """The run could not go on: workers died too often. Finished problems are saved (resume continues)."""


class BenchWorker:
    """The actor: evaluates lists of items with its own copy of the evaluator."""

    def __init__(self, evaluate: Callable[[Any], dict]):
        self.evaluate = evaluate

    def run(self, items: Sequence[Any]) -> list[dict]:
        return [self.evaluate(item) for item in items]

    def ping(self) -> bool:
        return True


def uses_gpu_engine(evaluate: Any) -> bool:
    """Whether the evaluator's env builds a GPU engine: an `engine` or `prover_engine` spec "vllm:<model>"."""
    env_kwargs = getattr(evaluate, "env_kwargs", None) or {}
    specs = (env_kwargs.get("engine"), env_kwargs.get("prover_engine"))
    return any(isinstance(spec, str) and spec.strip().lower().startswith("vllm:") for spec in specs)


def _group(item: Any) -> tuple:
    return (getattr(item, "agent", None), getattr(item, "budget", None))


def _item_key(item: Any) -> Any:
    return getattr(item, "key", item)


class RayExecutor:
    """`executor(items, evaluate)` over Ray actors; see the module docstring. Build it with `ray_executor`.

    `actors` lists the live worker handles while a run is in progress (tests kill them to check
    recovery); `restarts` counts the workers replaced in the last run.
    """

    def __init__(
        self,
        num_workers: int | None = None,
        *,
        address: str | None = None,
        num_cpus_per_worker: float = 1.0,
        num_gpus_per_worker: float | str = "auto",
        max_item_retries: int = 2,
        max_worker_restarts: int | None = None,
        target_call_s: float = 0.5,
        max_batch: int = 256,
        init_kwargs: dict | None = None,
    ):
        from ttc_gym.optional import require

        self._ray = require("ray", extra="ray", purpose=RAY_PURPOSE)  # fail before any compute
        self.num_workers = None if num_workers is None else check_int("num_workers", num_workers, minimum=1)
        if address is not None and not isinstance(address, str):
            raise TypeError(f"address must be a Ray address string such as 'auto' or 'HOST:6379', got {address!r}.")
        self.address = address
        self.num_cpus_per_worker = check_float("num_cpus_per_worker", num_cpus_per_worker, minimum=0.0)
        if num_gpus_per_worker != "auto":
            num_gpus_per_worker = check_float("num_gpus_per_worker", num_gpus_per_worker, minimum=0.0)
        self.num_gpus_per_worker = num_gpus_per_worker
        self.max_item_retries = check_int("max_item_retries", max_item_retries, minimum=0)
        self.max_worker_restarts = (
            None if max_worker_restarts is None else check_int("max_worker_restarts", max_worker_restarts, minimum=0)
        )
        self.target_call_s = check_float("target_call_s", target_call_s, minimum=0.0)
        self.max_batch = check_int("max_batch", max_batch, minimum=1)
        self.init_kwargs = dict(init_kwargs or {})
        self.actors: list[Any] = []
        self.restarts = 0

    # -- Ray set-up --------------------------------------------------------------------------------

    def _connect(self) -> bool:
        """Connect to (or start) Ray; True when this call started it (and must shut it down)."""
        ray = self._ray
        if ray.is_initialized():
            return False
        kwargs = dict(self.init_kwargs)
        if self.address is not None:
            kwargs.setdefault("address", self.address)
        else:
            kwargs.setdefault("include_dashboard", False)
        ray.init(**kwargs)
        return True

    def _gpus_per_worker(self, evaluate: Any) -> float:
        if self.num_gpus_per_worker != "auto":
            return float(self.num_gpus_per_worker)
        return 1.0 if uses_gpu_engine(evaluate) and self._ray.cluster_resources().get("GPU", 0) >= 1 else 0.0

    def _worker_count(self, num_items: int, gpus: float) -> int:
        if self.num_workers is not None:
            wanted = self.num_workers
        else:
            resources = self._ray.cluster_resources()
            fits = []
            if gpus > 0:
                fits.append(int(resources.get("GPU", 0) // gpus))
            if self.num_cpus_per_worker > 0:
                fits.append(int(resources.get("CPU", 1) // self.num_cpus_per_worker))
            wanted = max(1, min(fits) if fits else 1)
        return max(1, min(wanted, num_items))

    # -- the executor --------------------------------------------------------------------------------

    def __call__(self, items: Sequence[Any], evaluate: Callable[[Any], dict]) -> Iterator[dict]:
        items = list(items)
        if not items:
            return
        ray = self._ray
        from ray.exceptions import RayActorError, RayTaskError, WorkerCrashedError

        lost_worker = (RayActorError, WorkerCrashedError)
        started = self._connect()
        self.actors, self.restarts = [], 0
        inflight: dict[Any, tuple[Any, list, float]] = {}  # ObjectRef -> (actor, items, submit time)
        try:
            gpus = self._gpus_per_worker(evaluate)
            n_workers = self._worker_count(len(items), gpus)
            max_restarts = self.max_worker_restarts if self.max_worker_restarts is not None else n_workers
            actor_cls = ray.remote(BenchWorker).options(
                num_cpus=self.num_cpus_per_worker, num_gpus=gpus, max_restarts=0, max_task_retries=0,
            )
            evaluate_ref = ray.put(evaluate)
            pending: collections.OrderedDict[tuple, collections.deque] = collections.OrderedDict()
            for item in items:
                pending.setdefault(_group(item), collections.deque()).append(item)
            attempts: collections.Counter = collections.Counter()  # worker deaths while an item ran alone
            suspects: set = set()  # items of a batch whose worker died: retried one at a time
            item_seconds: dict[tuple, float] = {}  # per group: the latest seconds per item
            last_group: dict[Any, tuple] = {}
            idle: list[Any] = []

            def new_actor() -> Any:
                actor = actor_cls.remote(evaluate_ref)
                self.actors.append(actor)
                idle.append(actor)
                return actor

            for _ in range(n_workers):
                new_actor()

            def left() -> int:
                return sum(len(q) for q in pending.values())

            def pick_group(actor: Any) -> tuple | None:
                mine = last_group.get(actor)
                if mine is not None and pending.get(mine):
                    return mine
                busy = {last_group.get(a) for a, _, _ in inflight.values()}
                for group, queue in pending.items():
                    if queue and group not in busy:
                        return group
                nonempty = [(len(q), g) for g, q in pending.items() if q]
                return max(nonempty, key=lambda t: t[0])[1] if nonempty else None

            def batch_size(group: tuple) -> int:
                if _item_key(pending[group][0]) in suspects:
                    return 1
                per_item = item_seconds.get(group)
                if per_item is None:
                    return 1  # the first call of a group may build (train) its agent: measure first
                size = int(self.target_call_s / max(per_item, 1e-6))
                share = math.ceil(left() / max(1, len(self.actors)))  # leave work for the other workers
                return max(1, min(size, self.max_batch, share))

            def dispatch() -> None:
                while idle and left():
                    actor = idle.pop()
                    group = pick_group(actor)
                    queue = pending[group]
                    size = batch_size(group)
                    batch = [queue.popleft()]
                    while len(batch) < size and queue and _item_key(queue[0]) not in suspects:
                        batch.append(queue.popleft())
                    last_group[actor] = group
                    inflight[actor.run.remote(batch)] = (actor, batch, time.perf_counter())

            dispatch()
            while inflight:
                [ready], _ = ray.wait(list(inflight), num_returns=1)
                actor, batch, submitted = inflight.pop(ready)
                try:
                    records = ray.get(ready)
                except RayTaskError as err:  # the evaluation raised: its own exception, as is (Ray's text
                    # is the remote traceback, kept as the cause)
                    if isinstance(err.cause, BaseException):
                        raise err.cause from err
                    raise
                except lost_worker as err:
                    self._retire(actor)
                    if len(batch) == 1:  # the item ran alone: count it against the item
                        [item] = batch
                        attempts[_item_key(item)] += 1
                        if attempts[_item_key(item)] > self.max_item_retries:
                            raise WorkersLost(
                                f"ttc-gym bench --ray: a worker died {attempts[_item_key(item)]} times while "
                                f"evaluating {item} (last error: {type(err).__name__}: {err}). Finished problems "
                                "are saved; rerun with --resume to continue."
                            ) from err
                    for item in reversed(batch):  # back to the front of its group, in order
                        suspects.add(_item_key(item))
                        pending.setdefault(_group(item), collections.deque()).appendleft(item)
                    live = len(self.actors)
                    if self.restarts < max_restarts:
                        self.restarts += 1
                        new_actor()
                    elif live == 0:
                        raise WorkersLost(
                            f"ttc-gym bench --ray: every worker died (last error: {type(err).__name__}: {err}) "
                            f"and the {max_restarts} replacements allowed are spent. Finished problems are saved; "
                            "rerun with --resume to continue."
                        ) from err
                    dispatch()
                    continue
                group = _group(batch[0])
                item_seconds[group] = (time.perf_counter() - submitted) / len(batch)
                idle.append(actor)
                dispatch()
                yield from records
        finally:  # killing the workers also ends their unfinished calls
            for actor in self.actors:
                try:
                    ray.kill(actor)
                except Exception:
                    pass
            self.actors = []
            if started:
                ray.shutdown()

    def _retire(self, actor: Any) -> None:
        if actor in self.actors:
            self.actors.remove(actor)
        try:
            self._ray.kill(actor)
        except Exception:
            pass


def ray_executor(
    num_workers: int | None = None,
    *,
    address: str | None = None,
    num_cpus_per_worker: float = 1.0,
    num_gpus_per_worker: float | str = "auto",
    max_item_retries: int = 2,
    max_worker_restarts: int | None = None,
    target_call_s: float = 0.5,
    max_batch: int = 256,
    init_kwargs: dict | None = None,
) -> RayExecutor:
    """An executor for `run_bench(..., executor=...)` that shards work items over Ray actors.

    Args:
        num_workers: actors to start (default: as many as the cluster's CPUs, or GPUs for GPU
            workers, hold), never more than there are items.
        address: the Ray cluster to join ("auto" for the one `ray start` set up on this machine,
            "HOST:6379", or "ray://HOST:10001"); None starts a local Ray. Ignored when Ray is
            already initialized in this process (then that Ray is used and left running).
        num_cpus_per_worker: CPUs each actor reserves.
        num_gpus_per_worker: GPUs each actor reserves: a number, or "auto" (1 when the cluster has
            GPUs and the env's engine is a "vllm:<model>" spec, else 0; say 1 for an engine on
            CUDA built some other way, e.g. by an agent factory).
        max_item_retries: how often an item is retried after its worker died.
        max_worker_restarts: dead workers replaced in one run (default: num_workers).
        target_call_s: fast items are batched so that one call to a worker takes about this long.
        max_batch: most items in one call.
        init_kwargs: extra `ray.init` arguments (e.g. `runtime_env={"working_dir": "."}` to ship
            this checkout to a cluster whose nodes lack it).
    """
    return RayExecutor(
        num_workers, address=address, num_cpus_per_worker=num_cpus_per_worker,
        num_gpus_per_worker=num_gpus_per_worker, max_item_retries=max_item_retries,
        max_worker_restarts=max_worker_restarts, target_call_s=target_call_s, max_batch=max_batch,
        init_kwargs=init_kwargs,
    )
