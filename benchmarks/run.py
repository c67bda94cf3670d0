"""Benchmark the target against a no-op SDK target, target-csv and a raw loop.

    python benchmarks/run.py --records 100000 --runs 3
    python benchmarks/run.py --memory-records 1000000
    python benchmarks/run.py --latency 0.2
    python benchmarks/run.py --ledger-keys 1000000

The default mode generates one input and runs these on it, round-robin, each
`--runs` times, with the input file as standard input:

- target: the `target-customergauge-stream` CLI, posting into a sandbox
  server (`customergauge-stream-sandbox serve`) on 127.0.0.1;
- noop: `benchmarks/noop_target.py`, an SDK target that drops each batch;
- csv: `meltanolabs-target-csv` from its own virtualenv (`--peers-venv`);
- raw: `benchmarks/raw_loop.py`, the same XML built with lxml and no SDK.

It prints the medians of wall time, CPU time and peak RSS, and the ratios of
wall times against their goals. It also checks the target's uploads against
max(ceil(records/2000), ceil(bytes/cap)), on this input and on one whose
Notes vary from 0 to 50,000 characters. See benchmarks/README.md.
"""

from __future__ import annotations

import argparse
import json
import secrets
import shutil
import sys
import tempfile
import time
import typing as t
from dataclasses import dataclass, field
from pathlib import Path

import generate
import ledger_history
import peers
from measure import BenchmarkError, last_json_line, run_child, stderr_tail
from report import (
    RunResult,
    Summary,
    UploadCheck,
    check_uploads,
    describe_machine,
    format_machine,
    format_table,
    summarise,
)
from sandbox_process import SandboxProcess, sandbox_supports_latency

BENCHMARKS = Path(__file__).resolve().parent
DEFAULT_PEERS_VENV = BENCHMARKS / ".venv-peers"
DEFAULT_CAP_BYTES = 2_000_000
MIN_CAP_BYTES = 1024
MAX_CAP_BYTES = 2_000_000
DEFAULT_TIMEOUT_SECONDS = 1800

# Goals the target is measured against.
MAX_TARGET_OVER_RAW = 1.5
MIN_CSV_OVER_TARGET = 3.0
# The delivery ledger may cost at most 10% of the throughput without it.
MAX_LEDGER_COST = 1.1
MAX_PEAK_RSS_MIB = 100.0
MAX_RSS_GROWTH = 1.10


@dataclass
class Runner:
    """One program under test.

    Attributes:
        key: Short name used in JSON results, such as 'target'.
        label: Name printed in tables.
        command: Command line. The input arrives on standard input.
        uses_sandbox: Whether it posts into the sandbox, whose counters are
            reset before and read after each run.
        output_dir: Folder the runner writes files into, emptied before each run.
        seed_files: Files copied into `output_dir` once it is emptied, by
            their name there.
    """

    key: str
    label: str
    command: list[str]
    uses_sandbox: bool = False
    output_dir: Path | None = None
    seed_files: dict[str, Path] = field(default_factory=dict)


@dataclass
class Bench:
    """Settings shared by every run: the work folder, the sandbox and the timeout.

    Attributes:
        ledger_history: A ledger file that each run of the target starts
            from, or None to start from a new ledger.
    """

    work_dir: Path
    sandbox: SandboxProcess
    timeout: float
    ledger_history: Path | None = None


@dataclass
class BenchInput:
    """A generated input file and what a runner should report after it."""

    name: str
    path: Path
    records: int
    size: int
    final_state: t.Any


def make_input(
    work_dir: Path, name: str, records: int, seed: int, *, variable_sizes: bool
) -> BenchInput:
    """Generate an input file in the work folder."""
    path = work_dir / f"{name}.jsonl"
    started = time.perf_counter()
    size = generate.write_stream_file(
        path, records, seed, variable_sizes=variable_sizes
    )
    print(
        f"Generated {name}: {records:,} records, {size:,} bytes in "
        f"{time.perf_counter() - started:.1f} s.",
        flush=True,
    )
    final_state = json.loads(generate.state_line(records))["value"]
    return BenchInput(name, path, records, size, final_state)


