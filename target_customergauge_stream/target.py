"""The Singer target: its settings, its sink class and the SDK hooks it overrides."""

from __future__ import annotations

import signal
import sys
import typing as t

from singer_sdk import Target
from singer_sdk.exceptions import ConfigValidationError
from singer_sdk.mapper import SameRecordTransform

from target_customergauge_stream.client import UploadFailedError
from target_customergauge_stream.coordinator import DeliveryCoordinator
from target_customergauge_stream.reader import CountingSingerReader
from target_customergauge_stream.settings import (
    CONFIG_SCHEMA,
    resolve_settings,
    validate_config,
)
from target_customergauge_stream.sinks import CustomerGaugeStreamSink

if sys.version_info >= (3, 12):
    from typing import override
else:
    from typing_extensions import override

if t.TYPE_CHECKING:
    from pathlib import PurePath
    from types import FrameType


SWITCH_INTERVAL_SECONDS = 0.0001


class TargetCustomerGaugeStream(Target):
    """Singer target that uploads records to CustomerGauge's Stream API."""

    name = "target-customergauge-stream"
    package_name = "target-customergauge-stream"
    config_jsonschema = CONFIG_SCHEMA
    default_sink_class = CustomerGaugeStreamSink
    message_reader_class = CountingSingerReader

    def __init__(
        self,
        *,
        config: dict[str, t.Any] | PurePath | str | list[PurePath | str] | None = None,
        parse_env_config: bool = False,
        validate_config: bool = True,
        setup_mapper: bool = True,
        message_reader: CountingSingerReader | None = None,
    ) -> None:
        super().__init__(
            config=config,
            parse_env_config=parse_env_config,
            validate_config=validate_config,
            setup_mapper=setup_mapper,
            message_reader=message_reader,
        )
        # Uploads go out one at a time in input order, so sinks never drain
        # in parallel.
        self.max_parallelism = 1
        # The upload thread gives up the GIL at every socket and SQLite call.
        # Each time it waits for the busy reading thread, which lets go only
        # every switch interval, so the upload thread fell behind and reading
        # stalled. On the benchmark input (100,000 records, 2-core
        # machine), 0.5 ms instead of CPython's default 5 ms made the run with
        # the ledger 15% faster, and 0.1 ms then made it 25% faster again,
        # and 18% faster without the ledger (benchmarks/RESULTS.md).
        sys.setswitchinterval(SWITCH_INTERVAL_SECONDS)
        # Sinks of streams whose records go through no stream map, by stream.
        self._unmapped_sinks: dict[str, CustomerGaugeStreamSink] = {}
        self.settings = resolve_settings(self.config)
        self.delivery = DeliveryCoordinator(
            self.settings, self.logger, lambda: self.input_line
        )
        reader = t.cast("CountingSingerReader", self.message_reader)
        reader.before_failure = self.delivery.deliver_before_failure
        self.delivery.settle_unresolved_uploads()

    @property
    def input_line(self) -> int:
        """Input line of the message being processed, from 1."""
        return t.cast("CountingSingerReader", self.message_reader).line_number

    # The SDK's own config check quotes invalid values in its messages, which
    # would print a mistyped secret; this one names settings only.
    @override
    def _validate_config(self, *, raise_errors: bool = True) -> list[str]:
        schema = self.config_jsonschema
        self.append_builtin_config(schema)
        errors = validate_config(self.config, schema)
        if errors and raise_errors:
            msg = "Config validation failed"
            raise ConfigValidationError(msg, errors=errors, schema=schema)
        for error in errors:
            self.logger.warning("%s", error)
        return errors

    # STATE is emitted by `StateCheckpoints` once CustomerGauge has accepted
    # every record before it, never by the SDK's drain, which would run ahead
    # of uploads still in flight.
    @override
    def _process_state_message(self, message_dict: dict[str, t.Any]) -> None:
        self._assert_line_requires(message_dict, requires={"value"})
        self.delivery.checkpoints.add_state(self.input_line, message_dict["value"])

    @override
    def _process_schema_message(self, message_dict: dict[str, t.Any]) -> None:
        self._unmapped_sinks.clear()
        super()._process_schema_message(message_dict)

    # NOTE: this replaces a private hook of singer-sdk 0.54 (see
    # singer_sdk/target_base.py). For a stream with no stream map, no
    # flattening and no added metadata, the SDK's version copies each record
    # and passes it through steps that leave it unchanged. This path calls
    # the same sink methods without those steps; on the benchmark input it
    # saved about 9% of the run. Every other stream takes the SDK's path.
    @override
    def _process_record_message(self, message_dict: dict[str, t.Any]) -> None:
        stream_name = message_dict.get("stream")
        record = message_dict.get("record")
        sink = None
        if isinstance(stream_name, str):
            sink = self._unmapped_sinks.get(stream_name) or self._find_unmapped_sink(
                stream_name
            )
        if sink is None or type(record) is not dict:
            super()._process_record_message(message_dict)
            return
        context: dict[str, t.Any] = {}
        sink._remove_sdc_metadata_from_record(record)
        sink._validate_and_parse(record)
        record = sink.preprocess_record(record, context)
        sink._singer_validate_message(record)
        sink.tally_record_read()
        sink.process_record(record, context)
        sink.record_counter_metric.increment()
        sink._after_process_record(context)
        if sink.is_full:
            self.logger.debug("Sending the closed uploads of stream '%s'.", stream_name)
            self.drain_one(sink)
        self._handle_max_record_age()

    def _find_unmapped_sink(self, stream_name: str) -> CustomerGaugeStreamSink | None:
        """Return the stream's sink if its records go through no stream map."""
        stream_maps = self.mapper.stream_maps.get(stream_name)
        if (
            not stream_maps
            or len(stream_maps) != 1
            or type(stream_maps[0]) is not SameRecordTransform
            or stream_maps[0].flattening_enabled
            or stream_maps[0].stream_alias != stream_name
            or not self.sink_exists(stream_name)
        ):
            return None
        sink = self.get_sink(stream_name)
        # With 'add_record_metadata', the SDK's path adds _sdc_ fields.
        if (
            not isinstance(sink, CustomerGaugeStreamSink)
            or sink.include_sdc_metadata_properties
        ):
            return None
        self._unmapped_sinks[stream_name] = sink
        return sink

    @override
    def process_endofpipe(self) -> None:
        try:
            super().process_endofpipe()
        except UploadFailedError:
            self.delivery.abort()
            raise
        self.delivery.finish()

    @override
    def _handle_termination(self, signum: int, frame: FrameType | None) -> None:
        """Stop on SIGINT or SIGTERM without losing or half-sending anything.

        Reading stops at once. The upload in flight may finish, within about
        'request_timeout', and the STATE it completes is emitted. Whatever was
        read but not delivered is saved to 'failed_uploads_dir', and the
        target exits with status 128 + the signal number, as shells do.
        """
        name = signal.Signals(signum).name
        self.logger.warning(
            "Received %s: stopping after the upload in flight; nothing more is "
            "read or sent.",
            name,
        )
        self.delivery.stop_for_signal()
        self.logger.warning("Stopped by %s.", name)
        sys.exit(128 + signum)


if __name__ == "__main__":
    TargetCustomerGaugeStream.cli()
