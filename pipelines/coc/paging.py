"""Marker paging as a small pure state machine, driven by one short loop (``pagination.py``).

The API pages by ``marker``: the id of the last record of the previous page; the next page
starts after it. The rules, in order:

* the first page's ``total`` is a claim to verify, never a loop bound: a later page reporting
  another total, a negative total, more records kept than the total, or an end reached with
  fewer is an error (``PagingError``: a permanent fault naming ticket, batch and marker);
* a record whose id was already seen is dropped and counted (``duplicates``);
* an unseen id that goes against the walk's direction is an error, and so is a page
  whose last id leaves the marker where it was (the walk would never end);
* the walk goes on by marker until the API says the batch is done. An empty page says so.
  So does a page shorter than the ``limit`` asked for ("at most ``limit`` records a page")
  once the records kept equal the total; before that a short page is not the end (servers
  clamp ``limit``), and after a full page that reaches the total the next page is asked for,
  to see that it is empty. The walk of ``n`` records thus asks ``n // limit + 1`` pages.
  With no total (or ``check_total`` off: a filtered walk, whose total counts every record),
  only an empty page ends it.

Direction: instance pages are documented ascending. For a listing whose order is not
documented, ``ascending=None`` takes the direction from the first two distinct ids.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field

from pipelines.coc.errors import PagingError, Where


@dataclass(kw_only=True)
class MarkerPager:
    """Feed it each page's ids and total; it says which records to keep and what to ask next."""

    start_marker: int = 0
    ascending: bool | None = True
    ticket: str | None = None
    batch: int | None = None
    what: str = "instances"
    #: the page size asked for: a shorter page with the total reached ends the walk
    limit: int | None = None
    #: verify the records against the total (off for a filtered walk: the total is the batch's)
    check_total: bool = True

    marker: int = field(init=False)
    total: int | None = field(init=False, default=None)
    kept: int = field(init=False, default=0)
    duplicates: int = field(init=False, default=0)
    pages: int = field(init=False, default=0)
    done: bool = field(init=False, default=False)
    _seen: set[int] = field(init=False, default_factory=set)
    _last: int | None = field(init=False, default=None)

    def __post_init__(self) -> None:
        self.marker = self.start_marker

    def next_marker(self) -> int | None:
        """The marker of the next request, or None when the walk is over."""
        return None if self.done else self.marker

    def accept(self, ids: Sequence[int], total: int | None) -> list[int]:
        """Record one page; returns the positions of the records to keep, in page order."""
        if self.done:
            raise PagingError(f"{self.what}: page accepted after the walk ended", **self._where())
        self.pages += 1
        self._check_total(total)
        if not ids:
            self.done = True
            self._check_count(end=True)
            return []
        if self._fresh_and_ascending(ids):  # the usual page: every check at C speed
            self._seen.update(ids)
            self._last = ids[-1]
            keep = list(range(len(ids)))
        else:
            keep = self._accept_one_by_one(ids)
        self.kept += len(keep)
        self._check_count(end=False)
        last = ids[-1]
        if self._verified() and self.kept == self.total and len(ids) < (self.limit or 0):
            self.done = True  # a short page with nothing missing: the API's last page
            return keep
        # A page of already-seen ids can end behind the marker: that is no advance either
        # (the walk would cycle), so compare against the walk's direction, not just equality.
        behind = (
            self.pages > 1 and self.ascending is not None and (last < self.marker) == self.ascending
        )
        if last == self.marker or behind:
            raise PagingError(
                f"{self.what}: the marker does not advance (the page after marker "
                f"{self.marker} ends at id {last})",
                **self._where(),
            )
        self.marker = last
        return keep

    def _fresh_and_ascending(self, ids: Sequence[int]) -> bool:
        """Strictly ascending and past every id seen so far, so none is a repeat: what the
        one-by-one path would keep whole, decided with C-speed checks."""
        if self.ascending is not True:
            return False
        floor = self._last if self._last is not None else (self.marker if self.pages > 1 else None)
        if floor is not None and ids[0] <= floor:
            return False
        ids = list(ids)
        return ids == sorted(ids) and len(set(ids)) == len(ids)

    def _accept_one_by_one(self, ids: Sequence[int]) -> list[int]:
        keep: list[int] = []
        for pos, rid in enumerate(ids):
            if rid in self._seen:
                self.duplicates += 1
                continue
            self._check_order(rid)
            self._seen.add(rid)
            self._last = rid
            keep.append(pos)
        return keep

    def _verified(self) -> bool:
        return self.check_total and self.total is not None

    def _check_count(self, *, end: bool) -> None:
        """The records kept against the stated total: never more, and all of them at the end."""
        if not self._verified():
            return
        assert self.total is not None
        if self.kept > self.total or (end and self.kept < self.total):
            raise PagingError(
                f"{self.what}: the pages contradict the stated total: {self.kept} records "
                f"{'by the last page' if end else 'so far'}, total {self.total}",
                **self._where(),
            )

    def _check_total(self, total: int | None) -> None:
        if total is None:
            return
        if total < 0:
            raise PagingError(f"{self.what}: negative total ({total})", **self._where())
        if self.total is None:
            if self.pages > 1 and self.kept:
                raise PagingError(
                    f"{self.what}: total appeared mid-walk ({total})", **self._where()
                )
            self.total = total
        elif total != self.total:
            raise PagingError(
                f"{self.what}: total changed mid-walk from {self.total} to {total}",
                **self._where(),
            )

    def _check_order(self, rid: int) -> None:
        last = self._last
        if last is None:
            if self.ascending is True and self.pages > 1 and rid <= self.marker:
                self._backwards(rid)
            return
        if self.ascending is None:
            self.ascending = rid > last
        if (rid <= last) if self.ascending else (rid >= last):
            self._backwards(rid)

    def _backwards(self, rid: int) -> None:
        raise PagingError(
            f"{self.what}: ids go backwards (id {rid} after id {self._last}, "
            f"{'ascending' if self.ascending else 'descending'} walk)",
            **self._where(),
        )

    def _where(self) -> Where:
        return {"ticket": self.ticket, "batch": self.batch, "marker": self.marker}
