"""Delivery under faults: retries, saved uploads, replay, signals, OAuth2, secrets."""

from __future__ import annotations

import datetime
import itertools
import json
import logging
import os
import shutil
import signal
import ssl
import subprocess
import threading
import time
import typing as t
from pathlib import Path

import pytest

from target_customergauge_stream.batching import Upload
from target_customergauge_stream.client import UploadFailedError
from target_customergauge_stream.coordinator import DeliveryCoordinator
from target_customergauge_stream.delivery import KeyIndexer, UploadPipeline
from target_customergauge_stream.sandbox import Sandbox
from target_customergauge_stream.settings import resolve_settings

if t.TYPE_CHECKING:
    from target_customergauge_stream.ledger import DeliveryLedger
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

PROPERTIES = {"Email": {"type": "string"}}


def numbered_messages(first: int, last: int, state_every: int) -> list[dict]:
    messages = [schema_message("orders", PROPERTIES)]
    for index in range(first, last + 1):
        messages.append(record_message("orders", {"Email": f"c{index}@example.com"}))
        if index % state_every == 0:
            messages.append(state_message({"orders": index}))
    return messages


def emails(sandbox: Sandbox) -> list[str]:
    return [record["Email"] for record in sandbox.records()]


@pytest.mark.parametrize("step", ["408", "429", "500", "502", "503", "504", "reset"])
def test_retryable_step_then_success(sandbox: Sandbox, tmp_path, step) -> None:
    sandbox.faults.script = [step, "ok"]

    # Without the ledger every retryable step is retried; with it, a reset
    # after the body was sent is in doubt instead (see test_ledger.py).
    config = target_config(sandbox, dedup=False)

    run = run_target(config, numbered_messages(1, 3, 3), tmp_path)

    assert run.returncode == 0, run.stderr
    assert emails(sandbox) == [f"c{index}@example.com" for index in (1, 2, 3)]
    assert "attempt 1 of 9 failed" in run.stderr
    assert run.states == [{"orders": 3}]


@pytest.mark.parametrize("step", ["400", "garbage"])
def test_fatal_step_fails_at_once(sandbox: Sandbox, tmp_path, step) -> None:
    sandbox.faults.script = [step]

    run = run_target(target_config(sandbox), numbered_messages(1, 3, 3), tmp_path)

    assert run.returncode != 0
    assert run.states == []
    assert sandbox.state.summary()["requests"] == 1


def test_garbage_body_is_quoted(sandbox: Sandbox, tmp_path) -> None:
    sandbox.faults.script = ["garbage"]

    run = run_target(target_config(sandbox), numbered_messages(1, 1, 1), tmp_path)

    assert "HTTP 200 with a body that is not the documented" in run.stderr
    assert "Upstream proxy error" in run.stderr


@pytest.mark.parametrize("step", ["429", "429-date"])
def test_retry_after_is_honoured(sandbox: Sandbox, tmp_path, step) -> None:
    sandbox.faults.script = [step, "ok"]
    config = target_config(sandbox, retry_backoff_seconds=0.01)

    run = run_target(config, numbered_messages(1, 1, 1), tmp_path)

    assert run.returncode == 0, run.stderr
    retry_lines = [line for line in run.stderr.splitlines() if "retrying in" in line]
    assert len(retry_lines) == 1
    waited = float(retry_lines[0].rsplit("retrying in ", 1)[1].split(" s")[0])
    # The backoff alone would be about 0.01 s; the wait came from Retry-After:
    # 1 s in the seconds form, 2 s ahead (to the second) in the date form.
    if step == "429":
        assert waited == 1.0
    else:
        assert 1.0 <= waited <= 2.0


def test_retry_after_above_cap_fails(sandbox: Sandbox, tmp_path) -> None:
    sandbox.faults.script = ["429"]
    config = target_config(sandbox, max_retry_wait=0.5)

    run = run_target(config, numbered_messages(1, 1, 1), tmp_path)

    assert run.returncode != 0
    assert "max_retry_wait" in run.stderr
    assert sandbox.state.summary()["requests"] == 1


