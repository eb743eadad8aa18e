"""The real-time API's contract (chat/asyncapi.yaml): the checks on client events, built from its schemas.

The document is the one source: the server refuses a client event that its schema
refuses (with the typed error ack a client can act on), the same document is served
as /api/v1/asyncapi.json, and the tests check what the server sends against it.
"""

from __future__ import annotations

import copy
import functools
import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import jsonschema_rs
import yaml
from jsonschema import Draft202012Validator
from jsonschema.exceptions import ValidationError, best_match

from store.errors import DomainError, unprocessable

DOCUMENT_PATH = Path(__file__).parent / "asyncapi.yaml"
REST_DOCUMENT_PATH = Path(__file__).parent / "openapi.json"
_REST_REF = "openapi.json#/components/schemas/"
_TYPE_WORDS = {
    "string": "a string",
    "integer": "an integer",
    "number": "a number",
    "boolean": "true or false",
    "array": "a list",
    "object": "an object",
}


@functools.cache
def _source() -> dict[str, Any]:
    return yaml.safe_load(DOCUMENT_PATH.read_text())


@functools.cache
def document(max_message_chars: int) -> dict[str, Any]:
    """The document as this server applies it: self-contained, with the configured message length.

    The objects it shares with the REST API are $refs into chat/openapi.json; they are copied in
    (a REST schema's name must not be one of this document's own).
    """
    doc = copy.deepcopy(_source())
    schemas = doc["components"]["schemas"]
    rest = json.loads(REST_DOCUMENT_PATH.read_text())["components"]["schemas"]
    clashes = set(rest) & {name for name, schema in schemas.items() if not _is_rest_ref(schema)}
    if clashes:
        raise ValueError(f"chat/asyncapi.yaml and chat/openapi.json both define {sorted(clashes)}")
    for name, schema in schemas.items():
        if _is_rest_ref(schema):
            target = schema["$ref"].removeprefix(_REST_REF)
            schemas[name] = rest[target] if target == name else {"$ref": f"#/components/schemas/{target}"}
    for name, schema in rest.items():
        schemas.setdefault(name, schema)
    schemas["MessageBody"]["maxLength"] = max_message_chars
    return doc


def _is_rest_ref(schema: Any) -> bool:
    return isinstance(schema, dict) and schema.get("$ref", "").startswith(_REST_REF)


@functools.cache
def document_json(max_message_chars: int) -> str:
    return json.dumps(document(max_message_chars))


def validator(doc: dict[str, Any], pointer: str) -> Draft202012Validator:
    """A validator for the schema at `pointer`, with every $ref inlined (resolving refs per event is slow)."""
    return Draft202012Validator(_inline(doc, _at(doc, pointer)))


def _at(doc: dict[str, Any], pointer: str) -> Any:
    node = doc
    for part in pointer.strip("/").split("/"):
        node = node[part]
    return node


def _inline(doc: dict[str, Any], node: Any) -> Any:
    # The document's schemas are not recursive, so inlining ends.
    if isinstance(node, list):
        return [_inline(doc, item) for item in node]
    if not isinstance(node, dict):
        return node
    if "$ref" in node:
        target = _inline(doc, _at(doc, node["$ref"].removeprefix("#")))
        rest = {key: _inline(doc, value) for key, value in node.items() if key != "$ref"}
        return {**target, **rest} if rest else target
    return {key: _inline(doc, value) for key, value in node.items()}


def message_name(doc: dict[str, Any], key: str) -> str:
    return doc["components"]["messages"][key]["name"]


@dataclass(frozen=True)
class EventCheck:
    """One client event's schema, twice: a fast check for every event, and one that explains a refusal."""

    fast: Any  # jsonschema_rs: a few microseconds per event
    explaining: Draft202012Validator  # jsonschema: best_match and the keyword at fault


@functools.cache
def client_events(max_message_chars: int) -> dict[str, EventCheck]:
    """Socket.IO event name → the check of its payload, for every event a client may send."""
    doc = document(max_message_chars)
    checks = {}
    for operation in doc["operations"].values():
        if operation["action"] != "receive":
            continue
        for ref in operation["messages"]:
            key = ref["$ref"].rsplit("/", 1)[-1]
            explaining = validator(doc, f"/components/messages/{key}/payload")
            checks[message_name(doc, key)] = EventCheck(
                jsonschema_rs.Draft202012Validator(explaining.schema), explaining
            )
    return checks


def check_event(event: str, payload: Any, max_message_chars: int) -> dict[str, Any]:
    """The payload if its schema accepts it; else the DomainError (422) naming the first field at fault."""
    check = client_events(max_message_chars).get(event)
    if check is None:
        raise KeyError(event)
    if not isinstance(payload, dict):
        raise unprocessable("invalid_payload", "The payload must be a JSON object.")
    if not check.fast.is_valid(payload):
        error = best_match(check.explaining.iter_errors(payload))
        if error is not None:  # the two agree on everything our schemas use; the explaining one decides
            raise domain_error(error)
    return payload


def _leaf(error: ValidationError) -> ValidationError:
    # A oneOf of "this, or null" fails as a whole; the branch that is not about null says what is wrong.
    while error.context:
        error = best_match(
            e for e in error.context if e.validator != "type" or e.validator_value != "null"
        ) or best_match(error.context)
    return error


def domain_error(error: ValidationError) -> DomainError:
    error = _leaf(error)
    names = [part for part in error.absolute_path if isinstance(part, str)]
    field = names[-1] if names else None
    keyword, rule, schema = error.validator, error.validator_value, error.schema
    if keyword == "required":
        missing = next(name for name in rule if name not in error.instance)
        return unprocessable("missing_field", f"'{missing}' is required.", field=missing)
    if keyword == "dependentRequired":
        missing = next(
            needed
            for present, needs in rule.items()
            if present in error.instance
            for needed in needs
            if needed not in error.instance
        )
        return unprocessable("missing_field", f"'{missing}' is required with the fields sent.", field=missing)
    if keyword == "additionalProperties":
        extra = sorted(set(error.instance) - set(schema.get("properties", {})))[0]
        return unprocessable("unknown_field", f"'{extra}' is not a field of this event.", field=extra)
    if field is None:
        return unprocessable("invalid_payload", "The payload must be a JSON object.")
    return unprocessable("invalid_field", f"'{field}' {_rule_words(keyword, rule, schema)}.", field=field)


def _rule_words(keyword: str, rule: Any, schema: dict[str, Any]) -> str:
    if keyword == "type":
        kinds = [rule] if isinstance(rule, str) else [k for k in rule if k != "null"]
        return "must be " + " or ".join(_TYPE_WORDS.get(k, k) for k in kinds)
    if keyword == "enum":
        return "must be one of: " + ", ".join(str(choice) for choice in rule if choice is not None)
    if keyword in ("minLength", "maxLength"):
        return f"must be {schema.get('minLength', 0)} to {schema.get('maxLength')} characters"
    if keyword in ("minimum", "maximum"):
        if "maximum" not in schema:
            return f"must be at least {schema['minimum']}"
        return f"must be between {schema.get('minimum')} and {schema.get('maximum')}"
    if keyword in ("minItems", "maxItems"):
        return f"must hold {schema.get('minItems', 0)} to {schema.get('maxItems')} items"
    return schema.get("x-rule", "is not valid")
