"""A Singer target on the Meltano Singer SDK that discards every record.

It measures what the SDK costs by itself on the benchmark input: reading and
parsing each line, validating each record against its SCHEMA (the SDK's
default `validate_records: true`), batching, and STATE handling. Its sink's
`process_batch` does nothing, and every SDK setting keeps its default.

    python benchmarks/noop_target.py --config config.json < input.jsonl
"""

from __future__ import annotations

import typing as t

from singer_sdk import Target
from singer_sdk import typing as th
from singer_sdk.sinks import BatchSink


class DiscardingSink(BatchSink):
    """Batch sink whose batches are dropped."""

    def process_batch(self, context: dict[str, t.Any]) -> None:
        """Drop the batch."""


class NoopTarget(Target):
    """Singer target that validates records and then drops them."""

    name = "benchmark-noop-target"
    config_jsonschema = th.PropertiesList().to_dict()
    default_sink_class = DiscardingSink


if __name__ == "__main__":
    NoopTarget.cli()