def test_upload_deadline_ends_retries(sandbox: Sandbox, tmp_path) -> None:
    sandbox.faults.script = ["500", "500", "500"]
    config = target_config(sandbox, retry_backoff_seconds=1.0, upload_deadline=0.2)

    run = run_target(config, numbered_messages(1, 1, 1), tmp_path)

    assert run.returncode != 0
    assert "upload_deadline" in run.stderr
    assert sandbox.state.summary()["requests"] == 1


def test_stall_past_timeout_is_retried(tmp_path) -> None:
    with Sandbox(api_key=TEST_API_KEY, script=["stall"], stall_seconds=2) as sandbox:
        config = target_config(sandbox, request_timeout=0.5, dedup=False)

        run = run_target(config, numbered_messages(1, 2, 2), tmp_path)

        assert run.returncode == 0, run.stderr
        assert "timed out after 0.5 s" in run.stderr
        assert emails(sandbox) == ["c1@example.com", "c2@example.com"]


def test_min_upload_interval_spaces_uploads(sandbox: Sandbox, tmp_path) -> None:
    config = target_config(sandbox, batch_size_rows=1, min_upload_interval=0.3)

    run = run_target(config, numbered_messages(1, 3, 3), tmp_path)

    assert run.returncode == 0, run.stderr
    moments = [
        datetime.datetime.fromisoformat(upload.received_at)
        for upload in sandbox.state.uploads
    ]
    gaps = [
        (later - earlier).total_seconds()
        for earlier, later in itertools.pairwise(moments)
    ]
    assert len(gaps) == 2
    assert all(gap >= 0.29 for gap in gaps)


def test_failed_upload_saved_with_description(sandbox: Sandbox, tmp_path) -> None:
    sandbox.faults.script = ["ok", "401"]
    failed_dir = tmp_path / "failed"
    config = target_config(
        sandbox, batch_size_rows=2, failed_uploads_dir=str(failed_dir)
    )

    run = run_target(config, numbered_messages(1, 6, 2), tmp_path)

    assert run.returncode != 0
    assert run.states == [{"orders": 2}]
    bodies = sorted(failed_dir.glob("*.xml"))
    descriptions = [
        json.loads(path.with_suffix(".json").read_text()) for path in bodies
    ]
    assert [description["record_count"] for description in descriptions] == [2, 2]
    assert descriptions[0]["first_input_line"] == 5
    assert descriptions[0]["last_input_line"] == 6
    assert "401" in descriptions[0]["error"]
    assert "not sent" in descriptions[1]["error"]
    assert descriptions[0]["bytes"] == len(bodies[0].read_bytes())
    assert b"c3@example.com" in bodies[0].read_bytes()
    assert TEST_API_KEY not in json.dumps(descriptions)


def test_replay_delivers_saved_uploads(sandbox: Sandbox, tmp_path) -> None:
    sandbox.faults.script = ["503", "503"]
    failed_dir = tmp_path / "failed"
    config = target_config(
        sandbox, batch_size_rows=2, max_retries=1, failed_uploads_dir=str(failed_dir)
    )
    first = run_target(config, numbered_messages(1, 4, 2), tmp_path)
    assert first.returncode != 0
    assert len(list(failed_dir.glob("*.xml"))) == 2

    replay = run_replay(tmp_path / "config.json")

    assert replay.returncode == 0, replay.stderr
    assert emails(sandbox) == [f"c{index}@example.com" for index in (1, 2, 3, 4)]
    assert list(failed_dir.iterdir()) == []


