"""The pure integration maths under the GPU meter."""

from __future__ import annotations

import pytest

from nbcost.meters.gpu.integrate import CumulativeSeries, PeakSeries, SpanSet


def test_a_sample_covers_the_period_before_it_and_windows_clip_it():
    busy = CumulativeSeries()
    busy.add_span(10.0, 10.2, 1.0)  # a 100% sample stamped 10.2
    busy.add_span(10.2, 10.4, 0.5)
    assert busy.between(10.0, 10.4) == pytest.approx(0.3)
    assert busy.between(10.1, 10.3) == pytest.approx(0.1 + 0.05)
    assert busy.between(9.0, 10.1) == pytest.approx(0.1)
    assert busy.between(10.3, 10.3) == 0.0
    assert busy.between(10.4, 10.0) == 0.0


def test_time_nobody_sampled_adds_nothing():
    busy = CumulativeSeries()
    busy.add_span(10.0, 10.2, 1.0)
    busy.add_span(20.0, 20.2, 1.0)  # samples between were lost: the gap stays flat
    assert busy.between(10.2, 20.0) == 0.0
    assert busy.between(0.0, 100.0) == pytest.approx(0.4)


def test_overlapping_and_stale_spans_are_clipped_not_counted_twice():
    busy = CumulativeSeries()
    busy.add_span(10.0, 10.4, 1.0)
    busy.add_span(10.2, 10.6, 1.0)  # overlaps: only (10.4, 10.6] is new
    busy.add_span(10.0, 10.3, 1.0)  # entirely old
    assert busy.between(0, 100) == pytest.approx(0.6)
    assert busy.last_time == 10.6
    assert busy.last_rate == pytest.approx(1.0)


@pytest.mark.parametrize(
    ("align", "inside_start", "inside_end"),
    [("end", 0.0, 0.05), ("start", 0.05, 0.0), ("uniform", 0.025, 0.025)],
)
def test_a_partly_busy_sample_can_be_packed_at_either_end(align, inside_start, inside_end):
    busy = CumulativeSeries()
    busy.add_block(10.0, 10.2, 0.05, align)  # 25% busy
    assert busy.between(10.0, 10.2) == pytest.approx(0.05)
    assert busy.between(10.0, 10.1) == pytest.approx(inside_start)
    assert busy.between(10.1, 10.2) == pytest.approx(inside_end)


def test_appended_totals_never_go_down_and_interpolate():
    energy = CumulativeSeries()
    energy.append(1.0, 100.0)
    energy.append(2.0, 200.0)
    energy.append(1.5, 999.0)  # out of order: dropped
    energy.append(3.0, 150.0)  # a smaller total is held level
    assert energy.value_at(1.25) == pytest.approx(125.0)
    assert energy.between(0.0, 1.0) == 0.0
    assert energy.between(1.5, 3.0) == pytest.approx(50.0)
    assert len(energy) == 3


def test_peak_counts_the_reading_in_force_at_the_window_start():
    memory = PeakSeries()
    memory.append(1.0, 5.0)
    memory.append(2.0, 9.0)
    memory.append(3.0, 1.0)
    assert memory.peak_between(1.5, 1.9) == 5.0  # no reading inside: the one before holds
    assert memory.peak_between(1.5, 2.5) == 9.0
    assert memory.peak_between(3.5, 4.0) == 1.0
    assert memory.peak == 9.0
    assert PeakSeries().peak_between(0, 1) is None


def test_spans_merge_and_answer_overlap():
    spans = SpanSet()
    assert not spans
    spans.add(1.0, 2.0)
    spans.add(1.5, 3.0)
    spans.add(5.0, 6.0)
    assert spans.overlaps(2.5, 2.6)
    assert spans.overlaps(0.0, 1.0)
    assert not spans.overlaps(3.1, 4.9)
    assert not spans.overlaps(6.1, 7.0)
    assert spans.seconds_within(0.0, 10.0) == pytest.approx(3.0)