def make_ledger_history(work_dir: Path, keys: int) -> Path | None:
    """Build the ledger that each target run starts from, if keys are asked for."""
    if keys == 0:
        return None
    path = work_dir / "ledger-history" / "ledger.sqlite"
    seconds = ledger_history.build_ledger(path, keys, generate.STREAM)
    print(
        f"Built a ledger holding {keys:,} delivered keys of other records in "
        f"{seconds:.1f} s ({path.stat().st_size / 2**20:.1f} MiB); each target run "
        f"starts from a copy of it.",
        flush=True,
    )
    return path


def target_executable() -> str:
    """Return the `target-customergauge-stream` console script to run."""
    script = Path(sys.executable).parent / "target-customergauge-stream"
    if script.exists():
        return str(script)
    found = shutil.which("target-customergauge-stream")
    if found is None:
        msg = (
            f"target-customergauge-stream not found next to {sys.executable} "
            "or on PATH. Install the project first: pip install -e ."
        )
        raise BenchmarkError(msg)
    return found


def write_config(path: Path, config: dict[str, t.Any]) -> Path:
    """Write a runner's config file and return its path."""
    path.write_text(json.dumps(config), encoding="utf-8")
    return path


def build_runners(
    bench: Bench, cap_bytes: int, csv_executable: Path | None
) -> list[Runner]:
    """Set up the runners of the comparison, each with its config file."""
    # The delivery ledger is on by default; its file lives in a folder that
    # is emptied before each run, so that every run starts from a new ledger,
    # or from a copy of the same earlier one (--ledger-keys).
    ledger_dir = bench.work_dir / "target-ledger"
    target_settings = {
        "api_key": bench.sandbox.api_key,
        "api_url": bench.sandbox.endpoint_url,
        "max_upload_bytes": cap_bytes,
        "ledger_path": str(ledger_dir / "ledger.sqlite"),
    }
    target_config = write_config(bench.work_dir / "target-config.json", target_settings)
    no_ledger_config = write_config(
        bench.work_dir / "target-no-ledger-config.json",
        {**target_settings, "dedup": False},
    )
    empty_config = write_config(bench.work_dir / "noop-config.json", {})
    runners = [
        Runner(
            "target",
            "target-customergauge-stream",
            [target_executable(), "--config", str(target_config)],
            uses_sandbox=True,
            output_dir=ledger_dir,
            seed_files=(
                {"ledger.sqlite": bench.ledger_history}
                if bench.ledger_history is not None
                else {}
            ),
        ),
        Runner(
            "target-no-ledger",
            "target, dedup: false",
            [target_executable(), "--config", str(no_ledger_config)],
            uses_sandbox=True,
        ),
        Runner(
            "noop",
            "no-op SDK target",
            [
                sys.executable,
                str(BENCHMARKS / "noop_target.py"),
                "--config",
                str(empty_config),
            ],
        ),
    ]
    if csv_executable is not None:
        csv_output = bench.work_dir / "csv-output"
        csv_config = write_config(
            bench.work_dir / "csv-config.json", {"output_path": str(csv_output)}
        )
        runners.append(
            Runner(
                "csv",
                f"{peers.CSV_PACKAGE} {peers.CSV_VERSION}",
                [str(csv_executable), "--config", str(csv_config)],
                output_dir=csv_output,
            )
        )
    runners.append(
        Runner(
            "raw", "raw lxml loop", [sys.executable, str(BENCHMARKS / "raw_loop.py")]
        )
    )
    return runners


def target_runner(bench: Bench, cap_bytes: int) -> Runner:
    """Return only the target's runner, for the memory and latency modes."""
    return build_runners(bench, cap_bytes, None)[0]


