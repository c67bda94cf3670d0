"""The delivery ledger: nothing delivered twice across runs, retries and crashes."""

from __future__ import annotations

import contextlib
import io
import json
import random
import signal
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

import pytest
from lxml import etree

from target_customergauge_stream import coordinator
from target_customergauge_stream.delivery import KeyIndexer
from target_customergauge_stream.ledger import DeliveryLedger
from target_customergauge_stream.sandbox import Sandbox
from target_customergauge_stream.target import TargetCustomerGaugeStream
from tests.conftest import (
    TARGET_COMMAND,
    TEST_API_KEY,
    record_message,
    run_replay,
    run_target,
    schema_message,
    state_message,
    target_config,
)
from tests.test_postgres_pipeline import (  # noqa: F401 - the fixture is used by name
    DATABASE_USER,
    postgres,
)

PROPERTIES = {"Email": {"type": "string"}, "Plan": {"type": ["string", "null"]}}


def orders(
    first: int, last: int, state_every: int = 100, plan: str = "basic"
) -> list[dict]:
    messages = [schema_message("orders", PROPERTIES, ["Email"])]
    for index in range(first, last + 1):
        messages.append(
            record_message("orders", {"Email": f"c{index}@example.com", "Plan": plan})
        )
        if index % state_every == 0 or index == last:
            messages.append(state_message({"orders": index}))
    return messages


def emails(sandbox: Sandbox) -> list[str]:
    return [record["Email"] for record in sandbox.records()]


def ledger_of(config: dict) -> DeliveryLedger:
    return DeliveryLedger(
        config.get("ledger_url") or f"sqlite:///{config['ledger_path']}"
    )


def test_rerun_of_finished_sync_sends_nothing(sandbox: Sandbox, tmp_path) -> None:
    config = target_config(sandbox, batch_size_rows=50)
    first = run_target(config, orders(1, 120), tmp_path)
    requests_after_first = sandbox.state.summary()["requests"]

    second = run_target(config, orders(1, 120), tmp_path)

    assert first.returncode == 0, first.stderr
    assert second.returncode == 0, second.stderr
    assert sandbox.state.summary()["requests"] == requests_after_first
    assert len(emails(sandbox)) == 120
    assert "120 skipped as already delivered" in second.stderr
    assert second.states[-1] == {"orders": 120}


def test_overlapping_incremental_window(sandbox: Sandbox, tmp_path) -> None:
    config = target_config(sandbox)
    run_target(config, orders(1, 10), tmp_path)

    # Incremental taps compare bookmarks with >=, so record 10 comes again.
    second = run_target(config, orders(10, 15), tmp_path)

    assert second.returncode == 0, second.stderr
    assert emails(sandbox) == [f"c{index}@example.com" for index in range(1, 16)]
    assert sandbox.state.duplicates("Email") == {}


def test_duplicate_within_run_sent_once(sandbox: Sandbox, tmp_path) -> None:
    messages = orders(1, 3)
    messages.insert(
        3, record_message("orders", {"Email": "c1@example.com", "Plan": "basic"})
    )

    run = run_target(target_config(sandbox), messages, tmp_path)

    assert run.returncode == 0, run.stderr
    assert sorted(emails(sandbox)) == [
        "c1@example.com",
        "c2@example.com",
        "c3@example.com",
    ]


def test_changed_record_within_run_later_wins(sandbox: Sandbox, tmp_path) -> None:
    messages = orders(1, 2)
    messages.insert(
        3, record_message("orders", {"Email": "c1@example.com", "Plan": "gold"})
    )
    config = target_config(sandbox, resend_changed=True)

    run = run_target(config, messages, tmp_path)

    assert run.returncode == 0, run.stderr
    plans = {record["Email"]: record["Plan"] for record in sandbox.records()}
    assert len(sandbox.records()) == 2
    assert plans["c1@example.com"] == "gold"


def test_changed_record_skipped_by_default(sandbox: Sandbox, tmp_path) -> None:
    config = target_config(sandbox)
    run_target(config, orders(1, 2), tmp_path)

    run_target(config, orders(1, 2, plan="gold"), tmp_path)

    assert [record["Plan"] for record in sandbox.records()] == ["basic", "basic"]


def test_changed_record_resent_when_asked(sandbox: Sandbox, tmp_path) -> None:
    config = target_config(sandbox, resend_changed=True)
    run_target(config, orders(1, 2), tmp_path)
    run_target(config, orders(1, 2), tmp_path)

    run_target(config, orders(1, 2, plan="gold"), tmp_path)

    assert [record["Plan"] for record in sandbox.records()] == [
        "basic",
        "basic",
        "gold",
        "gold",
    ]


