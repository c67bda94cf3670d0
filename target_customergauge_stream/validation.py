"""Check records against their stream's SCHEMA without echoing their values."""

from __future__ import annotations

import datetime
import typing as t

import jsonschema
from singer_sdk.exceptions import InvalidJSONSchema, InvalidRecord
from singer_sdk.sinks.core import BaseJSONSchemaValidator

_DATE_PARSERS: dict[str, t.Callable[[str], object]] = {
    "date-time": datetime.datetime.fromisoformat,
    "date": datetime.date.fromisoformat,
    "time": datetime.time.fromisoformat,
}


def _parses(parser: t.Callable[[str], object], text: str) -> bool:
    # The parser's own error quotes the text, so it must not be chained into
    # the error that reaches the log.
    try:
        parser(text)
    except ValueError:
        return False
    return True


def date_like_properties(schema: t.Mapping[str, t.Any]) -> dict[str, str]:
    """Map each top-level property with a date-like format to that format."""
    found: dict[str, str] = {}
    for name, property_schema in schema.get("properties", {}).items():
        if not isinstance(property_schema, dict):
            continue
        for candidate in [property_schema, *property_schema.get("anyOf", [])]:
            if isinstance(candidate, dict) and candidate.get("format") in _DATE_PARSERS:
                found[name] = candidate["format"]
                break
    return found


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
    """Validate records with `jsonschema`, with errors that name no values.

    Date-like strings (`format: date-time`, `date`, `time`) are always
    checked, even when schema validation is off, so that an unreadable date
    is reported here by field and input line rather than later with its value.
    """

    def __init__(
        self,
        schema: dict[str, t.Any],
        *,
        where: t.Callable[[], str],
        check_schema: bool = True,
    ) -> None:
        super().__init__(schema)
        self._where = where
        self._date_fields = date_like_properties(schema)
        self._validator: jsonschema.Draft202012Validator | None = None
        if check_schema:
            try:
                jsonschema.Draft202012Validator.check_schema(schema)
            except jsonschema.SchemaError as exc:
                msg = (
                    f"{where()}: the SCHEMA is not a valid JSON schema ({exc.message})."
                )
                raise InvalidJSONSchema(msg) from exc
            self._validator = jsonschema.Draft202012Validator(schema)

    def validate(self, record: dict[str, t.Any]) -> None:
        """Validate one record.

        Raises:
            InvalidRecord: If the record breaks the schema; the message names
                the input line, stream, field and rule.
        """
        if self._validator is not None:
            error = jsonschema.exceptions.best_match(
                self._validator.iter_errors(record)
            )
            if error is not None:
                self._fail(describe_error(error), record)
        for name, date_format in self._date_fields.items():
            value = record.get(name)
            if isinstance(value, str) and not _parses(
                _DATE_PARSERS[date_format], value
            ):
                self._fail(
                    f"field '{name}' is not a valid ISO 8601 {date_format}", record
                )

    def _fail(self, reason: str, record: dict[str, t.Any]) -> t.NoReturn:
        msg = (
            f"{self._where()} is invalid: {reason}. Fix the record at the source "
            f"or exclude it with a stream map filter."
        )
        raise InvalidRecord(msg, record)
