"""A durable record of what was delivered, so that no customer is surveyed twice.

The ledger keeps, per stream, a hash of each delivered record's key (never
the key itself, which is personal data) and of the record as uploaded. It
lives in SQLite by default, or in any database SQLAlchemy reaches (for
example PostgreSQL), so that throwaway CI runners and several runners can
share it.

Every upload is written ahead: one row with its exact body and its keys is
committed as "pending" before the POST. Acceptance marks the row delivered
and drops the body. A definite failure removes the row. An ambiguous failure
(a timeout after the body was sent, a connection dropped mid-response) marks
it "in doubt", to be resolved before the next run sends anything.

Keys reach the indexed table of delivered keys only after delivery, several
uploads at a time and in key order. Inserting 2,000 random hashes into an
index touches most of its pages, so inserting 6,000 costs little more.
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
from pathlib import Path

import sqlalchemy as sa

LOGGER = logging.getLogger(__name__)

SCHEMA_VERSION = 2
PENDING = "pending"
DELIVERED = "delivered"
IN_DOUBT = "in_doubt"
# Hex digits kept of each SHA-256 hash: 128 bits. The odds that two of a
# billion keys share a hash are below 1 in 10^20 (birthday bound), and a
# shorter hash keeps the index small, which most of the ledger's cost follows.
HASH_DIGITS = 32
# Keys per SELECT: well under SQLite's and PostgreSQL's parameter limits.
_LOOKUP_CHUNK = 500

_METADATA = sa.MetaData()
_META = sa.Table(
    "ledger_meta",
    _METADATA,
    sa.Column("name", sa.String(64), primary_key=True),
    sa.Column("value", sa.String(256), nullable=False),
)
_UPLOADS = sa.Table(
    "ledger_uploads",
    _METADATA,
    sa.Column("upload_id", sa.String(32), primary_key=True),
    sa.Column("stream", sa.String(512), nullable=False),
    sa.Column("status", sa.String(16), nullable=False),
    sa.Column("record_count", sa.Integer, nullable=False),
    sa.Column("body", sa.LargeBinary, nullable=True),
    # JSON list of [key hash, record hash] until the keys are delivered.
    sa.Column("key_data", sa.Text, nullable=True),
    sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
    sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
)
_DELIVERED = sa.Table(
    "ledger_delivered_keys",
    _METADATA,
    sa.Column("stream", sa.String(512), primary_key=True),
    sa.Column("key_hash", sa.String(HASH_DIGITS), primary_key=True),
    sa.Column("record_hash", sa.String(HASH_DIGITS), nullable=False),
    # Unix time in seconds: a quarter of the size of a timestamp in SQLite.
    sa.Column("delivered_at", sa.BigInteger, nullable=False),
    # The key is the table in SQLite: one B-tree to update instead of two.
    sqlite_with_rowid=False,
)
_V1_KEYS = "ledger_keys"
_SQLITE_CACHE_KIB = 4 * 1024


class LedgerError(RuntimeError):
    """The ledger cannot be used as it is (unknown version, in-doubt uploads)."""


def key_hash(values: t.Sequence[t.Any]) -> str:
    """Hash a record's key values; the same values always give the same hash.

    Values are joined with the unit separator (U+001F), which XML cannot
    carry, so that ("a", "bc") and ("ab", "c") never hash alike.
    """
    text = "\x1f".join(["" if value is None else str(value) for value in values])
    return hashlib.sha256(text.encode("utf-8", "surrogatepass")).hexdigest()[
        :HASH_DIGITS
    ]


def text_key_hash(value: str) -> str:
    """Hash a key made of one text value; equal to `key_hash([value])`."""
    return hashlib.sha256(value.encode("utf-8", "surrogatepass")).hexdigest()[
        :HASH_DIGITS
    ]


def record_hash(fragment: bytes) -> str:
    """Hash a record as it is uploaded."""
    return hashlib.sha256(fragment).hexdigest()[:HASH_DIGITS]


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

    def __init__(
        self, url: str, *, create: bool = True, warn_if_new: bool = True
    ) -> None:
        """Open the ledger at a URL, creating or migrating its tables.

        Args:
            url: SQLAlchemy URL of the database.
            create: Create a ledger that does not exist yet. With False, a
                missing ledger raises `LedgerError`.
            warn_if_new: Log a warning when the ledger is created, which a
                ledger expected to exist should never be.

        Raises:
            LedgerError: If the ledger cannot be opened, is missing (with
                `create` False) or has a newer schema.
        """
        self.url = url
        self._warn_if_new = warn_if_new
        self._engine = sa.create_engine(url, future=True)
        self._sqlite = self._engine.dialect.name == "sqlite"
        if self._sqlite:
            # Several threads share the file; WAL lets readers run beside a
            # writer, and the timeout waits out a brief lock instead of failing.
            sa.event.listen(self._engine, "connect", _configure_sqlite)
            self._prepare_sqlite_file(create=create)
        self._lock = threading.Lock()
        try:
            self._migrate(create=create)
            self._json_each = self._sqlite and self._has_json_each()
            self._postgres = self._engine.dialect.name == "postgresql"
            # Keys that a run which stopped early had not added yet.
            self.add_delivered_keys()
        except LedgerError:
            self._engine.dispose()
            raise
        except sa.exc.SQLAlchemyError as exc:
            self._engine.dispose()
            reason = getattr(exc, "orig", None) or type(exc).__name__
            msg = (
                f"Cannot open the delivery ledger at {self.describe()}: "
                f"{reason}. Check that the database is reachable and that "
                f"this user may create and write its tables."
            )
            raise LedgerError(msg) from None

    def _prepare_sqlite_file(self, *, create: bool) -> None:
        """Create the folder of a new SQLite ledger, or refuse a missing one."""
        database = self._engine.url.database
        if not database or database == ":memory:":
            return
        path = Path(database)
        if path.exists():
            return
        if not create:
            msg = (
                f"No delivery ledger at {path.resolve()}. Point to the file the "
                f"target uses ('ledger_path' or 'ledger_url', relative to the "
                f"folder the target runs in)."
            )
            raise LedgerError(msg)
        try:
            path.parent.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            msg = (
                f"Cannot open the delivery ledger at {path}: its folder cannot "
                f"be created ({exc.strerror}). Set 'ledger_path' to a file in a "
                f"folder this user may write."
            )
            raise LedgerError(msg) from None

    def _migrate(self, *, create: bool) -> None:
        with self._engine.begin() as connection:
            tables = set(sa.inspect(connection).get_table_names())
            if not create and _META.name not in tables:
                msg = f"No delivery ledger at {self.describe()}: it has no tables."
                raise LedgerError(msg)
            _METADATA.create_all(connection)
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
                if self._warn_if_new:
                    LOGGER.warning(
                        "Started a new, empty delivery ledger at %s. Records "
                        "that runs with another ledger delivered are not known "
                        "to it.",
                        self.describe(),
                    )
                return
            version = int(row[0])
            if version > SCHEMA_VERSION:
                msg = (
                    f"The ledger at {self.describe()} has schema version {version}, "
                    f"newer than this target's {SCHEMA_VERSION}. Upgrade "
                    f"target-customergauge-stream."
                )
                raise LedgerError(msg)
            if version == 1:
                _migrate_from_version_1(connection, has_keys=_V1_KEYS in tables)
                LOGGER.info(
                    "Migrated the delivery ledger at %s from schema version 1 to %d.",
                    self.describe(),
                    SCHEMA_VERSION,
                )

    def _has_json_each(self) -> bool:
        """Tell whether SQLite has json_each: built in from 3.38, optional before."""
        try:
            with self._engine.connect() as connection:
                connection.exec_driver_sql("SELECT value FROM json_each('[1]')").all()
        except sa.exc.OperationalError:
            return False
        return True

    def describe(self) -> str:
        """Return the ledger's location with any password hidden."""
        return sa.engine.make_url(self.url).render_as_string(hide_password=True)

    def close(self) -> None:
        """Close the database connections."""
        self._engine.dispose()

    def known_keys(self, stream: str, hashes: t.Iterable[str]) -> dict[str, str]:
        """Return the record hash of each given key that was delivered before."""
        wanted = list(hashes)
        if not wanted:
            return {}
        with self._engine.connect() as connection:
            if self._json_each:
                rows = connection.exec_driver_sql(
                    "SELECT key_hash, record_hash FROM ledger_delivered_keys "
                    "WHERE stream = ? AND key_hash IN (SELECT value FROM json_each(?))",
                    (stream, json.dumps(wanted)),
                ).all()
                return {str(key): str(digest) for key, digest in rows}
            if self._postgres:
                # One array parameter, not an IN list per 500 keys: on the
                # benchmark input those lists took 1.7 s of the upload thread.
                rows = connection.execute(
                    sa.text(
                        "SELECT key_hash, record_hash FROM ledger_delivered_keys "
                        "WHERE stream = :stream AND key_hash = ANY(:keys)"
                    ),
                    {"stream": stream, "keys": wanted},
                ).all()
                return {str(key): str(digest) for key, digest in rows}
            found: dict[str, str] = {}
            for start in range(0, len(wanted), _LOOKUP_CHUNK):
                chunk = wanted[start : start + _LOOKUP_CHUNK]
                rows = connection.execute(
                    sa.select(_DELIVERED.c.key_hash, _DELIVERED.c.record_hash).where(
                        _DELIVERED.c.stream == stream,
                        _DELIVERED.c.key_hash.in_(chunk),
                    )
                ).all()
                found.update((str(key), str(digest)) for key, digest in rows)
            return found

    def write_ahead(
        self, stream: str, keys: t.Sequence[tuple[str, str]], body: bytes
    ) -> str:
        """Commit an upload's keys and body as pending; return its upload id.

        Args:
            stream: Stream of the records.
            keys: (key hash, record hash) of each record.
            body: The exact request body.
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
                    key_data=json.dumps(keys, separators=(",", ":")),
                    created_at=now,
                    updated_at=now,
                )
            )
        return upload_id

    def mark_delivered(self, upload_id: str, *, add_keys: bool = True) -> None:
        """Record that CustomerGauge accepted an upload, and drop its spooled body.

        Args:
            upload_id: The upload's id from `write_ahead`.
            add_keys: Add its keys to the delivered keys now. With False, they
                wait in the upload's row for `add_delivered_keys`, which adds
                the keys of many uploads in one go. If the process stops
                before that, the next `DeliveryLedger` opened on the database
                adds them.
        """
        now = _now()
        with self._lock, self._engine.begin() as connection:
            connection.execute(
                sa.update(_UPLOADS)
                .where(_UPLOADS.c.upload_id == upload_id)
                .values(status=DELIVERED, body=None, updated_at=now)
            )
            if add_keys:
                self._add_delivered_keys(connection)

    def add_delivered_keys(self) -> None:
        """Add the keys of every delivered upload whose row still contains them."""
        with self._lock, self._engine.begin() as connection:
            self._add_delivered_keys(connection)

    def _add_delivered_keys(self, connection: sa.Connection) -> None:
        """Move keys from delivered uploads' rows into the delivered keys.

        Each key takes its upload's time of delivery. A key can be there
        already only when a changed record was sent again ('resend_changed'):
        the record hash of the upload written ahead last wins, over the
        table's too. Adding the keys of several
        uploads at once costs about what adding one upload's keys does,
        because 2,000 random hashes touch most of the index's pages either
        way. Adding them in key order visits each page once: on the
        benchmark input that made the run 8% faster.
        """
        waiting = sa.and_(
            _UPLOADS.c.status == DELIVERED, _UPLOADS.c.key_data.is_not(None)
        )
        if self._json_each:
            # One statement: an executemany makes SQLite release the GIL at
            # every row, and this thread then waits each time for the busy
            # reading thread. Uploads are taken in the order they were
            # written (rowid), so that a later upload's record hash wins.
            connection.exec_driver_sql(
                "INSERT INTO ledger_delivered_keys "
                "(stream, key_hash, record_hash, delivered_at) "
                "SELECT u.stream, json_extract(j.value, '$[0]'), "
                "json_extract(j.value, '$[1]'), "
                "CAST(strftime('%s', u.updated_at) AS INTEGER) "
                "FROM ledger_uploads AS u, json_each(u.key_data) AS j "
                "WHERE u.status = ? AND u.key_data IS NOT NULL "
                "ORDER BY 2, u.rowid, j.key "
                "ON CONFLICT (stream, key_hash) DO UPDATE SET "
                "record_hash = excluded.record_hash, "
                "delivered_at = excluded.delivered_at",
                (DELIVERED,),
            )
            # SQLite admits one writer at a time: no upload can have been
            # marked delivered since the INSERT above read them.
            connection.execute(sa.update(_UPLOADS).where(waiting).values(key_data=None))
            return
        if self._postgres:
            self._add_delivered_keys_postgres(connection)
            return
        uploads = connection.execute(
            sa.select(
                _UPLOADS.c.upload_id,
                _UPLOADS.c.stream,
                _UPLOADS.c.key_data,
                _UPLOADS.c.updated_at,
            )
            .where(waiting)
            .order_by(_UPLOADS.c.created_at, _UPLOADS.c.upload_id)
        ).all()
        for _, stream, key_data, delivered in uploads:
            stamp = int(_as_utc(delivered).timestamp())
            rows = {
                key: {
                    "stream": stream,
                    "key_hash": key,
                    "record_hash": digest,
                    "delivered_at": stamp,
                }
                for key, digest in json.loads(key_data)
            }
            keys = list(rows)
            for start in range(0, len(keys), _LOOKUP_CHUNK):
                connection.execute(
                    sa.delete(_DELIVERED).where(
                        _DELIVERED.c.stream == stream,
                        _DELIVERED.c.key_hash.in_(keys[start : start + _LOOKUP_CHUNK]),
                    )
                )
            connection.execute(sa.insert(_DELIVERED), list(rows.values()))
        # Only the uploads read above: another process may have marked more
        # uploads delivered since, and their keys must wait for the next call.
        read = [upload_id for upload_id, _, _, _ in uploads]
        for start in range(0, len(read), _LOOKUP_CHUNK):
            connection.execute(
                sa.update(_UPLOADS)
                .where(_UPLOADS.c.upload_id.in_(read[start : start + _LOOKUP_CHUNK]))
                .values(key_data=None)
            )

    def _add_delivered_keys_postgres(self, connection: sa.Connection) -> None:
        """Move delivered keys in one statement that other writers cannot disturb.

        The UPDATE takes exactly the uploads whose keys it clears, so that
        uploads another process marks delivered meanwhile keep theirs. It
        reads the keys from a locked copy of each row, because RETURNING
        gives the values after the update.
        PostgreSQL cannot change one row twice in one INSERT, so DISTINCT ON
        keeps each key's entry from the latest upload, and within an upload
        its last entry.
        """
        connection.execute(
            sa.text(
                "WITH taken AS ("
                " UPDATE ledger_uploads AS u SET key_data = NULL"
                " FROM (SELECT upload_id, key_data FROM ledger_uploads"
                " WHERE status = :delivered AND key_data IS NOT NULL"
                " FOR UPDATE) AS old"
                " WHERE u.upload_id = old.upload_id"
                " RETURNING u.upload_id, u.stream, old.key_data, u.created_at,"
                " u.updated_at"
                "), latest AS ("
                " SELECT DISTINCT ON (taken.stream, pair.entry ->> 0)"
                " taken.stream, pair.entry ->> 0 AS key_hash,"
                " pair.entry ->> 1 AS record_hash,"
                " CAST(FLOOR(EXTRACT(EPOCH FROM taken.updated_at)) AS BIGINT)"
                " AS delivered_at"
                " FROM taken, jsonb_array_elements(CAST(taken.key_data AS jsonb))"
                " WITH ORDINALITY AS pair(entry, position)"
                " ORDER BY taken.stream, pair.entry ->> 0, taken.created_at DESC,"
                " taken.upload_id DESC, pair.position DESC"
                ") "
                "INSERT INTO ledger_delivered_keys"
                " (stream, key_hash, record_hash, delivered_at)"
                " SELECT stream, key_hash, record_hash, delivered_at FROM latest"
                " ORDER BY stream, key_hash "
                "ON CONFLICT (stream, key_hash) DO UPDATE SET"
                " record_hash = excluded.record_hash,"
                " delivered_at = excluded.delivered_at"
            ),
            {"delivered": DELIVERED},
        )

    def mark_in_doubt(self, upload_id: str) -> None:
        """Record that an upload may or may not have arrived."""
        with self._lock, self._engine.begin() as connection:
            connection.execute(
                sa.update(_UPLOADS)
                .where(_UPLOADS.c.upload_id == upload_id)
                .values(status=IN_DOUBT, updated_at=_now())
            )

    def release(self, upload_id: str) -> None:
        """Forget an upload that definitely did not arrive, freeing its records."""
        with self._lock, self._engine.begin() as connection:
            connection.execute(
                sa.delete(_UPLOADS).where(_UPLOADS.c.upload_id == upload_id)
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

    def unresolved_keys(self) -> dict[str, dict[str, str]]:
        """Return, per stream, the keys of uploads left pending or in doubt."""
        keys: dict[str, dict[str, str]] = {}
        with self._engine.connect() as connection:
            rows = connection.execute(
                sa.select(_UPLOADS.c.stream, _UPLOADS.c.key_data).where(
                    _UPLOADS.c.status.in_([PENDING, IN_DOUBT])
                )
            )
            for stream, key_data in rows:
                for key, digest in json.loads(key_data or "[]"):
                    keys.setdefault(stream, {})[key] = digest
        return keys

    def forget_key(self, stream: str, key_values: t.Sequence[t.Any]) -> int:
        """Forget one delivered key, for a deliberate re-survey; return rows removed."""
        with self._lock, self._engine.begin() as connection:
            result = connection.execute(
                sa.delete(_DELIVERED).where(
                    _DELIVERED.c.stream == stream,
                    _DELIVERED.c.key_hash == key_hash(key_values),
                )
            )
        return int(result.rowcount or 0)

    def forget_before(
        self, moment: datetime.datetime, stream: str | None = None
    ) -> int:
        """Forget keys delivered before a moment; return rows removed."""
        condition = _DELIVERED.c.delivered_at < int(moment.timestamp())
        if stream is not None:
            condition = sa.and_(condition, _DELIVERED.c.stream == stream)
        with self._lock, self._engine.begin() as connection:
            result = connection.execute(sa.delete(_DELIVERED).where(condition))
        return int(result.rowcount or 0)

    def has_stream(self, stream: str) -> bool:
        """Tell whether the ledger has seen a stream: an upload or a delivered key."""
        with self._engine.connect() as connection:
            for table in (_UPLOADS, _DELIVERED):
                found = connection.execute(
                    sa.select(table.c.stream).where(table.c.stream == stream).limit(1)
                ).first()
                if found is not None:
                    return True
        return False

    def upload_streams(self) -> list[str]:
        """Return the names of the streams the ledger has uploads of."""
        with self._engine.connect() as connection:
            rows = connection.execute(
                sa.select(_UPLOADS.c.stream).distinct().order_by(_UPLOADS.c.stream)
            ).all()
        return [str(row[0]) for row in rows]

    def delivered_counts(self) -> dict[str, int]:
        """Count delivered keys per stream."""
        with self._engine.connect() as connection:
            rows = connection.execute(
                sa.select(_DELIVERED.c.stream, sa.func.count()).group_by(
                    _DELIVERED.c.stream
                )
            )
            return {str(stream): int(count) for stream, count in rows}

    def delivered_count(self, stream: str | None = None) -> int:
        """Count delivered keys, in one stream or in all."""
        query = sa.select(sa.func.count()).select_from(_DELIVERED)
        if stream is not None:
            query = query.where(_DELIVERED.c.stream == stream)
        with self._engine.connect() as connection:
            return int(connection.execute(query).scalar_one())


def _migrate_from_version_1(connection: sa.Connection, *, has_keys: bool) -> None:
    """Move a version 1 ledger, with one row per key and status, to version 2.

    Version 1 kept full 64-digit hashes; version 2 keeps their first 32
    digits, so keys hashed by either version still match.
    """
    LOGGER.info("Migrating the delivery ledger from schema version 1.")
    inspector = sa.inspect(connection)
    if "key_data" not in {
        column["name"] for column in inspector.get_columns(_UPLOADS.name)
    }:
        connection.exec_driver_sql(
            "ALTER TABLE ledger_uploads ADD COLUMN key_data TEXT"
        )
    if has_keys:
        _copy_version_1_keys(connection)
    connection.execute(
        sa.update(_META)
        .where(_META.c.name == "schema_version")
        .values(value=str(SCHEMA_VERSION))
    )


def _copy_version_1_keys(connection: sa.Connection) -> None:
    """Copy version 1's key rows into version 2's places, then drop them."""
    old_keys = sa.Table(_V1_KEYS, sa.MetaData(), autoload_with=connection)
    delivered = connection.execution_options(yield_per=10_000).execute(
        sa.select(
            old_keys.c.stream,
            old_keys.c.key_hash,
            old_keys.c.record_hash,
            old_keys.c.updated_at,
        ).where(old_keys.c.status == DELIVERED)
    )
    for batch in delivered.partitions():
        connection.execute(
            sa.insert(_DELIVERED),
            [
                {
                    "stream": stream,
                    "key_hash": key[:HASH_DIGITS],
                    "record_hash": digest[:HASH_DIGITS],
                    "delivered_at": int(_as_utc(moment).timestamp()),
                }
                for stream, key, digest, moment in batch
            ],
        )
    waiting = connection.execute(
        sa.select(_UPLOADS.c.upload_id).where(
            _UPLOADS.c.status.in_([PENDING, IN_DOUBT])
        )
    ).scalars()
    for upload_id in list(waiting):
        keys = connection.execute(
            sa.select(old_keys.c.key_hash, old_keys.c.record_hash).where(
                old_keys.c.upload_id == upload_id
            )
        ).all()
        connection.execute(
            sa.update(_UPLOADS)
            .where(_UPLOADS.c.upload_id == upload_id)
            .values(
                key_data=json.dumps(
                    [[key[:HASH_DIGITS], digest[:HASH_DIGITS]] for key, digest in keys]
                )
            )
        )
    old_keys.drop(connection)


def _as_utc(moment: datetime.datetime) -> datetime.datetime:
    """Read a stored time as UTC; SQLite returns it without a zone."""
    if moment.tzinfo is None:
        return moment.replace(tzinfo=datetime.timezone.utc)
    return moment


def _configure_sqlite(connection: t.Any, _record: t.Any) -> None:  # noqa: ANN401
    cursor = connection.cursor()
    cursor.execute("PRAGMA journal_mode=WAL")
    cursor.execute("PRAGMA busy_timeout=30000")
    # FULL: a write-ahead entry must survive a power cut, not only a crash.
    cursor.execute("PRAGMA synchronous=FULL")
    cursor.execute(f"PRAGMA cache_size=-{_SQLITE_CACHE_KIB}")
    cursor.close()