def test_replay_stops_at_first_failure(sandbox: Sandbox, tmp_path) -> None:
    sandbox.faults.script = ["400"]
    failed_dir = tmp_path / "failed"
    config = target_config(
        sandbox, batch_size_rows=2, failed_uploads_dir=str(failed_dir)
    )
    run_target(config, numbered_messages(1, 4, 2), tmp_path)
    sandbox.faults.script = ["401"]

    replay = run_replay(tmp_path / "config.json")

    assert replay.returncode == 1
    assert len(list(failed_dir.glob("*.xml"))) == 2
    assert sandbox.records() == []


def test_secrets_never_printed_at_debug(tmp_path) -> None:
    secret = "echoed-secret-key-93af0c"
    with Sandbox(api_key="another-key", echo_authorization=True) as sandbox:
        failed_dir = tmp_path / "failed-uploads"
        config = target_config(
            sandbox, api_key=secret, failed_uploads_dir=str(failed_dir)
        )
        environment_log_level = os.environ.get("LOGLEVEL")
        os.environ["LOGLEVEL"] = "DEBUG"
        try:
            run = run_target(config, numbered_messages(1, 2, 2), tmp_path)
        finally:
            if environment_log_level is None:
                os.environ.pop("LOGLEVEL", None)
            else:
                os.environ["LOGLEVEL"] = environment_log_level

    assert run.returncode != 0
    assert "DEBUG" in run.stderr
    assert "[redacted]" in run.stderr
    assert secret not in run.stderr
    assert secret not in json.dumps(run.states)
    saved = list(failed_dir.glob("*.json"))
    assert saved
    for path in saved:
        assert secret not in path.read_text()


def oauth_config(sandbox: Sandbox, **overrides) -> dict:
    config = target_config(sandbox)
    del config["api_key"]
    config.update(
        client_id="demo-client",
        client_secret="oauth-secret-5512ab",
        token_url=sandbox.token_url,
    )
    config.update(overrides)
    return config


def test_oauth2_uploads_with_bearer_token(tmp_path) -> None:
    with Sandbox(
        api_key="unused-key",
        client_id="demo-client",
        client_secret="oauth-secret-5512ab",
        echo_authorization=True,
    ) as sandbox:
        run = run_target(oauth_config(sandbox), numbered_messages(1, 3, 3), tmp_path)
        tokens = list(sandbox.state.tokens)

    assert run.returncode == 0, run.stderr
    assert len(tokens) == 1
    assert "oauth-secret-5512ab" not in run.stderr
    assert tokens[0] not in run.stderr


def test_oauth2_token_endpoint_5xx_is_retried(tmp_path) -> None:
    with Sandbox(
        api_key="unused-key",
        client_id="demo-client",
        client_secret="oauth-secret-5512ab",
        token_failures=2,
    ) as sandbox:
        run = run_target(oauth_config(sandbox), numbered_messages(1, 3, 3), tmp_path)
        token_requests = sandbox.state.token_requests
        tokens = len(sandbox.state.tokens)
        received = len(sandbox.records())

    assert run.returncode == 0, run.stderr
    assert token_requests == 3
    assert tokens == 1
    assert received == 3
    assert "503" in run.stderr
    assert "oauth-secret-5512ab" not in run.stderr


def test_oauth2_renews_token_on_401(tmp_path) -> None:
    with Sandbox(
        api_key="unused-key",
        client_id="demo-client",
        client_secret="oauth-secret-5512ab",
        script=["401", "ok"],
    ) as sandbox:
        run = run_target(oauth_config(sandbox), numbered_messages(1, 2, 2), tmp_path)
        token_count = len(sandbox.state.tokens)
        received = emails(sandbox)

    assert run.returncode == 0, run.stderr
    assert token_count == 2
    assert received == ["c1@example.com", "c2@example.com"]


def test_oauth2_renews_before_expiry(tmp_path) -> None:
    with Sandbox(
        api_key="unused-key",
        client_id="demo-client",
        client_secret="oauth-secret-5512ab",
        token_lifetime=1,
    ) as sandbox:
        config = oauth_config(sandbox, batch_size_rows=1, min_upload_interval=0.4)
        run = run_target(config, numbered_messages(1, 4, 4), tmp_path)
        token_count = len(sandbox.state.tokens)

    assert run.returncode == 0, run.stderr
    assert token_count >= 2


