"""A durable record of what was delivered, so that no customer is surveyed twice.

The ledger keeps, per stream, a hash of each delivered record's key (never
the key itself, which is personal data) and of the record as uploaded. It
lives in SQLite by default, or in any database SQLAlchemy reaches (for
example PostgreSQL), so that throwaway CI runners and several runners can
share it.

Every upload is written ahead: its keys and exact body are committed as
"pending" before the POST. Acceptance makes them "delivered", and a definite
failure removes them. An ambiguous failure (a timeout after the body was
sent, a connection dropped mid-response) makes them "in doubt", to be
resolved before the next run sends anything.
"""

from __future__ import annotations

import datetime
import hashlib
import json
import logging
import threading
import typing as t
import uuid
from dataclasses import dataclass

import sqlalchemy as sa

LOGGER = logging.getLogger(__name__)

SCHEMA_VERSION = 1
PENDING = "pending"
DELIVERED = "delivered"
IN_DOUBT = "in_doubt"
# Keys per SELECT: well under SQLite's and PostgreSQL's parameter limits.
_LOOKUP_CHUNK = 500

_METADATA = sa.MetaData()
_META = sa.Table(
    "ledger_meta",
    _METADATA,
    sa.Column("name", sa.String(64), primary_key=True),
    sa.Column("value", sa.String(256), nullable=False),
)
_KEYS = sa.Table(
    "ledger_keys",
    _METADATA,
    sa.Column("stream", sa.String(512), primary_key=True),
    sa.Column("key_hash", sa.String(64), primary_key=True),
    sa.Column("record_hash", sa.String(64), nullable=False),
    sa.Column("status", sa.String(16), nullable=False),
    sa.Column("upload_id", sa.String(32), nullable=False, index=True),
    sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
)
_UPLOADS = sa.Table(
    "ledger_uploads",
    _METADATA,
    sa.Column("upload_id", sa.String(32), primary_key=True),
    sa.Column("stream", sa.String(512), nullable=False),
    sa.Column("status", sa.String(16), nullable=False),
    sa.Column("record_count", sa.Integer, nullable=False),
    sa.Column("body", sa.LargeBinary, nullable=True),
    sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
    sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
)


class LedgerError(RuntimeError):
    """The ledger cannot be used as it is (unknown version, in-doubt uploads)."""


def key_hash(values: t.Sequence[t.Any]) -> str:
    """Hash a record's key values; the same values always give the same hash.

    Values are joined with the unit separator (U+001F), which XML cannot
    carry, so that ("a", "bc") and ("ab", "c") never hash alike.
    """
    text = "\x1f".join(["" if value is None else str(value) for value in values])
    return hashlib.sha256(text.encode("utf-8", "surrogatepass")).hexdigest()


def record_hash(fragment: bytes) -> str:
    """Hash a record as it is uploaded."""
    return hashlib.sha256(fragment).hexdigest()


@dataclass(frozen=True)
class PendingUpload:
    """An upload written ahead whose outcome the ledger does not know."""

    upload_id: str
    stream: str
    status: str
    record_count: int
    created_at: datetime.datetime
    body: bytes | None


def _now() -> datetime.datetime:
    return datetime.datetime.now(datetime.timezone.utc)


