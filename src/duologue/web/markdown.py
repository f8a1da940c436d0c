"""Message text as Markdown, safely: model output is untrusted, so the renderer never passes markup through.

markdown-it-py (CommonMark, plus tables and strikethrough) with raw HTML off: any tag in a message
comes out escaped, as text. Links keep only http, https and mailto addresses (and relative ones);
markdown-it already refuses javascript:, vbscript:, file: and most data: URLs, and anything else
with a scheme is refused here too, so such a link stays its literal text. Images are not loaded:
an image becomes a link to it (the viewer's CSP would block a remote one anyway). Single line
breaks are kept, as the chat's plain text showed them.
"""

from __future__ import annotations

import re
from functools import lru_cache
from typing import Any

from markdown_it import MarkdownIt
from markupsafe import Markup, escape

SAFE_SCHEMES = ("http", "https", "mailto")
_SCHEME = re.compile(r"^\s*([a-zA-Z][a-zA-Z0-9+.\-]*):")


def safe_link(url: str) -> bool:
    """A link markdown-it accepts whose scheme, if it has one, is http, https or mailto."""
    from markdown_it.common.normalize_url import validateLink

    if not validateLink(url):
        return False
    scheme = _SCHEME.match(url)
    return scheme is None or scheme.group(1).lower() in SAFE_SCHEMES


def _image_as_link(self: Any, tokens: list, idx: int, options: Any, env: Any) -> str:
    token = tokens[idx]
    alt = self.renderInline(token.children or [], options, env) if token.children else ""
    src = escape(token.attrGet("src") or "")
    return f'<a class="image-link" href="{src}" rel="nofollow noreferrer">image: {alt or src}</a>'


def _link_open(self: Any, tokens: list, idx: int, options: Any, env: Any) -> str:
    tokens[idx].attrSet("rel", "nofollow noreferrer")
    return self.renderToken(tokens, idx, options, env)


@lru_cache(maxsize=1)
def renderer() -> MarkdownIt:
    md = MarkdownIt("commonmark", {"html": False, "linkify": False, "typographer": False, "breaks": True})
    md.enable(["table", "strikethrough"])
    md.validateLink = safe_link  # type: ignore[method-assign]
    md.add_render_rule("image", _image_as_link)
    md.add_render_rule("link_open", _link_open)
    return md


@lru_cache(maxsize=4096)  # a looped run says the same few things hundreds of times
def markdown(text: str | None) -> Markup:
    """A message's text as HTML: Markdown rendered, every tag in the text escaped."""
    return Markup(renderer().render(text or ""))