def measure(
    bench: Bench, runner: Runner, bench_input: BenchInput, round_number: int
) -> RunResult:
    """Run one runner once on an input and check that it finished properly.

    Raises:
        BenchmarkError: If the runner fails, times out, does not emit the
            final STATE, or the sandbox did not receive every record.
    """
    if runner.uses_sandbox:
        bench.sandbox.reset()
    if runner.output_dir is not None:
        shutil.rmtree(runner.output_dir, ignore_errors=True)
        runner.output_dir.mkdir(parents=True)
        for name, source in runner.seed_files.items():
            shutil.copyfile(source, runner.output_dir / name)
    stem = bench.work_dir / f"{runner.key}-{bench_input.name}-{round_number}"
    stdout_path = stem.with_suffix(".out")
    stderr_path = stem.with_suffix(".err")
    usage = run_child(
        runner.command,
        input_path=bench_input.path,
        stdout_path=stdout_path,
        stderr_path=stderr_path,
        cwd=bench.work_dir,
        timeout=bench.timeout,
    )
    if usage.timed_out or usage.exit_code != 0:
        outcome = (
            f"was killed after {bench.timeout:g} s"
            if usage.timed_out
            else f"exited with status {usage.exit_code}"
        )
        msg = (
            f"{runner.label} {outcome} on {bench_input.name}. The end of its "
            f"standard error:\n{stderr_tail(stderr_path)}"
        )
        raise BenchmarkError(msg)
    last_state = last_json_line(stdout_path)
    if last_state != bench_input.final_state:
        msg = (
            f"{runner.label} did not emit the final STATE of {bench_input.name} "
            f"as its last output line; it emitted {last_state!r}."
        )
        raise BenchmarkError(msg)

    result = RunResult(
        runner=runner.key,
        round=round_number,
        records=bench_input.records,
        wall_seconds=usage.wall_seconds,
        cpu_seconds=usage.cpu_seconds,
        peak_rss_mib=usage.peak_rss_mib,
        records_per_second=bench_input.records / usage.wall_seconds,
    )
    if runner.uses_sandbox:
        received = bench.sandbox.summary()
        result.uploads = received["uploads"]
        result.upload_bytes = received["bytes"]
        result.records_received = received["records"]
        if result.records_received != bench_input.records:
            msg = (
                f"The sandbox received {result.records_received:,} records from "
                f"{runner.label}, not the {bench_input.records:,} of "
                f"{bench_input.name}."
            )
            raise BenchmarkError(msg)
    print(
        f"  round {round_number}: {runner.label} on {bench_input.name}: "
        f"{result.wall_seconds:.2f} s wall, {result.cpu_seconds:.2f} s CPU, "
        f"{result.peak_rss_mib:.1f} MiB peak RSS",
        flush=True,
    )
    return result


def run_rounds(
    bench: Bench,
    jobs: list[tuple[Runner, BenchInput]],
    runs: int,
) -> dict[tuple[str, str], list[RunResult]]:
    """Run every job once per round, rotating which job goes first.

    Returns:
        Results per (runner key, input name).
    """
    results: dict[tuple[str, str], list[RunResult]] = {
        (runner.key, bench_input.name): [] for runner, bench_input in jobs
    }
    for round_number in range(1, runs + 1):
        shift = (round_number - 1) % len(jobs)
        for runner, bench_input in jobs[shift:] + jobs[:shift]:
            result = measure(bench, runner, bench_input, round_number)
            results[runner.key, bench_input.name].append(result)
    return results


def upload_check_of(
    result: RunResult, bench_input: BenchInput, cap_bytes: int
) -> UploadCheck:
    """Check the uploads of one target run against the caps."""
    assert result.uploads is not None
    assert result.upload_bytes is not None
    return check_uploads(
        bench_input.name,
        bench_input.records,
        result.uploads,
        result.upload_bytes,
        cap_bytes,
    )


