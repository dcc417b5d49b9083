"""Learning agents reach a stated fraction of the oracle's expected return on TTC-Sim-v0."""

import gymnasium as gym
import numpy as np
import pytest

import ttc_gym  # noqa: F401
from ttc_gym.agents.oracle import OracleAgent
from ttc_gym.agents.tabular import DoubleQLearningAgent, QLearningAgent, QLearningConfig
from ttc_gym.metrics import mean_and_stderr


def evaluate(env, act, n=4000, seed=10**6):
    returns = []
    for i in range(n):
        obs, info = env.reset(seed=seed + i)
        total, done = 0.0, False
        while not done:
            obs, r, term, trunc, info = env.step(act(obs, info))
            total += r
            done = term or trunc
        returns.append(total)
    return mean_and_stderr(returns)


def test_q_learning_reaches_90_percent_of_the_oracle():
    envs = gym.make_vec("TTC-Sim-v0", num_envs=256, vectorization_mode="vector_entry_point")
    agent = QLearningAgent(envs.single_observation_space, envs.single_action_space)
    history = agent.train(envs, QLearningConfig(total_steps=1_000_000, seed=0))
    assert len(history["rollout_returns"]) > 100_000
    env = gym.make("TTC-Sim-v0")
    oracle = OracleAgent.from_env(env).expected_return
    mean, se = evaluate(env, agent.act)
    assert mean >= 0.9 * oracle, (mean, se, oracle)


def test_q_learning_rejects_unsupported_spaces():
    with pytest.raises(TypeError, match="Discrete or 1-D MultiDiscrete"):
        QLearningAgent(gym.spaces.Box(0, 1, (2,)), gym.spaces.Discrete(2))
    with pytest.raises(TypeError, match="Discrete action space"):
        QLearningAgent(gym.spaces.Discrete(3), gym.spaces.Box(0, 1, (2,)))


def test_q_learning_state_index_roundtrip():
    agent = QLearningAgent(gym.spaces.MultiDiscrete([3, 4, 5]), gym.spaces.Discrete(2))
    obs = np.array([[2, 3, 4], [0, 0, 0], [1, 2, 3]])
    idx = agent.state_index(obs)
    assert idx.tolist() == [59, 0, 1 * 20 + 2 * 5 + 3]


def test_state_aggregation_indexes_the_table_by_the_chosen_fields_only():
    space = gym.spaces.MultiDiscrete([3, 4, 5])
    agent = QLearningAgent(space, gym.spaces.Discrete(2), state_fields=(2, 0))
    assert agent.q.shape == (15, 2)
    # Observations that differ only in the dropped field share a row; the kept fields keep their order.
    assert agent.state_index(np.array([[1, 0, 4], [1, 3, 4], [2, 1, 0]])).tolist() == [4 * 3 + 1, 4 * 3 + 1, 2]
    agent.q[4 * 3 + 1] = (0.0, 1.0)
    assert agent.act(np.array([1, 2, 4])) == 1 and agent.act(np.array([0, 2, 4])) == 0
    for bad in ((), (0, 0), (3,), (-1,), (1.0,), (True,)):
        with pytest.raises(ValueError, match="distinct observation field indices in \\[0, 3\\)"):
            QLearningAgent(space, gym.spaces.Discrete(2), state_fields=bad)


def test_tabular_factories_aggregate_state_by_field_name():
    from ttc_gym.agents.factories import double_q_learning, q_learning

    env = gym.make("TTC-Sim-v0")
    for factory in (q_learning, double_q_learning):
        agent = factory(env, steps=2_000, state_fields="episodes_used+candidate")
        assert agent.state_fields == (0, 5) and agent.q.shape == (11 * 13, 4)
        assert factory(env, steps=2_000, state_fields=["candidate"]).state_fields == (5,)
    with pytest.raises(ValueError, match="Did you mean 'episodes_used'"):
        q_learning(env, steps=10, state_fields="episodes+candidate")
    for bad in ("", "+", 3, ["episodes_used", 1]):
        with pytest.raises(ValueError, match="state_fields must be observation field names"):
            q_learning.check(state_fields=bad)

    class Unnamed(gym.Env):  # an env that does not name its observation fields
        observation_space, action_space = gym.spaces.MultiDiscrete([2]), gym.spaces.Discrete(2)

    with pytest.raises(TypeError, match="names its observation fields"):
        from ttc_gym.agents.factories import _state_field_indices

        _state_field_indices(Unnamed(), "x")


