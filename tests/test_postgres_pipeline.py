"""PostgreSQL -> tap-postgres -> Meltano -> the target -> a sandbox, all for real.

A throwaway PostgreSQL server runs on 127.0.0.1 from a temporary folder. A
temporary Meltano project installs tap-postgres from the package registry,
and this repository's target from its working tree with the loader
definition from hub/loaders/. `meltano run` then loads an orders table into a
sandbox server twice: a first run, and an incremental one after new rows
arrive.
"""

from __future__ import annotations

import contextlib
import glob
import json
import os
import pwd
import shutil
import socket
import subprocess
import sys
import tempfile
import typing as t
from pathlib import Path

import pytest
from ruamel.yaml import YAML

from target_customergauge_stream.sandbox import Sandbox
from tests.conftest import TEST_API_KEY

ROOT = Path(__file__).resolve().parents[1]
MELTANO = Path(sys.executable).parent / "meltano"
HUB_DEFINITION = ROOT / "hub" / "loaders" / "target-customergauge-stream.yml"
TAP_PIP_URL = "meltanolabs-tap-postgres==0.10.0"
STREAM = "public-orders"
DATABASE = "shop"
DATABASE_USER = "tester"
# The OS user that runs PostgreSQL when the tests run as root, which
# PostgreSQL refuses. Debian's postgresql package creates it.
SERVER_OS_USER = "postgres"
SERVER_START_SECONDS = 60
MELTANO_TIMEOUT_SECONDS = 300

CREATE_ORDERS = """
CREATE TABLE orders (
    order_id      integer PRIMARY KEY,
    reference     text NOT NULL,
    email         text NOT NULL,
    first_name    text,
    placed_at     timestamp with time zone NOT NULL,
    updated_at    timestamp with time zone NOT NULL,
    amount        numeric(12, 2) NOT NULL,
    discount_rate numeric,
    is_gift       boolean NOT NULL,
    tags          text[],
    details       jsonb,
    notes         text
);
INSERT INTO orders VALUES
    (1, '000417', 'ana.silva@example.com', 'Ana',
     '2026-03-01 09:15:30.5+01', '2026-03-02 10:00:00+00',
     1234.50, 0.125, true, '{"vip","früh"}',
     '{"items": 2, "channel": "web", "ratio": 1.10}', 'Zoë & <co> "quoted"'),
    (2, '000418', 'ben.okafor@example.com', NULL,
     '2026-03-01 23:59:59-05', '2026-03-02 11:00:00+00',
     99999999.99, NULL, false, NULL, NULL, NULL),
    (3, '001000', 'chloe.martin@example.com', 'Chloé',
     '2026-02-28 23:30:00+10:30', '2026-03-02 12:00:00+00',
     0.01, 0.0000001, true, '{}',
     '{"nested": {"sizes": [38, 40.5]}, "empty": null}', E'Line one\\nLine two');
"""

INSERT_NEW_ORDERS = """
INSERT INTO orders VALUES
    (4, '000419', 'dmitri.ivanov@example.com', 'Dmitri',
     '2026-03-03 08:00:00+00', '2026-03-03 08:05:00+00',
     42.00, 0, false, '{"repeat"}', '{"items": 1}', NULL),
    (5, '000420', 'eve.adeyemi@example.com', NULL,
     '2026-03-03 09:00:00+02', '2026-03-03 09:10:00+00',
     10.10, NULL, true, NULL, '[]', 'Gift wrap');
"""

