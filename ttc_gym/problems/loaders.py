"""Problems from files (.jsonl, .json, .csv) and from Hugging Face `datasets`, through one row
converter.

Fields are found by name (exact, then case-insensitive) unless given:

- question: ``question``, ``problem``, ``prompt``, ``input``;
- answer: ``answer``, ``final_answer``, ``target``, ``solution``;
- id: ``id``, ``unique_id`` (else ``"<filename>:<line>"`` / ``"<dataset>:<row>"``; a second item
  starting on the same line of a .json file gets ``"<filename>:<line>#2"``, and so on). Ids are
  unique within a file: a repeated ``id`` field is an error naming both lines;
- difficulty: ``level``, ``difficulty`` (``3``, ``"3"`` and MATH's ``"Level 3"`` all give 3;
  anything else, e.g. MATH's ``"Level ?"``, gives None);
- solution: the ``solution`` field when the answer comes from another field.

Gold answers: an answer that contains GSM8K's ``#### 42`` or a ``\\boxed{...}`` is a worked
solution: the final answer is extracted and the whole text kept as `Problem.solution`. A
``solution`` field used as the answer must contain one of those markers. The other fields of a row
go into `Problem.meta`, with ``origin`` (where the row came from).

Refused at load, with the file and line: a gold answer that is not a finite number (JSON ``NaN``,
``Infinity``, ``1e400``) or the text "nan"; text with lone surrogates (JSON ``"\\ud800"``), which no
tokenizer accepts; a file that is not UTF-8 (UTF-16 with a byte-order mark is read as such); a CSV
quote left open.
"""

from __future__ import annotations

import csv
import errno
import json
import math
import numbers
import os
import re
from collections.abc import Iterable, Iterator, Mapping
from pathlib import Path
from typing import Any, Self

from ttc_gym.answer_extraction import BOX_COMMANDS, extract_boxed, gsm8k_answer
from ttc_gym.files import check_regular_file, loads
from ttc_gym.optional import require
from ttc_gym.problems.core import Problem
from ttc_gym.validation import check_int, check_unicode, did_you_mean

QUESTION_FIELDS = ("question", "problem", "prompt", "input")
ANSWER_FIELDS = ("answer", "final_answer", "target", "solution")
ID_FIELDS = ("id", "unique_id")
DIFFICULTY_FIELDS = ("level", "difficulty")
SOLUTION_FIELDS = ("solution",)
SUPPORTED_SUFFIXES = (".jsonl", ".json", ".csv")

_JSON_WS = " \t\n\r"

# ------------------------------------------------------------------------ row -> Problem


def _lookup(row: Mapping[str, Any], names: Iterable[str]) -> str | None:
    """The first key of `row` matching one of `names`, exactly, else ignoring case and spaces."""
    names = tuple(names)
    for name in names:
        if name in row:
            return name
    folded = {str(k).strip().lower(): k for k in row}
    for name in names:
        if name in folded:
            return folded[name]
    return None


def _field(
    row: Mapping[str, Any], override: str | None, defaults: tuple[str, ...], kind: str, where: str
) -> str:
    keys = [str(k) for k in row]
    article = "an" if kind[0] in "aeiou" else "a"
    if override is not None:
        key = _lookup(row, [override])
        if key is None:
            raise ValueError(
                f"{where}: expected {article} {kind} field {override!r} ({kind}_field), got fields "
                f"{keys}.{did_you_mean(override, keys)}"
            )
        return key
    key = _lookup(row, defaults)
    if key is None:
        raise ValueError(
            f"{where}: expected {article} {kind} field, one of {list(defaults)} "
            f"(or pass {kind}_field=...), got fields {keys}."
        )
    return key


