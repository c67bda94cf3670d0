"""Check records against their stream's SCHEMA without echoing their values."""

from __future__ import annotations

import json
import re
import typing as t

import fastjsonschema
import jsonschema
from singer_sdk.exceptions import InvalidJSONSchema, InvalidRecord
from singer_sdk.sinks.core import BaseJSONSchemaValidator

from target_customergauge_stream.mapping import DEFAULT_RECORD_SCHEMA, EMAIL_PATTERN

EMAIL_MATCH = re.compile(EMAIL_PATTERN).match

# Keywords whose meaning is the same in draft 7, which fastjsonschema
# implements, and in draft 2020-12, which the Singer SDK validates with. A
# schema that uses any other keyword ($ref, $defs, prefixItems, tuple-form
# items, ...) is validated with jsonschema alone.
_SHARED_KEYWORDS = frozenset(
    {
        "$schema", "$id", "$comment", "title", "description", "default", "examples",
        "readOnly", "writeOnly", "deprecated", "type", "properties", "required",
        "additionalProperties", "patternProperties", "minProperties",
        "maxProperties", "items", "minItems", "maxItems", "uniqueItems", "anyOf",
        "oneOf", "allOf", "not", "enum", "const", "format", "minimum", "maximum",
        "exclusiveMinimum", "exclusiveMaximum", "multipleOf", "minLength",
        "maxLength", "pattern",
    }
)  # fmt: skip
_SCHEMA_MAPS = frozenset({"properties", "patternProperties"})
_SCHEMA_VALUES = frozenset({"additionalProperties", "items", "not"})
_SCHEMA_LISTS = frozenset({"anyOf", "oneOf", "allOf"})


def uses_shared_keywords_only(schema: t.Any) -> bool:  # noqa: ANN401, PLR0911
    """Tell whether a schema means the same under draft 7 and draft 2020-12."""
    if isinstance(schema, bool):
        return True
    if not isinstance(schema, dict):
        return False
    for keyword, value in schema.items():
        if keyword not in _SHARED_KEYWORDS:
            return False
        if keyword in _SCHEMA_MAPS:
            if not isinstance(value, dict):
                return False
            if not all(uses_shared_keywords_only(item) for item in value.values()):
                return False
        elif keyword in _SCHEMA_VALUES:
            if not uses_shared_keywords_only(value):
                return False
        elif keyword in _SCHEMA_LISTS:
            if not isinstance(value, list):
                return False
            if not all(uses_shared_keywords_only(item) for item in value):
                return False
    return True


def compile_fast_validator(
    schema: dict[str, t.Any],
) -> t.Callable[[dict[str, t.Any]], object] | None:
    """Compile a fastjsonschema validator, or return None where it may differ.

    Formats are not checked, as in the Singer SDK's default validator, and
    defaults are not filled in, so records are never changed.
    """
    if not uses_shared_keywords_only(schema):
        return None
    draft7 = {key: value for key, value in schema.items() if key != "$schema"}
    try:
        return t.cast(
            "t.Callable[[dict[str, t.Any]], object]",
            fastjsonschema.compile(draft7, use_formats=False, use_default=False),
        )
    except fastjsonschema.JsonSchemaDefinitionException:
        return None


def describe_error(error: jsonschema.ValidationError) -> str:
    """Describe a schema violation by field and rule, never by value."""
    field = ".".join(str(part) for part in error.absolute_path) or "(record)"
    rule = error.validator
    if rule == "required":
        # jsonschema's message is "'name' is a required property": a name only.
        return f"{error.message} (rule 'required')"
    if rule in {"type", "format", "enum", "const", "minimum", "maximum", "maxLength"}:
        expected = error.validator_value
        return f"field '{field}' breaks the '{rule}' rule (expected {expected!r})"
    return f"field '{field}' breaks the '{rule}' rule"


