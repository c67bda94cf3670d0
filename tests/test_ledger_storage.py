"""The ledger's storage: hashes, batched key updates, recovery and migration."""

from __future__ import annotations

import datetime
import hashlib
import os
import sqlite3
import subprocess
import sys
import typing as t
import uuid
from pathlib import Path

import pytest
import sqlalchemy as sa

from target_customergauge_stream.ledger import (
    HASH_DIGITS,
    SCHEMA_VERSION,
    DeliveryLedger,
    LedgerError,
    key_hash,
    record_hash,
    text_key_hash,
)
from tests.test_postgres_pipeline import (
    DATABASE_USER,
    PostgresServer,
    run_sql,
    running_postgres,
)


def keys_of(*names: str, version: str = "a") -> list[tuple[str, str]]:
    return [
        (key_hash([name]), record_hash(f"{name}-{version}".encode())) for name in names
    ]


@pytest.fixture(scope="module")
def postgres_server() -> t.Iterator[PostgresServer]:
    """One PostgreSQL server for this module's tests, each with its own database."""
    with running_postgres() as server:
        yield server


@pytest.fixture(params=["json_each", "portable", "postgresql"])
def ledger(
    request: pytest.FixtureRequest, tmp_path: Path
) -> t.Iterator[DeliveryLedger]:
    """A new ledger: SQLite with json_each or portable statements, or PostgreSQL."""
    if request.param == "postgresql":
        server = request.getfixturevalue("postgres_server")
        database = f"ledger_{uuid.uuid4().hex}"
        run_sql(server, "postgres", f"CREATE DATABASE {database};")
        opened = DeliveryLedger(
            f"postgresql+psycopg://{DATABASE_USER}@127.0.0.1:{server.port}/{database}"
        )
    else:
        opened = DeliveryLedger(f"sqlite:///{tmp_path / 'ledger.sqlite'}")
        # The portable statements serve databases other than SQLite and
        # PostgreSQL.
        opened._json_each = request.param == "json_each"
    yield opened
    opened.close()


def test_hashes_are_128_bit_prefixes_of_sha256() -> None:
    value = "customer0001@example.com"
    full = hashlib.sha256(value.encode()).hexdigest()
    assert key_hash([value]) == full[:HASH_DIGITS] == text_key_hash(value)
    assert len(record_hash(b"<record/>")) == HASH_DIGITS
    assert key_hash(["a", "bc"]) != key_hash(["ab", "c"])
    assert key_hash([None, 1]) == key_hash(["", "1"])


def test_keys_count_once_added(ledger: DeliveryLedger) -> None:
    first = ledger.write_ahead("orders", keys_of("a", "b"), b"<body-1/>")
    ledger.mark_delivered(first, add_keys=False)
    # Delivered, but the keys still wait in the upload's row.
    assert ledger.known_keys("orders", [key_hash(["a"])]) == {}
    second = ledger.write_ahead("orders", keys_of("c"), b"<body-2/>")
    ledger.mark_delivered(second, add_keys=False)
    ledger.add_delivered_keys()
    assert ledger.delivered_count("orders") == 3
    known = ledger.known_keys("orders", [key_hash([name]) for name in "abcd"])
    assert sorted(known) == sorted(key_hash([name]) for name in "abc")
    assert ledger.unresolved() == []


def test_later_upload_wins_for_a_changed_record(ledger: DeliveryLedger) -> None:
    older = ledger.write_ahead("orders", keys_of("a", version="old"), b"<old/>")
    newer = ledger.write_ahead("orders", keys_of("a", version="new"), b"<new/>")
    ledger.mark_delivered(older, add_keys=False)
    ledger.mark_delivered(newer, add_keys=False)
    ledger.add_delivered_keys()
    assert ledger.known_keys("orders", [key_hash(["a"])]) == {
        key_hash(["a"]): record_hash(b"a-new")
    }
    assert ledger.delivered_count() == 1


def test_streams_keep_their_own_keys(ledger: DeliveryLedger) -> None:
    ledger.mark_delivered(ledger.write_ahead("orders", keys_of("a"), b"<o/>"))
    ledger.mark_delivered(ledger.write_ahead("tickets", keys_of("b"), b"<t/>"))
    assert ledger.known_keys("tickets", [key_hash(["a"]), key_hash(["b"])]) == {
        key_hash(["b"]): record_hash(b"b-a")
    }
    assert ledger.delivered_counts() == {"orders": 1, "tickets": 1}


