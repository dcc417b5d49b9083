"""Adapters that plug ttc-gym's envs into outside RL libraries (apps layer, docs/architecture.md).

Each adapter is its own module behind its own extra, imported only by name:

- `ttc_gym.integrations.openenv`: serve any registered env over OpenEnv's HTTP/WebSocket protocol
  (`pip install 'ttc-gym[openenv]'`; `ttc-gym serve ENV_ID`).
- `ttc_gym.integrations.verifiers`: TTC-Math-v0 as a verifiers 0.3.x multi-turn environment
  (`pip install 'ttc-gym[verifiers]'`; `load_environment()`).
- `ttc_gym.integrations.verifiers_v1`: TTC-Math-v0 in verifiers 0.4's v1 API (taskset
  "ttc-gym-verifiers"; `pip install 'ttc-gym[verifiers-v1]'`).

`[openenv]` and `[verifiers-v1]` cannot share an environment (mcp<2 vs mcp==2.0.0):
`ttc_gym.integrations.exclusive_extras` holds that rule and the one-line refusal both adapters raise.

Importing this package imports no outside library. It holds the one helper the adapters share:
`engine_lock`, which makes sessions that share a model engine take turns on it.
"""

from __future__ import annotations

import contextlib
import threading
import weakref
from typing import Any

_TABLE_LOCK = threading.Lock()
_LOCKS: "weakref.WeakKeyDictionary[Any, threading.Lock]" = weakref.WeakKeyDictionary()
_LOCKS_BY_ID: dict[int, threading.Lock] = {}  # engines that cannot be weakly referenced


def _lock_of(engine: Any) -> threading.Lock:
    with _TABLE_LOCK:
        try:
            lock = _LOCKS.get(engine)
            if lock is None:
                lock = _LOCKS[engine] = threading.Lock()
        except TypeError:  # not weakly referenceable (or not hashable): keyed by id for the process
            lock = _LOCKS_BY_ID.setdefault(id(engine), threading.Lock())
        return lock


def env_engines(env: Any) -> list[Any]:
    """The model engines a ttc-gym env runs, read from its documented accessors (`engine`, and the
    `prover`'s `engine` and `policy_engine`), each once; [] for an env without a model (TTC-Sim-v0)."""
    base = getattr(env, "unwrapped", env)
    prover = getattr(base, "prover", None)
    found: dict[int, Any] = {}
    for engine in (getattr(base, "engine", None), getattr(prover, "engine", None),
                   getattr(prover, "policy_engine", None)):
        if engine is not None:
            found.setdefault(id(engine), engine)
    return list(found.values())


@contextlib.contextmanager
def engine_lock(env: Any):
    """Hold, for the block, one process-wide lock per model engine that `env` runs.

    Engines are not thread-safe (`ttc_gym.engines.transformers_engine.TransformersEngine.generate`)
    and the math envs share them: the default model and a vLLM engine are loaded once per process.
    Two sessions served from threads (OpenEnv) or rollouts run in worker threads (verifiers) that
    share an engine therefore take turns on it, while envs with engines of their own, or none,
    run in parallel. Locks are taken in a fixed order (by id), so two envs never deadlock.
    """
    locks = sorted((_lock_of(e) for e in env_engines(env)), key=id)
    with contextlib.ExitStack() as stack:
        for lock in dict.fromkeys(locks):  # the same lock once, if two engines share one
            stack.enter_context(lock)
        yield