# What the sandbox must hold for each row: element name -> text. Date-times
# are in UTC as 'YYYY-MM-DD HH:MM:SS' and numerics keep their digits. Arrays
# and jsonb are compact JSON, with object keys in jsonb's stored order
# (shorter keys first). Null columns have no element. The loader's stream map
# renames email to Email.
EXPECTED_ROWS: dict[int, dict[str, str]] = {
    1: {
        "order_id": "1",
        "reference": "000417",
        "Email": "ana.silva@example.com",
        "first_name": "Ana",
        "placed_at": "2026-03-01 08:15:30",
        "updated_at": "2026-03-02 10:00:00",
        "amount": "1234.50",
        "discount_rate": "0.125",
        "is_gift": "true",
        "tags": '["vip","früh"]',
        "details": '{"items":2,"ratio":1.10,"channel":"web"}',
        "notes": 'Zoë & <co> "quoted"',
    },
    2: {
        "order_id": "2",
        "reference": "000418",
        "Email": "ben.okafor@example.com",
        "placed_at": "2026-03-02 04:59:59",
        "updated_at": "2026-03-02 11:00:00",
        "amount": "99999999.99",
        "is_gift": "false",
    },
    3: {
        "order_id": "3",
        "reference": "001000",
        "Email": "chloe.martin@example.com",
        "first_name": "Chloé",
        "placed_at": "2026-02-28 13:00:00",
        "updated_at": "2026-03-02 12:00:00",
        "amount": "0.01",
        "discount_rate": "0.0000001",
        "is_gift": "true",
        "tags": "[]",
        "details": '{"empty":null,"nested":{"sizes":[38,40.5]}}',
        "notes": "Line one\nLine two",
    },
    4: {
        "order_id": "4",
        "reference": "000419",
        "Email": "dmitri.ivanov@example.com",
        "first_name": "Dmitri",
        "placed_at": "2026-03-03 08:00:00",
        "updated_at": "2026-03-03 08:05:00",
        "amount": "42.00",
        "discount_rate": "0",
        "is_gift": "false",
        "tags": '["repeat"]',
        "details": '{"items":1}',
    },
    5: {
        "order_id": "5",
        "reference": "000420",
        "Email": "eve.adeyemi@example.com",
        "placed_at": "2026-03-03 07:00:00",
        "updated_at": "2026-03-03 09:10:00",
        "amount": "10.10",
        "is_gift": "true",
        "details": "[]",
        "notes": "Gift wrap",
    },
}


class PostgresServer(t.NamedTuple):
    """A running throwaway PostgreSQL server."""

    port: int
    psql: Path


def find_postgres_bin_dir() -> Path | None:
    """Find PostgreSQL's server programs: on PATH, or Debian's versioned folder."""
    initdb = shutil.which("initdb")
    if initdb:
        return Path(initdb).resolve().parent
    candidates = sorted(
        glob.glob("/usr/lib/postgresql/*/bin/initdb"),
        key=lambda path: int(Path(path).parts[-3]),
    )
    return Path(candidates[-1]).parent if candidates else None


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def run_checked(
    command: list[str], *, timeout: float, input_text: str | None = None
) -> subprocess.CompletedProcess[str]:
    completed = subprocess.run(
        command,
        input=input_text,
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
    )
    assert completed.returncode == 0, (
        f"{' '.join(command)} exited {completed.returncode}:\n"
        f"{completed.stdout[-2000:]}\n{completed.stderr[-4000:]}"
    )
    return completed


@pytest.fixture
def postgres() -> t.Iterator[PostgresServer]:
    """Run PostgreSQL on 127.0.0.1 from a temporary folder, with trust auth."""
    with running_postgres() as server:
        yield server