def test_oauth2_wrong_secret_fails_clearly(tmp_path) -> None:
    with Sandbox(
        api_key="unused-key", client_id="demo-client", client_secret="right-secret"
    ) as sandbox:
        config = oauth_config(sandbox, client_secret="wrong-secret-77aa")
        run = run_target(config, numbered_messages(1, 1, 1), tmp_path)

    assert run.returncode != 0
    assert "client_secret" in run.stderr
    assert "wrong-secret-77aa" not in run.stderr


@pytest.mark.parametrize(
    ("overrides", "expected"),
    [
        ({"api_key": "k", "client_id": "c", "client_secret": "s"}, "exactly one"),
        ({"client_id": "c"}, "'client_secret' is missing"),
        (
            {
                "token_url": "http://192.0.2.7/oauth2/token",
                "client_id": "c",
                "client_secret": "s",
            },
            "token_url",
        ),
    ],
)
def test_authentication_config_errors(tmp_path, overrides, expected) -> None:
    run = run_target(overrides, "", tmp_path)

    assert run.returncode != 0
    assert expected in run.stderr
    assert "'s'" not in run.stderr


def start_target(config: dict, tmp_path: Path) -> subprocess.Popen:
    config_path = tmp_path / "config.json"
    config_path.write_text(json.dumps(config), encoding="utf-8")
    return subprocess.Popen(
        [*TARGET_COMMAND, "--config", str(config_path)],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )


def wait_until(condition, seconds: float = 20) -> None:
    deadline = time.monotonic() + seconds
    while not condition():
        if time.monotonic() > deadline:
            pytest.fail(f"condition not met within {seconds} s")
        time.sleep(0.05)


@pytest.mark.parametrize("in_flight_succeeds", [True, False])
def test_sigterm_during_upload(tmp_path, in_flight_succeeds) -> None:
    script = [] if in_flight_succeeds else ["503"]
    with Sandbox(api_key=TEST_API_KEY, latency=1.5, script=script) as sandbox:
        failed_dir = tmp_path / "failed"
        config = target_config(
            sandbox, batch_size_rows=2, failed_uploads_dir=str(failed_dir)
        )
        process = start_target(config, tmp_path)
        lines = [json.dumps(message) for message in numbered_messages(1, 5, 2)]
        process.stdin.write("\n".join(lines) + "\n")
        process.stdin.flush()
        wait_until(lambda: sandbox.state.summary()["requests"] >= 1)

        process.send_signal(signal.SIGTERM)
        stdout, stderr = process.communicate(timeout=30)
        received = emails(sandbox)

    states = [json.loads(line) for line in stdout.splitlines() if line.strip()]
    saved = sorted(failed_dir.glob("*.json"))
    saved_records = sum(json.loads(path.read_text())["record_count"] for path in saved)
    assert process.returncode == 128 + signal.SIGTERM
    assert "Received SIGTERM" in stderr
    if in_flight_succeeds:
        assert received == ["c1@example.com", "c2@example.com"]
        assert states == [{"orders": 2}]
        assert saved_records == 3
    else:
        assert received == []
        assert states == []
        assert saved_records == 5


def coordinator_with_uploads(
    sandbox: Sandbox, tmp_path: Path, streams: t.Sequence[str], *, dedup: bool = True
) -> DeliveryCoordinator:
    """Return a coordinator with one closed two-record upload per stream."""
    settings = resolve_settings(
        target_config(sandbox, failed_uploads_dir=str(tmp_path / "failed"), dedup=dedup)
    )
    delivery = DeliveryCoordinator(settings, logging.getLogger("test"), lambda: 1)
    delivery.settle_unresolved_uploads()
    line = itertools.count(1)
    for stream in streams:
        for _ in range(2):
            index = next(line)
            key = (f"{index:032x}", f"{index:032x}") if dedup else None
            delivery.packer.add(
                stream,
                f"<record><Email>c{index}@example.com</Email></record>".encode(),
                index,
                key,
            )
        delivery.packer.close(stream)
    return delivery


