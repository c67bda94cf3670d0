"""benchmarks/run.py end to end on a tiny input, offline and without timing goals."""

from __future__ import annotations

import importlib.util
import json
import subprocess
import sys
import typing as t
from pathlib import Path

from target_customergauge_stream.ledger import DeliveryLedger, text_key_hash

ROOT = Path(__file__).resolve().parent.parent
RUN_SCRIPT = ROOT / "benchmarks" / "run.py"
RUNNER_LABELS = {
    "target": "target-customergauge-stream",
    "target-no-ledger": "target, dedup: false",
    "noop": "no-op SDK target",
    "raw": "raw lxml loop",
}


def run_benchmark(
    tmp_path: Path, *options: str
) -> tuple[subprocess.CompletedProcess[str], dict[str, t.Any]]:
    """Run benchmarks/run.py on 300 records, once each, without peers."""
    results_path = tmp_path / "results.json"
    completed = subprocess.run(
        [
            sys.executable,
            str(RUN_SCRIPT),
            "--records",
            "300",
            "--runs",
            "1",
            "--upload-check-records",
            "300",
            "--skip-peers",
            *options,
            "--json",
            str(results_path),
        ],
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
        cwd=tmp_path,
    )
    assert completed.returncode == 0, completed.stderr + completed.stdout
    return completed, json.loads(results_path.read_text(encoding="utf-8"))


def test_benchmark_run_reports_each_runner(tmp_path: Path) -> None:
    completed, results = run_benchmark(tmp_path)

    table_rows = [
        line
        for line in completed.stdout.splitlines()
        if line.startswith(tuple(RUNNER_LABELS.values()))
    ]
    assert len(table_rows) == len(RUNNER_LABELS), completed.stdout
    assert "target / raw loop" in completed.stdout
    assert "target / no-op SDK target" in completed.stdout
    assert "target / target, dedup: false" in completed.stdout
    assert "skipped (--skip-peers)" in completed.stdout

    assert set(results["runners"]) == set(RUNNER_LABELS)
    for key, label in RUNNER_LABELS.items():
        runner = results["runners"][key]
        assert runner["summary"]["label"] == label
        assert len(runner["runs"]) == 1
        assert runner["summary"]["wall_seconds"] > 0
        assert runner["summary"]["cpu_seconds"] > 0
        assert runner["summary"]["peak_rss_mib"] > 0
    target_run = results["runners"]["target"]["runs"][0]
    assert target_run["records_received"] == 300
    assert target_run["uploads"] >= 1
    assert len(results["upload_checks"]) == 2
    assert set(results["ratios"]) == {
        "target_over_raw",
        "target_over_noop",
        "ledger_over_no_ledger",
    }


def load_benchmark_module(name: str) -> t.Any:
    """Import a module of benchmarks/, which is a folder of scripts, not a package."""
    spec = importlib.util.spec_from_file_location(
        name, ROOT / "benchmarks" / f"{name}.py"
    )
    assert spec is not None
    assert spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_ledger_history_has_other_keys(tmp_path: Path) -> None:
    path = tmp_path / "history" / "ledger.sqlite"
    load_benchmark_module("ledger_history").build_ledger(path, 4_100, "orders")
    generate = load_benchmark_module("generate")

    ledger = DeliveryLedger(f"sqlite:///{path}", create=False)
    try:
        assert ledger.delivered_counts() == {"orders": 4_100}
        assert ledger.unresolved() == []
        # The benchmark input's own keys must not be in it.
        input_keys = [
            text_key_hash(json.loads(line)["record"]["Email"])
            for line in generate.iter_lines(200, generate.DEFAULT_SEED)
            if line.startswith('{"type":"RECORD"')
        ]
        assert len(input_keys) == 200
        assert ledger.known_keys("orders", input_keys) == {}
    finally:
        ledger.close()


def test_benchmark_run_with_ledger_history(
    tmp_path: Path,
) -> None:
    completed, results = run_benchmark(tmp_path, "--ledger-keys", "2500")

    assert "Built a ledger holding 2,500 delivered keys" in completed.stdout
    assert results["arguments"]["ledger_keys"] == 2500
    # The harness fails the run unless the sandbox received every record, so
    # none of the history's keys made the target skip one.
    assert results["runners"]["target"]["runs"][0]["records_received"] == 300