def _text(value: Any, kind: str, key: str, where: str, *, numbers_ok: bool) -> str:
    if isinstance(value, str) and value.strip():
        if numbers_ok and value.strip().lower() == "nan":
            raise ValueError(f"{where}: the {kind} field {key!r} is {value!r}, which is not an answer.")
        return check_unicode(f"{where}: the {kind} field {key!r}", value)
    if numbers_ok and isinstance(value, numbers.Real) and not isinstance(value, bool):
        if not math.isfinite(value):
            raise ValueError(
                f"{where}: expected the {kind} field {key!r} to be a finite number, got {value!r} (JSON "
                f"NaN, Infinity and numbers beyond the float range such as 1e400 load as non-finite floats; "
                f"write the answer as a string if it really is one)."
            )
        if isinstance(value, float) and value.is_integer():
            return str(int(value))
        return getattr(value, "text", None) or str(value)  # 0.00001 stays 0.00001, not 1e-05
    what = "a non-empty string" + (" or a number" if numbers_ok else "")
    raise ValueError(f"{where}: expected the {kind} field {key!r} to be {what}, got {value!r:.80}.")


def gold_answer(text: str, key: str, where: str = "row") -> tuple[str, str | None]:
    """(final answer, worked solution or None) from an answer field's text."""
    if "####" in text:
        answer = gsm8k_answer(text)
        if not answer:
            raise ValueError(
                f"{where}: expected a final answer after '####' in the {key!r} field "
                f"(GSM8K style '... #### 42'), got {text[-80:]!r}."
            )
        return answer, text
    if any(command in text for command in BOX_COMMANDS):
        answer = extract_boxed(text)
        if not answer:
            raise ValueError(
                f"{where}: expected a well-formed \\boxed{{...}} with the final answer in the "
                f"{key!r} field (MATH style), got {text[-80:]!r}."
            )
        return answer, text
    if key.strip().lower() in SOLUTION_FIELDS:
        raise ValueError(
            f"{where}: the {key!r} field has no final answer: expected '#### <answer>' or "
            f"'\\boxed{{<answer>}}' in it, or pass answer_field= naming a field that holds the "
            f"answer."
        )
    return text.strip(), None


def parse_difficulty_field(value: Any) -> int | None:
    """3, 3.0, "3", "Level 3" -> 3; anything else -> None."""
    if isinstance(value, bool) or value is None:
        return None
    if isinstance(value, numbers.Integral):
        return int(value)
    if isinstance(value, float) and value.is_integer():
        return int(value)
    if isinstance(value, str):
        match = re.fullmatch(r"\s*(?:level\s*)?(\d+)\s*", value, re.IGNORECASE)
        return int(match.group(1)) if match else None
    return None


def row_to_problem(
    row: Any,
    *,
    where: str,
    default_id: str,
    source: str,
    question_field: str | None = None,
    answer_field: str | None = None,
) -> Problem:
    """One Problem from one row (a mapping); `where` prefixes every error ("file.jsonl, line 3")."""
    if not isinstance(row, Mapping):
        raise ValueError(
            f"{where}: expected an object with question and answer fields, got "
            f"{type(row).__name__} {row!r:.80}."
        )
    q_key = _field(row, question_field, QUESTION_FIELDS, "question", where)
    a_key = _field(row, answer_field, ANSWER_FIELDS, "answer", where)
    question = _text(row[q_key], "question", q_key, where, numbers_ok=False).strip()
    answer, solution = gold_answer(
        _text(row[a_key], "answer", a_key, where, numbers_ok=True), a_key, where
    )
    used = {q_key, a_key}
    s_key = _lookup(row, SOLUTION_FIELDS)
    if s_key is not None and s_key not in used:
        used.add(s_key)
        if solution is None and isinstance(row[s_key], str) and row[s_key].strip():
            solution = check_unicode(f"{where}: the solution field {s_key!r}", row[s_key])
    pid = default_id
    id_key = _lookup(row, ID_FIELDS)
    if id_key is not None:
        used.add(id_key)
        value = row[id_key]
        if isinstance(value, (str, int)) and not isinstance(value, bool) and str(value).strip():
            pid = check_unicode(f"{where}: the id field {id_key!r}", str(value).strip())
    difficulty = None
    level_key = _lookup(row, DIFFICULTY_FIELDS)
    if level_key is not None:
        used.add(level_key)
        difficulty = parse_difficulty_field(row[level_key])
    meta = {str(k): v for k, v in row.items() if k not in used and k is not None}
    meta["origin"] = default_id
    try:
        return Problem(
            id=pid,
            question=question,
            answer=answer,
            source=source,
            difficulty=difficulty,
            solution=solution,
            meta=meta,
        )
    except ValueError as err:
        raise ValueError(f"{where}: {err}") from None


