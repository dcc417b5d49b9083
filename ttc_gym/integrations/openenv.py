"""Serve any registered ttc-gym env over OpenEnv's protocol (PyPI `openenv`, GitHub huggingface/OpenEnv,
formerly meta-pytorch/OpenEnv): a FastAPI app with OpenEnv's HTTP and WebSocket endpoints, one env
instance per WebSocket session, typed actions and observations.

Server side:

- `TTCGymEnvironment`: an OpenEnv `Environment` around one Gymnasium env (`gym.make(env_id, **kwargs)`):
  `reset(seed, episode_id, options)` and `step(action)` call the env's Gymnasium API; the observation
  carries the env's observation (as JSON), its `info` (J, progress, outcome, reward, ... — the
  entries of `ttc_gym.rewards.reward_info`, docs/formulation.md §3), `terminated`, `truncated`, and
  OpenEnv's `reward` (the env's reward) and `done` (terminated or truncated).
- `make_app(env_id, ...)`: the app (OpenEnv's `create_app`) with action and observation models typed
  from the env's spaces (`/schema` publishes them): TTC-Math-v0 takes `{"action": "<episode text>"}`,
  TTC-Sim-v0 and TTC-MathMeta-v0 `{"action": <int>}`.
- `serve(...)` runs it (blocking; `ttc-gym serve ENV_ID --port P`); `start_server(...)` runs it in a
  background thread and returns a `RunningServer` (its `url`, `stop()`; a context manager).

Client side: `TTCEnvClient` (OpenEnv's `EnvClient`: async, or `.sync()`), and `RemoteEnv`, the same
session with Gymnasium's signatures (`reset -> (obs, info)`, `step -> (obs, reward, terminated,
truncated, info)`).

Sessions that share a model engine (the default model and vLLM engines are loaded once per process)
take turns on it (`ttc_gym.integrations.engine_lock`); envs with their own engines, or none, run in
parallel. Needs `pip install 'ttc-gym[openenv]'`.
"""

from __future__ import annotations

import functools
import threading
import time
import uuid
from typing import Annotated, Any, Callable, Optional

import gymnasium as gym
import numpy as np
from gymnasium import spaces

from ttc_gym.integrations import engine_lock
from ttc_gym.integrations.exclusive_extras import check_mcp
from ttc_gym.optional import require
from ttc_gym.registration import ENVS
from ttc_gym.validation import check_float, check_int, unknown_name_error

require("openenv", "openenv", "serving ttc-gym envs over OpenEnv")
check_mcp("openenv")  # mcp 2 (verifiers 0.4's pin) breaks openenv.core's fastmcp import: say why, in one line

from openenv.core import EnvClient  # noqa: E402
from openenv.core.client_types import StepResult  # noqa: E402
from openenv.core.env_server import create_app  # noqa: E402
from openenv.core.env_server.interfaces import Environment  # noqa: E402
from openenv.core.env_server.types import Action, EnvironmentMetadata, Observation, State  # noqa: E402
from pydantic import Field, create_model  # noqa: E402

DEFAULT_MAX_SESSIONS = 4
#: Seconds a WebSocket session may stay silent before the server closes it (and frees its env), so
#: that idle clients cannot hold every session. None: no limit.
DEFAULT_IDLE_TIMEOUT = 600.0


class ClientError(ValueError):
    """A request the env refused (bad arguments, a step before reset): HTTP 400 with the message
    (over WebSocket, OpenEnv's error reply carries it), never a bare 500."""


