"""Reading a registry document strictly, and saying in words what is wrong with it.

* :func:`load` parses strict JSON (no NaN) and reports keys an object repeats (a merge
  gone wrong keeps both lines; :mod:`json` would silently keep the last);
* :func:`schema_messages` checks a document against its JSON Schema in ``schemas/``
  (jsonschema, draft 2020-12) and words each error as ``JSON-PATH: what is wrong; how to
  fix it``.

:mod:`modelbox.check` builds its problems from these.
"""

from __future__ import annotations

import itertools
import json
import re
from collections.abc import Iterable
from functools import cache
from importlib import resources
from typing import TYPE_CHECKING, Any

from modelbox import limits
from modelbox.errors import InvalidNameError
from modelbox.names import check_segment, parse_namespace

if TYPE_CHECKING:
    from jsonschema import ValidationError

__all__ = ["NotJSONError", "jpath", "load", "schema_messages"]


class NotJSONError(ValueError):
    """The bytes are not strict JSON, or not within the limits of a document
    (:mod:`modelbox.limits`: then ``limit`` is True)."""

    limit = False


class _Repeated(dict[str, Any]):
    """A JSON object that names some keys more than once (``json`` keeps the last value)."""

    repeated: list[str]


_objects_with_repeats = itertools.count()  # next() is atomic: no lock, no per-call closure


def _pairs(items: list[tuple[str, Any]]) -> dict[str, Any]:
    obj = dict(items)
    if len(obj) == len(items):
        return obj
    keys = [k for k, _ in items]
    marked = _Repeated(obj)
    marked.repeated = sorted({k for k in keys if keys.count(k) > 1})
    next(_objects_with_repeats)
    return marked


def _constant(name: str) -> Any:
    raise NotJSONError(f"{name} is not a JSON number")


_DECODER = json.JSONDecoder(object_pairs_hook=_pairs, parse_constant=_constant)


def load(data: bytes, kind: str = "") -> tuple[Any, list[list[str | int]]]:
    """Parse strict JSON (no NaN) within the limits of a ``kind`` document
    (:mod:`modelbox.limits`); also return the JSON paths of keys an object repeats."""
    before = next(_objects_with_repeats)
    try:
        document = limits.loads(data, kind, lambda raw: _DECODER.decode(raw.decode("utf-8-sig")))
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise NotJSONError(str(exc)) from None
    except limits.LimitError as exc:
        error = NotJSONError(str(exc))
        error.limit = True
        raise error from None
    if next(_objects_with_repeats) == before + 1:
        return document, []
    found: list[list[str | int]] = []
    stack: list[tuple[list[str | int], Any]] = [([], document)]
    while stack:
        where, value = stack.pop()
        if isinstance(value, _Repeated):
            found.extend([*where, key] for key in value.repeated)
        if isinstance(value, dict):
            stack.extend(([*where, k], v) for k, v in value.items())
        elif isinstance(value, list):
            stack.extend(([*where, i], v) for i, v in enumerate(value))
    return document, sorted(found, key=str)


def jpath(parts: Iterable[str | int]) -> str:
    return ".".join(str(p) for p in parts) or "(document)"


@cache
def _schema(kind: str) -> Any:
    from jsonschema import Draft202012Validator

    text = resources.files("modelbox") / "schemas" / f"{kind}.schema.json"
    return Draft202012Validator(json.loads(text.read_text(encoding="utf-8")))


_FIX = {
    "pointer": "fix the field, or write the pointer again with `modelbox artifact add`",
    "tags": "fix it, or restore the file with git and use `modelbox tag` / `modelbox untag`",
}


def schema_messages(kind: str, document: Any) -> list[str]:
    """Each way ``document`` breaks the schema of ``kind``, in words, without repeats."""
    fix = _FIX.get(kind, "fix the field or restore the file with git")
    errors = sorted(_schema(kind).iter_errors(document), key=lambda e: jpath(e.absolute_path))
    found = [f"{where}: {what}" if ";" in what else f"{where}: {what}; {fix}"
             for error in errors for where, what in _explain(error)]
    return list(dict.fromkeys(found))


def _show(value: Any) -> str:
    text = json.dumps(value, ensure_ascii=False)
    return text if len(text) <= 60 else text[:57] + "..."


_TYPES = {"object": "an object", "array": "a list", "integer": "an integer",
          "string": "a string", "number": "a number", "boolean": "true or false",
          "null": "null"}


def _types(rule: Any) -> str:
    return " or ".join(_TYPES.get(t, str(t)) for t in (rule if isinstance(rule, list) else [rule]))


def _explain(error: ValidationError) -> list[tuple[str, str]]:
    """``(JSON path, what is wrong)`` for one jsonschema error, in words a user can act on."""
    at, value, rule = list(error.absolute_path), error.instance, error.validator_value
    if error.validator == "required":
        return [(jpath([*at, k]), "is missing; add this required field or restore the file "
                                  "with git") for k in rule if k not in value]
    if error.validator == "additionalProperties":
        known = error.schema.get("properties", {})
        patterns = error.schema.get("patternProperties", {})
        extra = [k for k in value if k not in known and not any(re.search(p, k) for p in patterns)]
        if patterns:  # a map whose keys are names (tags)
            return [(jpath([*at, k]), f"{_show(k)} {_rule('tag', k)}") for k in extra]
        return [(jpath([*at, k]), "unknown field; remove it or fix its spelling") for k in extra]
    if error.validator in ("anyOf", "oneOf"):
        # The branch whose type matched says what is really wrong (a "pattern or null" field).
        deeper = [e for e in error.context or [] if e.validator != "type"]
        if deeper:
            return _explain(deeper[0])
        return [(jpath(at), f"must be {_types([b.get('type') for b in rule])}, "
                            f"not {_show(value)}")]
    field = str(at[-1]) if at else ""
    return [(jpath(at), _words(str(error.validator), field, value, rule) or str(error.message))]


def _words(keyword: str, field: str, value: Any, rule: Any) -> str | None:
    if keyword == "type":
        return f"must be {_types(rule)}, not {_show(value)}"
    if keyword == "enum":
        return f"{_show(value)} is not one of: {', '.join(map(str, rule))}"
    if keyword == "const":
        upgrade = " (this modelbox reads registry format 1; upgrade modelbox)"
        return f"must be {_show(rule)}" + (upgrade if field == "format" else "")
    if keyword == "pattern":
        return f"{_show(value)} {_rule(field, value)}"
    if keyword == "minimum":
        return f"must be at least {rule}, not {_show(value)}"
    if keyword == "minLength":
        return "must not be empty"
    if keyword == "maxLength":
        return f"is longer than {rule} characters"
    return None


def _rule(field: str, value: str) -> str:
    """Which rule a string that failed its ``pattern`` breaks, said by field."""
    if field == "sha256":
        return "is not a SHA-256 checksum (64 lowercase hexadecimal digits)"
    if field == "created_at":
        return "is not an RFC 3339 date-time with a time zone (like 2026-11-23T14:00:00Z)"
    if field == "path":
        return ("is not a safe relative path: it could escape the registry (no leading '/', "
                "no '..', '.' or hidden segment, no backslash or control character)")
    try:
        if field in ("namespace", "model", "experiment"):
            parse_namespace(value)
        else:
            check_segment(field, value)
    except InvalidNameError as exc:
        return f"is not a valid name: {exc.rule}"
    return "is not a valid name (letters, digits, '.', '_', '-'; at most 128 characters)"
