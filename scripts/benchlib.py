"""Shared helpers of the benchmark scripts: where the corpus is, the test helpers they reuse, and
one description of the machine they ran on.

The scripts import it as `from benchlib import machine`: `python scripts/bench_x.py` puts
scripts/ first on sys.path. The `metric_cards` package itself comes from the installed project
(`pip install -e .`, done by scripts/setup.sh).
"""

from __future__ import annotations

import os
import platform
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
TESTS = REPO / "tests"
# The 240 real DeepHermes-3 3B completions (tests/data/README.md says where they come from).
CORPUS = TESTS / "data" / "deephermes3_3b_metric_cards.jsonl"


def use_test_helpers() -> None:
    """Make tests/ importable (fake_openai, tiny_tokenizer, serve_harness, ...): the benchmarks
    drive the same stand-in servers as the tests."""
    if str(TESTS) not in sys.path:
        sys.path.insert(0, str(TESTS))


def cpu_model() -> str:
    """The CPU's "model name" from /proc/cpuinfo (else platform.processor(), else "unknown CPU")."""
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown CPU"


def machine_info() -> dict[str, str]:
    """CPU count, CPU model, Python implementation and version, OS platform string."""
    return {
        "nproc": str(os.cpu_count()),
        "cpu": cpu_model(),
        "python": f"{platform.python_implementation()} {platform.python_version()}",
        "platform": platform.platform(),
    }


def machine(info: dict[str, str] | None = None) -> str:
    """One line: "nproc: 2; cpu: ...; python: CPython 3.11.7; platform: ..." (of `info` if given,
    e.g. machine_info() with extra entries, else of machine_info())."""
    return "; ".join(f"{k}: {v}" for k, v in (machine_info() if info is None else info).items())
