"""What a person sees of a running session: a live table on a terminal, a plain line at a fixed
interval elsewhere (a log file, CI), and every sample in the run's JSONL metrics log."""

from __future__ import annotations

import json
import sys
import time
from pathlib import Path
from typing import IO, Any

PLAIN_REPORT_S = 10.0  # without a terminal: a progress line this often
FIELDS = (("env_steps", "steps", "{:d}"), ("episodes", "episodes", "{:d}"),
          ("success_20", "success (last 20)", "{:.2f}"),
          ("intervention_rate_20", "intervention rate", "{:.2f}"),
          ("updates", "updates", "{:d}"), ("updates_per_s", "updates/s", "{:.1f}"),
          ("policy_lag", "policy lag (versions)", "{:d}"),
          ("sync_latency_s", "sync latency (s)", "{:.3f}"),
          ("buffer_steps", "buffer (steps)", "{:d}"))


def _shown(sample: dict[str, Any], key: str, form: str) -> str:
    value = sample.get(key)
    return "-" if value is None else form.format(value)


class LiveDisplay:
    """`show(sample)` as often as there is news; the terminal gets a rich table, anything else a
    line every `PLAIN_REPORT_S`; `metrics.jsonl` gets every sample."""

    def __init__(self, metrics_path: Path, title: str, budget: int,
                 stream: IO[str] | None = None) -> None:
        self.stream = stream or sys.stderr
        self.budget, self.title = budget, title
        self._log = metrics_path.open("a")
        self._said = 0.0
        self._live: Any = None
        if self.stream.isatty():
            from rich.console import Console
            from rich.live import Live

            self._live = Live(console=Console(file=self.stream), refresh_per_second=2)
            self._live.start()

    def show(self, sample: dict[str, Any]) -> None:
        self._log.write(json.dumps(sample) + "\n")
        self._log.flush()
        if self._live is not None:
            self._live.update(self._table(sample), refresh=True)
        elif time.monotonic() - self._said >= PLAIN_REPORT_S:
            self._said = time.monotonic()
            print(f"steps {sample['env_steps']}/{self.budget} " + " ".join(
                f"{key}={_shown(sample, key, form)}" for key, _, form in FIELDS[1:]), flush=True)

    def _table(self, sample: dict[str, Any]) -> Any:
        from rich.table import Table

        table = Table(title=f"{self.title}: {sample['env_steps']}/{self.budget} steps",
                      show_header=False)
        for key, name, form in FIELDS:
            table.add_row(name, _shown(sample, key, form))
        return table

    def close(self) -> None:
        if self._live is not None:
            self._live.stop()
        self._log.close()
