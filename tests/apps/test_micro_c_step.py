"""The decode-speed probe examples/benchmarks/micro_c_step.py (issue 28): its plain-C step of the
micro-reasoner computes the model's own logits (so the speed it reports is of the real forward)."""

import sys
from pathlib import Path

import numpy as np
import pytest
import torch

BENCH = Path(__file__).resolve().parents[2] / "examples" / "benchmarks"


@pytest.fixture(scope="module")
def probe():
    sys.path.insert(0, str(BENCH))
    try:
        import micro_c_step
        yield micro_c_step
    finally:
        sys.path.remove(str(BENCH))


def test_c_step_logits_equal_the_models_forward(probe, tmp_path):
    if probe.compiler() is None:
        pytest.skip("no C compiler on this machine")
    from ttc_gym.engines import make_engine

    model = make_engine("micro").model
    step = probe.CStep(probe.build(tmp_path), model, capacity=64)
    ids = [int(i) for i in np.random.default_rng(1).integers(3, step.dims.vocab, size=40)]
    with torch.inference_mode():
        reference = model(torch.tensor([ids])).logits[0].float().numpy()
    got = probe.logits_of(step, ids)
    assert np.abs(got - reference).max() < 1e-3, np.abs(got - reference).max()
    assert (got.argmax(-1) == reference.argmax(-1)).all()
    with pytest.raises(ValueError, match="pos must be in"):
        step.step(5, 64)
