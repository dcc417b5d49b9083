"""verifiers 0.4's name for ttc-gym's TTC-Math-v0 taskset: `vf-eval ttc-gym-verifiers ...`.

verifiers 0.4 imports a taskset by a top-level module name (its environments-hub layout: a hub id
`owner/name` installs as the module `name`), so this one-line package re-exports the taskset, env and
harness of `ttc_gym.integrations.verifiers_v1`, where they are documented. Needs
`pip install 'ttc-gym[verifiers-v1]'`.
"""

from ttc_gym.integrations.verifiers_v1 import TTCChatHarness, TTCMathEnv, TTCMathTaskset

__all__ = ["TTCMathTaskset", "TTCMathEnv", "TTCChatHarness"]