def ratio_line(name: str, value: float, goal: str, *, met: bool | None) -> str:
    """Write one ratio with its goal and verdict."""
    if met is None:
        verdict = ""
    elif met:
        verdict = "met"
    else:
        verdict = "NOT met"
    return f"  {name:<30} {value:>7.2f}   {goal:<14} {verdict}".rstrip()


def compare(arguments: argparse.Namespace, bench: Bench) -> dict[str, t.Any]:
    """Run the default mode: all runners on one input, then the upload check."""
    csv_executable = None
    if not arguments.skip_peers:
        csv_executable = peers.ensure_csv_target(arguments.peers_venv)
    orders = make_input(
        bench.work_dir,
        "orders",
        arguments.records,
        arguments.seed,
        variable_sizes=False,
    )
    variable = make_input(
        bench.work_dir,
        "variable-sizes",
        arguments.upload_check_records,
        arguments.seed,
        variable_sizes=True,
    )
    runners = build_runners(bench, arguments.cap_bytes, csv_executable)
    print(
        f"Running {', '.join(runner.label for runner in runners)}; "
        f"{arguments.runs} round(s).",
        flush=True,
    )
    results = run_rounds(
        bench, [(runner, orders) for runner in runners], arguments.runs
    )
    summaries = {
        runner.key: summarise(runner.key, runner.label, results[runner.key, "orders"])
        for runner in runners
    }
    print("Upload check on variable-sizes input:", flush=True)
    variable_result = measure(bench, runners[0], variable, 1)

    upload_checks = [
        upload_check_of(result, orders, arguments.cap_bytes)
        for result in results["target", "orders"]
    ]
    upload_checks.append(
        upload_check_of(variable_result, variable, arguments.cap_bytes)
    )
    ratios = ratios_of(summaries)
    print_comparison(
        orders,
        arguments.runs,
        summaries,
        ratios,
        upload_checks,
        ledger_keys=arguments.ledger_keys,
    )
    return {
        "mode": "compare",
        "input": {"records": orders.records, "bytes": orders.size},
        "runs": arguments.runs,
        "runners": {
            key: {
                "summary": summary.to_json(),
                "runs": [result.to_json() for result in results[key, "orders"]],
            }
            for key, summary in summaries.items()
        },
        "ratios": ratios,
        "upload_checks": [check.to_json() for check in upload_checks],
        "variable_sizes_run": variable_result.to_json(),
        "peers": peers.installed_versions(arguments.peers_venv)
        if csv_executable is not None
        else None,
    }


def ratios_of(summaries: dict[str, Summary]) -> dict[str, dict[str, t.Any]]:
    """Compute the wall-time ratios that the goals are stated in."""
    target = summaries["target"].wall_seconds
    ratios: dict[str, dict[str, t.Any]] = {
        "target_over_raw": {
            "value": target / summaries["raw"].wall_seconds,
            "goal": f"<= {MAX_TARGET_OVER_RAW}",
        },
        "target_over_noop": {
            "value": target / summaries["noop"].wall_seconds,
            "goal": None,
        },
    }
    ratios["target_over_raw"]["met"] = (
        ratios["target_over_raw"]["value"] <= MAX_TARGET_OVER_RAW
    )
    ratios["target_over_noop"]["met"] = None
    if "target-no-ledger" in summaries:
        value = target / summaries["target-no-ledger"].wall_seconds
        ratios["ledger_over_no_ledger"] = {
            "value": value,
            "goal": f"<= {MAX_LEDGER_COST}",
            "met": value <= MAX_LEDGER_COST,
        }
    if "csv" in summaries:
        value = summaries["csv"].wall_seconds / target
        ratios["csv_over_target"] = {
            "value": value,
            "goal": f">= {MIN_CSV_OVER_TARGET}",
            "met": value >= MIN_CSV_OVER_TARGET,
        }
    return ratios


