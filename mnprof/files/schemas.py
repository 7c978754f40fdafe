"""The published JSON Schemas of mnprof's files (``mnprof/schemas/``) and validation against them: the first place
a document breaks its schema, in one line."""

from __future__ import annotations

import functools
import json
from pathlib import Path
from typing import Any

from mnprof.files.documents import printable

__all__ = ["SCHEMAS", "SCHEMAS_DIR", "schema", "schema_problem"]

SCHEMAS_DIR = Path(__file__).parent.parent / "schemas"
SCHEMAS = ("results", "baseline", "settings", "table")


@functools.cache
def schema(name: str) -> dict[str, Any]:
    """The published JSON Schema (draft 2020-12) of one of mnprof's files: ``mnprof/schemas/<name>.schema.json``."""
    return json.loads((SCHEMAS_DIR / f"{name}.schema.json").read_text(encoding="utf-8"))  # type: ignore[no-any-return]


@functools.cache
def _validator(name: str) -> Any:
    import jsonschema  # 65 ms, paid only by the commands that read a file

    # JSON Schema counts 5.0 as an integer; no count or size mnprof writes is a float, so 5.0 is refused.
    strict = jsonschema.Draft202012Validator.TYPE_CHECKER.redefine(
        "integer", lambda _checker, value: type(value) is int
    )
    validator = jsonschema.validators.extend(jsonschema.Draft202012Validator, type_checker=strict)
    return validator(schema(name))


def _short(value: Any) -> str:
    if isinstance(value, (dict, list)):
        text = type(value).__name__
    else:  # a TOML date or time is no JSON value: shown as text
        text = json.dumps(value, ensure_ascii=False, default=str)
    text = {"dict": "an object", "list": "an array"}.get(text, text)
    return text if len(text) <= 40 else text[:37] + "..."


def _accepted(error: Any) -> str:
    """What the schema accepts where ``error`` failed, in words."""
    keyword, value = error.validator, error.validator_value
    words = {"object": "an object", "array": "an array", "string": "text", "number": "a number",
             "integer": "an integer", "boolean": "true or false", "null": "null"}  # fmt: skip
    if keyword in ("oneOf", "anyOf"):  # each alternative's first failure, in words
        return " or ".join(dict.fromkeys(_accepted(sub) for sub in error.context if not sub.relative_path))
    if keyword == "type":
        types = value if isinstance(value, list) else [value]
        return " or ".join(words.get(t, t) for t in types)
    if keyword == "required":
        return "an object with " + ", ".join(value)
    bounds = {"minimum": ">=", "maximum": "<=", "exclusiveMinimum": ">", "exclusiveMaximum": "<"}
    if keyword in bounds:
        return f"a number {bounds[keyword]} {value}"
    if keyword == "enum":
        return "one of " + ", ".join(json.dumps(v) for v in value)
    if keyword == "const":
        return json.dumps(value)
    if keyword in ("minItems", "minLength"):
        return f"at least {value} item(s)"
    if keyword == "minProperties":
        return f"an object with at least {value} key(s)"
    if keyword == "pattern":
        return f"text matching {value}"
    if keyword == "not" and isinstance(value, dict) and set(value) == {"pattern"}:
        return f"text with nothing matching {value['pattern']}"
    if keyword == "additionalProperties" and value is False:
        return "only " + ", ".join(error.schema.get("properties", {}))
    return " ".join(str(error.message).split())[:120]


def schema_problem(document: Any, name: str) -> str | None:
    """The first place where ``document`` breaks the published schema ``name``, in one line (its JSON path, what
    is there and what is accepted), or None."""
    import jsonschema

    error = jsonschema.exceptions.best_match(_validator(name).iter_errors(document))
    if error is None:
        return None
    if error.validator == "required":
        missing = next((key for key in error.validator_value if key not in error.instance), "?")
        return f"{error.json_path} lacks {missing}; accepted: {_accepted(error)}"
    if error.validator == "additionalProperties" and error.validator_value is False:
        extra = sorted(set(error.instance) - set(error.schema.get("properties", {})))
        return f"{error.json_path}: unknown key {printable(str(extra[0]))!r}; accepted: {_accepted(error)}"
    if "propertyNames" in error.schema_path:  # a key, not a value, is wrong
        accepted = f"keys matching {error.validator_value}" if error.validator == "pattern" else _accepted(error)
        return f"{error.json_path} has the key {_short(error.instance)}; accepted: {accepted}"
    return f"{error.json_path} is {_short(error.instance)}; accepted: {_accepted(error)}"
