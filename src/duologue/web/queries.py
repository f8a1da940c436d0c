"""What the runs page was asked for, read from and written back to its query string.

The queries themselves belong to the store (Store.query_runs, filter_choices):
this module only turns URL parameters into a RunFilter and back.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, replace
from typing import Any
from urllib.parse import urlencode

from ..store import KILLED, PER_PAGE, RUNNING, SORTS, ExperimentRow, RunFilter, RunPage, RunRow

__all__ = ["KILLED", "PER_PAGE", "RUNNING", "SORTS", "ExperimentRow", "RunPage", "RunQuery", "RunRow"]


@dataclass(frozen=True)
class RunQuery(RunFilter):
    """A RunFilter that knows its URL."""

    @classmethod
    def from_params(cls, params: Mapping[str, str], **fixed: Any) -> RunQuery:
        sort = params.get("sort", "started")
        try:
            page = max(1, int(params.get("page", "1")))
        except ValueError:
            page = 1
        q = cls(
            participant=params.get("participant", "").strip(),
            model=params.get("model", "").strip(),
            stop=params.get("stop", "").strip(),
            looped=params.get("looped", "") if params.get("looped") in ("yes", "no") else "",
            experiment=params.get("experiment", "").strip(),
            text=params.get("q", "").strip(),
            sort=sort if sort in SORTS else "started",
            desc=params.get("dir", "desc" if sort == "started" else "asc") == "desc",
            page=page,
        )
        return replace(q, **fixed)

    @property
    def filtered(self) -> bool:
        return any((self.participant, self.model, self.stop, self.looped, self.experiment, self.text))

    def params(self, **changes: Any) -> dict[str, str]:
        """The query string of this query with some fields changed; defaults are left out."""
        q = replace(self, **changes)
        out = {
            "participant": q.participant,
            "model": q.model,
            "stop": q.stop,
            "looped": q.looped,
            "experiment": q.experiment,
            "q": q.text,
        }
        if q.sort != "started" or not q.desc:
            out["sort"], out["dir"] = q.sort, "desc" if q.desc else "asc"
        if q.page != 1:
            out["page"] = str(q.page)
        return {k: v for k, v in out.items() if v}

    def url(self, base: str, **changes: Any) -> str:
        params = self.params(**changes)
        return f"{base}?{urlencode(params)}" if params else base

    def sort_url(self, base: str, key: str) -> str:
        """Sort by `key`; asking again for the current key flips the direction."""
        desc = not self.desc if key == self.sort else key in ("started", "messages")
        return self.url(base, sort=key, desc=desc, page=1)