def test_whole_record_is_key_without_keys(sandbox: Sandbox, tmp_path) -> None:
    messages = [schema_message("events", PROPERTIES)]
    messages += [record_message("events", {"Email": "e@example.com", "Plan": "a"})] * 2
    messages.append(record_message("events", {"Email": "e@example.com", "Plan": "b"}))

    run = run_target(target_config(sandbox), messages, tmp_path)

    assert run.returncode == 0, run.stderr
    assert [record["Plan"] for record in sandbox.records()] == ["a", "b"]


def test_dedup_keys_setting(sandbox: Sandbox, tmp_path) -> None:
    messages = [schema_message("events", PROPERTIES)]
    messages.append(record_message("events", {"Email": "e@example.com", "Plan": "a"}))
    messages.append(record_message("events", {"Email": "e@example.com", "Plan": "b"}))
    config = target_config(sandbox, streams={"events": {"dedup_keys": ["Email"]}})

    run = run_target(config, messages, tmp_path)

    assert run.returncode == 0, run.stderr
    assert [record["Plan"] for record in sandbox.records()] == ["a"]


def test_dedup_off_sends_duplicates(sandbox: Sandbox, tmp_path) -> None:
    config = target_config(sandbox, dedup=False)
    run_target(config, orders(1, 2), tmp_path)

    run_target(config, orders(1, 2), tmp_path)

    assert len(emails(sandbox)) == 4
    assert sandbox.state.duplicates("Email") == {
        "c1@example.com": 2,
        "c2@example.com": 2,
    }


def ledger_command(
    config_path: Path, *arguments: str
) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [
            sys.executable,
            "-m",
            "target_customergauge_stream.ledger_cli",
            "--config",
            str(config_path),
            *arguments,
        ],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )


def test_in_doubt_halts_until_resolved(tmp_path) -> None:
    with Sandbox(
        api_key=TEST_API_KEY, script=["stall-accept"], stall_seconds=1.0
    ) as sandbox:
        config = target_config(sandbox, request_timeout=0.4)
        first = run_target(config, orders(1, 3), tmp_path)
        assert sandbox.wait_until_idle(10)

        assert first.returncode != 0
        assert "is in doubt" in first.stderr
        assert first.states == []
        assert sandbox.state.summary()["requests"] == 1

        second = run_target(config, orders(1, 3), tmp_path)
        assert second.returncode != 0
        assert "1 uploads in doubt" in second.stderr
        assert sandbox.state.summary()["requests"] == 1

        listing = ledger_command(tmp_path / "config.json", "list")
        upload_id = listing.stdout.split()[0]
        assert "in_doubt" in listing.stdout
        shown = ledger_command(tmp_path / "config.json", "show", upload_id)
        assert "c1@example.com" in shown.stdout
        resolved = ledger_command(
            tmp_path / "config.json", "resolve", upload_id, "--delivered"
        )
        assert resolved.returncode == 0, resolved.stderr

        third = run_target(config, orders(1, 3), tmp_path)

    assert third.returncode == 0, third.stderr
    assert emails(sandbox) == ["c1@example.com", "c2@example.com", "c3@example.com"]
    assert third.states[-1] == {"orders": 3}


def test_in_doubt_resend_counts_already_processed(tmp_path) -> None:
    with Sandbox(
        api_key=TEST_API_KEY,
        script=["stall-accept"],
        stall_seconds=1.0,
        reject_repeated_bodies=True,
    ) as sandbox:
        config = target_config(sandbox, request_timeout=0.4, in_doubt="resend")

        run = run_target(config, orders(1, 3), tmp_path)
        assert sandbox.wait_until_idle(10)

    assert run.returncode == 0, run.stderr
    assert "already processed" in run.stderr
    assert emails(sandbox) == ["c1@example.com", "c2@example.com", "c3@example.com"]


def test_released_upload_is_sent_again(tmp_path) -> None:
    with Sandbox(api_key=TEST_API_KEY, script=["stall"], stall_seconds=1.0) as sandbox:
        config = target_config(sandbox, request_timeout=0.4)
        run_target(config, orders(1, 2), tmp_path)
        assert sandbox.wait_until_idle(10)
        upload_id = ledger_command(tmp_path / "config.json", "list").stdout.split()[0]
        ledger_command(tmp_path / "config.json", "resolve", upload_id, "--release")

        rerun = run_target(config, orders(1, 2), tmp_path)

    assert rerun.returncode == 0, rerun.stderr
    assert emails(sandbox) == ["c1@example.com", "c2@example.com"]


