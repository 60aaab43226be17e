"""MarkerPager: the pure paging state machine, driven by synthetic servers."""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence

import pytest
from hypothesis import example, given, settings
from hypothesis import strategies as st

from pipelines.coc.errors import PagingError
from pipelines.coc.paging import MarkerPager

Page = tuple[list[int], int | None]
Server = Callable[[int], Page]


def ascending_server(
    ids: Sequence[int],
    page_size: int,
    *,
    report_total: bool = True,
    inclusive: bool = False,
) -> Server:
    """Serves "ids > marker" (or ">= marker" when inclusive), at most ``page_size`` a page."""

    def serve(marker: int) -> Page:
        rows = [i for i in ids if (i >= marker if inclusive else i > marker)][:page_size]
        return rows, (len(ids) if report_total else None)

    return serve


def drive(pager: MarkerPager, serve: Server, *, max_requests: int = 10_000) -> tuple[list, list]:
    """The client's loop: returns (records kept, markers asked for)."""
    kept: list[int] = []
    asked: list[int] = []
    while (marker := pager.next_marker()) is not None:
        assert len(asked) < max_requests, "the walk does not end"
        if pager.total is not None and asked:
            assert pager.kept <= pager.total, "asked beyond the total"
        asked.append(marker)
        ids, total = serve(marker)
        kept.extend(ids[i] for i in pager.accept(ids, total))
    return kept, asked


def _cumulative(gaps: list[int]) -> list[int]:
    ids, at = [], 0
    for gap in gaps:
        at += gap
        ids.append(at)
    return ids


#: strictly increasing positive ids with random gaps; the size drawn uniformly in 0..500
id_lists = (
    st.integers(0, 500)
    .flatmap(lambda n: st.lists(st.integers(1, 1_000), min_size=n, max_size=n))
    .map(_cumulative)
)


