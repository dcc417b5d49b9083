"""The OpenEnv server under bad clients (issue 33 items 10 and 12): a bad HTTP body gets a 400 with
the env's message (not a bare 500), a binary WebSocket frame gets an error reply and the session goes
on, and a silent session is closed after the idle timeout, freeing its env for the next client."""

from __future__ import annotations

import json

import pytest

pytest.importorskip("openenv")  # in the `test` extra: CI runs this file

import httpx  # noqa: E402
from websockets.exceptions import ConnectionClosed  # noqa: E402
from websockets.sync.client import connect  # noqa: E402

from ttc_gym.integrations.openenv import RemoteEnv, start_server  # noqa: E402


def _ws(server):
    return connect(server.url.replace("http://", "ws://") + "/ws", open_timeout=30)


@pytest.mark.parametrize("path, body, message", [
    ("/reset", {"options": {"difficulty": 7}}, "difficulty"),
    ("/reset", {"options": "fast"}, "options"),
    ("/step", {"action": {"action": 0}}, "step called before reset"),
])
def test_bad_http_bodies_get_a_400_with_the_message(path, body, message):
    with start_server("TTC-Sim-v0", max_sessions=1) as server:
        reply = httpx.post(server.url + path, json=body, timeout=30)
    assert reply.status_code == 400, reply.text
    assert message in reply.json()["detail"]


def test_a_binary_frame_gets_an_error_and_the_session_goes_on():
    with start_server("TTC-Sim-v0", max_sessions=1) as server, _ws(server) as ws:
        ws.send(b"\x00\x01binary")
        error = json.loads(ws.recv(timeout=30))
        assert error["type"] == "error" and "binary frame of 8 bytes" in error["data"]["message"]
        ws.send(json.dumps({"type": "reset", "data": {"seed": 0}}))
        assert json.loads(ws.recv(timeout=30))["type"] == "observation"


def test_a_silent_session_is_closed_and_frees_its_env():
    with start_server("TTC-Sim-v0", max_sessions=1, idle_timeout=1.0) as server:
        with _ws(server) as silent:
            silent.send(json.dumps({"type": "reset", "data": {"seed": 0}}))
            assert json.loads(silent.recv(timeout=30))["type"] == "observation"
            error = json.loads(silent.recv(timeout=30))  # then nothing for 1 s: the server speaks
            assert error["data"]["code"] == "IDLE_TIMEOUT" and "no message for 1 s" in error["data"]["message"]
            with pytest.raises(ConnectionClosed):
                silent.recv(timeout=30)
        with RemoteEnv(server.url) as env:  # the only session is free again
            obs, info = env.reset(seed=1)
            assert "J" in info
