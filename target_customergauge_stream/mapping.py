"""Shape records for the account: field mapping, structure file, formats, checks.

The settings here can be given for every stream, and overridden per stream
under `streams.<stream name>`. `resolve_stream_shaping` merges the two into
one `StreamShaping` per stream.
"""

from __future__ import annotations

import json
import typing as t
from dataclasses import dataclass
from pathlib import Path

from lxml import etree
from singer_sdk import typing as th

from target_customergauge_stream.safe_xml import safe_parser

DEFAULT_DATETIME_FORMAT = "%Y-%m-%d %H:%M:%S"
DEFAULT_DATE_FORMAT = "%Y-%m-%d"

# A plain e-mail shape: something@domain.tld without spaces. CustomerGauge
# sends surveys to this address, so an obviously broken one is rejected
# before upload rather than by the account.
EMAIL_PATTERN = r"^[^@\s]+@[^@\s]+\.[^@\s]+$"
DEFAULT_RECORD_SCHEMA: dict[str, t.Any] = {
    "type": "object",
    "required": ["Email"],
    "properties": {"Email": {"type": "string", "pattern": EMAIL_PATTERN}},
}

# Settings that `streams.<name>` may override, with their JSON schema types.
_SHAPING_PROPERTIES: list[th.Property[t.Any]] = [
    th.Property(
        "field_mapping",
        th.ObjectType(additional_properties=th.StringType),
        title="Field mapping",
        description=(
            "Map from Singer property name to CustomerGauge field name, such as "
            '{"email_address": "Email", "closed_at": "order_date"}. Applied '
            "after the SDK's stream maps. Two properties mapped onto one field "
            "is a config error."
        ),
    ),
    th.Property(
        "unmapped_fields",
        th.StringType,
        default="keep",
        allowed_values=["keep", "drop"],
        title="Unmapped fields",
        description=(
            "What happens to properties that 'field_mapping' does not name: "
            "'keep' sends them under their own names (rewritten into valid XML "
            "names), 'drop' leaves them out."
        ),
    ),
    th.Property(
        "unknown_fields",
        th.StringType,
        default="reject",
        allowed_values=["reject", "drop"],
        title="Unknown fields",
        description=(
            "With 'data_structure_file': what happens to a field the account "
            "does not have. 'reject' stops at the stream's SCHEMA with an error "
            "naming the field; 'drop' leaves it out with a warning."
        ),
    ),
    th.Property(
        "record_schema",
        th.CustomType({"type": ["object", "string", "null"]}),
        title="Record schema",
        description=(
            "JSON Schema, inline or as a path to a JSON file, that every mapped "
            "record must satisfy (field names are CustomerGauge's). When unset, "
            "'Email' must be present and look like an e-mail address. Set it to "
            "{} to check nothing."
        ),
    ),
    th.Property(
        "invalid_records",
        th.StringType,
        default="fail",
        allowed_values=["fail", "skip"],
        title="Invalid records",
        description=(
            "'fail' stops the run at the first invalid record, before the "
            "upload that would contain it. 'skip' writes it with its reasons to "
            "'rejects_path' and goes on; a skipped record counts as handled for "
            "STATE."
        ),
    ),
    th.Property(
        "dedup_keys",
        th.ArrayType(th.StringType),
        title="Deduplication key fields",
        description=(
            "CustomerGauge field names (after mapping) whose values identify a "
            "record for the delivery ledger, when the stream's key_properties "
            "do not. Without either, the whole record as uploaded is the key."
        ),
    ),
    th.Property(
        "datetime_format",
        th.StringType,
        default=DEFAULT_DATETIME_FORMAT,
        title="Date-time format",
        description=(
            "strftime format of date-time values, after conversion to "
            "'timezone'. %Y always gives four digits."
        ),
    ),
    th.Property(
        "date_format",
        th.StringType,
        default=DEFAULT_DATE_FORMAT,
        title="Date format",
        description="strftime format of date values. %Y always gives four digits.",
    ),
    th.Property(
        "boolean_values",
        th.ArrayType(th.StringType),
        default=["true", "false"],
        title="Boolean values",
        description="Texts written for true and false, in that order.",
    ),
    th.Property(
        "null_values",
        th.StringType,
        default="omit",
        allowed_values=["omit", "empty"],
        title="Null values",
        description=(
            "'omit' leaves null and missing values out; 'empty' writes an empty "
            "element for a null value."
        ),
    ),
]
SHAPING_SETTING_NAMES = tuple(prop.name for prop in _SHAPING_PROPERTIES)

