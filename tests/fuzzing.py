"""Running a property under hypothesis for a bounded number of inputs in CI, or for a time
budget from ``scripts/fuzz.py --minutes N``.

In CI each fuzz test explores ``CHENILLES_FUZZ_EXAMPLES`` inputs (default below: seconds).
``scripts/fuzz.py`` sets ``CHENILLES_FUZZ_SECONDS``: the test then keeps starting new
searches (new random seeds, each of ``CHENILLES_FUZZ_EXAMPLES`` inputs) until its share of
the budget is spent. A failure is shrunk to a minimal input and reported by hypothesis.
"""

from __future__ import annotations

import os
import time
from collections.abc import Callable
from typing import TypeVar

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

T = TypeVar("T")
DEFAULT_EXAMPLES = 150


def examples(default: int = DEFAULT_EXAMPLES) -> int:
    return int(os.environ.get("CHENILLES_FUZZ_EXAMPLES", default))


def budget() -> float:
    """Seconds this fuzz test may run for (0: one bounded search, the CI case)."""
    return float(os.environ.get("CHENILLES_FUZZ_SECONDS", "0"))


def explore(
    prop: Callable[[T], None], strategy: st.SearchStrategy[T], default: int = DEFAULT_EXAMPLES
) -> int:
    """Check ``prop`` on inputs drawn from ``strategy``; return how many searches ran."""

    @settings(
        max_examples=examples(default),
        deadline=None,
        database=None,
        derandomize=False,
        suppress_health_check=list(HealthCheck),
    )
    @given(strategy)
    def search(value: T) -> None:
        prop(value)

    end = time.monotonic() + budget()
    runs = 0
    while True:
        search()
        runs += 1
        if time.monotonic() >= end:
            return runs