@settings(max_examples=150, deadline=None)
@given(
    ids=id_lists,
    limit=st.integers(1, 50),
    clamp_below=st.integers(0, 49),
)
@example(ids=[], limit=50, clamp_below=0)
@example(ids=list(range(1, 501)), limit=50, clamp_below=0)
@example(ids=list(range(7, 3500, 7)), limit=50, clamp_below=20)
@example(ids=list(range(1, 101)), limit=100 // 2, clamp_below=49)
def test_walk_returns_each_record_once_and_stops_on_the_first_page_that_is_not_full(
    ids: list[int], limit: int, clamp_below: int
) -> None:
    clamp = max(1, limit - clamp_below)  # a server clamp at or below the limit asked for
    page = min(limit, clamp)
    pager = MarkerPager(ticket="T1", batch=3, limit=limit)

    kept, asked = drive(pager, ascending_server(ids, page))

    assert kept == ids
    if clamp < limit and ids:
        # every page is short of the limit: the total says when the last one came
        assert len(asked) == math.ceil(len(ids) / page)
    else:
        # the page after the last full one (empty when the last page was full)
        assert len(asked) == len(ids) // page + 1
    assert asked[0] == 0
    # each next marker is the last id of the page before
    assert asked[1:] == [ids[k * page - 1] for k in range(1, len(asked))]
    assert pager.done and pager.duplicates == 0
    assert pager.kept == len(ids) and pager.pages == len(asked)
    assert pager.next_marker() is None


@settings(max_examples=60, deadline=None)
@given(ids=id_lists.filter(bool), page=st.integers(2, 50))
def test_inclusive_server_duplicates_are_dropped_and_counted(ids: list[int], page: int) -> None:
    pager = MarkerPager(ticket="T1", batch=1, limit=page)

    kept, asked = drive(pager, ascending_server(ids, page, inclusive=True))

    assert kept == ids
    # every page after the first starts with the marker's record again
    assert pager.duplicates == len(asked) - 1


@settings(max_examples=60, deadline=None)
@given(ids=id_lists, page=st.integers(1, 50))
def test_without_total_the_walk_ends_on_an_empty_page(ids: list[int], page: int) -> None:
    pager = MarkerPager(ticket="T1", batch=1)

    kept, asked = drive(pager, ascending_server(ids, page, report_total=False))

    assert kept == ids
    # a short page is not the end: only an empty page is
    assert len(asked) == math.ceil(len(ids) / page) + 1
    assert pager.total is None


def test_empty_batch_with_total_zero_takes_one_request() -> None:
    pager = MarkerPager()
    assert pager.accept([], 0) == []
    assert pager.done and pager.next_marker() is None
    assert pager.pages == 1


def test_short_page_before_total_is_not_the_end() -> None:
    pager = MarkerPager(limit=50)
    assert pager.accept([10, 20], 5) == [0, 1]
    assert pager.next_marker() == 20
    assert pager.accept([30, 40, 50], 5) == [0, 1, 2]
    assert pager.done


def test_empty_page_before_the_total_is_a_permanent_fault_naming_the_marker() -> None:
    pager = MarkerPager(ticket="T1", batch=2, limit=50)
    pager.accept([1, 2, 3], 10)
    with pytest.raises(PagingError, match="contradict the stated total") as info:
        pager.accept([], 10)
    text = str(info.value)
    assert "3 records by the last page, total 10" in text
    assert "ticket=T1" in text and "batch=2" in text and "marker=3" in text


@pytest.mark.parametrize("total", [-5, -1])
def test_a_negative_total_is_a_permanent_fault_on_the_first_page(total: int) -> None:
    pager = MarkerPager(ticket="T1", batch=2, limit=50)
    with pytest.raises(PagingError, match=f"negative total \\({total}\\)") as info:
        pager.accept([1, 2, 3], total)
    assert "ticket=T1" in str(info.value) and "marker=0" in str(info.value)


def test_a_total_smaller_than_the_records_received_is_a_fault_at_once() -> None:
    pager = MarkerPager(ticket="T1", batch=2, limit=3)
    pager.accept([1, 2, 3], 4)
    with pytest.raises(PagingError, match="6 records so far, total 4") as info:
        pager.accept([4, 5, 6], 4)
    assert "marker=3" in str(info.value)


def test_records_past_a_total_reached_on_a_full_page_are_a_fault() -> None:
    # the page after a full one that reached the total must be empty
    pager = MarkerPager(ticket="T1", batch=2, limit=3)
    assert pager.accept([1, 2, 3], 3) == [0, 1, 2]
    assert pager.next_marker() == 3
    with pytest.raises(PagingError, match="4 records so far, total 3"):
        pager.accept([4], 3)


def test_a_short_page_reaching_the_total_ends_the_walk() -> None:
    pager = MarkerPager(limit=50)
    assert pager.accept([1, 2, 3], 3) == [0, 1, 2]
    assert pager.done and pager.pages == 1


def test_a_filtered_walk_ignores_the_batch_total_and_ends_on_an_empty_page() -> None:
    pager = MarkerPager(limit=50, check_total=False)
    pager.accept([4, 9], 10)  # two of the batch's ten records have the status asked for
    assert pager.next_marker() == 9
    assert pager.accept([], 10) == [] and pager.done


@settings(max_examples=100, deadline=None)
@given(
    ids=id_lists.filter(bool),
    page=st.integers(1, 50),
    lie=st.integers(-1_000, 1_000).filter(lambda d: d != 0),
)
def test_any_total_other_than_the_records_is_a_permanent_fault(
    ids: list[int], page: int, lie: int
) -> None:
    """Whatever the stated total gets wrong (more, fewer, negative), the walk never ends
    quietly with what it has: it raises, naming ticket, batch and marker."""
    pager = MarkerPager(ticket="T1", batch=5, limit=page)
    total = len(ids) + lie
    with pytest.raises(PagingError) as info:
        drive(pager, lambda marker: (*ascending_server(ids, page)(marker)[:1], total))
    assert "ticket=T1" in str(info.value) and "batch=5" in str(info.value)
    assert "marker=" in str(info.value)


def test_stuck_marker_names_ticket_batch_and_marker() -> None:
    pager = MarkerPager(ticket="tick-42", batch=7)
    pager.accept([5, 6, 7], 100)
    with pytest.raises(PagingError) as info:
        pager.accept([5, 6, 7], 100)  # the same page again
    text = str(info.value)
    assert "tick-42" in text and "batch=7" in text and "marker=7" in text
    assert info.value.ticket == "tick-42" and info.value.batch == 7 and info.value.marker == 7
    assert pager.duplicates == 3


def test_server_ignoring_the_marker_is_caught_on_the_second_page() -> None:
    ids = list(range(1, 200))
    pager = MarkerPager(ticket="T", batch=1)
    with pytest.raises(PagingError, match="does not advance"):
        drive(pager, lambda marker: (ids[:50], len(ids)))
    assert pager.pages == 2


def test_page_of_old_ids_ending_behind_the_marker_is_no_advance() -> None:
    # a server cycling through already-served ids must not walk forever
    pages = {0: [1, 2, 3], 3: [1, 2], 2: [3]}
    pager = MarkerPager(ticket="T", batch=1)
    with pytest.raises(PagingError, match="does not advance") as info:
        drive(pager, lambda marker: (pages[marker], None), max_requests=10)
    assert "marker=3" in str(info.value)


def test_ids_going_backwards_raise() -> None:
    pager = MarkerPager(ticket="T9", batch=4)
    pager.accept([10, 20, 30], 9)
    with pytest.raises(PagingError, match="backwards") as info:
        pager.accept([25, 40], 9)
    assert "ticket=T9" in str(info.value) and "marker=30" in str(info.value)


def test_ids_going_backwards_within_a_page_raise() -> None:
    pager = MarkerPager()
    with pytest.raises(PagingError, match="backwards"):
        pager.accept([10, 30, 20], 5)


def test_total_changing_mid_walk_raises() -> None:
    pager = MarkerPager(ticket="T1", batch=1)
    pager.accept([1, 2], 10)
    with pytest.raises(PagingError, match="total changed") as info:
        pager.accept([3, 4], 11)
    assert "batch=1" in str(info.value) and "marker=2" in str(info.value)


def test_total_appearing_mid_walk_raises() -> None:
    pager = MarkerPager()
    pager.accept([1, 2], None)
    with pytest.raises(PagingError, match="mid-walk"):
        pager.accept([3, 4], 4)


def test_page_after_the_end_raises() -> None:
    pager = MarkerPager(limit=50)
    pager.accept([1], 1)
    with pytest.raises(PagingError):
        pager.accept([2], 1)


def test_start_marker_is_the_first_request() -> None:
    pager = MarkerPager(start_marker=500)
    assert pager.next_marker() == 500
    kept, asked = drive(pager, ascending_server([100, 600, 700], 1, report_total=False))
    assert kept == [600, 700] and asked == [500, 600, 700]


@settings(max_examples=60, deadline=None)
@given(ids=id_lists, page=st.integers(1, 50), descending=st.booleans())
def test_undetermined_direction_follows_the_server(
    ids: list[int], page: int, descending: bool
) -> None:
    """The ticket list: order undocumented, direction taken from the ids themselves."""
    order = sorted(ids, reverse=descending)

    def serve(marker: int) -> Page:
        # the first request carries no marker (the pager's 0)
        rest = order if marker == 0 else order[order.index(marker) + 1 :]
        return rest[:page], len(order)

    pager = MarkerPager(ascending=None, what="ticket list", limit=page)
    kept, asked = drive(pager, serve)

    assert kept == order
    assert len(asked) == len(order) // page + 1
    if len(order) >= 2:
        assert pager.ascending is (not descending)


def test_descending_walk_detects_ids_going_up() -> None:
    pager = MarkerPager(ascending=None, what="ticket list", ticket=None)
    pager.accept([90, 80, 70], 9)
    assert pager.ascending is False
    with pytest.raises(PagingError, match="backwards"):
        pager.accept([75, 60], 9)


def test_descending_page_of_old_ids_behind_the_marker_is_no_advance() -> None:
    pager = MarkerPager(ascending=None)
    pager.accept([90, 80, 70], None)
    with pytest.raises(PagingError, match="does not advance"):
        pager.accept([90, 80], None)
