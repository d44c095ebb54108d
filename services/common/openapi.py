"""Schemas an app's `/openapi.json` refers to that no route parameter declares: the bodies a
route reads itself (ingest reads its events as a capped stream, so FastAPI must not parse them)
and documents with `openapi_extra`."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from fastapi import FastAPI
from pydantic import TypeAdapter

#: Where OpenAPI keeps named schemas: `$ref`s generated with this template resolve there.
REF_TEMPLATE = "#/components/schemas/{model}"


def schema_with_defs(adapter: TypeAdapter[Any]) -> tuple[dict[str, Any], dict[str, Any]]:
    """A type's JSON Schema (validation side) with `$ref`s into the OpenAPI components, and the
    named schemas those refer to."""
    schema = adapter.json_schema(ref_template=REF_TEMPLATE, mode="validation")
    return schema, schema.pop("$defs", {})


def add_components(app: FastAPI, schemas: dict[str, Any]) -> None:
    """Add named schemas to the app's OpenAPI components (a name FastAPI already uses for
    another schema is an error: one of the two documents would be wrong)."""
    generate: Callable[[], dict[str, Any]] = app.openapi

    def openapi() -> dict[str, Any]:
        if app.openapi_schema is None:
            spec = generate()
            components = spec.setdefault("components", {}).setdefault("schemas", {})
            for name, schema in schemas.items():
                if name in components and components[name] != schema:
                    raise ValueError(f"OpenAPI component {name!r} is defined twice, differently")
                components[name] = schema
            app.openapi_schema = spec
        return app.openapi_schema

    app.openapi = openapi  # type: ignore[method-assign]