def print_comparison(
    orders: BenchInput,
    runs: int,
    summaries: dict[str, Summary],
    ratios: dict[str, dict[str, t.Any]],
    upload_checks: list[UploadCheck],
    *,
    ledger_keys: int,
) -> None:
    """Print the table of medians, the ratios and the upload checks."""
    print()
    print(
        f"Input: {orders.records:,} records, {orders.size:,} bytes; median of "
        f"{runs} run(s) each, interleaved round-robin."
    )
    if ledger_keys:
        print(
            f"Each target run with the ledger started from a ledger of "
            f"{ledger_keys:,} delivered keys."
        )
    print(format_table(list(summaries.values())))
    print()
    print("Ratios of median wall time:")
    labels = {
        "target_over_raw": "target / raw loop",
        "csv_over_target": "target-csv / target",
        "target_over_noop": "target / no-op SDK target",
        "ledger_over_no_ledger": "target / target, dedup: false",
    }
    for key, label in labels.items():
        if key not in ratios:
            continue
        ratio = ratios[key]
        goal = f"goal {ratio['goal']}" if ratio["goal"] else "(information)"
        print(ratio_line(label, ratio["value"], goal, met=ratio["met"]))
    if "csv_over_target" not in ratios:
        print("  target-csv / target             skipped (--skip-peers)")
    print()
    print("Uploads of the target (the goal allows one more than the fewest):")
    for index, check in enumerate(upload_checks, start=1):
        where = f"run {index}" if index < len(upload_checks) else "once"
        print(f"  {where}, {check.describe()}")


