"""The discrete meta-actions shared by the envs whose action is a decision about compute
(TTC-Sim-v0, TTC-MathMeta-v0), so that one heuristic or tabular agent runs on both."""

from __future__ import annotations

from enum import IntEnum

import numpy as np


class MetaAction(IntEnum):
    CONTINUE = 0  # keep working on the current approach
    SWITCH = 1  # explore: try another approach ("Alternatively, ...")
    VERIFY = 2  # check the current answer ("Wait, let me double-check ...")
    ANSWER = 3  # stop thinking and commit an answer


META_ACTION_NAMES = tuple(a.name.lower() for a in MetaAction)


def check_meta_action(action_space, action) -> int:
    """The action as an int, or a ValueError naming the meta-actions and what came. A bool is refused
    (`True` is not "switch"), although numpy and `Discrete.contains` would take it as 1."""
    if isinstance(action, (bool, np.bool_)) or not action_space.contains(action):
        raise ValueError(
            f"action must be an int in [0, {action_space.n}) "
            f"({', '.join(f'{i}={n}' for i, n in enumerate(META_ACTION_NAMES))}), got {action!r}."
        )
    return int(action)