class DeliveryLedger:
    """Read and write the ledger; safe to call from the reading and upload threads."""

    def __init__(self, url: str) -> None:
        self.url = url
        self._engine = sa.create_engine(url, future=True)
        if self._engine.dialect.name == "sqlite":
            # Several threads share the file; WAL lets readers run beside a
            # writer, and the timeout waits out a brief lock instead of failing.
            sa.event.listen(self._engine, "connect", _configure_sqlite)
        self._lock = threading.Lock()
        self._json_insert = self._engine.dialect.name == "sqlite"
        self._migrate()

    def _migrate(self) -> None:
        _METADATA.create_all(self._engine)
        with self._engine.begin() as connection:
            row = connection.execute(
                sa.select(_META.c.value).where(_META.c.name == "schema_version")
            ).first()
            if row is None:
                connection.execute(
                    sa.insert(_META).values(
                        name="schema_version", value=str(SCHEMA_VERSION)
                    )
                )
                # Said once, so that a run in the wrong folder, which finds no
                # ledger and so skips nothing, can be noticed.
                LOGGER.warning(
                    "Started a new, empty delivery ledger at %s. Records that "
                    "runs with another ledger delivered are not known to it.",
                    self.describe(),
                )
            elif int(row[0]) > SCHEMA_VERSION:
                msg = (
                    f"The ledger at {self.describe()} has schema version {row[0]}, "
                    f"newer than this target's {SCHEMA_VERSION}. Upgrade "
                    f"target-customergauge-stream."
                )
                raise LedgerError(msg)

    def describe(self) -> str:
        """Return the ledger's location with any password hidden."""
        return sa.engine.make_url(self.url).render_as_string(hide_password=True)

    def close(self) -> None:
        """Close the database connections."""
        self._engine.dispose()

    def known_keys(
        self, stream: str, hashes: t.Iterable[str]
    ) -> dict[str, tuple[str, str]]:
        """Return the record hash and status of each given key the ledger holds."""
        found: dict[str, tuple[str, str]] = {}
        wanted = list(hashes)
        with self._engine.connect() as connection:
            for start in range(0, len(wanted), _LOOKUP_CHUNK):
                chunk = wanted[start : start + _LOOKUP_CHUNK]
                rows = connection.execute(
                    sa.select(
                        _KEYS.c.key_hash, _KEYS.c.record_hash, _KEYS.c.status
                    ).where(_KEYS.c.stream == stream, _KEYS.c.key_hash.in_(chunk))
                )
                for key, digest, status in rows:
                    found[key] = (digest, status)
        return found

    def write_ahead(
        self,
        stream: str,
        keys: t.Sequence[tuple[str, str]],
        body: bytes,
        *,
        may_exist: bool = True,
    ) -> str:
        """Commit an upload's keys and body as pending; return its upload id.

        Args:
            stream: Stream of the records.
            keys: (key hash, record hash) of each record.
            body: The exact request body.
            may_exist: Some keys may already be in the ledger (a changed
                record sent again); False skips the removal of old rows.
        """
        upload_id = uuid.uuid4().hex
        now = _now()
        with self._lock, self._engine.begin() as connection:
            connection.execute(
                sa.insert(_UPLOADS).values(
                    upload_id=upload_id,
                    stream=stream,
                    status=PENDING,
                    record_count=len(keys),
                    body=body,
                    created_at=now,
                    updated_at=now,
                )
            )
            if may_exist:
                connection.execute(
                    sa.delete(_KEYS).where(
                        _KEYS.c.stream == stream,
                        _KEYS.c.key_hash.in_([key for key, _ in keys]),
                    )
                )
            if not (
                self._json_insert
                and self._insert_keys_as_json(connection, stream, keys, upload_id, now)
            ):
                connection.execute(
                    sa.insert(_KEYS),
                    [
                        {
                            "stream": stream,
                            "key_hash": key,
                            "record_hash": digest,
                            "status": PENDING,
                            "upload_id": upload_id,
                            "updated_at": now,
                        }
                        for key, digest in keys
                    ],
                )
        return upload_id

    def _insert_keys_as_json(
        self,
        connection: sa.Connection,
        stream: str,
        keys: t.Sequence[tuple[str, str]],
        upload_id: str,
        now: datetime.datetime,
    ) -> bool:
        """Insert an upload's keys in one SQLite statement; False if unsupported.

        An executemany makes SQLite release the GIL at every row, and this
        thread then waits each time for the busy reading thread: 2,000 keys
        took about 100 ms that way, against a few ms as one INSERT ... SELECT
        over json_each (SQLite 3.38 and newer have it built in).
        """
        # SQLAlchemy stores DateTime in SQLite as this text, in UTC.
        stamp = now.astimezone(datetime.timezone.utc).strftime("%Y-%m-%d %H:%M:%S.%f")
        try:
            with connection.begin_nested():
                connection.exec_driver_sql(
                    "INSERT INTO ledger_keys "
                    "(stream, key_hash, record_hash, status, upload_id, updated_at) "
                    "SELECT ?, json_extract(value, '$[0]'), "
                    "json_extract(value, '$[1]'), ?, ?, ? FROM json_each(?)",
                    (stream, PENDING, upload_id, stamp, json.dumps(keys)),
                )
        except sa.exc.OperationalError:
            self._json_insert = False
            return False
        return True

    def mark_delivered(self, upload_id: str) -> None:
        """Record that CustomerGauge accepted an upload, and drop its spooled body."""
        self._set_status(upload_id, DELIVERED, keep_body=False)

    def mark_in_doubt(self, upload_id: str) -> None:
        """Record that an upload may or may not have arrived."""
        self._set_status(upload_id, IN_DOUBT, keep_body=True)

    def release(self, upload_id: str) -> None:
        """Forget an upload that definitely did not arrive, freeing its records."""
        with self._lock, self._engine.begin() as connection:
            connection.execute(sa.delete(_KEYS).where(_KEYS.c.upload_id == upload_id))
            connection.execute(
                sa.delete(_UPLOADS).where(_UPLOADS.c.upload_id == upload_id)
            )

    def _set_status(self, upload_id: str, status: str, *, keep_body: bool) -> None:
        now = _now()
        values: dict[str, t.Any] = {"status": status, "updated_at": now}
        if not keep_body:
            values["body"] = None
        with self._lock, self._engine.begin() as connection:
            connection.execute(
                sa.update(_UPLOADS)
                .where(_UPLOADS.c.upload_id == upload_id)
                .values(**values)
            )
            connection.execute(
                sa.update(_KEYS)
                .where(_KEYS.c.upload_id == upload_id)
                .values(status=status, updated_at=now)
            )

    def unresolved(self) -> list[PendingUpload]:
        """Return uploads left pending or in doubt, oldest first.

        A pending upload found at start-up belongs to a run that stopped
        between writing ahead and learning the outcome: it is in doubt too.
        """
        with self._engine.connect() as connection:
            rows = connection.execute(
                sa.select(
                    _UPLOADS.c.upload_id,
                    _UPLOADS.c.stream,
                    _UPLOADS.c.status,
                    _UPLOADS.c.record_count,
                    _UPLOADS.c.created_at,
                    _UPLOADS.c.body,
                )
                .where(_UPLOADS.c.status.in_([PENDING, IN_DOUBT]))
                .order_by(_UPLOADS.c.created_at, _UPLOADS.c.upload_id)
            )
            return [PendingUpload(*row) for row in rows]

    def forget_key(self, stream: str, key_values: t.Sequence[t.Any]) -> int:
        """Forget one delivered key, for a deliberate re-survey; return rows removed."""
        with self._lock, self._engine.begin() as connection:
            result = connection.execute(
                sa.delete(_KEYS).where(
                    _KEYS.c.stream == stream,
                    _KEYS.c.key_hash == key_hash(key_values),
                    _KEYS.c.status == DELIVERED,
                )
            )
        return int(result.rowcount or 0)

    def forget_before(
        self, moment: datetime.datetime, stream: str | None = None
    ) -> int:
        """Forget keys delivered before a moment; return rows removed."""
        condition = sa.and_(_KEYS.c.status == DELIVERED, _KEYS.c.updated_at < moment)
        if stream is not None:
            condition = sa.and_(condition, _KEYS.c.stream == stream)
        with self._lock, self._engine.begin() as connection:
            result = connection.execute(sa.delete(_KEYS).where(condition))
        return int(result.rowcount or 0)

    def key_count(self, stream: str) -> int:
        """Count the keys of a stream, in any status."""
        with self._engine.connect() as connection:
            return int(
                connection.execute(
                    sa.select(sa.func.count()).where(_KEYS.c.stream == stream)
                ).scalar_one()
            )

    def stream_key_hashes(self, stream: str) -> t.Iterator[str]:
        """Yield every key hash the ledger holds for a stream, in any status."""
        with self._engine.connect() as connection:
            result = connection.execution_options(yield_per=10_000).execute(
                sa.select(_KEYS.c.key_hash).where(_KEYS.c.stream == stream)
            )
            for (key,) in result:
                yield str(key)

    def delivered_counts(self) -> dict[str, int]:
        """Count delivered keys per stream."""
        with self._engine.connect() as connection:
            rows = connection.execute(
                sa.select(_KEYS.c.stream, sa.func.count())
                .where(_KEYS.c.status == DELIVERED)
                .group_by(_KEYS.c.stream)
            )
            return {str(stream): int(count) for stream, count in rows}

    def delivered_count(self, stream: str | None = None) -> int:
        """Count delivered keys, in one stream or in all."""
        condition = _KEYS.c.status == DELIVERED
        if stream is not None:
            condition = sa.and_(condition, _KEYS.c.stream == stream)
        with self._engine.connect() as connection:
            return int(
                connection.execute(
                    sa.select(sa.func.count()).where(condition)
                ).scalar_one()
            )


def _configure_sqlite(connection: t.Any, _record: t.Any) -> None:  # noqa: ANN401
    cursor = connection.cursor()
    cursor.execute("PRAGMA journal_mode=WAL")
    cursor.execute("PRAGMA busy_timeout=30000")
    # FULL: a write-ahead entry must survive a power cut, not only a crash.
    cursor.execute("PRAGMA synchronous=FULL")
    cursor.close()
