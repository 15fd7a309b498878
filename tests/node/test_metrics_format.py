"""The text ``/metrics`` renders, without a node: what a standby (or any scrape) shows of
the node's load, and that counters keep their precision however long the node runs."""

from __future__ import annotations

from chenilles_hub.node.api.metrics import render


def _samples(text: str) -> dict[str, str]:
    return {
        line.split()[0]: line.split()[1]
        for line in text.splitlines()
        if line and not line.startswith("#")
    }


def test_the_load_counters_keep_every_digit_of_a_long_running_node() -> None:
    # A week of a busy worker: 604,800 s; a rate over a minute needs the fractions.
    load = {
        "busy_seconds": 604_812.345678,
        "busy_cpu_seconds": 500_000.125,
        "items_handled": 123_456_789,
        "write_seconds": 0.000125,
    }
    samples = _samples(render(None, {"receive_batches": 7}, 0, "leader", load=load))
    assert samples["chenilles_worker_busy_seconds_total"] == "604812.345678"
    assert samples["chenilles_worker_cpu_seconds_total"] == "500000.125"
    assert samples["chenilles_job_items_total"] == "123456789"  # a count, no fraction
    assert float(samples["chenilles_checkpoint_write_seconds_total"]) == 0.000125
    assert samples["chenilles_receive_batches_total"] == "7"


def test_a_node_that_has_done_nothing_shows_its_load_as_zero() -> None:
    samples = _samples(render(None, {}, 0, "standby", chain_polls={"evm": 0.0123456789}))
    for name in (
        "chenilles_worker_busy_seconds_total",
        "chenilles_worker_cpu_seconds_total",
        "chenilles_checkpoint_write_seconds_total",
    ):
        assert float(samples[name]) == 0.0
    assert samples["chenilles_job_items_total"] == "0"
    assert float(samples['chenilles_chain_poll_seconds{chain="evm"}']) == 0.0123456789