def memory(arguments: argparse.Namespace, bench: Bench) -> dict[str, t.Any]:
    """Run only the target, on the large input and on a tenth of it."""
    large_records = arguments.memory_records
    small_records = max(1, large_records // 10)
    small = make_input(
        bench.work_dir,
        "orders-small",
        small_records,
        arguments.seed,
        variable_sizes=False,
    )
    large = make_input(
        bench.work_dir,
        "orders-large",
        large_records,
        arguments.seed,
        variable_sizes=False,
    )
    runner = target_runner(bench, arguments.cap_bytes)
    results = run_rounds(bench, [(runner, small), (runner, large)], arguments.runs)
    small_runs = results["target", small.name]
    large_runs = results["target", large.name]
    small_rss = max(result.peak_rss_mib for result in small_runs)
    large_rss = max(result.peak_rss_mib for result in large_runs)
    growth = large_rss / small_rss
    under_cap = large_rss < MAX_PEAK_RSS_MIB
    flat = growth <= MAX_RSS_GROWTH

    print()
    print(f"Peak RSS of the target (highest of {arguments.runs} run(s)):")
    for bench_input, runs_of_input, rss in (
        (small, small_runs, small_rss),
        (large, large_runs, large_rss),
    ):
        walls = " ".join(f"{result.wall_seconds:.1f}" for result in runs_of_input)
        print(
            f"  {bench_input.records:>10,} records: {rss:7.1f} MiB   (wall s: {walls})"
        )
    print(
        f"  {large_records:,} records under {MAX_PEAK_RSS_MIB:.0f} MiB: "
        f"{'met' if under_cap else 'NOT met'}"
    )
    print(
        f"  {large_records:,} records at most {MAX_RSS_GROWTH - 1:.0%} above "
        f"{small_records:,}: {growth:.3f}x, {'met' if flat else 'NOT met'}"
    )
    return {
        "mode": "memory",
        "runs": arguments.runs,
        "small": {
            "records": small_records,
            "peak_rss_mib": small_rss,
            "runs": [result.to_json() for result in small_runs],
        },
        "large": {
            "records": large_records,
            "peak_rss_mib": large_rss,
            "runs": [result.to_json() for result in large_runs],
        },
        "growth": growth,
        "goals": {"large_under_cap": under_cap, "growth_within_10_percent": flat},
    }


def latency(arguments: argparse.Namespace, bench: Bench) -> dict[str, t.Any]:
    """Run the target against a sandbox that delays each upload response.

    The no-op SDK target's wall time on the same input stands for the time to
    read the input, so the target's wall time is compared with
    uploads x latency + that time. The target also runs without its ledger,
    to show what the ledger costs when uploads take time.
    """
    orders = make_input(
        bench.work_dir,
        "orders",
        arguments.records,
        arguments.seed,
        variable_sizes=False,
    )
    by_key = {
        runner.key: runner for runner in build_runners(bench, arguments.cap_bytes, None)
    }
    runners = [by_key["target"], by_key["target-no-ledger"], by_key["noop"]]
    results = run_rounds(
        bench, [(runner, orders) for runner in runners], arguments.runs
    )
    target = summarise("target", runners[0].label, results["target", "orders"])
    no_ledger = summarise(
        "target-no-ledger", runners[1].label, results["target-no-ledger", "orders"]
    )
    noop = summarise("noop", runners[2].label, results["noop", "orders"])
    uploads = results["target", "orders"][0].uploads or 0
    waiting = uploads * arguments.latency
    bound = waiting + noop.wall_seconds

    print()
    print(format_table([target, no_ledger, noop]))
    print()
    print(
        f"Latency {arguments.latency} s per upload: target wall "
        f"{target.wall_seconds:.2f} s against {uploads} uploads x "
        f"{arguments.latency} s = {waiting:.2f} s, plus {noop.wall_seconds:.2f} s "
        f"to read the input (no-op SDK target) = {bound:.2f} s "
        f"(ratio {target.wall_seconds / bound:.2f})."
    )
    print(
        f"With the ledger {target.wall_seconds:.2f} s, without it "
        f"{no_ledger.wall_seconds:.2f} s (ratio "
        f"{target.wall_seconds / no_ledger.wall_seconds:.2f})."
    )
    return {
        "mode": "latency",
        "latency_seconds": arguments.latency,
        "runs": arguments.runs,
        "target": target.to_json(),
        "target_no_ledger": no_ledger.to_json(),
        "noop": noop.to_json(),
        "uploads": uploads,
        "uploads_times_latency": waiting,
        "expected_seconds": bound,
        "target_over_expected": target.wall_seconds / bound,
    }


def build_parser() -> argparse.ArgumentParser:
    """Declare the command-line options, grouped by what they set."""
    parser = argparse.ArgumentParser(
        description=(
            "Benchmark target-customergauge-stream against a no-op SDK target, "
            "meltanolabs-target-csv and a raw lxml loop on one generated input."
        )
    )

    workload = parser.add_argument_group("input and runs")
    workload.add_argument(
        "--records", type=int, default=100_000, help="Records in the input."
    )
    workload.add_argument(
        "--runs",
        type=int,
        default=3,
        help="Runs of each runner. The table shows their medians.",
    )
    workload.add_argument(
        "--seed", type=int, default=generate.DEFAULT_SEED, help="Seed of the input."
    )
    workload.add_argument(
        "--upload-check-records",
        type=int,
        default=20_000,
        help="Records in the variable-sizes input of the upload-count check.",
    )
    workload.add_argument(
        "--cap-bytes",
        type=int,
        default=DEFAULT_CAP_BYTES,
        help="The target's max_upload_bytes in bytes, also the upload check's cap.",
    )
    workload.add_argument(
        "--timeout",
        type=float,
        default=DEFAULT_TIMEOUT_SECONDS,
        help="Seconds after which a runner is killed and the benchmark fails.",
    )

    peer_options = parser.add_argument_group("peer targets")
    peer_options.add_argument(
        "--skip-peers",
        action="store_true",
        help="Leave out meltanolabs-target-csv and install nothing.",
    )
    peer_options.add_argument(
        "--peers-venv",
        type=Path,
        default=DEFAULT_PEERS_VENV,
        help="Virtualenv for meltanolabs-target-csv, created when missing.",
    )

    modes = parser.add_mutually_exclusive_group()
    modes.add_argument(
        "--memory-records",
        type=int,
        metavar="N",
        help="Run only the target, on N records and on N/10, and compare peak RSS.",
    )
    modes.add_argument(
        "--latency",
        type=float,
        metavar="SECONDS",
        help=(
            "Run the target and the no-op target against a sandbox that waits "
            "SECONDS before it responds to each upload (sandbox flag --latency)."
        ),
    )

    parser.add_argument(
        "--ledger-keys",
        type=int,
        default=0,
        metavar="N",
        help=(
            "Start each run of the target from a ledger that already contains N "
            "delivered keys of other records, as after months of syncs. "
            "Default: 0, a new ledger."
        ),
    )
    parser.add_argument("--json", type=Path, help="Write every result to this file.")
    return parser


def parse_arguments(argv: t.Sequence[str] | None) -> argparse.Namespace:
    """Read and check the command line."""
    parser = build_parser()
    arguments = parser.parse_args(argv)
    for name in ("records", "runs", "upload_check_records", "memory_records"):
        value = getattr(arguments, name)
        if value is not None and value < 1:
            parser.error(f"--{name.replace('_', '-')} must be at least 1.")
    if arguments.ledger_keys < 0:
        parser.error("--ledger-keys must be 0 or more.")
    if arguments.latency is not None and arguments.latency < 0:
        parser.error("--latency must be 0 or more.")
    if not MIN_CAP_BYTES <= arguments.cap_bytes <= MAX_CAP_BYTES:
        parser.error(
            f"--cap-bytes must be from {MIN_CAP_BYTES:,} to {MAX_CAP_BYTES:,}: the "
            f"target's max_upload_bytes starts at {MIN_CAP_BYTES:,}, and the "
            f"sandbox rejects bodies over {MAX_CAP_BYTES:,} bytes."
        )
    return arguments


def main(argv: t.Sequence[str] | None = None) -> int:
    """Run the benchmark and return the exit status."""
    arguments = parse_arguments(argv)
    started = time.perf_counter()
    machine = describe_machine()
    print(format_machine(machine), flush=True)
    try:
        if arguments.latency is not None and not sandbox_supports_latency():
            msg = (
                "customergauge-stream-sandbox serve has no --latency flag in this "
                "version of the package, so --latency cannot run."
            )
            raise BenchmarkError(msg)
        with tempfile.TemporaryDirectory(prefix="cg-benchmark-") as folder:
            work_dir = Path(folder)
            with SandboxProcess(
                api_key=secrets.token_hex(16),
                store_dir=work_dir / "sandbox-uploads",
                log_path=work_dir / "sandbox.log",
                latency=arguments.latency,
            ) as sandbox:
                bench = Bench(
                    work_dir,
                    sandbox,
                    arguments.timeout,
                    make_ledger_history(work_dir, arguments.ledger_keys),
                )
                if arguments.memory_records is not None:
                    results = memory(arguments, bench)
                elif arguments.latency is not None:
                    results = latency(arguments, bench)
                else:
                    results = compare(arguments, bench)
    except BenchmarkError as exc:
        print(f"Benchmark failed: {exc}", file=sys.stderr)
        return 1

    elapsed = time.perf_counter() - started
    print(f"\nBenchmark took {elapsed:.0f} s.")
    if arguments.json is not None:
        document = {
            "machine": machine,
            "arguments": {
                key: str(value) if isinstance(value, Path) else value
                for key, value in vars(arguments).items()
            },
            "elapsed_seconds": elapsed,
            **results,
        }
        arguments.json.write_text(json.dumps(document, indent=2), encoding="utf-8")
        print(f"Results written to {arguments.json}.")
    return 0


if __name__ == "__main__":
    sys.exit(main())
