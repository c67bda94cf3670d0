"""Faults the sandbox can inject: a script for the next requests, or random ones.

Each upload request takes one step: the next one of the script while it
lasts, otherwise a random fault with probability `fault_rate`, otherwise
"ok" (normal handling). Steps:

| step | what the client sees |
|---|---|
| ok | normal handling |
| 400, 401, 408, 500, 502, 503, 504 | that status with the documented error body |
| 429 | 429 with `Retry-After: 1` (seconds form) |
| 429-date | 429 with `Retry-After` as an HTTP date two seconds ahead |
| error-200 | HTTP 200 with an `Error` body (code 400003) |
| already-processed | HTTP 400 with code 400103 |
| garbage | HTTP 200 with a body that is neither JSON nor XML |
| reset | the connection is reset before any response; nothing is stored |
| stall | no answer for `stall_seconds`, then a reset; nothing is stored |
| stall-accept | no answer for `stall_seconds`, then normal handling: the |
|              | upload is stored although the client has likely timed out |
"""

from __future__ import annotations

import random
import threading
import typing as t

from target_customergauge_stream.sandbox.contract import (
    ALREADY_PROCESSED,
    FAILED_TO_INSERT,
    INVALID_API_KEY,
    REQUIRED_FIELD_MISSING,
)

# Steps answered with an error body: HTTP status, error code and message.
ERROR_STEPS: dict[str, tuple[int, int, str]] = {
    "400": (400, REQUIRED_FIELD_MISSING, "Required field not supplied"),
    "401": (401, INVALID_API_KEY, "Invalid API Key"),
    "408": (408, 408, "Request timeout"),
    "429": (429, 429, "Too many requests"),
    "429-date": (429, 429, "Too many requests"),
    "500": (500, 500, "Internal server error"),
    "502": (502, 502, "Bad gateway"),
    "503": (503, 503, "Service unavailable"),
    "504": (504, 504, "Gateway timeout"),
    "error-200": (200, FAILED_TO_INSERT, "Failed to insert record"),
    "already-processed": (
        400,
        ALREADY_PROCESSED,
        "This upload has already been processed",
    ),
}
CONNECTION_STEPS = ("garbage", "reset", "stall", "stall-accept")
ALL_STEPS = ("ok", *ERROR_STEPS, *CONNECTION_STEPS)


def parse_steps(text: str) -> list[str]:
    """Read a comma-separated list of steps such as 'ok,500,ok,401'.

    Raises:
        ValueError: If a step is unknown.
    """
    steps = [step.strip() for step in text.split(",") if step.strip()]
    for step in steps:
        if step not in ALL_STEPS:
            msg = f"Unknown fault step {step!r}; use one of {', '.join(ALL_STEPS)}."
            raise ValueError(msg)
    return steps


class FaultPlan:
    """Decide, request by request, which step the sandbox takes."""

    def __init__(
        self,
        script: t.Sequence[str] = (),
        *,
        fault_rate: float = 0.0,
        faults: t.Sequence[str] = (),
        seed: int | None = None,
    ) -> None:
        for step in [*script, *faults]:
            if step not in ALL_STEPS:
                msg = f"Unknown fault step {step!r}; use one of {', '.join(ALL_STEPS)}."
                raise ValueError(msg)
        if not 0.0 <= fault_rate <= 1.0:
            msg = f"fault_rate must be between 0 and 1, not {fault_rate}."
            raise ValueError(msg)
        if fault_rate > 0 and not faults:
            msg = "A fault_rate above 0 needs at least one fault step to choose from."
            raise ValueError(msg)
        self.script = list(script)
        self.fault_rate = fault_rate
        self.faults = list(faults)
        self._random = random.Random(seed)  # noqa: S311 - test faults, not secrets
        self._lock = threading.Lock()

    def next_step(self) -> str:
        """Return the step for the next upload request."""
        with self._lock:
            if self.script:
                return self.script.pop(0)
            if self.fault_rate and self._random.random() < self.fault_rate:
                return self._random.choice(self.faults)
            return "ok"