@contextlib.contextmanager
def running_postgres() -> t.Iterator[PostgresServer]:
    """Start PostgreSQL for the block, or skip the test where it cannot run."""
    bin_dir = find_postgres_bin_dir()
    if bin_dir is None:
        pytest.skip(
            "PostgreSQL is not installed: no initdb on PATH or under "
            "/usr/lib/postgresql/*/bin. On Debian: apt-get install postgresql."
        )
    as_server_user: list[str] = []
    folder = Path(tempfile.mkdtemp(prefix="postgres-pipeline-"))
    if os.geteuid() == 0:
        runuser = shutil.which("runuser") or "/usr/sbin/runuser"
        try:
            server_user = pwd.getpwnam(SERVER_OS_USER)
        except KeyError:
            shutil.rmtree(folder)
            pytest.skip(
                f"Running as root, and there is no '{SERVER_OS_USER}' OS user to "
                f"run PostgreSQL as (PostgreSQL refuses to run as root)."
            )
        os.chown(folder, server_user.pw_uid, server_user.pw_gid)
        as_server_user = [runuser, "-u", SERVER_OS_USER, "--"]

    data_dir = folder / "data"
    log_file = folder / "server.log"
    port = free_port()
    pg_ctl = [*as_server_user, str(bin_dir / "pg_ctl"), "-D", str(data_dir)]
    run_checked(
        [
            *as_server_user,
            str(bin_dir / "initdb"),
            "-D",
            str(data_dir),
            "--auth=trust",
            f"--username={DATABASE_USER}",
            "--encoding=UTF8",
            "--no-locale",
            "--no-instructions",
        ],
        timeout=120,
    )
    # Unix sockets are off, so the server is reachable on 127.0.0.1 only.
    options = f"-c listen_addresses=127.0.0.1 -p {port} -c unix_socket_directories=''"
    started = subprocess.run(
        [
            *pg_ctl,
            "-l",
            str(log_file),
            "-w",
            "-t",
            str(SERVER_START_SECONDS),
            "-o",
            options,
            "start",
        ],
        capture_output=True,
        text=True,
        timeout=SERVER_START_SECONDS + 30,
        check=False,
    )
    if started.returncode != 0:
        log = log_file.read_text(errors="replace")[-2000:] if log_file.exists() else ""
        shutil.rmtree(folder, ignore_errors=True)
        pytest.skip(
            f"PostgreSQL did not start (pg_ctl exited {started.returncode}): "
            f"{started.stderr.strip()} {log.strip()}"
        )
    psql = bin_dir / "psql"
    if not psql.exists():
        psql = Path(shutil.which("psql") or "psql")
    try:
        yield PostgresServer(port, psql)
    finally:
        with contextlib.suppress(subprocess.SubprocessError):
            subprocess.run(
                [*pg_ctl, "-m", "fast", "-w", "-t", "30", "stop"],
                capture_output=True,
                timeout=60,
                check=False,
            )
        shutil.rmtree(folder, ignore_errors=True)


def run_sql(server: PostgresServer, database: str, sql: str) -> None:
    run_checked(
        [
            str(server.psql),
            "-X",
            "-q",
            "-v",
            "ON_ERROR_STOP=1",
            "-h",
            "127.0.0.1",
            "-p",
            str(server.port),
            "-U",
            DATABASE_USER,
            "-d",
            database,
        ],
        input_text=sql,
        timeout=60,
    )


def loader_definition(sandbox: Sandbox) -> dict[str, t.Any]:
    """Build the loader from the Hub definition, installed from this repository."""
    definition = YAML(typ="safe").load(HUB_DEFINITION.read_text(encoding="utf-8"))
    # Hub metadata that a project's meltano.yml does not take.
    definition.pop("keywords", None)
    definition["pip_url"] = f"-e {ROOT}"
    definition["config"] = {
        "api_url": sandbox.endpoint_url(),
        "retry_backoff_seconds": 0.01,
        "request_timeout": 30,
        "stream_maps": {STREAM: {"Email": "email", "email": "__NULL__"}},
    }
    return definition


def write_project(project_dir: Path, port: int, sandbox: Sandbox) -> None:
    project = {
        "version": 1,
        "default_environment": "test",
        "send_anonymous_usage_stats": False,
        "plugins": {
            "extractors": [
                {
                    "name": "tap-postgres",
                    "namespace": "tap_postgres",
                    "variant": "meltanolabs",
                    "pip_url": TAP_PIP_URL,
                    "executable": "tap-postgres",
                    "capabilities": ["catalog", "discover", "state", "about"],
                    "settings": [
                        {"name": "host"},
                        {"name": "port", "kind": "integer"},
                        {"name": "user"},
                        {"name": "password", "kind": "string", "sensitive": True},
                        {"name": "database"},
                        {"name": "filter_schemas", "kind": "array"},
                    ],
                    "config": {
                        "host": "127.0.0.1",
                        "port": port,
                        "user": DATABASE_USER,
                        "database": DATABASE,
                        "filter_schemas": ["public"],
                    },
                    "select": [f"{STREAM}.*"],
                    "metadata": {
                        STREAM: {
                            "replication-method": "INCREMENTAL",
                            "replication-key": "updated_at",
                        }
                    },
                }
            ],
            "loaders": [loader_definition(sandbox)],
        },
        "environments": [{"name": "test"}],
    }
    yaml = YAML()
    with (project_dir / "meltano.yml").open("w", encoding="utf-8") as handle:
        yaml.dump(project, handle)