class RecordValidator(BaseJSONSchemaValidator):
    """Validate records against their stream's SCHEMA, naming no values.

    A compiled fastjsonschema validator accepts most records in about 2 µs.
    Only a record it rejects, or a schema it may read differently, goes to
    `jsonschema` (about 55 µs), which then decides and names the field and
    rule. So the outcome is always jsonschema's: a record that fastjsonschema
    rejects wrongly is still accepted, and the tests check that both agree.
    Formats (date-time and others) are not checked here, as in the Singer
    SDK's default validator; the XML encoder reads date-like values itself.
    """

    def __init__(self, schema: dict[str, t.Any], *, where: t.Callable[[], str]) -> None:
        super().__init__(schema)
        self._where = where
        try:
            jsonschema.Draft202012Validator.check_schema(schema)
        except jsonschema.SchemaError as exc:
            msg = f"{where()}: the SCHEMA is not a valid JSON schema ({exc.message})."
            raise InvalidJSONSchema(msg) from exc
        self._validator = jsonschema.Draft202012Validator(schema)
        self._fast_validator = compile_fast_validator(schema)

    def problem(self, record: dict[str, t.Any]) -> str | None:
        """Return what breaks the schema in a record, by field and rule, or None."""
        if self._fast_accepts(record):
            return None
        error = jsonschema.exceptions.best_match(self._validator.iter_errors(record))
        return describe_error(error) if error is not None else None

    def validate(self, record: dict[str, t.Any]) -> None:
        """Validate one record.

        Raises:
            InvalidRecord: If the record breaks the schema; the message names
                the input line, stream, field and rule.
        """
        problem = self.problem(record)
        if problem is not None:
            msg = (
                f"{self._where()} is invalid: {problem}. Fix the record at the "
                f"source, exclude it with a stream map filter, or set "
                f"'invalid_records' to 'skip' to set such records aside."
            )
            raise InvalidRecord(msg, record)

    def _fast_accepts(self, record: dict[str, t.Any]) -> bool:
        if self._fast_validator is None:
            return False
        try:
            self._fast_validator(record)
        except fastjsonschema.JsonSchemaValueException:
            return False
        return True


class MappedRecordCheck:
    """Check mapped records (CustomerGauge field names) against 'record_schema'.

    The built-in default, `Email` present and shaped like an e-mail address,
    is checked directly. A configured schema is checked with jsonschema,
    formats included, after a fastjsonschema pre-check where the schema has
    no `format` keyword (formats are where the two libraries differ).
    """

    def __init__(self, schema: dict[str, t.Any]) -> None:
        try:
            jsonschema.Draft202012Validator.check_schema(schema)
        except jsonschema.SchemaError as exc:
            msg = f"Setting 'record_schema' is not a valid JSON schema ({exc.message})."
            raise InvalidJSONSchema(msg) from exc
        self.is_default = schema == DEFAULT_RECORD_SCHEMA
        self._validator = jsonschema.Draft202012Validator(
            schema, format_checker=jsonschema.Draft202012Validator.FORMAT_CHECKER
        )
        self._fast_validator = (
            None if '"format"' in json.dumps(schema) else compile_fast_validator(schema)
        )

    def problems(self, mapped: dict[str, t.Any]) -> list[str]:
        """Return every rule a mapped record breaks, by field, never by value."""
        if self.is_default:
            return email_problems(mapped.get("Email"))
        if self._fast_validator is not None:
            try:
                self._fast_validator(mapped)
            except fastjsonschema.JsonSchemaValueException:
                pass
            else:
                return []
        return [describe_error(error) for error in self._validator.iter_errors(mapped)]


def email_problems(email: t.Any) -> list[str]:  # noqa: ANN401
    """Check a value against the default record schema's rule for `Email`."""
    if email is None or email == "":
        return ["field 'Email' is missing (rule 'required')"]
    if not isinstance(email, str) or not EMAIL_MATCH(email):
        return ["field 'Email' is not a valid e-mail address (rule 'pattern')"]
    return []
