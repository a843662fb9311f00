"""Schema additions shared by every API view (a drf-spectacular postprocessing hook).

The error answers that DRF gives for any view are documented here once instead of in each
``extend_schema``: 400 (a body that does not validate: its errors by field), and as
``{"detail": "..."}`` 403 (CSRF or permissions), 404 (an unknown object named in the path),
415 (a body in a media type the view does not parse) and 429 (throttled views). The path converters' patterns are
stated too, so that a client (or a fuzzer) knows which values can reach a view at all.
"""

from __future__ import annotations

from typing import Any

ERROR_COMPONENT = "ErrorDetail"

# Django's path converters, as OpenAPI schemas (SPECTACULAR_SETTINGS["PATH_CONVERTER_OVERRIDES"]).
PATH_CONVERTERS = {
    "slug": {"type": "string", "pattern": "^[-a-zA-Z0-9_]+$"},
    "str": {"type": "string", "pattern": "^[^/]+$"},
    "int": {"type": "integer", "minimum": 0},
}

_DESCRIPTIONS = {
    "400": "Invalid body: each field's errors, by field name",
    "403": "Permission denied: missing or wrong CSRF token on a POST, or not allowed to see this",
    "404": "Nothing matches a value in the path",
    "415": "Unsupported Media Type: send the body as application/json",
    "429": "Too many requests from this client: retry after the Retry-After header's seconds",
}


def _throttled_paths(generator: Any) -> set[tuple[str, str]]:
    throttled = set()
    for path, _regex, method, view in getattr(generator, "endpoints", None) or []:
        cls = getattr(view, "cls", None)
        if cls is not None and getattr(cls, "throttle_scope", None) and getattr(cls, "throttle_classes", None):
            throttled.add((path, method.lower()))
    return throttled


def add_common_error_responses(result: dict, generator: Any, request: Any, public: bool) -> dict:
    schemas = result.setdefault("components", {}).setdefault("schemas", {})
    schemas.setdefault(
        ERROR_COMPONENT,
        {"type": "object", "properties": {"detail": {"type": "string"}}, "required": ["detail"]},
    )
    error = {"application/json": {"schema": {"$ref": f"#/components/schemas/{ERROR_COMPONENT}"}}}
    field_errors = {"application/json": {"schema": {"type": "object", "additionalProperties": True}}}
    throttled = _throttled_paths(generator)
    for path, operations in result.get("paths", {}).items():
        for method, operation in operations.items():
            if not isinstance(operation, dict) or "responses" not in operation:
                continue
            responses = operation["responses"]
            codes = ["403"]
            if any(p.get("in") == "path" for p in operation.get("parameters", [])):
                codes.append("404")
            if "requestBody" in operation:
                codes += ["400", "415"]
            if (path, method) in throttled:
                codes.append("429")
            for code in codes:
                content = field_errors if code == "400" else error
                responses.setdefault(code, {"description": _DESCRIPTIONS[code], "content": content})
    return result