def meltano(project_dir: Path, *arguments: str) -> subprocess.CompletedProcess[str]:
    environment = {
        name: value
        for name, value in os.environ.items()
        if not name.startswith(("MELTANO_", "TAP_POSTGRES_", "TARGET_CUSTOMERGAUGE_"))
    }
    environment.update(
        {
            "MELTANO_SEND_ANONYMOUS_USAGE_STATS": "false",
            "TARGET_CUSTOMERGAUGE_STREAM_API_KEY": TEST_API_KEY,
            # Trust authentication accepts any password.
            "TAP_POSTGRES_PASSWORD": "not-checked-with-trust-auth",
        }
    )
    completed = subprocess.run(
        [str(MELTANO), *arguments],
        cwd=project_dir,
        env=environment,
        capture_output=True,
        text=True,
        timeout=MELTANO_TIMEOUT_SECONDS,
        check=False,
    )
    assert completed.returncode == 0, (
        f"meltano {' '.join(arguments)} exited {completed.returncode}:\n"
        f"{completed.stderr[-6000:]}"
    )
    return completed


def bookmark(project_dir: Path) -> t.Any:
    state_id = "test:tap-postgres-to-target-customergauge-stream"
    completed = meltano(project_dir, "state", "get", state_id)
    state = json.loads(completed.stdout)
    return state["singer_state"]["bookmarks"][STREAM]["replication_key_value"]


def assert_rows(received: list[dict[str, str]], order_ids: list[int]) -> None:
    assert [record.get("order_id") for record in received] == [
        str(order_id) for order_id in order_ids
    ]
    for record, order_id in zip(received, order_ids, strict=True):
        expected = EXPECTED_ROWS[order_id]
        for field in sorted(set(expected) | set(record)):
            assert record.get(field) == expected.get(field), (
                f"order {order_id}, field {field}"
            )


@pytest.mark.meltano
@pytest.mark.skipif(
    not MELTANO.exists(), reason="meltano is not installed in this environment"
)
def test_postgres_to_sandbox_incremental(
    postgres: PostgresServer, tmp_path: Path
) -> None:
    run_sql(postgres, "postgres", f"CREATE DATABASE {DATABASE};")
    run_sql(postgres, DATABASE, CREATE_ORDERS)
    project_dir = tmp_path / "project"
    project_dir.mkdir()

    with Sandbox(
        api_key=TEST_API_KEY,
        store_dir=tmp_path / "uploads",
        required_fields=["Email"],
    ) as sandbox:
        write_project(project_dir, postgres.port, sandbox)
        meltano(project_dir, "install")

        meltano(project_dir, "run", "tap-postgres", "target-customergauge-stream")
        first_run = sandbox.records()
        first_bookmark = bookmark(project_dir)

        run_sql(postgres, DATABASE, INSERT_NEW_ORDERS)
        meltano(project_dir, "run", "tap-postgres", "target-customergauge-stream")
        second_run = sandbox.records()[len(first_run) :]
        second_bookmark = bookmark(project_dir)

    # An incremental stream reads rows in replication-key order.
    assert_rows(first_run, [1, 2, 3])
    assert first_bookmark == "2026-03-02T12:00:00.000000+00:00"
    # singer-sdk 0.54's SQL streams select `updated_at >= bookmark`, so the
    # tap sends order 3 again: its updated_at equals the bookmark that the
    # first run saved. Comparing with >= also reads rows that share the
    # bookmark's value and were committed after the first run read it. The
    # delivery ledger (on by default) skips order 3, so only orders 4 and 5,
    # the new ones, are uploaded.
    assert_rows(second_run, [4, 5])
    assert second_bookmark == "2026-03-03T09:10:00.000000+00:00"
    assert not (project_dir / "failed-uploads").exists()
