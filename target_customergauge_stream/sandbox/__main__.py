"""Run the sandbox with `python -m target_customergauge_stream.sandbox`."""

from __future__ import annotations

import sys

from target_customergauge_stream.sandbox.cli import main

sys.exit(main())