def saved_uploads(tmp_path: Path) -> list[dict]:
    folder = tmp_path / "failed"
    return [json.loads(path.read_text()) for path in sorted(folder.glob("*.json"))]


@pytest.mark.parametrize("dedup", [True, False])
def test_signal_saves_no_upload_that_was_accepted(
    sandbox: Sandbox, tmp_path, dedup
) -> None:
    # A signal can arrive after an upload was handed to the pipeline and
    # before the packer let go of it. By then it may have been accepted.
    delivery = coordinator_with_uploads(sandbox, tmp_path, ["orders"], dedup=dedup)
    upload = delivery.packer.peek_closed("orders")
    assert upload is not None
    delivery.submit_upload(upload)
    wait_until(lambda: sandbox.state.summary()["uploads"] == 1)

    delivery.stop_for_signal()

    assert emails(sandbox) == ["c1@example.com", "c2@example.com"]
    assert saved_uploads(tmp_path) == []


def test_error_after_write_ahead_releases_upload(
    sandbox: Sandbox, tmp_path, monkeypatch
) -> None:
    index_keys = UploadPipeline._index_delivered_keys

    def fail(pipeline: UploadPipeline, *, now: bool) -> None:
        # Only the call between the write-ahead and the POST fails.
        if now:
            index_keys(pipeline, now=now)
            return
        msg = "index unavailable"
        raise RuntimeError(msg)

    monkeypatch.setattr(UploadPipeline, "_index_delivered_keys", fail)
    delivery = coordinator_with_uploads(sandbox, tmp_path, ["orders"])
    upload = delivery.packer.peek_closed("orders")
    assert upload is not None
    delivery.submit_upload(upload)
    delivery.packer.discard_closed(upload)

    with pytest.raises(UploadFailedError, match="index unavailable"):
        delivery.finish()

    # Nothing was sent, so the ledger must not hold the upload in doubt.
    assert emails(sandbox) == []
    assert delivery.ledger is not None
    assert delivery.ledger.unresolved() == []
    assert [saved["record_count"] for saved in saved_uploads(tmp_path)] == [2]


@pytest.mark.parametrize("interruption", ["failure", "signal"])
def test_failure_before_end_saves_unsubmitted_uploads(
    sandbox: Sandbox, tmp_path, monkeypatch, interruption
) -> None:
    delivery = coordinator_with_uploads(
        sandbox, tmp_path, ["orders", "tickets", "returns"]
    )
    submit = delivery.pipeline.submit
    calls = itertools.count()

    def interrupt_after_first(upload: Upload) -> None:
        if next(calls) == 0:
            submit(upload)
        elif interruption == "failure":
            # As if the first upload had failed while the others waited.
            msg = "an earlier upload failed"
            raise UploadFailedError(msg)
        else:
            # What the target's SIGTERM handler does.
            delivery.stop_for_signal()
            raise SystemExit(143)

    monkeypatch.setattr(delivery.pipeline, "submit", interrupt_after_first)

    if interruption == "failure":
        delivery.deliver_before_failure(ValueError("bad input line"))
    else:
        with pytest.raises(SystemExit):
            delivery.deliver_before_failure(ValueError("bad input line"))

    # The first upload was sent, or saved if the stop came first.
    saved = saved_uploads(tmp_path)
    assert {"returns", "tickets"} <= {item["stream"] for item in saved}
    saved_records = sum(item["record_count"] for item in saved)
    assert len(emails(sandbox)) + saved_records == 6


