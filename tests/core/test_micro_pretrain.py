"""`ttc_gym.micro.pretrain` on a toy size: it trains, saves a checkpoint the engines load, and the
same seed gives the same weights."""

import json

import torch
from safetensors.torch import load_file

from ttc_gym.engines.base import SamplingConfig
from ttc_gym.engines.transformers_engine import TransformersEngine
from ttc_gym.micro.pretrain import PretrainConfig, encode_examples, main, pretrain

TOY = dict(steps=3, batch_size=4, hidden_size=32, layers=1, heads=2, intermediate_size=64, tokenizer_problems=40,
           vocab_size=300, warmup=1)


def test_same_seed_same_checkpoint_and_it_loads(tmp_path):
    a = pretrain(PretrainConfig(seed=1, **TOY), tmp_path / "a", log=None)
    pretrain(PretrainConfig(seed=1, **TOY), tmp_path / "b", log=None)
    pretrain(PretrainConfig(seed=2, **TOY), tmp_path / "c", log=None)
    wa, wb, wc = (load_file(tmp_path / k / "model.safetensors") for k in "abc")
    assert all(torch.equal(wa[k], wb[k]) for k in wa)
    assert not all(torch.equal(wa[k], wc[k]) for k in wa)
    assert a["params"] > 0 and len(a["losses_every_50"]) == 1
    assert json.loads((tmp_path / "a" / "pretrain_config.json").read_text())["config"]["seed"] == 1
    engine = TransformersEngine(str(tmp_path / "a"))
    assert engine.eos_token_ids == [engine.tokenizer.convert_tokens_to_ids("<|im_end|>")]
    out = engine.generate([engine.format_chat("Start at 3. Step 1: add 1. What is the result?")],
                          SamplingConfig(max_new_tokens=4, temperature=1.0), seed=0)
    assert 0 < out[0][0].num_tokens <= 4


def test_loss_is_on_the_target_only(tmp_path):
    pretrain(PretrainConfig(seed=0, **{**TOY, "steps": 1}), tmp_path, log=None)
    engine = TransformersEngine(str(tmp_path))
    ids, mask, labels = encode_examples(engine.tokenizer, [("Start at 3.", " 45}$"), ("A", "B")])
    assert ids.shape == labels.shape == mask.shape and mask[1].sum() < mask[0].sum()
    target = [int(t) for t in labels[0] if t != -100]
    assert engine.tokenizer.decode(target) == " 45}$"


def test_command_line(tmp_path, capsys):
    args = [f"--{k.replace('_', '-')}={v}" for k, v in TOY.items()]
    assert main(["--out", str(tmp_path), *args]) == 0
    assert "saved" in capsys.readouterr().out and (tmp_path / "tokenizer.json").is_file()


def test_levels_option_draws_only_those_levels(tmp_path, capsys):
    import pytest

    args = [f"--{k.replace('_', '-')}={v}" for k, v in {**TOY, "steps": 2}.items()]
    for out in ("a", "b"):
        assert main(["--out", str(tmp_path / out), "--levels", "1-3", *args]) == 0
    assert json.loads((tmp_path / "a" / "pretrain_config.json").read_text())["config"]["levels"] == [1, 2, 3]
    # the same command gives the same bytes (as the default levels do: test_same_seed_same_checkpoint_and_it_loads)
    for name in ("model.safetensors", "tokenizer.json"):
        assert (tmp_path / "a" / name).read_bytes() == (tmp_path / "b" / name).read_bytes(), name
    with pytest.raises(SystemExit):
        main(["--out", str(tmp_path), "--levels", "1-7", *args])
    assert "Bad levels '1-7'" in capsys.readouterr().err
