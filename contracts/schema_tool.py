"""Generate the committed JSON Schemas and check a model change against them.

`execwatch contracts write` regenerates `contracts/schemas/`; `execwatch contracts check` (and a
test) fails when the current models would break a consumer of the committed schema: a field removed,
made required, or a JSON type no longer accepted. Limits added or tightened (lengths, bounds,
patterns) are listed as notices for producers and do not fail the check: see `contracts.limits`.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from contracts import EVENT_MODELS

SCHEMA_DIR = Path(__file__).parent / "schemas"


def schema_filename(event_type: str, version: int) -> str:
    return f"{event_type}.v{version}.json"


def current_schemas() -> dict[str, dict[str, Any]]:
    out: dict[str, dict[str, Any]] = {}
    for event_type, model in EVENT_MODELS.items():
        version = model.model_fields["schema_version"].default
        schema = model.model_json_schema(mode="validation")
        schema["$id"] = f"https://execwatch.seoul/contracts/{schema_filename(event_type, version)}"
        out[schema_filename(event_type, version)] = schema
    return out


def write_schemas(directory: Path = SCHEMA_DIR) -> list[Path]:
    directory.mkdir(parents=True, exist_ok=True)
    written = []
    for name, schema in current_schemas().items():
        path = directory / name
        path.write_text(json.dumps(schema, ensure_ascii=False, indent=2, sort_keys=True) + "\n", "utf-8")
        written.append(path)
    return written


def load_committed(directory: Path = SCHEMA_DIR) -> dict[str, dict[str, Any]]:
    return {p.name: json.loads(p.read_text("utf-8")) for p in sorted(directory.glob("*.json"))}


# --- compatibility -------------------------------------------------------------------------------


def _resolve(schema: dict[str, Any], root: dict[str, Any]) -> dict[str, Any]:
    while "$ref" in schema:
        ref = schema["$ref"]
        assert ref.startswith("#/$defs/"), ref
        schema = root["$defs"][ref.removeprefix("#/$defs/")]
    return schema


def _accepted_types(schema: dict[str, Any], root: dict[str, Any]) -> set[str]:
    """The JSON types a schema admits (enough to see a narrowed type)."""
    schema = _resolve(schema, root)
    if "anyOf" in schema or "oneOf" in schema:
        out: set[str] = set()
        for sub in schema.get("anyOf", schema.get("oneOf", [])):
            out |= _accepted_types(sub, root)
        return out
    if "const" in schema:
        return {f"const:{json.dumps(schema['const'])}"}
    if "enum" in schema:
        return {f"const:{json.dumps(v)}" for v in schema["enum"]}
    kind = schema.get("type")
    if kind is None:
        return {"any"}
    kinds = kind if isinstance(kind, list) else [kind]
    return set(kinds) | ({"number"} if "integer" in kinds and "number" in kinds else set())


def _admits(new: set[str], old_type: str) -> bool:
    if "any" in new or old_type in new:
        return True
    if old_type == "integer" and "number" in new:
        return True
    if old_type.startswith("const:"):
        value = json.loads(old_type.removeprefix("const:"))
        kind = {str: "string", int: "integer", float: "number", bool: "boolean"}.get(type(value))
        return kind in new or (kind == "integer" and "number" in new)
    return False


def _compare(old: dict[str, Any], new: dict[str, Any], old_root: dict[str, Any],
             new_root: dict[str, Any], path: str, problems: list[str]) -> None:
    old, new = _resolve(old, old_root), _resolve(new, new_root)
    old_types, new_types = _accepted_types(old, old_root), _accepted_types(new, new_root)
    lost = sorted(t for t in old_types if not _admits(new_types, t))
    if lost:
        problems.append(f"{path}: no longer accepts {', '.join(lost)}")
    old_props, new_props = old.get("properties", {}), new.get("properties", {})
    old_required, new_required = set(old.get("required", [])), set(new.get("required", []))
    for name, old_sub in old_props.items():
        where = f"{path}.{name}" if path else name
        if name not in new_props:
            problems.append(f"{where}: removed or renamed")
            continue
        if name in new_required and name not in old_required:
            problems.append(f"{where}: was optional, now required")
        _compare(old_sub, new_props[name], old_root, new_root, where, problems)
    for name in sorted(new_required - set(old_props)):
        where = f"{path}.{name}" if path else name
        problems.append(f"{where}: new required field")
    for key in ("items",):
        if key in old and key in new:
            _compare(old[key], new[key], old_root, new_root, f"{path}[]", problems)


# Limits: a keyword added, or made stricter, rejects values the old schema accepted. That breaks
# producers (who must be told), not consumers (who receive a subset of what they read before).
_UPPER = ("maxLength", "maxItems", "maxProperties", "maximum", "exclusiveMaximum", "formatMaximum")
_LOWER = ("minLength", "minItems", "minProperties", "minimum", "exclusiveMinimum", "formatMinimum")
_EXACT = ("pattern", "format", "multipleOf")


def _tightened(old: dict[str, Any], new: dict[str, Any], old_root: dict[str, Any],
               new_root: dict[str, Any], path: str, notices: list[str]) -> None:
    old, new = _resolve(old, old_root), _resolve(new, new_root)
    where = path or "(event)"
    for key in (*_UPPER, *_LOWER, *_EXACT):
        if key not in new or new.get(key) == old.get(key):
            continue
        before, after = old.get(key), new[key]
        looser = before is not None and (
            (key in _UPPER and after > before) or (key in _LOWER and after < before))
        if not looser:
            notices.append(f"{where}: {key} {before!r} → {after!r}" if before is not None
                           else f"{where}: new {key} {after!r}")
    old_alts, new_alts = old.get("anyOf", old.get("oneOf")), new.get("anyOf", new.get("oneOf"))
    if isinstance(old_alts, list) and isinstance(new_alts, list) and len(old_alts) == len(new_alts):
        for o, n in zip(old_alts, new_alts, strict=True):
            _tightened(o, n, old_root, new_root, path, notices)
    new_props = new.get("properties", {})
    for name, old_sub in old.get("properties", {}).items():
        if name in new_props:
            _tightened(old_sub, new_props[name], old_root, new_root, f"{path}.{name}" if path else name, notices)
    for key, suffix in (("items", "[]"), ("additionalProperties", "{}")):
        if isinstance(old.get(key), dict) and isinstance(new.get(key), dict):
            _tightened(old[key], new[key], old_root, new_root, f"{path}{suffix}", notices)


def tightened_limits(old: dict[str, Any], new: dict[str, Any]) -> list[str]:
    """Limits `new` adds or tightens: producer-facing changes, reported but not failing the check."""
    notices: list[str] = []
    _tightened(old, new, old, new, "", notices)
    return notices


def breaking_changes(old: dict[str, Any], new: dict[str, Any]) -> list[str]:
    """What in `new` would reject a message `old` accepted, or drop a field consumers read."""
    problems: list[str] = []
    _compare(old, new, old, new, "", problems)
    return problems


def check_against_committed(directory: Path = SCHEMA_DIR) -> list[str]:
    committed, current = load_committed(directory), current_schemas()
    problems = [f"{name}: committed schema no longer generated" for name in committed if name not in current]
    for name, old in committed.items():
        if name in current:
            problems += [f"{name}: {p}" for p in breaking_changes(old, current[name])]
    problems += [
        f"{name}: not committed; run `execwatch contracts write`" for name in current if name not in committed
    ]
    return problems


def tightened_against_committed(directory: Path = SCHEMA_DIR) -> list[str]:
    committed, current = load_committed(directory), current_schemas()
    return [f"{name}: {n}" for name, old in committed.items() if name in current
            for n in tightened_limits(old, current[name])]