def test_forget_key_allows_resurvey(sandbox: Sandbox, tmp_path) -> None:
    config = target_config(sandbox)
    run_target(config, orders(1, 2), tmp_path)

    forgotten = ledger_command(
        tmp_path / "config.json",
        "forget",
        "--stream",
        "orders",
        "--key",
        '["c2@example.com"]',
    )
    run_target(config, orders(1, 2), tmp_path)

    assert "Forgot 1" in forgotten.stdout
    assert emails(sandbox) == ["c1@example.com", "c2@example.com", "c2@example.com"]


def test_replay_skips_records_delivered_by_rerun(sandbox: Sandbox, tmp_path) -> None:
    sandbox.faults.script = ["400"]
    failed_dir = tmp_path / "failed"
    config = target_config(sandbox, failed_uploads_dir=str(failed_dir))
    failed = run_target(config, orders(1, 3), tmp_path)
    assert failed.returncode != 0
    rerun = run_target(config, orders(1, 2), tmp_path)
    assert rerun.returncode == 0, rerun.stderr

    replay = run_replay(tmp_path / "config.json")

    assert replay.returncode == 0, replay.stderr
    assert emails(sandbox) == ["c1@example.com", "c2@example.com", "c3@example.com"]
    assert list(failed_dir.glob("*.xml")) == []


def test_ledger_in_postgresql(postgres, tmp_path) -> None:  # noqa: F811
    url = f"postgresql+psycopg://{DATABASE_USER}@127.0.0.1:{postgres.port}/postgres"
    with Sandbox(api_key=TEST_API_KEY) as sandbox:
        config = target_config(sandbox, ledger_url=url)
        first = run_target(config, orders(1, 30), tmp_path)
        second = run_target(config, orders(25, 40), tmp_path)

    assert first.returncode == 0, first.stderr
    assert second.returncode == 0, second.stderr
    assert emails(sandbox) == [f"c{index}@example.com" for index in range(1, 41)]
    ledger = ledger_of(config)
    try:
        assert ledger.delivered_count("orders") == 40
    finally:
        ledger.close()


def feed(process: subprocess.Popen[str], text: str) -> None:
    """Write a target's input and close it; a killed target ends the writing."""
    try:
        process.stdin.write(text)
    except (BrokenPipeError, ValueError):
        pass
    finally:
        with contextlib.suppress(OSError, ValueError):
            process.stdin.close()


def resolve_by_looking(config: dict, sandbox: Sandbox) -> int:
    """Settle in-doubt uploads as an operator would: by looking in CustomerGauge."""
    ledger = ledger_of(config)
    received = set(emails(sandbox))
    settled = 0
    try:
        for item in ledger.unresolved():
            root = etree.fromstring(item.body or b"<records/>")
            sent = {record.findtext("Email") for record in root}
            if sent <= received:
                ledger.mark_delivered(item.upload_id)
            else:
                assert not sent & received, "an upload arrived only in part"
                ledger.release(item.upload_id)
            settled += 1
    finally:
        ledger.close()
    return settled