def test_kill_and_rerun_from_state(tmp_path) -> None:
    total = 3000
    with Sandbox(api_key=TEST_API_KEY, latency=0.05) as sandbox:
        # At least once, as without the ledger; test_ledger.py has exactly once.
        config = target_config(sandbox, batch_size_rows=100, dedup=False)
        process = start_target(config, tmp_path)
        lines = [json.dumps(message) for message in numbered_messages(1, total, 100)]
        process.stdin.write("\n".join(lines) + "\n")
        process.stdin.flush()
        wait_until(lambda: sandbox.state.summary()["uploads"] >= 5)

        process.send_signal(signal.SIGKILL)
        stdout, _ = process.communicate(timeout=30)
        states = [
            json.loads(line) for line in stdout.splitlines() if line.endswith("}")
        ]
        accepted = set(emails(sandbox))

        # The STATE sequence never ran ahead of what the sandbox accepted.
        for state in states:
            bookmark = state["orders"]
            assert {
                f"c{index}@example.com" for index in range(1, bookmark + 1)
            } <= accepted
        assert len(accepted) < total

        resume_from = states[-1]["orders"] + 1 if states else 1
        rerun = run_target(config, numbered_messages(resume_from, total, 100), tmp_path)
        final = emails(sandbox)

    assert rerun.returncode == 0, rerun.stderr
    assert set(final) == {f"c{index}@example.com" for index in range(1, total + 1)}
    assert rerun.states[-1] == {"orders": total}


def test_replay_refuses_changed_body(sandbox: Sandbox, tmp_path) -> None:
    sandbox.faults.script = ["400"]
    failed_dir = tmp_path / "failed"
    config = target_config(sandbox, failed_uploads_dir=str(failed_dir))
    run_target(config, numbered_messages(1, 2, 2), tmp_path)
    (body,) = failed_dir.glob("*.xml")
    body.write_bytes(body.read_bytes().replace(b"c1@", b"c9@"))

    replay = run_replay(tmp_path / "config.json")

    assert replay.returncode == 1
    assert "does not match the SHA-256" in replay.stderr
    assert sandbox.records() == []
    assert body.exists()


def self_signed_certificate(folder: Path) -> tuple[Path, Path]:
    """Make a throwaway certificate for 127.0.0.1 with the openssl command."""
    openssl = shutil.which("openssl")
    if openssl is None:
        pytest.skip("the openssl command is not installed, so no test certificate")
    key, certificate = folder / "key.pem", folder / "certificate.pem"
    subprocess.run(
        [
            openssl,
            "req",
            "-x509",
            "-newkey",
            "rsa:2048",
            "-nodes",
            "-days",
            "1",
            "-subj",
            "/CN=127.0.0.1",
            "-addext",
            "subjectAltName=IP:127.0.0.1",
            "-keyout",
            str(key),
            "-out",
            str(certificate),
        ],
        capture_output=True,
        timeout=60,
        check=True,
    )
    return key, certificate


def test_tls_error_fatal_until_ca_bundle(tmp_path) -> None:
    key, certificate = self_signed_certificate(tmp_path)
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.load_cert_chain(certificate, key)
    sandbox = Sandbox(api_key=TEST_API_KEY)
    sandbox.server.socket = context.wrap_socket(sandbox.server.socket, server_side=True)
    with sandbox:
        https_url = sandbox.endpoint_url().replace("http://", "https://")
        config = target_config(sandbox, api_url=https_url)

        untrusted = run_target(config, numbered_messages(1, 2, 2), tmp_path)
        trusted = run_target(
            {**config, "ca_bundle": str(certificate)},
            numbered_messages(1, 2, 2),
            tmp_path,
        )

    assert untrusted.returncode != 0
    assert "TLS certificate verification failed" in untrusted.stderr
    assert "ca_bundle" in untrusted.stderr
    assert "retrying" not in untrusted.stderr
    assert untrusted.states == []
    assert trusted.returncode == 0, trusted.stderr
    assert emails(sandbox) == ["c1@example.com", "c2@example.com"]
    assert trusted.states == [{"orders": 2}]


