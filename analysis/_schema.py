"""The JSON report's schema (`report_schema.json`, shipped with the package) and a small validator.

The validator understands the subset of JSON Schema the schema uses: type (one or a list), required,
properties, additionalProperties (false or a schema), items, enum, minimum. Consumers of the report can
validate it with any JSON Schema library; this one keeps the package free of a dependency for it.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from importlib import resources
from typing import Any

from analysis.errors import SchemaError

_TYPES: Mapping[str, tuple[type, ...]] = {
    "object": (dict,),
    "array": (list,),
    "string": (str,),
    "number": (int, float),
    "integer": (int,),
    "boolean": (bool,),
    "null": (type(None),),
}


def report_schema() -> dict[str, Any]:
    schema: dict[str, Any] = json.loads(
        resources.files("analysis").joinpath("report_schema.json").read_text(encoding="utf-8")
    )
    return schema


def _type_ok(value: object, name: str) -> bool:
    if isinstance(value, bool) and name in ("number", "integer"):
        return False
    return isinstance(value, _TYPES[name])


def schema_errors(value: object, schema: Mapping[str, Any], path: str = "$") -> list[str]:
    """Every place where `value` breaks `schema`, as 'path: problem' strings (empty when valid)."""
    errors: list[str] = []
    types = schema.get("type")
    if types is not None:
        names = [types] if isinstance(types, str) else list(types)
        if not any(_type_ok(value, n) for n in names):
            return [f"{path}: expected {' or '.join(names)}, got {type(value).__name__}"]
    if "enum" in schema and value not in schema["enum"]:
        errors.append(f"{path}: {value!r} is not one of {schema['enum']}")
    number = isinstance(value, int | float) and not isinstance(value, bool)
    if "minimum" in schema and number and value < schema["minimum"]:
        errors.append(f"{path}: {value} is below the minimum {schema['minimum']}")
    if isinstance(value, dict):
        for key in schema.get("required", []):
            if key not in value:
                errors.append(f"{path}: missing required key {key!r}")
        props = schema.get("properties", {})
        extra = schema.get("additionalProperties", True)
        for key, v in value.items():
            if key in props:
                errors += schema_errors(v, props[key], f"{path}.{key}")
            elif extra is False:
                errors.append(f"{path}: unexpected key {key!r}")
            elif isinstance(extra, dict):
                errors += schema_errors(v, extra, f"{path}.{key}")
    if isinstance(value, list) and "items" in schema:
        for i, v in enumerate(value):
            errors += schema_errors(v, schema["items"], f"{path}[{i}]")
    return errors


def validate_report(document: object) -> None:
    """Raise `SchemaError` naming the first key that breaks the report schema."""
    errors = schema_errors(document, report_schema())
    if errors:
        key, _, problem = errors[0].partition(": ")
        more = f" (and {len(errors) - 1} more)" if len(errors) > 1 else ""
        raise SchemaError(problem + more, file="JSON report", key=key)
