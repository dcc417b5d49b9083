"""Run TTC-Math-v0 through verifiers 0.4's own eval (`verifiers.v1.cli.eval.runner.run_eval`) against a
loopback stub chat-completions server, and print one JSON line per rollout.

Run by tests/apps/test_verifiers_v1_adapter.py with a Python that has verifiers 0.4 (it cannot share an
environment with the `test` extra's openenv, see docs/integrations.md). The model is a stub server on
127.0.0.1 (streamed chat completions, replies scripted per problem and turn); the env's engine is the tiny
random test model, its prover a scripted engine whose J is (episodes so far + 1) / K. verifiers runs the
model through its `null` chat harness in a local subprocess (bootstrapped with `uv`).

    python tests/apps/verifiers_v1_check.py OUT_DIR
"""

from __future__ import annotations

import asyncio
import json
import sys
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

from ttc_gym.engines.base import Completion
from ttc_gym.engines.registry import register_engine_scheme
from ttc_gym.engines.testing import ScriptedChatEngine

EP = "[ep]"
PROBLEMS = [
    {"id": "add", "question": "What is 2 + 3?", "answer": "5"},
    {"id": "sub", "question": "What is 7 - 4?", "answer": "3"},
    {"id": "mul", "question": "What is 6 * 7?", "answer": "42"},
]
# Per problem, turn by turn: right, wrong, and never answering (the budget H = 3 ends it).
REPLIES = {
    "2 + 3": [f"{EP} Two plus three.", f"{EP} The sum is \\boxed{{5}}."],
    "7 - 4": [f"{EP} Seven minus four.", f"{EP} Hmm, I think it is \\boxed{{4}}."],
    "6 * 7": [f"{EP} Six times seven.", f"{EP} Let me recount.", f"{EP} Still counting."],
}
K = 3
TTC_ENV = {"engine": "tiny-random", "prover_engine": "counting-prover", "num_prover_samples": K,
           "max_episodes": 3, "max_answer_tokens": 8, "max_episode_chars": 200, "alpha": 0.5}


class CountingProver(ScriptedChatEngine):
    """Of its n forced answers, (episodes so far + 1) are the gold answer, the rest wrong."""

    name = "counting-prover"

    def generate(self, prompts, sampling, *, seed):
        out = []
        for prompt in prompts:
            gold = next(p["answer"] for p in PROBLEMS if p["question"] in prompt)
            k = min(sampling.n, prompt.count(EP) + 1)
            texts = [gold + "}$"] * k + ["1000}$"] * (sampling.n - k)
            out.append([Completion(t, 2, "stop", "}$") for t in texts])
        return out


def stub_server() -> tuple[ThreadingHTTPServer, list]:
    requests: list = []

    class Handler(BaseHTTPRequestHandler):
        def log_message(self, *args):  # quiet
            pass

        def do_POST(self):
            body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
            requests.append({"path": self.path, "body": body})
            messages = body["messages"]
            question = next(m["content"] for m in messages if m["role"] == "user")
            turn = sum(m["role"] == "assistant" for m in messages)
            text = next(r for key, r in REPLIES.items() if key in question)[turn]
            model = body.get("model", "stub")
            chunks = [
                {"choices": [{"index": 0, "delta": {"role": "assistant", "content": text}, "finish_reason": None}]},
                {"choices": [{"index": 0, "delta": {}, "finish_reason": "stop"}]},
                {"choices": [], "usage": {"prompt_tokens": 10, "completion_tokens": 5, "total_tokens": 15}},
            ]
            data = b"".join(
                f"data: {json.dumps({'id': 'stub', 'object': 'chat.completion.chunk', 'created': 0, 'model': model, **c})}\n\n".encode()
                for c in chunks) + b"data: [DONE]\n\n"
            self.send_response(200)
            self.send_header("Content-Type", "text/event-stream")
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    return server, requests


def main(out_dir: str) -> int:
    from verifiers.v1.cli.eval.runner import run_eval
    from verifiers.v1.configs.cli.eval import EvalConfig

    register_engine_scheme("tiny-random", "ttc_gym.engines.testing:tiny_random_engine", takes_model=False)
    register_engine_scheme("counting-prover", CountingProver, takes_model=False)
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    source = out / "problems.jsonl"
    source.write_text("".join(json.dumps(p) + "\n" for p in PROBLEMS))
    server, requests = stub_server()
    config = EvalConfig.model_validate({
        "env": {"taskset": {"id": "ttc-gym-verifiers", "source": str(source), "num_examples": 3},
                "agent": {"runtime": {"type": "subprocess"}}, "ttc_env": TTC_ENV},
        "model": "stub-model", "client": {"type": "eval", "base_url": f"http://127.0.0.1:{server.server_address[1]}/v1"},
        "rich": None, "run": {"dir": str(out / "run")}, "num_rollouts": 1,
    })
    episodes = asyncio.run(run_eval(config))
    server.shutdown()
    for episode in episodes:
        for trace in episode.traces:
            print(json.dumps({
                "ok": episode.ok, "errors": [e.message for e in episode.errors + trace.errors],
                "problem": episode.task.data.problem["question"], "prompt": episode.task.data.prompt,
                "rewards": {k: [r.score, r.weight] for k, r in trace.rewards.items() if r is not None},
                "reward": trace.reward, "metrics": trace.metrics, "ttc": trace.info.get("ttc"),
                "env_class": type(episode).__name__, "num_turns": trace.num_turns,
            }))
    print(json.dumps({"requests": len(requests), "first": requests[0]["body"]["messages"] if requests else None}))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1]))
