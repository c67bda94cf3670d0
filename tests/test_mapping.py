"""Field mapping, the account's structure file, record checks, formats, dry run."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from target_customergauge_stream.mapping import (
    MappingConfigError,
    StreamShaping,
    read_structure_file,
    resolve_stream_shaping,
)
from target_customergauge_stream.payload import RecordEncoder, SchemaNotSupportedError
from target_customergauge_stream.sandbox import Sandbox
from tests.conftest import (
    record_message,
    run_target,
    schema_message,
    state_message,
    target_config,
)

ROOT = Path(__file__).resolve().parents[1]
STRUCTURE_FILE = ROOT / "examples" / "data-structure.xml"
CRM_PROPERTIES = {
    "closed_at": {"type": "string", "format": "date-time"},
    "email_address": {"type": "string"},
    "given_name": {"type": ["string", "null"]},
    "internal_id": {"type": ["integer", "null"]},
}
CRM_RECORD = {
    "closed_at": "2024-05-01T08:00:00Z",
    "email_address": "crm1@example.com",
    "given_name": "Ilse",
    "internal_id": 7,
}
CRM_MAPPING = {
    "email_address": "Email",
    "given_name": "FirstName",
    "closed_at": "order_date",
}


def crm_messages(*records: dict) -> list[dict]:
    messages = [schema_message("crm", CRM_PROPERTIES)]
    messages += [record_message("crm", record) for record in records]
    messages.append(state_message({"crm": len(records)}))
    return messages


def test_mapping_renames_and_keeps_unmapped(sandbox: Sandbox, tmp_path) -> None:
    config = target_config(sandbox, field_mapping=CRM_MAPPING)

    run = run_target(config, crm_messages(CRM_RECORD), tmp_path)

    assert run.returncode == 0, run.stderr
    assert sandbox.records() == [
        {
            "order_date": "2024-05-01 08:00:00",
            "Email": "crm1@example.com",
            "FirstName": "Ilse",
            "internal_id": "7",
        }
    ]


def test_mapping_drops_unmapped(sandbox: Sandbox, tmp_path) -> None:
    config = target_config(sandbox, field_mapping=CRM_MAPPING, unmapped_fields="drop")

    run = run_target(config, crm_messages(CRM_RECORD), tmp_path)

    assert run.returncode == 0, run.stderr
    assert "internal_id" not in sandbox.records()[0]


def test_stream_override_of_mapping(sandbox: Sandbox, tmp_path) -> None:
    config = target_config(
        sandbox,
        field_mapping={"email_address": "Email"},
        streams={"crm": {"field_mapping": {"given_name": "FirstName"}}},
    )

    run = run_target(config, crm_messages(CRM_RECORD), tmp_path)

    assert run.returncode == 0, run.stderr
    assert set(sandbox.records()[0]) == {
        "closed_at",
        "Email",
        "FirstName",
        "internal_id",
    }


def test_two_properties_onto_one_field_rejected(tmp_path) -> None:
    config = {
        "api_key": "k",
        "field_mapping": {"email_address": "Email", "mail": "Email"},
    }

    run = run_target(config, "", tmp_path)

    assert run.returncode != 0
    assert "'email_address' and 'mail'" in run.stderr
    assert "'Email'" in run.stderr


def test_structure_file_orders_fields(sandbox: Sandbox, tmp_path) -> None:
    config = target_config(
        sandbox,
        field_mapping=CRM_MAPPING,
        unmapped_fields="drop",
        data_structure_file=str(STRUCTURE_FILE),
    )

    run = run_target(config, crm_messages(CRM_RECORD), tmp_path)

    assert run.returncode == 0, run.stderr
    assert list(sandbox.records()[0]) == ["Email", "FirstName", "order_date"]


def test_structure_file_rejects_unknown_field(sandbox: Sandbox, tmp_path) -> None:
    config = target_config(
        sandbox, field_mapping=CRM_MAPPING, data_structure_file=str(STRUCTURE_FILE)
    )

    run = run_target(config, crm_messages(CRM_RECORD), tmp_path)

    assert run.returncode != 0
    assert "field 'internal_id'" in run.stderr
    assert "not in the account's data structure file" in run.stderr
    assert sandbox.records() == []


def test_structure_file_drops_unknown_field(sandbox: Sandbox, tmp_path) -> None:
    config = target_config(
        sandbox,
        field_mapping=CRM_MAPPING,
        data_structure_file=str(STRUCTURE_FILE),
        unknown_fields="drop",
    )

    run = run_target(config, crm_messages(CRM_RECORD), tmp_path)

    assert run.returncode == 0, run.stderr
    assert "Field 'internal_id' of stream 'crm' is not in the account's" in run.stderr
    assert list(sandbox.records()[0]) == ["Email", "FirstName", "order_date"]


def test_structure_file_round_trip() -> None:
    fields = read_structure_file(STRUCTURE_FILE)
    shaping = StreamShaping(field_mapping={}, account_fields=fields, drop_unknown=True)
    schema = {"properties": {name: {"type": "string"} for name in reversed(fields)}}

    encoder = RecordEncoder(schema, shaping=shaping)

    assert [layout.element_name for layout in encoder.fields] == list(fields)
    assert fields[:3] == ("Email", "FirstName", "LastName")


def test_structure_file_entities_not_expanded(tmp_path) -> None:
    secret_file = tmp_path / "secret.txt"
    secret_file.write_text("EXPANDED")
    structure = tmp_path / "structure.xml"
    structure.write_text(
        f'<?xml version="1.0"?>\n<!DOCTYPE records [<!ENTITY leak SYSTEM "file://{secret_file}">]>'
        "<records><record><Email>&leak;</Email><Name/></record></records>"
    )

    assert read_structure_file(structure) == ("Email", "Name")


def test_structure_file_unreadable_is_config_error(tmp_path) -> None:
    broken = tmp_path / "broken.xml"
    broken.write_text("<records><record>")

    with pytest.raises(MappingConfigError, match="data_structure_file"):
        read_structure_file(broken)

    run = run_target({"api_key": "k", "data_structure_file": str(broken)}, "", tmp_path)
    assert run.returncode != 0
    assert "data_structure_file" in run.stderr


def test_unknown_mapped_field_is_schema_error() -> None:
    shaping = StreamShaping(field_mapping={"a": "Nope"}, account_fields=("Email",))

    with pytest.raises(SchemaNotSupportedError, match="field 'Nope'"):
        RecordEncoder({"properties": {"a": {"type": "string"}}}, shaping=shaping)


def test_default_record_schema_needs_email(sandbox: Sandbox, tmp_path) -> None:
    bad = {**CRM_RECORD, "email_address": "no-at-sign-here"}

    run = run_target(
        target_config(sandbox, field_mapping=CRM_MAPPING), crm_messages(bad), tmp_path
    )

    assert run.returncode != 0
    assert "field 'Email' is not a valid e-mail address" in run.stderr
    assert "no-at-sign-here" not in run.stderr


def test_inline_record_schema(sandbox: Sandbox, tmp_path) -> None:
    schema = {"type": "object", "required": ["FirstName"]}
    record = {**CRM_RECORD, "given_name": None}
    config = target_config(sandbox, field_mapping=CRM_MAPPING, record_schema=schema)

    run = run_target(config, crm_messages(record), tmp_path)

    assert run.returncode != 0
    assert "'FirstName' is a required property" in run.stderr


def test_record_schema_from_file(sandbox: Sandbox, tmp_path) -> None:
    schema_path = tmp_path / "record-schema.json"
    schema_path.write_text(
        json.dumps({"properties": {"internal_id": {"type": "integer", "maximum": 5}}})
    )
    config = target_config(
        sandbox, field_mapping=CRM_MAPPING, record_schema=str(schema_path)
    )

    run = run_target(config, crm_messages(CRM_RECORD), tmp_path)

    assert run.returncode != 0
    assert "field 'internal_id' breaks the 'maximum' rule" in run.stderr


def test_empty_record_schema_checks_nothing(sandbox: Sandbox, tmp_path) -> None:
    record = {**CRM_RECORD, "email_address": "not-an-address"}
    config = target_config(sandbox, field_mapping=CRM_MAPPING, record_schema={})

    run = run_target(config, crm_messages(record), tmp_path)

    assert run.returncode == 0, run.stderr
    assert sandbox.records()[0]["Email"] == "not-an-address"


def test_skip_writes_rejects_and_moves_state(sandbox: Sandbox, tmp_path) -> None:
    rejects = tmp_path / "rejects.jsonl"
    records = [
        CRM_RECORD,
        {**CRM_RECORD, "email_address": "broken"},
        {**CRM_RECORD, "closed_at": "yesterday"},
        {**CRM_RECORD, "email_address": "crm4@example.com", "internal_id": "seven"},
        {**CRM_RECORD, "email_address": "crm5@example.com"},
    ]
    config = target_config(
        sandbox,
        field_mapping=CRM_MAPPING,
        invalid_records="skip",
        rejects_path=str(rejects),
    )

    run = run_target(config, crm_messages(*records), tmp_path)

    assert run.returncode == 0, run.stderr
    assert [row["Email"] for row in sandbox.records()] == [
        "crm1@example.com",
        "crm5@example.com",
    ]
    assert run.states == [{"crm": 5}]
    lines = [json.loads(line) for line in rejects.read_text().splitlines()]
    assert [line["input_line"] for line in lines] == [3, 4, 5]
    assert "e-mail address" in lines[0]["reasons"][0]
    assert "ISO 8601 date-time" in lines[1]["reasons"][0]
    assert "'internal_id'" in lines[2]["reasons"][0]
    assert lines[0]["record"]["email_address"] == "broken"
    assert "3 rejected" in run.stderr
    assert "broken" not in run.stderr


def test_fail_stops_before_the_upload(sandbox: Sandbox, tmp_path) -> None:
    records = [CRM_RECORD, {**CRM_RECORD, "email_address": "broken"}]
    config = target_config(sandbox, field_mapping=CRM_MAPPING)

    run = run_target(config, crm_messages(*records), tmp_path)

    assert run.returncode != 0
    assert "input line 3" in run.stderr
    assert [row["Email"] for row in sandbox.records()] == ["crm1@example.com"]


def test_value_formats(sandbox: Sandbox, tmp_path) -> None:
    properties = {
        "Email": {"type": "string"},
        "When": {"type": "string", "format": "date-time"},
        "Day": {"type": "string", "format": "date"},
        "Ok": {"type": "boolean"},
        "Gone": {"type": ["string", "null"]},
    }
    record = {
        "Email": "f@example.com",
        "When": "0987-06-05T04:03:02Z",
        "Day": "2024-02-29",
        "Ok": True,
        "Gone": None,
    }
    config = target_config(
        sandbox,
        datetime_format="%d/%m/%Y %H.%M",
        date_format="%Y%m%d",
        boolean_values=["Y", "N"],
        null_values="empty",
    )
    messages = [schema_message("s", properties), record_message("s", record)]

    run = run_target(config, messages, tmp_path)

    assert run.returncode == 0, run.stderr
    assert sandbox.records() == [
        {
            "Email": "f@example.com",
            "When": "05/06/0987 04.03",
            "Day": "20240229",
            "Ok": "Y",
            "Gone": "",
        }
    ]


def test_boolean_values_need_two(tmp_path) -> None:
    run = run_target({"api_key": "k", "boolean_values": ["yes"]}, "", tmp_path)

    assert run.returncode != 0
    assert "boolean_values" in run.stderr


def test_dry_run_matches_real_run(sandbox: Sandbox, tmp_path) -> None:
    records = [{**CRM_RECORD, "email_address": f"d{i}@example.com"} for i in range(5)]
    dry_dir = tmp_path / "dry"
    dry_config = target_config(
        sandbox,
        field_mapping=CRM_MAPPING,
        batch_size_rows=2,
        dry_run=True,
        dry_run_dir=str(dry_dir),
    )
    del dry_config["api_key"]

    dry = run_target(dry_config, crm_messages(*records), tmp_path)

    assert dry.returncode == 0, dry.stderr
    assert dry.states == []
    assert sandbox.state.summary()["requests"] == 0
    summary = json.loads((dry_dir / "summary.json").read_text())
    assert summary["uploads"] == 3
    assert summary["streams"]["crm"]["uploaded"] == 5

    real = run_target(
        target_config(sandbox, field_mapping=CRM_MAPPING, batch_size_rows=2),
        crm_messages(*records),
        tmp_path,
    )

    assert real.returncode == 0, real.stderr
    dry_bodies = [path.read_bytes() for path in sorted(dry_dir.glob("upload-*.xml"))]
    assert dry_bodies == [upload.body for upload in sandbox.state.uploads]


def test_resolve_shaping_defaults() -> None:
    shaping = resolve_stream_shaping({}, "any")

    assert shaping.record_schema is not None
    assert shaping.record_schema["required"] == ["Email"]
    assert shaping.skip_invalid is False
    assert shaping.datetime_format == "%Y-%m-%d %H:%M:%S"