@pytest.mark.slow
def test_sb3_ppo_reaches_80_percent_of_the_oracle():
    torch = pytest.importorskip("torch")
    from stable_baselines3 import PPO
    from stable_baselines3.common.env_util import make_vec_env

    from ttc_gym.agents.sb3 import SB3Agent

    torch.set_num_threads(1)
    # Plain SB3 usage: make_vec_env on the registered id, default MLP policy.
    envs = make_vec_env("TTC-Sim-v0", n_envs=16, seed=0)
    model = PPO("MlpPolicy", envs, learning_rate=1e-3, n_steps=128, batch_size=512, n_epochs=4,
                ent_coef=0.01, gamma=1.0, seed=0, verbose=0)
    model.learn(200_000)
    env = gym.make("TTC-Sim-v0")
    oracle = OracleAgent.from_env(env).expected_return
    mean, se = evaluate(env, SB3Agent(model).act, n=3000)
    assert mean >= 0.8 * oracle, (mean, se, oracle)


@pytest.mark.slow
def test_sb3_dqn_trains_through_gym_make():
    torch = pytest.importorskip("torch")
    from stable_baselines3 import DQN

    from ttc_gym.agents.sb3 import SB3Agent

    torch.set_num_threads(1)
    env = gym.make("TTC-Sim-v0")
    model = DQN("MlpPolicy", env, learning_starts=1000, exploration_fraction=0.3, gamma=1.0,
                train_freq=4, target_update_interval=1000, seed=0, verbose=0)
    model.learn(20_000)
    random_mean, _ = evaluate(env, lambda obs, info: int(env.action_space.sample()), n=1000)
    dqn_mean, se = evaluate(env, SB3Agent(model).act, n=1000)
    assert dqn_mean > random_mean + 5 * se, (dqn_mean, random_mean)


class MaximizationBiasMDP(gym.Env):
    """Sutton & Barto (2018), Example 6.7: from A, action 1 ("left") moves to B with reward 0 and any
    other action ends the episode with reward 0; every action in B ends it with a reward drawn from
    N(-0.1, 1). Going to B is worth -0.1, but the max over B's noisy action values makes Q-learning
    think it is worth more."""

    observation_space = gym.spaces.Discrete(2)
    action_space = gym.spaces.Discrete(8)

    def reset(self, *, seed=None, options=None):
        super().reset(seed=seed)
        self.state = 0
        return 0, {}

    def step(self, action):
        if self.state == 0 and action != 1:
            return 0, 0.0, True, False, {}
        if self.state == 0:
            self.state = 1
            return 1, 0.0, False, False, {}
        return 1, float(self.np_random.normal(-0.1, 1.0)), True, False, {}


def test_double_q_learning_removes_the_maximization_bias_that_q_learning_has():
    """Over 10 seeds: Q-learning's value of going to B is above the true -0.1 (the maximization bias);
    Double Q-learning's is not (it may underestimate; van Hasselt 2010, §3)."""
    estimates = {QLearningAgent: [], DoubleQLearningAgent: []}
    for agent_class, values in estimates.items():
        for seed in range(10):
            envs = gym.vector.SyncVectorEnv([MaximizationBiasMDP for _ in range(8)])
            agent = agent_class(envs.single_observation_space, envs.single_action_space)
            agent.train(envs, QLearningConfig(total_steps=1_000, seed=seed, epsilon_end=0.1))
            values.append(agent.q[0, 1])  # the value of going to B (truly -0.1)
            envs.close()
    q, double = np.mean(estimates[QLearningAgent]), np.mean(estimates[DoubleQLearningAgent])
    assert q > -0.1 + 0.05, q
    assert double < -0.1, double
