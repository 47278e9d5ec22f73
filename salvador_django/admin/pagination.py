"""A paginator that never counts more rows than a page list can use."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from django.core.paginator import Paginator
from django.utils.functional import cached_property

if TYPE_CHECKING:
    AnyPaginator = Paginator[Any]
else:  # generic only in the type stubs
    AnyPaginator = Paginator

#: Rows counted at most: 200 pages of 50. Beyond it the list says "more than".
COUNT_CAP = 10_000


class CappedCountPaginator(AnyPaginator):
    """Counts at most :data:`COUNT_CAP` rows, so a table of millions lists in milliseconds.

    ``COUNT(*)`` of a large table (or of a filter matching most of it) reads every
    matching row; ``COUNT(*)`` of a ``LIMIT`` subquery stops at the cap.
    """

    cap = COUNT_CAP

    @cached_property
    def counted(self) -> int:
        """Rows counted, up to one more than the cap."""
        object_list: Any = self.object_list
        # Only the ids: the list's annotations (the beginning of each error) are not
        # worth computing for rows that are only counted.
        return int(object_list.order_by().values("pk")[: self.cap + 1].count())

    @cached_property
    def count(self) -> int:
        return min(self.counted, self.cap)

    @property
    def capped(self) -> bool:
        """True when there are more rows than :attr:`count` says."""
        return self.counted > self.cap


class CountedPaginator(AnyPaginator):
    """Told its count (counted already, e.g. by a ``GROUP BY`` of statuses): counts nothing."""

    def __init__(self, object_list: Any, per_page: int, *, count: int) -> None:
        super().__init__(object_list, per_page)
        self.known_count = count

    @cached_property
    def count(self) -> int:
        return self.known_count