@pytest.mark.parametrize("in_doubt", ["resend", "halt"])
def test_chaos_every_record_exactly_once(tmp_path, in_doubt: str) -> None:
    total = 20_000
    rng = random.Random(f"chaos-{in_doubt}")
    with Sandbox(
        api_key=TEST_API_KEY,
        fault_rate=0.12,
        faults=["500", "503", "reset", "stall", "stall-accept"],
        seed=7 if in_doubt == "resend" else 11,
        stall_seconds=0.8,
        latency=0.02,
        reject_repeated_bodies=True,
    ) as sandbox:
        config = target_config(
            sandbox,
            batch_size_rows=500,
            request_timeout=0.3,
            max_retries=30,
            retry_backoff_seconds=0.01,
            in_doubt=in_doubt,
        )
        config_path = tmp_path / "config.json"
        config_path.write_text(json.dumps(config), encoding="utf-8")
        resume_from, kills, rounds = 1, 0, 0
        while rounds < 80:
            rounds += 1
            lines = "".join(json.dumps(m) + "\n" for m in orders(resume_from, total))
            process = subprocess.Popen(
                [*TARGET_COMMAND, "--config", str(config_path)],
                stdin=subprocess.PIPE,
                stdout=subprocess.PIPE,
                stderr=subprocess.DEVNULL,
                text=True,
            )
            # Fed from a thread: the target reads while this one decides when
            # to kill it.
            feeder = threading.Thread(target=feed, args=(process, lines), daemon=True)
            feeder.start()
            if kills < 4:
                # Kill at a random point: after a few more upload requests.
                target_requests = sandbox.state.summary()["requests"] + rng.randint(
                    1, 8
                )
                deadline = time.monotonic() + 60
                while process.poll() is None and time.monotonic() < deadline:
                    if sandbox.state.summary()["requests"] >= target_requests:
                        time.sleep(rng.uniform(0.0, 0.1))
                        break
                    time.sleep(0.01)
                if process.poll() is None:
                    process.send_signal(signal.SIGKILL)
                    kills += 1
            process.wait(timeout=180)
            feeder.join(timeout=30)
            states = [
                json.loads(line)
                for line in process.stdout.read().splitlines()
                if line.endswith("}")
            ]
            process.stdout.close()
            assert sandbox.wait_until_idle(10)
            accepted = set(emails(sandbox))
            for state in states:
                expected = {
                    f"c{index}@example.com" for index in range(1, state["orders"] + 1)
                }
                assert expected <= accepted, (
                    "STATE ran ahead of what CustomerGauge accepted"
                )
            if states:
                resume_from = states[-1]["orders"] + 1
            if process.returncode == 0 and resume_from > total:
                break
            if in_doubt == "halt":
                resolve_by_looking(config, sandbox)
            time.sleep(0.05)

        final = emails(sandbox)

    assert resume_from > total, f"did not finish in {rounds} rounds"
    assert kills >= 3, "the target was not killed several times"
    assert sandbox.state.duplicates("Email") == {}
    assert len(final) == total
    assert set(final) == {f"c{index}@example.com" for index in range(1, total + 1)}


def test_resent_upload_rejected_is_released(tmp_path) -> None:
    # An in-doubt upload left by a stopped run is resent at start; a definite
    # rejection releases its records, which this run then sends again.
    with Sandbox(api_key=TEST_API_KEY, script=["stall"], stall_seconds=1.0) as sandbox:
        config = target_config(sandbox, request_timeout=0.4)
        first = run_target(config, orders(1, 2), tmp_path)
        assert sandbox.wait_until_idle(10)
    assert first.returncode != 0
    with Sandbox(api_key=TEST_API_KEY, script=["400"]) as sandbox:
        config = target_config(
            sandbox, in_doubt="resend", ledger_path=first_ledger_path(tmp_path)
        )
        rerun = run_target(config, orders(1, 2), tmp_path)

    assert rerun.returncode == 0, rerun.stderr
    assert "released" in rerun.stderr
    assert emails(sandbox) == ["c1@example.com", "c2@example.com"]


def first_ledger_path(tmp_path: Path) -> str:
    """Return the ledger path of the config that run_target last wrote."""
    config = json.loads((tmp_path / "config.json").read_text(encoding="utf-8"))
    return str(config["ledger_path"])


def test_replay_skips_records_in_doubt(tmp_path) -> None:
    with Sandbox(api_key=TEST_API_KEY, script=["stall"], stall_seconds=1.0) as sandbox:
        failed_dir = tmp_path / "failed"
        config = target_config(
            sandbox, request_timeout=0.4, failed_uploads_dir=str(failed_dir)
        )
        first = run_target(config, orders(1, 2), tmp_path)
        assert sandbox.wait_until_idle(10)
        assert first.returncode != 0
        assert list(failed_dir.glob("*.xml"))

        replay = run_replay(tmp_path / "config.json")

        received = sandbox.records()

    assert replay.returncode == 0, replay.stderr
    # The upload is in doubt: settling it is the ledger's job (resolve or
    # in_doubt: resend), so replay must not send its records.
    assert "2 records are already in the delivery ledger" in replay.stderr
    assert received == []


def test_changed_record_back_to_old_version(sandbox: Sandbox, tmp_path) -> None:
    # v0 delivered by an earlier run; this run sends v1, then v0 again: with
    # resend_changed the latest version must go out, so both are sent.
    config = target_config(sandbox, resend_changed=True, batch_size_rows=1)
    assert run_target(config, orders(1, 1, plan="basic"), tmp_path).returncode == 0
    messages = orders(1, 1, plan="gold") + orders(1, 1, plan="basic")[1:]

    run = run_target(config, messages, tmp_path)

    assert run.returncode == 0, run.stderr
    plans = [record["Plan"] for record in sandbox.records()]
    assert plans == ["basic", "gold", "basic"]


