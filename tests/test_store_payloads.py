"""Checks of untrusted payload fields: each failure is a typed 4xx error naming the field."""

from __future__ import annotations

import json
import uuid

import pytest

from store.errors import DomainError
from store.payloads import get_query_int, get_str, get_uuid, parse_json_object


@pytest.mark.parametrize("text", ["nul\u0000inside", "lone \ud800 surrogate"])
def test_text_postgresql_cannot_store_is_refused(text):
    payload = parse_json_object(json.dumps({"name": text}).encode())
    with pytest.raises(DomainError) as error:
        get_str(payload, "name")
    assert (error.value.status, error.value.code, error.value.extra["field"]) == (422, "invalid_field", "name")


def test_ordinary_text_passes():
    assert get_str({"name": "Zoë 😀"}, "name") == "Zoë 😀"


@pytest.mark.parametrize("raw, expected", [(None, 50), ("7", 7)])
def test_query_int_default_and_value(raw, expected):
    query = {} if raw is None else {"limit": raw}
    assert get_query_int(query, "limit", minimum=1, maximum=100, default=50) == expected


@pytest.mark.parametrize("raw", ["x", "0", "101"])
def test_query_int_out_of_bounds_or_not_a_number(raw):
    with pytest.raises(DomainError) as error:
        get_query_int({"limit": raw}, "limit", minimum=1, maximum=100)
    assert error.value.code == "invalid_field"


def test_uuid_field_in_a_body():
    value = uuid.uuid4()
    assert get_uuid({"slot_id": str(value)}, "slot_id") == value
    assert get_uuid({}, "slot_id", required=False) is None
    for payload in ({"slot_id": "not-a-uuid"}, {"slot_id": 7}, {}):
        with pytest.raises(DomainError) as error:
            get_uuid(payload, "slot_id")
        assert (error.value.status, error.value.extra["field"]) == (422, "slot_id")