def test_in_doubt_and_released_uploads(ledger: DeliveryLedger) -> None:
    doubtful = ledger.write_ahead("orders", keys_of("a"), b"<a/>")
    released = ledger.write_ahead("orders", keys_of("b"), b"<b/>")
    ledger.mark_in_doubt(doubtful)
    ledger.release(released)
    [left] = ledger.unresolved()
    assert (left.upload_id, left.status, left.body) == (doubtful, "in_doubt", b"<a/>")
    assert ledger.unresolved_keys() == {"orders": dict(keys_of("a"))}
    assert ledger.delivered_count() == 0


def test_forget_key_and_forget_before(ledger: DeliveryLedger) -> None:
    ledger.mark_delivered(ledger.write_ahead("orders", keys_of("a", "b", "c"), b"<x/>"))
    assert ledger.forget_key("orders", ["a"]) == 1
    assert ledger.forget_key("orders", ["a"]) == 0
    yesterday = datetime.datetime.now(datetime.timezone.utc) - datetime.timedelta(
        days=1
    )
    assert ledger.forget_before(yesterday) == 0
    tomorrow = yesterday + datetime.timedelta(days=2)
    assert ledger.forget_before(tomorrow, "tickets") == 0
    assert ledger.forget_before(tomorrow, "orders") == 2
    assert ledger.delivered_count() == 0


def test_stopped_run_keys_added_on_open(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'ledger.sqlite'}"
    stopped = DeliveryLedger(url)
    upload_id = stopped.write_ahead("orders", keys_of("a", "b"), b"<body/>")
    stopped.mark_delivered(upload_id, add_keys=False)
    stopped.close()
    reopened = DeliveryLedger(url)
    try:
        assert reopened.delivered_count("orders") == 2
        assert reopened.unresolved() == []
    finally:
        reopened.close()


def create_version_1_ledger(path: Path) -> None:
    """Write a ledger as version 1 of the target left it: one row per key."""
    full = {name: hashlib.sha256(name.encode()).hexdigest() for name in "abc"}
    database = sqlite3.connect(path)
    database.executescript(
        """
        CREATE TABLE ledger_meta (name VARCHAR(64) PRIMARY KEY, value VARCHAR(256));
        CREATE TABLE ledger_keys (
            stream VARCHAR(512), key_hash VARCHAR(64), record_hash VARCHAR(64),
            status VARCHAR(16), upload_id VARCHAR(32), updated_at DATETIME,
            PRIMARY KEY (stream, key_hash));
        CREATE TABLE ledger_uploads (
            upload_id VARCHAR(32) PRIMARY KEY, stream VARCHAR(512),
            status VARCHAR(16), record_count INTEGER, body BLOB,
            created_at DATETIME, updated_at DATETIME);
        INSERT INTO ledger_meta VALUES ('schema_version', '1');
        """
    )
    stamp = "2026-11-30 10:00:00.000000"
    database.executemany(
        "INSERT INTO ledger_uploads VALUES (?, 'orders', ?, ?, ?, ?, ?)",
        [
            ("u1", "delivered", 2, None, stamp, stamp),
            ("u2", "in_doubt", 1, b"<body-u2/>", stamp, stamp),
        ],
    )
    database.executemany(
        "INSERT INTO ledger_keys VALUES ('orders', ?, ?, ?, ?, ?)",
        [
            (full["a"], full["a"], "delivered", "u1", stamp),
            (full["b"], full["b"], "delivered", "u1", stamp),
            (full["c"], full["c"], "in_doubt", "u2", stamp),
        ],
    )
    database.commit()
    database.close()


