"""Sink glue: encode each record of a stream and hand it to the upload packer."""

from __future__ import annotations

import sys
import typing as t

from singer_sdk.exceptions import InvalidRecord, MissingKeyPropertiesError
from singer_sdk.sinks import Sink

from target_customergauge_stream.ledger import key_hash, record_hash, text_key_hash
from target_customergauge_stream.mapping import resolve_stream_shaping
from target_customergauge_stream.payload import (
    InvalidValueError,
    RecordEncoder,
    SchemaNotSupportedError,
)
from target_customergauge_stream.validation import (
    EMAIL_MATCH,
    MappedRecordCheck,
    RecordValidator,
    email_problems,
)

if sys.version_info >= (3, 12):
    from typing import override
else:
    from typing_extensions import override

if t.TYPE_CHECKING:
    from singer_sdk.sinks.core import BaseJSONSchemaValidator

    from target_customergauge_stream.batching import Upload
    from target_customergauge_stream.reader import CountingSingerReader
    from target_customergauge_stream.target import TargetCustomerGaugeStream


class CustomerGaugeStreamSink(Sink):
    """Turn one stream's records into `<record>` elements for the Stream API.

    Records of every sink go into the target's `UploadPacker`, one open
    upload per stream. A sink reports itself full when an upload of its
    stream has closed, and its drain hands closed uploads to the target's
    upload pipeline.
    """

    def __init__(
        self,
        target: TargetCustomerGaugeStream,
        stream_name: str,
        schema: dict[str, t.Any],
        key_properties: t.Sequence[str] | None,
    ) -> None:
        self._delivery_target = target
        # A schema violation waiting to be set aside, when invalid records
        # are skipped: the SDK validates before `process_record` is called.
        self._schema_problem: str | None = None
        self.shaping = resolve_stream_shaping(target.config, stream_name)
        super().__init__(target, stream_name, schema, key_properties)
        try:
            self.encoder = RecordEncoder(
                self.schema, target.settings.timezone, self.shaping
            )
        except SchemaNotSupportedError as exc:
            msg = f"SCHEMA of stream '{stream_name}' is not supported: {exc}"
            raise SchemaNotSupportedError(msg) from exc
        self._record_check = (
            MappedRecordCheck(self.shaping.record_schema)
            if self.shaping.record_schema is not None
            else None
        )
        # The default check needs one value: read it without building the
        # mapped record.
        self._email_property = next(
            (
                layout.property_name
                for layout in self.encoder.fields
                if layout.element_name == "Email"
            ),
            None,
        )
        self._checks_email_only = (
            self._record_check is not None and self._record_check.is_default
        )
        self._encode = self.encoder.encode
        self._dedup = target.delivery.dedup
        self._held_keys = (
            self._dedup.held_keys(stream_name) if self._dedup is not None else {}
        )
        self._key_properties_for_dedup = self._dedup_key_properties()
        self._required_properties = tuple(self.key_properties)
        self._single_key = (
            self._key_properties_for_dedup[0]
            if len(self._key_properties_for_dedup) == 1
            else None
        )
        self._run_progress = target.delivery.progress
        self._add_to_packer = target.delivery.packer.add
        self._reader = t.cast("CountingSingerReader", target.message_reader)
        self._progress = target.delivery.progress.stream(stream_name)
        for property_name, element_name in self.encoder.renamed_fields.items():
            self.logger.info(
                "Property '%s' of stream '%s' is written as the field <%s>.",
                property_name,
                stream_name,
                element_name,
            )
        for field_name in self.encoder.dropped_fields:
            self.logger.warning(
                "Field '%s' of stream '%s' is not in the account's data structure "
                "file and is left out.",
                field_name,
                stream_name,
            )

    def _dedup_key_properties(self) -> list[str]:
        """Return the properties whose values identify a record for the ledger.

        'dedup_keys' names fields after mapping; the stream's key_properties
        name properties. With neither, the record itself is its key.
        """
        if self.shaping.dedup_keys:
            by_field = {
                layout.element_name: layout.property_name
                for layout in self.encoder.fields
            }
            missing = [name for name in self.shaping.dedup_keys if name not in by_field]
            if missing:
                msg = (
                    f"SCHEMA of stream '{self.stream_name}' is not supported: "
                    f"'dedup_keys' names {missing}, which are not fields of the "
                    f"stream after mapping."
                )
                raise SchemaNotSupportedError(msg)
            return [by_field[name] for name in self.shaping.dedup_keys]
        return list(self.key_properties)

    def _describe_position(self) -> str:
        line = self._delivery_target.input_line
        return f"Record at input line {line} of stream '{self.stream_name}'"

    @override
    def get_validator(self) -> BaseJSONSchemaValidator | None:
        if not self.validate_schema:
            return None
        return RecordValidator(self.schema, where=self._describe_position)

    # NOTE: this replaces a private hook of singer-sdk 0.54 (see
    # singer_sdk/sinks/core.py). The SDK's version parses every date-like
    # string into a datetime and, when that fails, raises an error that
    # quotes the value. The XML encoder parses those strings itself, once,
    # with an error that names only the field.
    @override
    def _validate_and_parse(self, record: dict[str, t.Any]) -> dict[str, t.Any]:
        if self._validator is None:
            return record
        if not self.shaping.skip_invalid:
            self._validator.validate(record)
        elif isinstance(self._validator, RecordValidator):
            self._schema_problem = self._validator.problem(record)
        return record

    # The SDK's own check (a private hook of singer-sdk 0.54) names neither
    # the stream nor the input line.
    @override
    def _singer_validate_message(self, record: dict[str, t.Any]) -> None:
        for name in self._required_properties:
            if name not in record:
                break
        else:
            return
        missing = [name for name in self._required_properties if name not in record]
        msg = (
            f"{self._describe_position()} lacks its key properties {missing}, "
            f"which the stream's SCHEMA message names in key_properties. Fix "
            f"the tap or its SCHEMA so that every record has them."
        )
        raise MissingKeyPropertiesError(msg)

    @property
    @override
    def current_size(self) -> int:
        return self._delivery_target.delivery.packer.count(self.stream_name)

    @property
    @override
    def is_full(self) -> bool:
        return self._delivery_target.delivery.packer.has_closed(self.stream_name)

    @override
    def process_record(
        self, record: dict[str, t.Any], context: dict[str, t.Any]
    ) -> None:
        self._progress.received += 1
        if self._schema_problem is None and self._checks_email_only:
            # The common case, kept free of calls and lookups it does not need.
            email = record.get(self._email_property) if self._email_property else None
            if type(email) is str and EMAIL_MATCH(email):
                try:
                    fragment = self._encode(record)
                except InvalidValueError as exc:
                    self._reject(record, [str(exc)])
                    return
                self._add(record, fragment)
                return
        problems = self._problems_of(record)
        fragment = b""
        if not problems:
            try:
                fragment = self.encoder.encode(record)
            except InvalidValueError as exc:
                problems = [str(exc)]
        if problems:
            self._reject(record, problems)
            return
        self._add(record, fragment)

    def _add(self, record: dict[str, t.Any], fragment: bytes) -> None:
        """Hand an encoded record to the packer, unless the ledger calls for a skip."""
        dedup = self._dedup
        if dedup is None:
            self._add_to_packer(self.stream_name, fragment, self._reader.line_number)
            return
        digest = record_hash(fragment)
        if (
            self._single_key is not None
            and type(value := record.get(self._single_key)) is str
        ):
            key = text_key_hash(value)
        elif self._key_properties_for_dedup:
            key = key_hash(
                [record.get(name) for name in self._key_properties_for_dedup]
            )
        else:
            key = digest
        held_keys = self._held_keys
        earlier = held_keys.get(key)
        if earlier is not None:
            decision = dedup.decide_repeat(earlier, digest)
            if not decision.add:
                self._run_progress.count_skipped(self.stream_name, 1)
                return
            if decision.replaces is not None:
                self._drop_earlier(decision.replaces, key)
        upload = self._add_to_packer(
            self.stream_name, fragment, self._reader.line_number, (key, digest)
        )
        held_keys[key] = (digest, upload)

    def _drop_earlier(self, upload: Upload, key: str) -> None:
        """Take an earlier record with the same key out of an upload not yet sent."""
        if upload.submitted:
            return
        for index, (earlier_key, _) in enumerate(upload.keys):
            if earlier_key == key:
                upload.remove_record(index)
                self._run_progress.count_skipped(self.stream_name, 1)
                return

    def _problems_of(self, record: dict[str, t.Any]) -> list[str]:
        if self._schema_problem is not None:
            problem, self._schema_problem = self._schema_problem, None
            return [problem]
        if self._record_check is None:
            return []
        if self._record_check.is_default:
            email = record.get(self._email_property) if self._email_property else None
            return email_problems(email)
        mapped = {
            layout.element_name: record[layout.property_name]
            for layout in self.encoder.fields
            if record.get(layout.property_name) is not None
        }
        return self._record_check.problems(mapped)

    def _reject(self, record: dict[str, t.Any], problems: list[str]) -> None:
        """Set an invalid record aside, or stop the run, as 'invalid_records' sets.

        Raises:
            InvalidRecord: If invalid records stop the run.
        """
        if not self.shaping.skip_invalid:
            msg = (
                f"{self._describe_position()} is invalid: {'; '.join(problems)}. "
                f"Fix it at the source, or set 'invalid_records' to 'skip' to set "
                f"such records aside in 'rejects_path'."
            )
            raise InvalidRecord(msg, record)
        self._delivery_target.delivery.rejects.write(
            self.stream_name, self._delivery_target.input_line, problems, record
        )
        self._progress.rejected += 1
        self._progress.reject_reasons.update(problems)

    @override
    def process_batch(self, context: dict[str, t.Any]) -> None:
        packer = self._delivery_target.delivery.packer
        if not packer.has_closed(self.stream_name):
            packer.close(self.stream_name)
        # Each upload leaves the packer only once the pipeline has it, so a
        # signal between the two steps cannot lose it.
        while (upload := packer.peek_closed(self.stream_name)) is not None:
            self._delivery_target.delivery.submit_upload(upload)
            packer.discard_closed(upload)

    @override
    def clean_up(self) -> None:
        for property_name, count in sorted(self.encoder.removed_characters.items()):
            self.logger.warning(
                "Removed %d characters that XML 1.0 cannot carry from field '%s' "
                "of stream '%s'.",
                count,
                property_name,
                self.stream_name,
            )
        self.encoder.removed_characters.clear()
        super().clean_up()
