"""What every operation of the platform's OpenAPI says about its errors, so that a partner (or a fuzzer) can rely
on the document: every 4xx and 5xx is an RFC 9457 problem (`application/problem+json`, `ProblemDetails`), a body
that is not JSON is a 400, and a path with a parameter may answer 404. FastAPI documents its own 422 as
`application/json`: that is corrected here too."""

from __future__ import annotations

from http import HTTPStatus
from typing import Any

from shared.problems import PROBLEM_JSON, ProblemDetails

METHODS = ("get", "put", "post", "delete", "options", "head", "patch", "trace")
PROBLEM_REF = {"$ref": "#/components/schemas/ProblemDetails"}


def _problem(status: int, description: str | None = None) -> dict[str, Any]:
    return {"description": description or HTTPStatus(status).phrase, "content": {PROBLEM_JSON: {"schema": PROBLEM_REF}}}


def operations(doc: dict[str, Any]) -> list[tuple[str, dict[str, Any]]]:
    return [
        (path, operation)
        for path, item in doc.get("paths", {}).items()
        for method, operation in item.items()
        if method in METHODS
    ]


def add_problems(doc: dict[str, Any], statuses: dict[int, str], *, skip: set[str] | None = None) -> None:
    """Declares these problem statuses on every operation (but those of `skip` paths) that does not already."""
    for path, operation in operations(doc):
        if skip and path in skip:
            continue
        responses = operation.setdefault("responses", {})
        for status, description in statuses.items():
            responses.setdefault(str(status), _problem(status, description))


def normalize(doc: dict[str, Any]) -> dict[str, Any]:
    """In place (and idempotent): every error response a problem; 400 where there is a body, 404 where there is
    a path parameter."""
    schemas = doc.setdefault("components", {}).setdefault("schemas", {})
    if "ProblemDetails" not in schemas:
        schemas["ProblemDetails"] = ProblemDetails.model_json_schema(ref_template="#/components/schemas/{model}")
        for name, schema in schemas["ProblemDetails"].pop("$defs", {}).items():
            schemas.setdefault(name, schema)
    for path, operation in operations(doc):
        responses = operation.setdefault("responses", {})
        if "requestBody" in operation:
            responses.setdefault("400", _problem(400, "Bad Request: the body could not be read as JSON"))
        if "{" in path:
            responses.setdefault("404", _problem(404))
        for status, response in responses.items():
            if status[:1] in ("4", "5"):
                response["content"] = {PROBLEM_JSON: {"schema": PROBLEM_REF}}
    return doc
