"""Argument checks shared by every env and agent: each error says what was expected and what came."""

from __future__ import annotations

import difflib
import math
import numbers
from typing import Any, Iterable

from ttc_gym.errors import TTCGymError


def did_you_mean(name: str, choices: Iterable[str]) -> str:
    """A ' Did you mean X?' suffix when `name` is close to one of `choices`, else ''."""
    close = difflib.get_close_matches(str(name), list(choices), n=1, cutoff=0.6)
    return f" Did you mean {close[0]!r}?" if close else ""


def unknown_name_error(kind: str, name: Any, choices: Iterable[str]) -> ValueError:
    choices = sorted(choices)
    return ValueError(
        f"Unknown {kind} {name!r}.{did_you_mean(name, choices)} Expected one of: {', '.join(choices)}."
    )


def check_int(name: str, value: Any, *, minimum: int | None = None, maximum: int | None = None) -> int:
    """An integer (bool excluded) within [minimum, maximum]."""
    if isinstance(value, bool) or not isinstance(value, numbers.Integral):
        raise TypeError(f"{name} must be an integer, got {value!r} ({type(value).__name__}).")
    value = int(value)
    if minimum is not None and value < minimum:
        raise ValueError(f"{name} must be >= {minimum}, got {value}.")
    if maximum is not None and value > maximum:
        raise ValueError(f"{name} must be <= {maximum}, got {value}.")
    return value


def check_float(
    name: str, value: Any, *, minimum: float | None = None, maximum: float | None = None
) -> float:
    """A finite real number (bool excluded) within [minimum, maximum]."""
    if isinstance(value, bool) or not isinstance(value, numbers.Real):
        raise TypeError(f"{name} must be a number, got {value!r} ({type(value).__name__}).")
    value = float(value)
    if not math.isfinite(value):
        raise ValueError(f"{name} must be finite, got {value}.")
    if minimum is not None and value < minimum:
        raise ValueError(f"{name} must be >= {minimum}, got {value}.")
    if maximum is not None and value > maximum:
        raise ValueError(f"{name} must be <= {maximum}, got {value}.")
    return value


#: The smallest positive sampling temperature accepted (vLLM treats temperatures below its
#: ``_SAMPLING_EPS = 1e-5`` as greedy): a smaller one overflows ``logits / T`` to inf, and sampling
#: returns garbage instead of the greedy token. 0 means greedy.
MIN_TEMPERATURE = 1e-5


def check_temperature(name: str, value: Any) -> float:
    """A sampling temperature: 0 (greedy) or a finite number >= :data:`MIN_TEMPERATURE`."""
    value = check_float(name, value, minimum=0.0)
    if 0.0 < value < MIN_TEMPERATURE:
        raise ValueError(
            f"{name} must be 0 (greedy) or at least {MIN_TEMPERATURE:g}, got {value:g}: a smaller temperature "
            f"overflows the logits divided by it. Did you mean 0 (greedy decoding)?"
        )
    return value


def check_probability(name: str, value: Any) -> float:
    return check_float(name, value, minimum=0.0, maximum=1.0)


def check_distribution(name: str, values: Any, length: int | None = None) -> tuple[float, ...]:
    """A sequence of non-negative numbers summing to 1 (within 1e-6)."""
    try:
        items = tuple(values)
    except TypeError:
        raise TypeError(f"{name} must be a sequence of probabilities, got {values!r}.") from None
    probs = tuple(check_probability(f"{name}[{i}]", v) for i, v in enumerate(items))
    if length is not None and len(probs) != length:
        raise ValueError(f"{name} must have {length} entries, got {len(probs)}: {values!r}.")
    if not probs or abs(sum(probs) - 1.0) > 1e-6:
        raise ValueError(f"{name} must sum to 1, got {values!r} (sum {sum(probs):.6g}).")
    return probs


class UnsupportedRenderModeError(TTCGymError, TypeError, ValueError):
    """An env was asked for a render mode it does not have.

    A TypeError too, because that is how stable-baselines3's `make_vec_env` learns that an env takes
    no `render_mode="rgb_array"` and retries without it.
    """


def check_render_mode(render_mode: Any, supported: Iterable[str]) -> str | None:
    supported = list(supported)
    if render_mode is not None and render_mode not in supported:
        raise UnsupportedRenderModeError(
            f"render_mode must be None or one of {supported}, got {render_mode!r}."
        )
    return render_mode


def check_unicode(name: str, text: str) -> str:
    """`text` unchanged if it encodes as UTF-8; a lone surrogate (e.g. from a JSON "\\ud800" escape)
    cannot be tokenized by any model, so it is refused here, at the boundary, with its position."""
    try:
        text.encode("utf-8")
    except UnicodeEncodeError as err:
        raise ValueError(
            f"{name} contains a lone surrogate {text[err.start]!r} at character {err.start} (not valid "
            f"Unicode text; a model cannot tokenize it), in {text[max(0, err.start - 20):err.start + 20]!r}."
        ) from None
    return text
