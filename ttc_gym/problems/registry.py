"""Named problem sources for the envs: `make_source(spec)` and `register_source(name, factory)`."""

from __future__ import annotations

import os
import re
from collections.abc import Callable
from pathlib import Path
from typing import Any

from ttc_gym.problems.core import ListSource, Problem, ProblemSource
from ttc_gym.problems.loaders import SUPPORTED_SUFFIXES, load_problems, problems_from_hf
from ttc_gym.problems.procedural import ProceduralSource
from ttc_gym.validation import did_you_mean

#: A factory gets the text after "<name>:" in the spec (None when there is no colon).
SourceFactory = Callable[[str | None], ProblemSource]

#: name -> a factory, or its "module:attr" entry point (imported when the source is first used, as
#: engine schemes are: a source's package, e.g. the micro-reasoner's, loads only when asked for).
_SOURCES: dict[str, SourceFactory | str] = {}

SPEC_HELP = (
    "'procedural', 'procedural:<level 1-5>' (also '1-3' or '1,2'), 'hf:<name>[:split]' or "
    "'hf:<name>:<config>:<split>', 'micro' or 'micro:<level 1-5>' (arithmetic chains), a path to a " + "/".join(SUPPORTED_SUFFIXES) + " file, "
    "a registered name, a ProblemSource, or a list of Problems"
)


def register_source(name: str, factory: SourceFactory | str, *, overwrite: bool = False) -> None:
    """Make `make_source("name")` call `factory(None)` and `make_source("name:arg")` call
    `factory("arg")`. `factory` may be a "module:attr" string, imported when first used."""
    if not isinstance(name, str) or not re.fullmatch(r"[A-Za-z][\w.-]*", name):
        raise ValueError(
            f"Source name must start with a letter and hold only letters, digits, '_', '.', '-' "
            f"(no ':'), got {name!r}."
        )
    if isinstance(factory, str):
        if not re.fullmatch(r"[A-Za-z_][\w.]*:[A-Za-z_]\w*", factory):
            raise ValueError(f"A source entry point is 'package.module:factory', got {factory!r}.")
    elif not callable(factory):
        raise TypeError(f"factory must be callable or a 'module:attr' string, got {factory!r}.")
    if name in _SOURCES and not overwrite:
        raise ValueError(
            f"Problem source {name!r} is already registered; pass overwrite=True to replace it."
        )
    _SOURCES[name] = factory


def source_names() -> list[str]:
    return sorted(_SOURCES)


def _procedural(arg: str | None) -> ProblemSource:
    if arg is None:
        return ProceduralSource()
    text = arg.replace(" ", "")
    if re.fullmatch(r"[1-5]", text):
        return ProceduralSource(difficulty=int(text))
    match = re.fullmatch(r"([1-5])-([1-5])", text)
    if match and int(match.group(1)) <= int(match.group(2)):
        return ProceduralSource(
            difficulty=list(range(int(match.group(1)), int(match.group(2)) + 1))
        )
    if re.fullmatch(r"[1-5](,[1-5])+", text):
        return ProceduralSource(difficulty=[int(t) for t in text.split(",")])
    raise ValueError(
        f"Bad source spec 'procedural:{arg}': expected a level 1..5 ('procedural:3'), a range "
        f"('procedural:1-3') or a list ('procedural:1,2')."
    )


def _hf(arg: str | None) -> ProblemSource:
    parts = (arg or "").split(":")
    if not parts[0] or len(parts) > 3 or not all(parts):
        raise ValueError(
            f"Bad source spec 'hf:{arg or ''}': expected 'hf:<name>', 'hf:<name>:<split>' or "
            f"'hf:<name>:<config>:<split>' (e.g. 'hf:openai/gsm8k:main:test')."
        )
    name, config, split = (
        parts[0],
        (parts[1] if len(parts) == 3 else None),
        (parts[-1] if len(parts) > 1 else "test"),
    )
    return ListSource(problems_from_hf(name, split=split, config=config), name=f"hf:{arg}")


register_source("procedural", _procedural)
register_source("hf", _hf)


register_source("micro", "ttc_gym.micro.task:source_from_spec")  # the micro-reasoner's arithmetic chains


def _factory(name: str) -> SourceFactory:
    factory = _SOURCES[name]
    if isinstance(factory, str):
        import importlib

        module, _, attr = factory.partition(":")
        factory = _SOURCES[name] = getattr(importlib.import_module(module), attr)
    return factory


def _reasoning_gym(arg: str | None) -> ProblemSource:
    from ttc_gym.problems.reasoning_gym import ReasoningGymSource  # needs the reasoning-gym extra

    return ReasoningGymSource.from_spec(arg)


register_source("reasoning-gym", _reasoning_gym)


def _file(path: str | os.PathLike[str]) -> ProblemSource:
    return ListSource(load_problems(path), name=os.fspath(path))


def make_source(spec: Any = None) -> ProblemSource:
    """A ProblemSource from a spec (default "procedural"); see `SPEC_HELP` for the forms."""
    if spec is None:
        spec = "procedural"
    if isinstance(spec, Problem):
        return ListSource([spec])
    if isinstance(spec, os.PathLike):
        return _file(spec)
    if isinstance(spec, str):
        text = spec.strip()
        prefix, colon, arg = text.partition(":")
        if prefix in _SOURCES:
            return _factory(prefix)(arg if colon else None)
        if Path(text).suffix.lower() in SUPPORTED_SUFFIXES or Path(text).exists():
            return _file(text)  # load_problems names a missing file / an unsupported type
        raise ValueError(
            f"Unknown problem source {spec!r}.{did_you_mean(prefix or text, source_names())} "
            f"Expected {SPEC_HELP}."
        )
    if isinstance(spec, ProblemSource):
        return spec
    if isinstance(spec, (list, tuple)):
        return ListSource(spec)
    raise TypeError(
        f"Problem source spec must be {SPEC_HELP}; got {type(spec).__name__} {spec!r:.80}."
    )