def as_problem(value: Any, where: str = "problem") -> Problem:
    """A `Problem` as given, or one built from a mapping with question and answer fields (the same
    field names and checks as a file row; id defaults to a hash of question and answer). Anything
    else is a TypeError that says what was expected: e.g. a bare question string has no gold answer."""
    if isinstance(value, Problem):
        return value
    if isinstance(value, Mapping):
        from ttc_gym.seeding import text_seed

        question = str(value.get("question", value.get("problem", "")))
        default_id = f"custom-{text_seed(question + chr(0) + str(value.get('answer', '')), bits=32):08x}"
        return row_to_problem(value, where=where, default_id=default_id, source="custom")
    raise TypeError(
        f"{where} must be a ttc_gym.problems.Problem or a dict with 'question' and 'answer' (the gold "
        f"final answer), got {type(value).__name__} {value!r:.80}."
    )


# ------------------------------------------------------------------------------ files


def _encoding(path: Path) -> str:
    """UTF-16 when the file starts with its byte-order mark, else UTF-8 (with or without a BOM)."""
    with path.open("rb") as f:
        head = f.read(2)
    return "utf-16" if head in (b"\xff\xfe", b"\xfe\xff") else "utf-8-sig"


def _not_text(path: Path, err: UnicodeDecodeError) -> ValueError:
    return ValueError(
        f"{path}: expected UTF-8 text (or UTF-16 with a byte-order mark), got bytes that do not decode "
        f"as {err.encoding} at byte {err.start} ({err.reason}); re-save the file as UTF-8."
    )


def _decoding_errors(reader):
    """Wrap a reader so that a UnicodeDecodeError names the file."""

    def read(path: Path) -> Iterator[tuple[int, Any]]:
        try:
            yield from reader(path)
        except UnicodeDecodeError as err:
            raise _not_text(path, err) from None

    read.__name__ = reader.__name__
    read.__doc__ = reader.__doc__
    return read


@_decoding_errors
def _read_jsonl(path: Path) -> Iterator[tuple[int, Any]]:
    with path.open(encoding=_encoding(path)) as f:
        for line_no, line in enumerate(f, 1):
            if not line.strip():
                continue
            try:
                yield line_no, loads(line, f"{path}, line {line_no}", _DECODER)
            except json.JSONDecodeError as err:
                raise ValueError(
                    f"{path}, line {line_no}: expected one JSON object per line, got invalid JSON "
                    f"({err.msg} at column {err.colno})."
                ) from None


class _WrittenFloat(float):
    """A JSON number with a fraction or exponent, remembering its text (a gold ``0.00001`` stays
    ``"0.00001"`` instead of Python's ``"1e-05"``)."""

    text: str

    def __new__(cls, text: str) -> Self:
        value = super().__new__(cls, text)
        value.text = text
        return value


_DECODER = json.JSONDecoder(parse_float=_WrittenFloat)


def _skip_ws(text: str, pos: int) -> int:
    while pos < len(text) and text[pos] in _JSON_WS:
        pos += 1
    return pos