def test_version_1_ledger_is_migrated(tmp_path: Path) -> None:
    path = tmp_path / "ledger.sqlite"
    create_version_1_ledger(path)
    ledger = DeliveryLedger(f"sqlite:///{path}")
    try:
        # Keys hashed by this version still match the migrated ones.
        assert ledger.delivered_count("orders") == 2
        assert set(ledger.known_keys("orders", [text_key_hash("a")])) == {
            text_key_hash("a")
        }
        [doubtful] = ledger.unresolved()
        assert (doubtful.upload_id, doubtful.body) == ("u2", b"<body-u2/>")
        assert set(ledger.unresolved_keys()["orders"]) == {text_key_hash("c")}
        ledger.mark_delivered("u2")
        assert ledger.delivered_count("orders") == 3
        moment = datetime.datetime(2026, 12, 1, tzinfo=datetime.timezone.utc)
        assert ledger.forget_before(moment, "orders") == 2
    finally:
        ledger.close()
    database = sqlite3.connect(path)
    tables = {row[0] for row in database.execute("SELECT name FROM sqlite_master")}
    version = database.execute(
        "SELECT value FROM ledger_meta WHERE name = 'schema_version'"
    ).fetchone()
    database.close()
    assert "ledger_keys" not in tables
    assert version == (str(SCHEMA_VERSION),)


def test_newer_schema_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "ledger.sqlite"
    DeliveryLedger(f"sqlite:///{path}").close()
    database = sqlite3.connect(path)
    database.execute("UPDATE ledger_meta SET value = '99'")
    database.commit()
    database.close()
    with pytest.raises(RuntimeError, match="schema version 99, newer"):
        DeliveryLedger(f"sqlite:///{path}")


def test_keys_take_their_upload_delivery_time(ledger: DeliveryLedger) -> None:
    upload_id = ledger.write_ahead("orders", keys_of("a", "b"), b"<body/>")
    ledger.mark_delivered(upload_id, add_keys=False)
    delivered = datetime.datetime(2026, 11, 1, 10, tzinfo=datetime.timezone.utc)
    with ledger._engine.begin() as connection:
        connection.execute(
            sa.text("UPDATE ledger_uploads SET updated_at = :moment"),
            {"moment": delivered},
        )
    ledger.add_delivered_keys()

    second_before = delivered - datetime.timedelta(seconds=1)
    assert ledger.forget_before(second_before) == 0
    assert ledger.forget_before(delivered + datetime.timedelta(seconds=1)) == 2


def run_ledger_cli(
    tmp_path: Path, *arguments: str, env: dict[str, str] | None = None
) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "target_customergauge_stream.ledger_cli", *arguments],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
        cwd=tmp_path,
        env={**os.environ, **(env or {})},
    )


def test_cli_refuses_missing_ledger(tmp_path: Path) -> None:
    run = run_ledger_cli(tmp_path, "--ledger-path", "nowhere/ledger.sqlite", "list")
    assert run.returncode == 1
    assert "No delivery ledger at" in run.stderr
    assert "Traceback" not in run.stderr
    assert not (tmp_path / "nowhere").exists()


def test_cli_reads_meltano_variable(tmp_path: Path) -> None:
    path = tmp_path / "output" / "ledger.sqlite"
    created = DeliveryLedger(f"sqlite:///{path}")
    created.mark_delivered(created.write_ahead("orders", keys_of("a"), b"<a/>"))
    created.close()
    variables = {"TARGET_CUSTOMERGAUGE_STREAM_LEDGER_PATH": str(path)}
    run = run_ledger_cli(tmp_path, "count", env=variables)
    assert run.returncode == 0, run.stderr
    assert run.stdout.strip() == "stream 'orders': 1 delivered keys"


def test_cli_count_says_when_empty(tmp_path: Path) -> None:
    DeliveryLedger(f"sqlite:///{tmp_path / 'ledger.sqlite'}").close()
    run = run_ledger_cli(tmp_path, "--ledger-path", "ledger.sqlite", "count")
    assert run.returncode == 0, run.stderr
    assert run.stdout.strip() == "No delivered keys."


def ledger_with_two_keys(tmp_path: Path) -> None:
    created = DeliveryLedger(f"sqlite:///{tmp_path / 'ledger.sqlite'}")
    created.mark_delivered(created.write_ahead("orders", keys_of("a", "b"), b"<a/>"))
    created.close()


def forget(
    tmp_path: Path, stream: str, *options: str
) -> subprocess.CompletedProcess[str]:
    """Run the ledger command's forget on the ledger in `tmp_path`."""
    return run_ledger_cli(
        tmp_path,
        *("--ledger-path", "ledger.sqlite", "forget", "--stream", stream),
        *options,
    )