class BlockingIndex:
    """Stands in for the ledger: adding keys waits until the test lets it go."""

    def __init__(self, *, fail: bool = False) -> None:
        self.entered = threading.Event()
        self.finish = threading.Event()
        self.fail = fail
        self.added = 0

    def add_delivered_keys(self) -> None:
        self.entered.set()
        assert self.finish.wait(10)
        if self.fail:
            msg = "disk full"
            raise OSError(msg)
        self.added += 1


def test_indexer_reports_after_index_add() -> None:
    index = BlockingIndex()
    recorded: list[Upload] = []
    indexer = KeyIndexer(t.cast("DeliveryLedger", index), recorded.append)
    uploads = [Upload(1, "orders", 1), Upload(2, "orders", 3)]

    indexer.start(uploads)
    assert index.entered.wait(10)
    # Memory may let go of the keys only once the index contains them.
    assert recorded == []
    index.finish.set()
    indexer.wait()

    assert recorded == uploads
    assert index.added == 1
    indexer.close()


@pytest.mark.parametrize("retried_by", ["next batch", "close"])
def test_indexer_retries_failed_batch(caplog, retried_by) -> None:
    index = BlockingIndex(fail=True)
    recorded: list[Upload] = []
    indexer = KeyIndexer(t.cast("DeliveryLedger", index), recorded.append)
    index.finish.set()

    indexer.start([Upload(1, "orders", 1)])
    indexer.wait()
    assert recorded == []
    index.fail = False
    expected = [1]
    if retried_by == "next batch":
        indexer.add_now([Upload(2, "orders", 3)])
        expected = [1, 2]
    in_time(indexer.close)

    # The later add put the failed batch's keys in the index too.
    assert [upload.sequence for upload in recorded] == expected
    assert index.added == 1
    assert "added with the next batch" in caplog.text


def in_time(action: t.Callable[[], None], seconds: float = 10) -> None:
    """Run an action on a thread and fail the test if it does not end in time."""
    runner = threading.Thread(target=action, daemon=True)
    runner.start()
    runner.join(seconds)
    assert not runner.is_alive(), "the indexer did not finish in time"


def test_indexer_outlives_callback_error(caplog) -> None:
    index = BlockingIndex()
    index.finish.set()
    recorded: list[int] = []

    def on_recorded(upload: Upload) -> None:
        if upload.sequence == 1:
            msg = "callback failed"
            raise RuntimeError(msg)
        recorded.append(upload.sequence)

    indexer = KeyIndexer(t.cast("DeliveryLedger", index), on_recorded)
    indexer.start([Upload(1, "orders", 1)])
    in_time(indexer.wait)
    in_time(lambda: indexer.start([Upload(2, "orders", 3)]))
    in_time(indexer.close)

    assert recorded == [2]
    assert "failed unexpectedly" in caplog.text


def test_indexer_starts_again_after_close() -> None:
    index = BlockingIndex()
    index.finish.set()
    recorded: list[Upload] = []
    indexer = KeyIndexer(t.cast("DeliveryLedger", index), recorded.append)
    indexer.start([Upload(1, "orders", 1)])
    in_time(indexer.close)

    in_time(lambda: indexer.start([Upload(2, "orders", 3)]))
    in_time(indexer.close)

    assert [upload.sequence for upload in recorded] == [1, 2]


def test_indexer_adds_on_caller_without_thread(monkeypatch, caplog) -> None:
    index = BlockingIndex()
    index.finish.set()
    recorded: list[Upload] = []
    indexer = KeyIndexer(t.cast("DeliveryLedger", index), recorded.append)

    def refuse(thread: threading.Thread) -> None:
        msg = "can't start new thread"
        raise RuntimeError(msg)

    monkeypatch.setattr(threading.Thread, "start", refuse)
    indexer.start([Upload(1, "orders", 1)])

    assert [upload.sequence for upload in recorded] == [1]
    assert index.added == 1
    assert "the upload thread adds them itself" in caplog.text