@_decoding_errors
def _read_json(path: Path) -> Iterator[tuple[int, Any]]:
    """Items of a top-level list, or of the "data" list of a top-level object, with the line on
    which each item starts."""
    text = path.read_text(encoding=_encoding(path))
    try:
        doc = loads(text, str(path), _DECODER)
    except json.JSONDecodeError as err:
        raise ValueError(
            f"{path}, line {err.lineno}: expected a JSON document, got invalid JSON "
            f"({err.msg} at column {err.colno})."
        ) from None
    decoder = _DECODER
    start = _skip_ws(text, 0)
    if isinstance(doc, dict) and isinstance(doc.get("data"), list):
        pos = _skip_ws(text, start + 1)
        while text[pos] != "}":  # find the (last, as json.loads keeps it) "data" member
            key, pos = decoder.raw_decode(text, pos)
            pos = _skip_ws(text, _skip_ws(text, pos) + 1)  # past ':'
            if key == "data":
                start = pos
            _, pos = decoder.raw_decode(text, pos)
            pos = _skip_ws(text, pos)
            if text[pos] == ",":
                pos = _skip_ws(text, pos + 1)
    elif not isinstance(doc, list):
        got = (
            f"an object with keys {list(doc)[:10]}" if isinstance(doc, dict) else type(doc).__name__
        )
        raise ValueError(
            f"{path}, line {text.count(chr(10), 0, start) + 1}: expected a JSON list of objects or "
            f'an object {{"data": [...]}}, got {got}.'
        )
    pos = _skip_ws(text, start + 1)  # past '['
    line, last = 1, 0
    while text[pos] != "]":
        line += text.count("\n", last, pos)
        last = pos
        item, pos = decoder.raw_decode(text, pos)  # not deeper than `doc`, which parsed
        yield line, item
        pos = _skip_ws(text, pos)
        if text[pos] == ",":
            pos = _skip_ws(text, pos + 1)


@_decoding_errors
def _read_csv(path: Path) -> Iterator[tuple[int, dict[str, str]]]:
    with path.open(encoding=_encoding(path), newline="") as f:
        # strict: a quote left open is an error, not a cell that silently swallows the rest of the file
        reader = csv.reader(f, strict=True)
        start = 1  # the line the row being read starts on
        try:
            header = next(reader, None)
            if header is None:
                return
            names = [h.strip() for h in header]
            if any(not h for h in names) or len(set(names)) != len(names):
                raise ValueError(
                    f"{path}, line 1: expected a header row of distinct, non-empty "
                    f"column names, got {header}."
                )
            start = reader.line_num + 1
            for row in reader:
                line, start = start, reader.line_num + 1
                if not row:
                    continue  # blank line
                if len(row) != len(names):
                    raise ValueError(
                        f"{path}, line {line}: expected {len(names)} fields (columns {names}), "
                        f"got {len(row)}."
                    )
                yield line, dict(zip(names, row, strict=True))
        except csv.Error as err:
            hint = " (a quoted field is never closed)" if "unexpected end of data" in str(err) else ""
            raise ValueError(
                f"{path}, line {start}: expected valid CSV, got: {err}{hint}."
            ) from None


_READERS = {".jsonl": _read_jsonl, ".json": _read_json, ".csv": _read_csv}


def _check_field_arg(name: str, value: Any) -> str | None:
    if value is not None and (not isinstance(value, str) or not value.strip()):
        raise TypeError(f"{name} must be None or a non-empty string, got {value!r}.")
    return value