# ---------------------------------------------------------------------------------------- JSON values
def to_jsonable(value: Any) -> Any:
    """`value` as JSON data: numpy scalars and arrays become numbers and lists, tuples lists, mapping
    keys strings; str, int, float, bool and None stay; anything else becomes its `str`."""
    if value is None or isinstance(value, (bool, int, float, str)):
        return value
    if isinstance(value, np.generic):
        return value.item()
    if isinstance(value, np.ndarray):
        return value.tolist()
    if isinstance(value, dict):
        return {str(k): to_jsonable(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [to_jsonable(v) for v in value]
    return str(value)


def from_jsonable(space: spaces.Space, value: Any) -> Any:
    """The JSON action `value` as the Gymnasium `space` expects it (an int for Discrete, an array of
    the space's dtype for Box / MultiDiscrete / MultiBinary, a dict or tuple for Dict / Tuple; text
    as is). A numeric action outside the space is a ValueError naming the space."""
    if isinstance(space, spaces.Discrete):
        return int(value)
    if isinstance(space, (spaces.Box, spaces.MultiDiscrete, spaces.MultiBinary)):
        array = np.asarray(value, dtype=space.dtype)
        if not space.contains(array):
            raise ValueError(f"action must lie in {space}, got {value!r:.200}.")
        return array
    if isinstance(space, spaces.Dict) and isinstance(value, dict):
        return {k: from_jsonable(space[k], v) if k in space.spaces else v for k, v in value.items()}
    if isinstance(space, spaces.Tuple) and isinstance(value, (list, tuple)):
        return tuple(from_jsonable(s, v) for s, v in zip(space.spaces, value))
    return value


# ------------------------------------------------------------------------------------------ models
class TTCAction(Action):
    """One action of a ttc-gym env: `action` is the env's action as JSON (the episode's text for
    TTC-Math-v0, an int for the discrete envs). The server validates it with a model typed from the
    env's action space (`typed_models`)."""

    action: Any = Field(..., description="the action, in the env's action space (as JSON)")


class TTCObservation(Observation):
    """What reset and step return: the env's observation (as JSON), its `info` dict (J, progress,
    outcome, reward, episodes_used, ...; docs/formulation.md §3), and Gymnasium's `terminated` and
    `truncated`; OpenEnv's `reward` is the env's reward (None after reset) and `done` is
    terminated or truncated."""

    observation: Any = Field(default=None, description="the env's observation (as JSON)")
    info: dict[str, Any] = Field(default_factory=dict, description="the env's info dict (J, progress, outcome, ...)")
    terminated: bool = Field(default=False, description="Gymnasium's terminated")
    truncated: bool = Field(default=False, description="Gymnasium's truncated")


class TTCState(State):
    """A session's state: OpenEnv's `episode_id` and `step_count`, the env id, whether the current
    rollout ended (`terminated`, `truncated`), its summed reward (`episode_return`) and reset seed."""

    env_id: str = ""
    seed: int | None = None
    terminated: bool = False
    truncated: bool = False
    episode_return: float = 0.0


def space_type(space: spaces.Space, name: str = "Value") -> Any:
    """A pydantic type for JSON values of a Gymnasium space (Discrete: a bounded int; Text: a string
    of bounded length; Box / MultiDiscrete / MultiBinary: (nested) lists of numbers, a number for a
    scalar Box; Dict: a model with one field per key; Sequence: a list; Tuple: a tuple); Any for
    other spaces."""
    if isinstance(space, spaces.Discrete):
        low = int(space.start)
        return Annotated[int, Field(strict=True, ge=low, le=low + int(space.n) - 1)]
    if isinstance(space, spaces.Text):
        return Annotated[str, Field(min_length=int(space.min_length), max_length=int(space.max_length))]
    if isinstance(space, spaces.Box):
        return float if space.shape == () else list[Any]
    if isinstance(space, (spaces.MultiDiscrete, spaces.MultiBinary)):
        return list[Any] if len(space.shape) != 1 else Annotated[
            list[int], Field(min_length=int(space.shape[0]), max_length=int(space.shape[0]))]
    if isinstance(space, spaces.Sequence):
        return list[space_type(space.feature_space, name + "Item")]
    if isinstance(space, spaces.Tuple):
        return tuple[tuple(space_type(s, f"{name}{i}") for i, s in enumerate(space.spaces))]
    if isinstance(space, spaces.Dict):
        if not all(isinstance(k, str) and k.isidentifier() and not k.startswith("_") for k in space.spaces):
            return dict[str, Any]
        fields = {k: (space_type(s, name + k.title()), ...) for k, s in space.spaces.items()}
        return create_model(name, **fields)
    return Any


def _model_name(env_id: str) -> str:
    return "".join(ch for ch in env_id.title() if ch.isalnum())


def typed_models(env_id: str, action_space: spaces.Space, observation_space: spaces.Space
                 ) -> tuple[type[TTCAction], type[TTCObservation]]:
    """(action model, observation model) for an env with these spaces: `TTCAction` and
    `TTCObservation` with `action` and `observation` typed by `space_type`."""
    name = _model_name(env_id)
    action_cls = create_model(
        f"{name}Action", __base__=TTCAction,
        action=(space_type(action_space, f"{name}ActionValue"),
                Field(..., description=f"an action in {action_space!r}")),
    )
    observation_type = space_type(observation_space, f"{name}ObservationValue")
    observation_cls = create_model(
        f"{name}Observation", __base__=TTCObservation,
        observation=(Optional[observation_type],
                     Field(default=None, description=f"an observation in {observation_space!r}")),
    )
    return action_cls, observation_cls


# --------------------------------------------------------------------------------------- server env
class EnvMaker:
    """Makes the Gymnasium env of each new session: `make_env()` when given, else
    `gym.make(env_id, **env_kwargs)`. Envs handed over with `spare` (the probe env the server read
    the spaces from) are used first."""

    def __init__(self, env_id: str, env_kwargs: dict | None = None, make_env: Callable[[], gym.Env] | None = None):
        if make_env is not None and env_kwargs:
            raise ValueError("pass env_kwargs or make_env, not both (make_env builds the whole env).")
        if make_env is not None and not callable(make_env):
            raise TypeError(f"make_env must be a callable returning a gymnasium.Env, got {make_env!r}.")
        self.env_id = env_id
        self.env_kwargs = dict(env_kwargs or {})
        self.make_env = make_env
        self._spares: list[gym.Env] = []
        self._lock = threading.Lock()

    def spare(self, env: gym.Env) -> None:
        with self._lock:
            self._spares.append(env)

    def __call__(self) -> gym.Env:
        with self._lock:
            if self._spares:
                return self._spares.pop()
        env = self.make_env() if self.make_env is not None else gym.make(self.env_id, **self.env_kwargs)
        if not isinstance(env, gym.Env):
            raise TypeError(f"make_env must return a gymnasium.Env, got {type(env).__name__}.")
        return env

    def close_spares(self) -> None:
        with self._lock:
            spares, self._spares = self._spares, []
        for env in spares:
            env.close()


class TTCGymEnvironment(Environment):
    """One OpenEnv session: a ttc-gym env driven through its Gymnasium API (see the module
    docstring). Made by the server for each WebSocket session from an `EnvMaker`."""

    SUPPORTS_CONCURRENT_SESSIONS = True

    def __init__(self, env_id: str, maker: EnvMaker, observation_cls: type[TTCObservation] = TTCObservation):
        super().__init__()
        self.env_id = env_id
        self.env = maker()
        self._observation_cls = observation_cls
        self._state = TTCState(env_id=env_id)

    def reset(self, seed: int | None = None, episode_id: str | None = None, options: dict | None = None,
              **kwargs: Any) -> TTCObservation:
        """Gymnasium's `reset(seed=seed, options=options)`; `episode_id` names the rollout (a new
        uuid when None). Any other argument is an error."""
        if kwargs:
            raise ClientError(f"reset takes seed, episode_id and options; got also {sorted(kwargs)}.")
        try:
            if seed is not None:
                seed = check_int("seed", seed, minimum=0)
            with engine_lock(self.env):
                obs, info = self.env.reset(seed=seed, options=options)
        except (ValueError, TypeError) as err:  # the env's checks of its arguments: the client's error
            raise ClientError(str(err)) from None
        self._state = TTCState(env_id=self.env_id, episode_id=episode_id or uuid.uuid4().hex, seed=seed)
        return self._observation_cls(observation=to_jsonable(obs), info=to_jsonable(info), reward=None, done=False)

    def step(self, action: TTCAction, timeout_s: float | None = None, **kwargs: Any) -> TTCObservation:
        """Gymnasium's `step(action.action)` (the JSON action converted to the action space's type)."""
        if self._state.episode_id is None:
            raise ClientError(f"{self.env_id}: step called before reset; send a reset first (over HTTP each "
                              f"request gets a fresh env: use the WebSocket session /ws for a rollout).")
        if self._state.terminated or self._state.truncated:
            raise ClientError(f"{self.env_id}: step called after the rollout ended (terminated or truncated); "
                              "send a reset first.")
        try:
            value = from_jsonable(self.env.action_space, action.action)
            with engine_lock(self.env):
                obs, reward, terminated, truncated, info = self.env.step(value)
        except (ValueError, TypeError) as err:  # an action the env refuses: the client's error
            raise ClientError(str(err)) from None
        state = self._state
        state.step_count += 1
        state.terminated, state.truncated = bool(terminated), bool(truncated)
        state.episode_return += float(reward)
        return self._observation_cls(
            observation=to_jsonable(obs), info=to_jsonable(info), reward=float(reward),
            done=bool(terminated or truncated), terminated=bool(terminated), truncated=bool(truncated),
        )

    @property
    def state(self) -> TTCState:
        return self._state

    def get_metadata(self) -> EnvironmentMetadata:
        from ttc_gym import __version__

        summary = {e.id: e.summary for e in ENVS}.get(self.env_id, f"{self.env_id} (a Gymnasium env)")
        return EnvironmentMetadata(name=self.env_id, description=summary, version=__version__)

    def close(self) -> None:
        self.env.close()


def check_env_id(env_id: Any) -> str:
    """A Gymnasium env id that is registered (ttc-gym's are, once `ttc_gym` is imported)."""
    import ttc_gym  # noqa: F401  (registers the envs)

    if not isinstance(env_id, str) or env_id not in gym.registry:
        raise unknown_name_error("env id", env_id, [e.id for e in ENVS])
    return env_id


class SessionGuard:
    """ASGI middleware in front of OpenEnv's WebSocket endpoint: a session silent for `idle_timeout`
    seconds gets an error message and is closed (its env freed; the time an env spends computing a
    step does not count), and a binary frame gets an error reply instead of ending the session
    (OpenEnv reads text frames only). HTTP passes through."""

    def __init__(self, app: Any, idle_timeout: float | None = DEFAULT_IDLE_TIMEOUT):
        self.app = app
        self.idle_timeout = idle_timeout

    @staticmethod
    def _error(message: str, code: str) -> dict:
        import json

        return {"type": "websocket.send", "text": json.dumps({"type": "error", "data": {"message": message,
                                                                                       "code": code}})}

    async def __call__(self, scope: dict, receive: Callable, send: Callable) -> None:
        if scope["type"] != "websocket":
            return await self.app(scope, receive, send)
        import asyncio

        accepted = False

        async def tracked_send(message: dict) -> None:
            nonlocal accepted
            accepted = accepted or message["type"] == "websocket.accept"
            await send(message)

        async def guarded_receive() -> dict:
            while True:
                try:
                    message = await asyncio.wait_for(receive(), self.idle_timeout)
                except asyncio.TimeoutError:
                    if accepted:
                        await send(self._error(f"session closed: no message for {self.idle_timeout:g} s (the "
                                               f"server's idle timeout, ttc-gym serve --idle-timeout)", "IDLE_TIMEOUT"))
                        await send({"type": "websocket.close", "code": 1001, "reason": "idle timeout"})
                    return {"type": "websocket.disconnect", "code": 1001}
                if message["type"] == "websocket.receive" and message.get("text") is None:
                    size = len(message.get("bytes") or b"")
                    await send(self._error(f"expected a text frame holding a JSON message, got a binary frame of "
                                           f"{size} bytes; send the message as text.", "INVALID_FRAME"))
                    continue
                return message

        await self.app(scope, guarded_receive, tracked_send)


def _client_error(request: Any, err: ClientError) -> Any:
    from fastapi.responses import JSONResponse

    return JSONResponse(status_code=400, content={"detail": str(err)})


def make_app(env_id: str, env_kwargs: dict | None = None, *, make_env: Callable[[], gym.Env] | None = None,
             max_sessions: int = DEFAULT_MAX_SESSIONS, idle_timeout: float | None = DEFAULT_IDLE_TIMEOUT) -> Any:
    """OpenEnv's FastAPI app serving `env_id`: each WebSocket session (`TTCEnvClient`) gets its own
    env, `gym.make(env_id, **env_kwargs)` or `make_env()`, up to `max_sessions` at once; a session
    silent for `idle_timeout` seconds is closed (`SessionGuard`; None: never). One env is made now to
    read its spaces (it serves the first session). A request the env refuses is HTTP 400 with its
    message."""
    env_id = check_env_id(env_id)
    max_sessions = check_int("max_sessions", max_sessions, minimum=1)
    if idle_timeout is not None:
        idle_timeout = check_float("idle_timeout", idle_timeout, minimum=0.001)
    maker = EnvMaker(env_id, env_kwargs, make_env)
    probe = maker()
    maker.spare(probe)
    action_cls, observation_cls = typed_models(env_id, probe.action_space, probe.observation_space)
    factory = functools.partial(TTCGymEnvironment, env_id, maker, observation_cls)
    app = create_app(factory, action_cls, observation_cls, env_name=env_id, max_concurrent_envs=max_sessions)
    app.state.ttc_env_maker = maker
    app.router.on_shutdown.append(maker.close_spares)
    app.add_exception_handler(ClientError, _client_error)
    if idle_timeout is not None:
        app.add_middleware(SessionGuard, idle_timeout=idle_timeout)
    return app


def serve(env_id: str, env_kwargs: dict | None = None, *, host: str = "127.0.0.1", port: int = 8000,
          max_sessions: int = DEFAULT_MAX_SESSIONS, make_env: Callable[[], gym.Env] | None = None,
          log_level: str = "info", idle_timeout: float | None = DEFAULT_IDLE_TIMEOUT) -> None:
    """Serve `env_id` at http://HOST:PORT (WebSocket `/ws`) until interrupted (`ttc-gym serve`)."""
    port = check_int("port", port, minimum=0, maximum=65535)  # 0: any free port
    import uvicorn

    app = make_app(env_id, env_kwargs, make_env=make_env, max_sessions=max_sessions, idle_timeout=idle_timeout)
    uvicorn.run(app, host=host, port=port, log_level=log_level)


class RunningServer:
    """A server started by `start_server`, running in a background thread: `url`
    (http://HOST:PORT), `port`, `stop()` (also on leaving a `with` block)."""

    def __init__(self, server: Any, thread: threading.Thread, host: str):
        self._server, self._thread = server, thread
        sockets = [s for srv in server.servers for s in srv.sockets]
        self.host = host
        self.port = int(sockets[0].getsockname()[1])
        self.url = f"http://{host}:{self.port}"

    def stop(self, timeout: float = 30.0) -> None:
        """Ask the server to exit (open sessions are closed, their envs too) and join its thread."""
        self._server.should_exit = True
        self._thread.join(timeout)
        if self._thread.is_alive():
            raise RuntimeError(f"the OpenEnv server at {self.url} did not stop within {timeout} s.")

    def __enter__(self) -> "RunningServer":
        return self

    def __exit__(self, *exc: Any) -> None:
        self.stop()


def start_server(env_id: str, env_kwargs: dict | None = None, *, host: str = "127.0.0.1", port: int = 0,
                 max_sessions: int = DEFAULT_MAX_SESSIONS, make_env: Callable[[], gym.Env] | None = None,
                 startup_timeout: float = 120.0, log_level: str = "warning",
                 idle_timeout: float | None = DEFAULT_IDLE_TIMEOUT) -> RunningServer:
    """Start a server for `env_id` in a background thread (port 0: a free port) and return it once it
    accepts connections. Use it in a notebook or a test; `serve` for a standalone server."""
    import uvicorn

    app = make_app(env_id, env_kwargs, make_env=make_env, max_sessions=max_sessions, idle_timeout=idle_timeout)
    config = uvicorn.Config(app, host=host, port=check_int("port", port, minimum=0, maximum=65535), log_level=log_level,
                            ws_ping_interval=None, lifespan="on")
    server = uvicorn.Server(config)
    thread = threading.Thread(target=server.run, name=f"openenv-{env_id}", daemon=True)
    thread.start()
    deadline = time.monotonic() + startup_timeout
    while not server.started:
        if not thread.is_alive():
            raise RuntimeError(f"the OpenEnv server for {env_id} exited while starting (port {port} taken?).")
        if time.monotonic() > deadline:
            server.should_exit = True
            thread.join(10)
            raise RuntimeError(f"the OpenEnv server for {env_id} did not start within {startup_timeout} s.")
        time.sleep(0.02)
    return RunningServer(server, thread, host)


# ------------------------------------------------------------------------------------------- client
class TTCEnvClient(EnvClient):
    """OpenEnv client of a ttc-gym server: one WebSocket session, one env on the server.

        with TTCEnvClient(base_url="http://127.0.0.1:8000").sync() as env:
            result = env.reset(seed=0)                 # StepResult: .observation (TTCObservation)
            result = env.step("Let me add: 2 + 3 = 5.")   # a raw action or a TTCAction
            result.observation.info["progress"], result.reward, result.done
    """

    def _step_payload(self, action: Any) -> dict[str, Any]:
        if isinstance(action, TTCAction):
            return action.model_dump()
        return {"action": to_jsonable(action)}

    def _parse_result(self, payload: dict[str, Any]) -> StepResult:
        obs = payload.get("observation", {})
        observation = TTCObservation(
            observation=obs.get("observation"), info=obs.get("info", {}), terminated=obs.get("terminated", False),
            truncated=obs.get("truncated", False), done=payload.get("done", False), reward=payload.get("reward"),
            metadata=payload.get("metadata", obs.get("metadata", {})),
        )
        return StepResult(observation=observation, reward=payload.get("reward"), done=payload.get("done", False),
                          metadata=payload.get("metadata"))

    def _parse_state(self, payload: dict[str, Any]) -> TTCState:
        return TTCState(**payload)


class RemoteEnv:
    """A served env with Gymnasium's signatures, over one `TTCEnvClient` session (synchronous):
    `reset(seed=, options=) -> (obs, info)`, `step(action) -> (obs, reward, terminated, truncated,
    info)`, `close()`; observations and infos are JSON (lists for arrays and tuples)."""

    def __init__(self, base_url: str, **client_kwargs: Any):
        self.client = TTCEnvClient(base_url=base_url, **client_kwargs).sync()
        self.client.connect()

    def reset(self, *, seed: int | None = None, options: dict | None = None) -> tuple[Any, dict]:
        kwargs = {k: v for k, v in (("seed", seed), ("options", options)) if v is not None}
        obs = self.client.reset(**kwargs).observation
        return obs.observation, obs.info

    def step(self, action: Any) -> tuple[Any, float, bool, bool, dict]:
        obs = self.client.step(action).observation
        return obs.observation, float(obs.reward), obs.terminated, obs.truncated, obs.info

    def state(self) -> TTCState:
        return self.client.state()

    def close(self) -> None:
        self.client.close()

    def __enter__(self) -> "RemoteEnv":
        return self

    def __exit__(self, *exc: Any) -> None:
        self.close()