def test_cli_forget_refuses_key_with_before(tmp_path: Path) -> None:
    ledger_with_two_keys(tmp_path)
    run = forget(tmp_path, "orders", "--key", '["a"]', "--before", "2020-01-01")
    assert run.returncode == 2
    assert "--key and --before cannot be combined" in run.stderr
    count = run_ledger_cli(tmp_path, "--ledger-path", "ledger.sqlite", "count")
    assert count.stdout.strip() == "stream 'orders': 2 delivered keys"


def test_cli_forget_names_unknown_stream(tmp_path: Path) -> None:
    ledger_with_two_keys(tmp_path)
    run = forget(tmp_path, "order", "--before", "2999-01-01")
    assert run.returncode == 1
    assert "no uploads or keys of stream 'order' (its streams: 'orders')" in run.stderr


def test_cli_forget_again_finds_nothing(tmp_path: Path) -> None:
    ledger_with_two_keys(tmp_path)
    first = forget(tmp_path, "orders", "--before", "2999-01-01")
    again = forget(tmp_path, "orders", "--before", "2999-01-01")
    assert first.returncode == 0, first.stderr
    assert again.returncode == 0, again.stderr
    assert again.stdout.startswith("Forgot 0 key(s) of stream 'orders'")


def test_cli_forget_before_names_stream(tmp_path: Path) -> None:
    ledger_with_two_keys(tmp_path)
    run = forget(tmp_path, "orders", "--before", "2999-01-01")
    assert run.returncode == 0, run.stderr
    assert run.stdout.strip() == (
        "Forgot 2 key(s) of stream 'orders' delivered before 2999-01-01."
    )


def test_cli_list_explains_pending(tmp_path: Path) -> None:
    created = DeliveryLedger(f"sqlite:///{tmp_path / 'ledger.sqlite'}")
    upload_id = created.write_ahead("orders", keys_of("a"), b"<a/>")
    created.close()
    run = run_ledger_cli(tmp_path, "--ledger-path", "ledger.sqlite", "list")
    assert run.returncode == 0, run.stderr
    assert run.stdout.startswith(f"{upload_id}  pending")
    assert "treat it as in doubt" in run.stdout


def test_unopenable_ledger_gets_clear_error(tmp_path: Path) -> None:
    blocker = tmp_path / "file"
    blocker.write_text("not a folder", encoding="utf-8")
    with pytest.raises(LedgerError, match="Cannot open the delivery ledger"):
        DeliveryLedger(f"sqlite:///{blocker / 'ledger.sqlite'}")


def test_portable_add_leaves_later_uploads(tmp_path: Path) -> None:
    # Another process marks an upload delivered while this one is adding
    # keys: that upload's keys must wait for the next add, not vanish.
    url = f"sqlite:///{tmp_path / 'ledger.sqlite'}"
    adding = DeliveryLedger(url)
    adding._json_each = False
    other = DeliveryLedger(url)
    first = adding.write_ahead("orders", keys_of("a"), b"<a/>")
    adding.mark_delivered(first, add_keys=False)
    later = other.write_ahead("tickets", keys_of("b"), b"<b/>")
    fired = []

    def deliver_later(_conn, _cursor, statement, *_args) -> None:
        if not fired and statement.lstrip().startswith("SELECT ledger_uploads"):
            fired.append(True)
            other.mark_delivered(later, add_keys=False)

    sa.event.listen(adding._engine, "after_cursor_execute", deliver_later)
    adding.add_delivered_keys()
    assert fired
    assert adding.delivered_counts() == {"orders": 1}
    other.add_delivered_keys()
    assert adding.delivered_counts() == {"orders": 1, "tickets": 1}
    adding.close()
    other.close()


def test_version_1_without_key_table_is_raised(tmp_path: Path) -> None:
    path = tmp_path / "ledger.sqlite"
    database = sqlite3.connect(path)
    database.executescript(
        """
        CREATE TABLE ledger_meta (name VARCHAR(64) PRIMARY KEY, value VARCHAR(256));
        INSERT INTO ledger_meta VALUES ('schema_version', '1');
        """
    )
    database.commit()
    database.close()
    DeliveryLedger(f"sqlite:///{path}").close()
    database = sqlite3.connect(path)
    version = database.execute("SELECT value FROM ledger_meta").fetchone()
    database.close()
    assert version == (str(SCHEMA_VERSION),)