def load_problems(
    path: str | os.PathLike[str],
    *,
    question_field: str | None = None,
    answer_field: str | None = None,
    limit: int | None = None,
) -> list[Problem]:
    """Problems from a .jsonl, .json (a list of objects, or ``{"data": [...]}``) or .csv file.

    Rows are read in order and stop after `limit` problems. Errors name the file and the 1-based
    line of the row (for CSV, the line the row starts on). See the module docstring for fields.
    """
    path = Path(os.fspath(path))
    _check_field_arg("question_field", question_field)
    _check_field_arg("answer_field", answer_field)
    if limit is not None:
        limit = check_int("limit", limit, minimum=1)
    if not path.exists():
        raise FileNotFoundError(errno.ENOENT, "Problem file not found", str(path))
    if path.is_dir():
        raise IsADirectoryError(errno.EISDIR, "Expected a problem file, got a directory", str(path))
    check_regular_file(path, "a problem file")
    suffix = path.suffix.lower()
    if suffix not in _READERS:
        raise ValueError(
            f"Unsupported problem file type {suffix or '(no extension)'!r} for '{path}': expected "
            f"one of {', '.join(SUPPORTED_SUFFIXES)}."
        )
    problems: list[Problem] = []
    seen: dict[str, str] = {}  # id -> where it was first seen
    per_line: dict[int, int] = {}  # items starting on each line (several on one line of a .json file)
    for line, row in _READERS[suffix](path):
        per_line[line] = per_line.get(line, 0) + 1
        where = f"{path}, line {line}" + (f", item {per_line[line]}" if per_line[line] > 1 else "")
        default_id = f"{path.name}:{line}" + (f"#{per_line[line]}" if per_line[line] > 1 else "")
        problem = row_to_problem(
            row,
            where=where,
            default_id=default_id,
            source=path.name,
            question_field=question_field,
            answer_field=answer_field,
        )
        if problem.id in seen:
            raise ValueError(
                f"{where}: problem id {problem.id!r} was already used at {seen[problem.id]}; ids must "
                f"be unique within a file (results are keyed by problem id)."
            )
        seen[problem.id] = where
        problems.append(problem)
        if limit is not None and len(problems) >= limit:
            break
    return problems


# ------------------------------------------------------------------------ Hugging Face


def problems_from_hf(
    dataset_or_name: Any,
    *,
    split: str = "test",
    config: str | None = None,
    question_field: str | None = None,
    answer_field: str | None = None,
    limit: int | None = None,
) -> list[Problem]:
    """Problems from a Hugging Face dataset.

    Args:
        dataset_or_name: a hub name (loaded with ``datasets.load_dataset(name, config,
            split=split)``, which needs the `hf` extra and internet), a ``DatasetDict`` (the
            `split` is taken), or a ``Dataset`` / any iterable of dicts (used as is).
        split: the split to load or take from a DatasetDict.
        config: the dataset configuration, e.g. ``"main"`` for ``openai/gsm8k``.
        question_field, answer_field, limit: as in `load_problems`.

    Ids default to ``"<name>:<split>:<row>"`` (0-based row); errors name the row.
    """
    _check_field_arg("question_field", question_field)
    _check_field_arg("answer_field", answer_field)
    if limit is not None:
        limit = check_int("limit", limit, minimum=1)
    if isinstance(dataset_or_name, str):
        datasets = require(
            "datasets", extra="hf", purpose="loading problems from the Hugging Face hub"
        )
        name: str | None = dataset_or_name
        data = datasets.load_dataset(dataset_or_name, config, split=split)
        split_name: str | None = split
    else:
        data = dataset_or_name
        if isinstance(data, Mapping):
            if split not in data:
                keys = [str(k) for k in data]
                raise ValueError(
                    f"Unknown split {split!r}.{did_you_mean(split, keys)} Expected one of: {keys}."
                )
            data = data[split]
        info = getattr(data, "info", None)
        name = getattr(info, "dataset_name", None) or None
        split_name = str(data.split) if getattr(data, "split", None) else None
        if not isinstance(data, Iterable) or isinstance(data, (str, bytes)):
            raise TypeError(
                "dataset_or_name must be a hub name, a datasets.Dataset / DatasetDict or an "
                f"iterable of dicts, got {type(dataset_or_name).__name__}."
            )
    source = f"hf:{name}" if name else "hf"
    label = ":".join(p for p in (name or "hf", split_name) if p)
    problems: list[Problem] = []
    for index, row in enumerate(data):
        problems.append(
            row_to_problem(
                row,
                where=f"dataset {label!r}, row {index}",
                default_id=f"{label}:{index}",
                source=source,
                question_field=question_field,
                answer_field=answer_field,
            )
        )
        if limit is not None and len(problems) >= limit:
            break
    return problems
