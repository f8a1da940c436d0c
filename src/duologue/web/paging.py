"""A long run's page shows its messages a page at a time.

A run of up to PAGE_MESSAGES messages is one page, as it always was. A longer
one is cut into pages of PAGE_MESSAGES messages by message number (page k holds
messages (k − 1)·PAGE_MESSAGES + 1 .. k·PAGE_MESSAGES), chosen by `?page=k`; a
finished run opens on its first page, a live one on its last (where new
messages arrive). Whatever is linked by message number (the theme strip's
cells, the loop onset, the attractor's entry) links to the page that holds it:
`href(index, anchor)` is `#anchor` on that page and `?page=k#anchor` from any
other; `?message=N` redirects to N's page (`redirect_for`).
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass

PAGE_MESSAGES = 200


@dataclass(frozen=True)
class MessagePages:
    total: int  # messages in the run
    page: int  # the page shown, from 1
    per_page: int = PAGE_MESSAGES

    @classmethod
    def of(
        cls, total: int, params: Mapping[str, str], live: bool = False, per_page: int = PAGE_MESSAGES
    ) -> MessagePages:
        """The page `?page=` asks for (clamped to the pages there are); without one, the first (the
        last for a live run)."""
        pages = cls(total, 1, per_page).pages
        page = int_param(params.get("page"))
        if page is None:
            page = pages if live else 1
        return cls(total, min(max(page, 1), pages), per_page)

    @property
    def pages(self) -> int:
        return max(1, math.ceil(self.total / self.per_page))

    @property
    def paged(self) -> bool:
        return self.pages > 1

    @property
    def first(self) -> int:
        """The first message number on this page."""
        return (self.page - 1) * self.per_page + 1

    @property
    def last(self) -> int:
        """The last message number on this page."""
        return min(self.page * self.per_page, self.total)

    @property
    def is_last(self) -> bool:
        return self.page == self.pages

    def page_of(self, index: int) -> int:
        return min(max(1, math.ceil(index / self.per_page)), self.pages)

    def href(self, index: int, anchor: str | None = None) -> str:
        """A link to message `index` (or to `anchor`, an element next to it) from this page."""
        fragment = f"#{anchor or f'm{index}'}"
        page = self.page_of(index)
        return fragment if page == self.page else f"?page={page}{fragment}"

    def url(self, page: int) -> str:
        return f"?page={page}"

    def redirect_for(self, params: Mapping[str, str]) -> str | None:
        """Where `?message=N` goes: N's page, at N; None without a (valid) `message`."""
        index = int_param(params.get("message"))
        if index is None or not 1 <= index <= max(self.total, 1):
            return None
        return f"?page={self.page_of(index)}#m{index}"


def int_param(value: str | None) -> int | None:
    """A query parameter as an int; None when missing or not a number."""
    try:
        return int(value) if value else None
    except ValueError:
        return None