def test_replay_reads_version_1_hashes(sandbox: Sandbox, tmp_path) -> None:
    # Saved by version 1 of the ledger: 64-digit hashes, of which version 2
    # keeps the first 32.
    sandbox.faults.script = ["400"]
    failed_dir = tmp_path / "failed"
    config = target_config(sandbox, failed_uploads_dir=str(failed_dir))
    assert run_target(config, orders(1, 3), tmp_path).returncode != 0
    [description_path] = failed_dir.glob("*.json")
    description = json.loads(description_path.read_text(encoding="utf-8"))
    description["keys"] = [
        [key + "0" * 32, digest + "0" * 32] for key, digest in description["keys"]
    ]
    description_path.write_text(json.dumps(description), encoding="utf-8")
    assert run_target(config, orders(1, 2), tmp_path).returncode == 0

    replay = run_replay(tmp_path / "config.json")

    assert replay.returncode == 0, replay.stderr
    assert emails(sandbox) == ["c1@example.com", "c2@example.com", "c3@example.com"]


def with_repeats(last: int, repeated: range) -> list[dict]:
    """Records 1 to `last`, then the `repeated` ones again before the last STATE."""
    messages = orders(1, last, state_every=10)
    messages[-1:-1] = [
        record_message("orders", {"Email": f"c{index}@example.com", "Plan": "basic"})
        for index in repeated
    ]
    return messages


def run_in_process(config: dict, messages: list[dict]) -> TargetCustomerGaugeStream:
    """Run the target in this process, so that a test can change its constants."""
    target = TargetCustomerGaugeStream(config=config)
    target.listen(
        file_input=io.StringIO("".join(json.dumps(m) + "\n" for m in messages))
    )
    return target


def assert_ledger_settled(config: dict, delivered: int) -> None:
    ledger = ledger_of(config)
    try:
        assert ledger.delivered_count("orders") == delivered
        assert ledger.unresolved() == []
    finally:
        ledger.close()


def test_keys_indexed_during_later_uploads(
    sandbox: Sandbox, tmp_path, monkeypatch, capsys
) -> None:
    # The run is in-process so that batches of keys can be small. The index
    # then takes several batches during the run, each while a later upload
    # is sent.
    monkeypatch.setattr(coordinator, "KEYS_PER_LEDGER_UPDATE", 4)
    batches: list[int] = []
    start = KeyIndexer.start

    def counting_start(indexer: KeyIndexer, uploads: list) -> None:
        batches.append(len(uploads))
        start(indexer, uploads)

    monkeypatch.setattr(KeyIndexer, "start", counting_start)
    config = target_config(sandbox, batch_size_rows=2)

    # Each repeat comes well after its first record, once its upload's keys
    # have left memory for the index.
    run_in_process(config, with_repeats(40, range(1, 11)))

    states = [json.loads(line) for line in capsys.readouterr().out.splitlines()]
    assert sorted(emails(sandbox)) == sorted(f"c{i}@example.com" for i in range(1, 41))
    assert states[-1] == {"orders": 40}
    assert len(batches) >= 5
    assert_ledger_settled(config, 40)


def test_dry_run_keys_leave_memory_not_ledger(
    sandbox: Sandbox, tmp_path, monkeypatch, capsys
) -> None:
    monkeypatch.setattr(coordinator, "KEYS_PER_LEDGER_UPDATE", 4)
    scratch = tmp_path / "scratch"
    scratch.mkdir()
    monkeypatch.setattr(tempfile, "tempdir", str(scratch))
    config = target_config(sandbox, batch_size_rows=2)
    run_target(config, orders(1, 5), tmp_path)
    dry_dir = tmp_path / "dry-run"

    target = run_in_process(
        {**config, "dry_run": True, "dry_run_dir": str(dry_dir)},
        with_repeats(40, range(3, 13)),
    )

    assert capsys.readouterr().out == ""
    written_emails = [
        email
        for path in sorted(dry_dir.glob("upload-*.xml"))
        for email in etree.fromstring(path.read_bytes()).xpath("//Email/text()")
    ]
    # Records 1 to 5 were delivered before, and each repeat is caught once.
    assert sorted(written_emails) == sorted(
        f"c{index}@example.com" for index in range(6, 41)
    )
    # Every key went to the throwaway ledger, so memory can let go of all.
    target.delivery.dedup.release_recorded()
    assert target.delivery.dedup.held_keys("orders") == {}
    assert_ledger_settled(config, 5)
    assert emails(sandbox) == [f"c{index}@example.com" for index in range(1, 6)]
    # The throwaway ledger is gone with the run.
    assert list(scratch.iterdir()) == []
