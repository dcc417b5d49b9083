"""The micro-reasoner: a tiny Llama trained from scratch on procedural reasoning traces of
multi-step arithmetic chains, small enough to learn on a CPU in minutes (issue 15).

- `task`: the problem family (source "micro", difficulty levels 1..5);
- `traces`: procedural reasoning traces in the envs' episode format (attempts, slips, checks,
  fixes, restarts) and the training texts built from them with `ttc_gym.prompts.PromptTemplate`;
- `tokenizer`: the small byte-level BPE tokenizer built from those texts;
- `pretrain`: supervised pretraining from scratch (`python -m ttc_gym.micro.pretrain`);
- `checkpoint`: the shipped checkpoints, the base (`ttc_gym/data/micro/`, engine spec "micro") and a
  longer pretraining with headroom at levels 2-3 (`ttc_gym/data/micro_long/`, "micro-long"), and the
  engine on each.

Importing this package loads neither torch nor transformers.
"""
