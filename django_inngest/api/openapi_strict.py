"""Make the OpenAPI document as strict as the server (a drf-spectacular postprocessing hook).

drf-spectacular describes what the serializers *could* return; the server is stricter, and
clients (and the schemathesis fuzz test) should be able to rely on that:

* every ID, in a path or in a body, is a ULID (26 Crockford base-32 characters; paths accept
  any case, since ULIDs are case-insensitive);
* ``cursor`` is URL-safe base64 without padding, as ``metadata.next_cursor`` hands it out;
* every field of a response object is always present (``required``), even when null;
* ``DELETE /v1/runs/{run_id}`` takes an optional JSON body (drf-spectacular describes bodies
  for POST, PUT and PATCH only).
"""

from __future__ import annotations

from typing import Any

#: Crockford base-32 (no I, L, O, U), either case; the first character keeps it under 2^128.
ULID_PATTERN = r"^[0-7][0-9A-HJKMNP-TV-Za-hjkmnp-tv-z]{25}$"
CURSOR_PATTERN = r"^[A-Za-z0-9_-]+$"
#: Path parameters and response properties that hold a ULID.
ULID_PARAMETERS = {"run_id", "internal_id", "cancellation_id"}
ULID_PROPERTIES = {
    "Run": {"run_id", "event_id", "cancellation_id", "parent_run_id", "cancel_event_id"},
    "Step": {"matched_event_id"},
    "Event": {"internal_id"},
    "Cancellation": {"id"},
    "CancelledRun": {"run_id"},
    "Rerun": {"run_id"},
}


#: The optional body of ``DELETE /v1/runs/{run_id}`` (``api.serializers.CancelRunBody``).
CANCEL_RUN_BODY = {
    "type": "object",
    "properties": {
        "reason": {
            "type": "string",
            "maxLength": 1000,
            "description": "Why; recorded on the run, in the signal and in "
            "`inngest/function.cancelled`.",
        }
    },
    "additionalProperties": False,
}


def tighten(result: dict[str, Any], **_: Any) -> dict[str, Any]:
    for path_item in result.get("paths", {}).values():
        cancel = path_item.get("delete")
        if cancel is not None and cancel.get("operationId") == "cancelRun":
            result.setdefault("components", {}).setdefault("schemas", {})["CancelRunRequest"] = (
                CANCEL_RUN_BODY
            )
            cancel["requestBody"] = {
                "required": False,
                "content": {
                    "application/json": {
                        "schema": {"$ref": "#/components/schemas/CancelRunRequest"}
                    }
                },
            }
        for operation in path_item.values():
            for parameter in operation.get("parameters", []):
                schema = parameter.setdefault("schema", {})
                if parameter.get("in") == "path" and parameter["name"] in ULID_PARAMETERS:
                    schema.update({"type": "string", "pattern": ULID_PATTERN})
                    parameter["description"] = "A ULID (26 characters, any case)."
                if parameter.get("in") == "query" and parameter["name"] == "cursor":
                    schema["pattern"] = CURSOR_PATTERN
    schemas = result.get("components", {}).get("schemas", {})
    for name, schema in schemas.items():
        properties = schema.get("properties")
        if not properties or name.endswith("Request"):
            continue
        # Responses: the server always writes every field.
        schema["required"] = sorted(properties)
        for prop in ULID_PROPERTIES.get(name, ()):
            if prop in properties:
                properties[prop]["pattern"] = ULID_PATTERN
    return result
