"""Make user-controlled text inert before it is interpolated into Markdown that Streamlit renders.

Streamlit renders GitHub-flavoured Markdown (links, images, autolinked URLs) plus its own directives (colours,
LaTeX) in ``st.markdown``, ``st.caption``, ``st.info`` / ``st.warning`` / ``st.error`` / ``st.success``,
metric values and button labels. Case ids, reasons, labels, comments and user names come from manifests and
people, so every one passes through :func:`md` (running text) or :func:`code` (an inline code span) first;
longer free text is shown with ``st.text`` instead. Plotly renders a little HTML (``<a href>`` among it) in
axis, legend and hover labels: labels and case ids in charts pass through :func:`chart_text`.

Examples:
    >>> md("[click](https://evil.example)")
    '\\\\[click\\\\]\\\\(https\\u2060://evil.example\\\\)'
    >>> code("a`b")
    '``a`b``'
"""

from __future__ import annotations

import html
import re

__all__ = ["chart_text", "code", "md"]

_SPECIALS = re.compile(r"([\\`*_{}\[\]()<>#!|~$&])")  # Markdown, GFM, HTML and Streamlit (LaTeX $) syntax
_LINE_BREAKS = re.compile(r"\s*[\r\n\u2028\u2029\x0b\x0c\x85]+\s*")  # no new block (heading, list, quote)
_LEADING_MARKER = re.compile(r"^(\s*)([-+=]|\d+\.)")  # a list item ("- ", "1. ") or setext line at the start
_JOINER = "\u2060"  # WORD JOINER: invisible, but GFM no longer sees a URL, a www. domain or an e-mail address
_AUTOLINKS = re.compile(r"(?i)(?<=https)(?=://)|(?<=http)(?=://)|(?<=www)(?=\.)|(?<=@)")  # see _JOINER


def md(value: object) -> str:
    """``str(value)`` escaped so that Markdown shows it as typed: no links, images, emphasis or new blocks.

    Markdown, HTML and LaTeX specials are backslash-escaped (``[ ] ( ) ! < > * _ ` # | ~ $ & { } \\``),
    line breaks become spaces, and a word joiner breaks ``http://``, ``https://``, ``www.`` and ``@``, which
    GitHub-flavoured Markdown would otherwise turn into live links even when escaped.

    Args:
        value: Anything; ``None`` becomes ``"None"`` like in an f-string.

    Returns:
        Text to interpolate into a Markdown string (outside code spans).
    """
    text = _LINE_BREAKS.sub(" ", str(value))
    text = _SPECIALS.sub(r"\\\1", text)
    text = _LEADING_MARKER.sub(lambda m: m.group(1) + m.group(2)[:-1] + "\\" + m.group(2)[-1], text)
    return _AUTOLINKS.sub(_JOINER, text)


def code(value: object) -> str:
    """``str(value)`` as an inline code span that no backtick inside it can close early.

    Args:
        value: Anything; line breaks become spaces (a blank line would end the paragraph).

    Returns:
        The code span including its backtick fences, e.g. ``"`case-1`"``; ``""`` for an empty value.
    """
    text = _LINE_BREAKS.sub(" ", str(value))
    if not text:
        return ""
    fence = "`" * (max((len(run) for run in re.findall(r"`+", text)), default=0) + 1)
    pad = " " if text[0] == "`" or text[-1] == "`" or (text[0] == " " and text[-1] == " " and text.strip()) else ""
    return f"{fence}{pad}{text}{pad}{fence}"


def chart_text(value: object) -> str:
    """``str(value)`` for a Plotly label or hover text: ``< > &`` as entities, which Plotly shows literally.

    Args:
        value: A diagnosis name, case id or other user-controlled category.

    Returns:
        The text with no tag Plotly would render (``<a href>``, ``<b>``, ``<br>``, ``<span style>``).
    """
    return html.escape(str(value), quote=False)
