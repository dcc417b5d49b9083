"""The committed answer is graded as written (issue 33 item 4: "\\boxed{2 3}" scored against gold 23
because the env compared a whitespace-free key)."""

from __future__ import annotations

import pytest

from tests.envs.test_math_envs import scripted_env


@pytest.mark.parametrize(
    "answer, outcome", [("1 234", 0.0), ("1, 234", 0.0), ("1,234", 1.0), ("1234", 1.0), ("1234.0", 1.0)]
)
def test_the_committed_answer_is_graded_as_written(answer, outcome):
    env = scripted_env(max_episodes=3)
    env.reset(seed=0, options={"problem": {"question": "What is 1000 + 234?", "answer": "1234"}})
    _, _, terminated, _, info = env.step(f"[ep] so \\boxed{{{answer}}}")
    assert terminated and info["committed_answer"] == answer and info["outcome"] == outcome