MAPPING_PROPERTIES: list[th.Property[t.Any]] = [
    *_SHAPING_PROPERTIES,
    th.Property(
        "streams",
        th.ObjectType(
            additional_properties=th.ObjectType(*_SHAPING_PROPERTIES),
        ),
        title="Per-stream settings",
        description=(
            "Overrides per stream name of field_mapping, unmapped_fields, "
            "unknown_fields, record_schema, invalid_records, dedup_keys, "
            "datetime_format, date_format, boolean_values and null_values."
        ),
    ),
    th.Property(
        "data_structure_file",
        th.StringType,
        title="Data structure file",
        description=(
            "Path to the account's 'Download Data Structure > Transactional "
            "(XML)' sample. When set, it fixes the fields the account accepts "
            "and their order in each record."
        ),
    ),
    th.Property(
        "rejects_path",
        th.StringType,
        default="rejected-records.jsonl",
        title="Rejects file",
        description=(
            "JSON Lines file that receives each skipped invalid record with its "
            "stream, input line and reasons, when 'invalid_records' is 'skip'. "
            "It holds the records' personal data: keep it private."
        ),
    ),
    th.Property(
        "dry_run",
        th.BooleanType,
        default=False,
        title="Dry run",
        description=(
            "Do everything except sending: write each upload's exact body to "
            "'dry_run_dir' with a summary and the rejected records, and emit no "
            "STATE, so no bookmark moves. The first step of every new setup."
        ),
    ),
    th.Property(
        "dry_run_dir",
        th.StringType,
        default="dry-run",
        title="Dry run folder",
        description=(
            "Folder that receives the numbered bodies and summary of a dry run."
        ),
    ),
]


class MappingConfigError(ValueError):
    """The mapping settings contradict each other or name a bad file."""


@dataclass(frozen=True)
class StreamShaping:
    """Mapping, formats and checks for one stream's records.

    Attributes:
        field_mapping: Singer property name to CustomerGauge field name.
        drop_unmapped: Leave out properties that the mapping does not name.
        account_fields: Fields of the account, in order, from the structure
            file; None when no structure file is set.
        drop_unknown: Leave out fields the account does not have, instead of
            rejecting the stream.
        record_schema: JSON schema of mapped records; None checks nothing.
        skip_invalid: Set invalid records aside instead of stopping.
        datetime_format: strftime format of date-times.
        date_format: strftime format of dates.
        true_text: Text written for true.
        false_text: Text written for false.
        null_as_empty: Write an empty element for null values.
    """

    field_mapping: dict[str, str]
    drop_unmapped: bool = False
    account_fields: tuple[str, ...] | None = None
    drop_unknown: bool = False
    record_schema: dict[str, t.Any] | None = None
    skip_invalid: bool = False
    datetime_format: str = DEFAULT_DATETIME_FORMAT
    date_format: str = DEFAULT_DATE_FORMAT
    true_text: str = "true"
    false_text: str = "false"
    null_as_empty: bool = False
    dedup_keys: tuple[str, ...] = ()


def read_structure_file(path: Path) -> tuple[str, ...]:
    """Read the field names, in order, from an account's Transactional (XML) sample.

    The sample is a `<records>` document whose first `<record>` lists every
    field the account accepts. It is parsed without entity expansion, DTD
    loading or network access.

    Raises:
        MappingConfigError: If the file cannot be read or has no fields.
    """
    try:
        root = etree.parse(str(path), parser=safe_parser()).getroot()
    except (OSError, etree.XMLSyntaxError) as exc:
        msg = (
            f"Setting 'data_structure_file': cannot read {str(path)!r} as XML ({exc})."
        )
        raise MappingConfigError(msg) from None
    record = root if root.tag == "record" else root.find("record")
    if record is None or len(record) == 0:
        msg = (
            f"Setting 'data_structure_file': {str(path)!r} has no <record> with "
            f"fields. Use the file from 'Download Data Structure > Transactional "
            f"(XML)' in the CustomerGauge account."
        )
        raise MappingConfigError(msg)
    names: list[str] = []
    for child in record:
        if isinstance(child.tag, str) and child.tag not in names:
            names.append(child.tag)
    return tuple(names)


