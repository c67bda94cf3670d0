"""The compiled validator must accept and reject exactly what jsonschema does."""

from __future__ import annotations

import decimal
import typing as t

import fastjsonschema
import jsonschema
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from singer_sdk.exceptions import InvalidRecord

from target_customergauge_stream.validation import (
    RecordValidator,
    compile_fast_validator,
    uses_shared_keywords_only,
)

SCHEMAS: dict[str, dict[str, t.Any]] = {
    "orders": {
        "type": "object",
        "properties": {
            "Email": {"type": "string", "maxLength": 40},
            "Age": {"type": ["integer", "null"], "minimum": 0},
            "Amount": {"type": ["number", "null"], "exclusiveMaximum": 1000},
            "Active": {"type": ["boolean", "null"]},
            "When": {"type": ["string", "null"], "format": "date-time"},
            "Tags": {"type": ["array", "null"], "items": {"type": "string"}},
            "Segment": {"enum": ["Gold", "Silver", None]},
        },
        "required": ["Email"],
    },
    "nested": {
        "$schema": "https://json-schema.org/draft/2020-12/schema",
        "type": "object",
        "properties": {
            "id": {"type": "integer"},
            "address": {
                "type": ["object", "null"],
                "properties": {"zip": {"type": "string", "pattern": "^[0-9]{4}"}},
                "additionalProperties": False,
            },
            "code": {"anyOf": [{"type": "string"}, {"type": "integer"}]},
        },
        "additionalProperties": False,
    },
}

json_scalars = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(min_value=-(10**20), max_value=10**20),
    st.decimals(allow_nan=False, allow_infinity=False, places=2),
    st.floats(allow_nan=False, allow_infinity=False),
    st.text(max_size=45),
    st.sampled_from(["Gold", "Silver", "12345", "2024-03-01T10:00:00Z"]),
)
json_values = st.recursive(
    json_scalars,
    lambda children: (
        st.lists(children, max_size=3)
        | st.dictionaries(st.sampled_from(["zip", "x", "id"]), children, max_size=3)
    ),
    max_leaves=6,
)


def records_for(schema: dict[str, t.Any]) -> st.SearchStrategy[dict[str, t.Any]]:
    names = [*schema["properties"], "extra"]
    return st.dictionaries(st.sampled_from(names), json_values, max_size=len(names))


def jsonschema_accepts(schema: dict[str, t.Any], record: dict[str, t.Any]) -> bool:
    return jsonschema.Draft202012Validator(schema).is_valid(record)


def fast_accepts(schema: dict[str, t.Any], record: dict[str, t.Any]) -> bool:
    validator = compile_fast_validator(schema)
    assert validator is not None
    try:
        validator(record)
    except fastjsonschema.JsonSchemaValueException:
        return False
    return True


@pytest.mark.parametrize("name", sorted(SCHEMAS))
@settings(max_examples=400, deadline=None)
@given(data=st.data())
def test_fast_validator_agrees(name: str, data: st.DataObject) -> None:
    schema = SCHEMAS[name]
    record = data.draw(records_for(schema))

    assert fast_accepts(schema, record) == jsonschema_accepts(schema, record)


def test_record_validator_outcome_is_jsonschemas() -> None:
    schema = SCHEMAS["orders"]
    validator = RecordValidator(schema, where=lambda: "Record at input line 9")
    good = {"Email": "a@example.com", "Age": 3, "Amount": decimal.Decimal("9.99")}
    bad = {"Email": "a@example.com", "Age": -1}

    validator.validate(good)
    with pytest.raises(InvalidRecord, match="field 'Age' breaks the 'minimum' rule"):
        validator.validate(bad)


def test_error_never_quotes_value() -> None:
    validator = RecordValidator(SCHEMAS["orders"], where=lambda: "Record at line 2")

    with pytest.raises(InvalidRecord) as caught:
        validator.validate({"Email": "private-value-" + "x" * 40})

    assert "private-value" not in str(caught.value)
    assert "maxLength" in str(caught.value)


@pytest.mark.parametrize(
    "schema",
    [
        {"type": "object", "properties": {"a": {"$ref": "#/$defs/a"}}, "$defs": {}},
        {"type": "object", "properties": {"a": {"prefixItems": [{"type": "string"}]}}},
        {"type": "object", "properties": {"a": {"type": "array", "items": [{}]}}},
        {"type": "object", "dependentRequired": {"a": ["b"]}},
    ],
)
def test_draft_specific_schema_uses_jsonschema(schema: dict[str, t.Any]) -> None:
    assert uses_shared_keywords_only(schema) is False
    assert compile_fast_validator(schema) is None


def test_shared_schema_compiles() -> None:
    assert uses_shared_keywords_only(SCHEMAS["nested"]) is True
    assert compile_fast_validator(SCHEMAS["nested"]) is not None
