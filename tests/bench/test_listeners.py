"""The bench's probes: each bench message read is timed once, also when a read cuts it short."""

from __future__ import annotations

from bench.listeners import Counter


def _frame(sent_ns: int, seq: int) -> bytes:
    return (
        b'\x81\x7e\x01\x2c{"type":"server:new_message","message":{"content":"bench:'
        + f"{sent_ns}:0:{seq} xxx".encode()
        + b'"}}'
    )


def _probe() -> Counter:
    counter = Counter(probe=True)
    counter.measuring = True
    return counter


def _read_in_two(counter: Counter, data: bytes, cut: int) -> None:
    """Two reads: `data[:cut]` at 5,000 ns, the rest at 7,000 ns, then an unrelated read."""
    carry = counter.time(data[:cut], received_ns=5_000)
    carry = counter.time(carry + data[cut:], received_ns=7_000)
    counter.time(carry + b"\x89\x00", received_ns=9_000)


def test_a_probe_times_every_message_in_a_read() -> None:
    counter = _probe()
    data = _frame(1_000, 1) + _frame(2_000, 2)
    counter.time(data, received_ns=5_000)
    assert counter.latencies_ns == [4_000, 3_000]
    assert counter.count(data) == 2


def test_a_send_time_cut_by_the_read_boundary_is_timed_once_with_the_next_read() -> None:
    counter = _probe()
    data = _frame(1_000, 1) + _frame(2_000, 2)
    _read_in_two(counter, data, cut=data.index(b"2000") + 2)
    assert counter.latencies_ns == [4_000, 5_000]


def test_a_marker_cut_by_the_read_boundary_is_found_with_the_next_read() -> None:
    counter = _probe()
    data = _frame(1_000, 1) + _frame(2_000, 2)
    second = data.index(b"bench:", data.index(b"2000") - 10)
    _read_in_two(counter, data, cut=second + 2)
    assert counter.latencies_ns == [4_000, 5_000]


def test_every_cut_times_each_message_exactly_once() -> None:
    data = _frame(1_000, 1) + _frame(2_000, 2)
    for cut in range(1, len(data)):
        counter = _probe()
        _read_in_two(counter, data, cut)
        assert sorted(counter.latencies_ns) in ([3_000, 4_000], [4_000, 5_000], [5_000, 6_000])


def test_nothing_is_timed_outside_the_measuring_window() -> None:
    counter = Counter(probe=True)
    counter.time(_frame(1_000, 1), received_ns=5_000)
    assert counter.latencies_ns == []