def _load_record_schema(value: t.Any, where: str) -> dict[str, t.Any] | None:  # noqa: ANN401
    if value is None:
        return DEFAULT_RECORD_SCHEMA
    if isinstance(value, dict):
        return value or None
    path = Path(str(value))
    try:
        loaded = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:
        msg = f"Setting '{where}': cannot read {str(path)!r} as a JSON schema ({exc})."
        raise MappingConfigError(msg) from None
    if not isinstance(loaded, dict):
        msg = f"Setting '{where}': {str(path)!r} does not hold a JSON object."
        raise MappingConfigError(msg)
    return loaded or None


def check_mapping(mapping: t.Mapping[str, str], where: str) -> list[str]:
    """Return an error for each field that two properties are mapped onto."""
    owners: dict[str, str] = {}
    errors = []
    for source, field in mapping.items():
        if field in owners:
            errors.append(
                f"Setting '{where}' maps both '{owners[field]}' and '{source}' onto "
                f"the field '{field}'. Map each field from one property only."
            )
        else:
            owners[field] = source
    return errors


def validate_mapping_config(config: t.Mapping[str, t.Any]) -> list[str]:
    """Check the mapping settings that the JSON schema cannot express."""
    errors = check_mapping(config.get("field_mapping") or {}, "field_mapping")
    for stream, overrides in (config.get("streams") or {}).items():
        merged = {
            **(config.get("field_mapping") or {}),
            **(overrides.get("field_mapping") or {}),
        }
        errors.extend(check_mapping(merged, f"streams.{stream}.field_mapping"))
    for where, values in [("boolean_values", config.get("boolean_values"))] + [
        (f"streams.{name}.boolean_values", overrides.get("boolean_values"))
        for name, overrides in (config.get("streams") or {}).items()
    ]:
        if values is not None and len(values) != 2:
            errors.append(
                f"Setting '{where}' must list exactly two texts: true, then false."
            )
    structure = config.get("data_structure_file")
    if structure:
        try:
            read_structure_file(Path(structure))
        except MappingConfigError as exc:
            errors.append(str(exc))
    return errors


def resolve_stream_shaping(config: t.Mapping[str, t.Any], stream: str) -> StreamShaping:
    """Merge the settings for every stream with the stream's own overrides.

    Raises:
        MappingConfigError: If a record schema or structure file cannot be read.
    """
    overrides = (config.get("streams") or {}).get(stream) or {}

    def pick(name: str, default: t.Any) -> t.Any:  # noqa: ANN401
        if overrides.get(name) is not None:
            return overrides[name]
        if config.get(name) is not None:
            return config[name]
        return default

    mapping = {
        **(config.get("field_mapping") or {}),
        **(overrides.get("field_mapping") or {}),
    }
    structure = config.get("data_structure_file")
    booleans = pick("boolean_values", ["true", "false"])
    schema_where = (
        f"streams.{stream}.record_schema"
        if "record_schema" in overrides
        else "record_schema"
    )
    return StreamShaping(
        field_mapping=dict(mapping),
        drop_unmapped=pick("unmapped_fields", "keep") == "drop",
        account_fields=read_structure_file(Path(structure)) if structure else None,
        drop_unknown=pick("unknown_fields", "reject") == "drop",
        record_schema=_load_record_schema(
            overrides.get("record_schema", config.get("record_schema")), schema_where
        ),
        skip_invalid=pick("invalid_records", "fail") == "skip",
        datetime_format=pick("datetime_format", DEFAULT_DATETIME_FORMAT),
        date_format=pick("date_format", DEFAULT_DATE_FORMAT),
        true_text=str(booleans[0]),
        false_text=str(booleans[1]),
        null_as_empty=pick("null_values", "omit") == "empty",
        dedup_keys=tuple(pick("dedup_keys", ())),
    )
