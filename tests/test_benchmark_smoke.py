"""benchmarks/run.py end to end on a tiny input, offline and without timing goals."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
RUN_SCRIPT = ROOT / "benchmarks" / "run.py"
RUNNER_LABELS = {
    "target": "target-customergauge-stream",
    "target-no-ledger": "target, dedup: false",
    "noop": "no-op SDK target",
    "raw": "raw lxml loop",
}


def test_benchmark_run_reports_each_runner(tmp_path: Path) -> None:
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

    results = json.loads(results_path.read_text(encoding="utf-8"))
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
