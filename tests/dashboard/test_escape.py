"""Markdown injection: user-controlled text shows as typed and never becomes a link, an image or HTML.

Streamlit renders GitHub-flavoured Markdown in the browser; here a CommonMark parser (markdown-it-py, a
dependency of rich) stands in for it, plus GFM's autolink-literal rule, which links bare URLs, ``www.``
domains and e-mail addresses found in the decoded text (so backslash escapes alone do not stop it).
"""

from __future__ import annotations

import html
import json
import re
from typing import Any

from hypothesis import given, settings
from hypothesis import strategies as st
from markdown_it import MarkdownIt
from streamlit.testing.v1 import AppTest

import db
from tests.dashboard.apptest import signed_in
from dashboard.escape import chart_text, code, md

Store = Any  # the seeded store from conftest.py
EVIL = "[click](https://evil.example/x) ![beacon](https://evil.example/b.png) <img src=x> https://evil.example/y"
EVIL += " www.evil.example mail@evil.example **bold** `tick :red[colour] $x^2$\n\n# heading"
SHORT_EVIL = "![s](http://e.co/b)"  # fits the 32 characters of cases.split
QUERY_EVIL = "x` [click](https://evil.example/x) ![b](https://evil.example/b.png) https://evil.example/y `y"  # ends `

_PARSER = MarkdownIt("commonmark").enable(["strikethrough", "table"])
_GFM_AUTOLINK = re.compile(r"(?i)(?:https?://|www\.)[-.\w]|[-.\w+]+@[-\w]+\.[-\w]")  # mdast-util-gfm-autolink-literal
_LIVE = {"link_open", "image", "html_inline", "html_block", "strong_open", "em_open", "s_open", "heading_open"}


def _tokens(source: str) -> list[Any]:
    """Every block and inline token of a Markdown string."""
    out = []
    for token in _PARSER.parse(source):
        out.append(token)
        out.extend(token.children or [])
    return out


def live_markup(source: str, allowed: frozenset[str] = frozenset()) -> list[str]:
    """What in ``source`` a browser would render as live markup: links, images, HTML, emphasis, autolinks."""
    found = [t.type for t in _tokens(source) if t.type in _LIVE - allowed]
    found += [t.content for t in _tokens(source) if t.type == "text" and _GFM_AUTOLINK.search(t.content)]
    return found


def visible(source: str) -> str:
    """The text a reader sees, whitespace collapsed (tags dropped, entities and word joiners removed)."""
    text = html.unescape(re.sub(r"<[^>]*>", "", _PARSER.render(source))).replace("\u2060", "")
    return " ".join(text.split())


def test_md_escapes_links_images_html_and_autolinks() -> None:
    assert live_markup(EVIL) != []  # the payload is live when interpolated as is
    assert live_markup(f"Reason: {md(EVIL)}") == []
    assert visible(md(EVIL)) == " ".join(EVIL.split())
    assert md("poe-v2") == "poe-v2" and md(None) == "None"
    assert visible(md("- item")) == "- item" and visible(md("12. item")) == "12. item"
    assert live_markup(f"id {code('a` [x](https://e.co) `b')}") == []


@settings(max_examples=300, deadline=None)
@given(st.text(st.characters(blacklist_characters="\x00"), max_size=60))
def test_md_shows_any_text_as_typed_and_inert(text: str) -> None:
    source = f"Reason: {md(text)} (end)"
    assert live_markup(source) == []
    assert visible(source) == " ".join(f"Reason: {text} (end)".replace("\u2060", "").split())  # word joiners: unseen
    assert {t.type for t in _tokens(source)} <= {"paragraph_open", "paragraph_close", "inline", "text", "softbreak"}


@settings(max_examples=300, deadline=None)
@given(st.text(st.characters(blacklist_characters="\x00"), min_size=1, max_size=40))
def test_code_spans_cannot_be_closed_early(text: str) -> None:
    source = f"id {code(text)} end"
    spans = [t for t in _tokens(source) if t.type == "code_inline"]
    if not text.split():  # only whitespace: nothing to show
        return
    assert len(spans) == 1 and live_markup(source) == []
    assert " ".join(spans[0].content.split()) == " ".join(text.split())




def _rendered_markdown(at: AppTest) -> list[str]:
    """Every Markdown source the page sent: alerts, captions, markdown, metric values and button labels."""
    parts = [str(e.value) for kind in ("info", "warning", "error", "success", "caption", "markdown")
             for e in at.get(kind)]  # fmt: skip
    parts += [str(m.value) for m in at.metric] + [str(b.label) for b in at.button]
    return parts


def test_crafted_case_query_renders_no_link(store: Store) -> None:
    for case in (QUERY_EVIL, EVIL):
        at = signed_in(store, store.clinician, "pages/case.py", case=case)
        [warning] = at.warning
        assert "No case with id" in warning.value and live_markup(warning.value) == [], warning.value


def test_stored_reason_split_label_comment_and_name_render_inert(store: Store) -> None:
    with db.session_scope(store.url) as session:
        db.upsert_cases(session, [db.CaseIn("case-evil", "p9", EVIL, SHORT_EVIL, "Cough.", None, status="rejected",
                                            error=EVIL)])  # fmt: skip
        db.create_user(session, "[eve](https://evil.example)", store.password)
        db.submit_review(session, case_key=store.image_2d, username=store.admin, final_label="covid",
                         expected_version=0, predicted_label="pneumonia", comment=EVIL)  # fmt: skip
    at = signed_in(store, "[eve](https://evil.example)", "pages/case.py", case="case-evil")
    shown = _rendered_markdown(at)
    assert any("Reason:" in part for part in shown) and any("Signed in as [eve]" in visible(part) for part in shown)
    for part in shown:
        assert live_markup(part, allowed=frozenset({"strong_open"})) == [], part
    assert {visible(m.value) for m in at.metric} >= {visible(md(EVIL)), visible(md(SHORT_EVIL))}
    at = signed_in(store, store.clinician, "pages/case.py", case=store.image_2d)
    [info] = [part for part in _rendered_markdown(at) if "overrode" in part]
    assert live_markup(info, allowed=frozenset({"strong_open", "blockquote_open"})) == []
    assert "click" in visible(info) and "beacon" in visible(info)


def test_chart_labels_show_html_as_text(store: Store) -> None:
    link = "<a href='https://evil.example'>covid</a>"
    with db.session_scope(store.url) as session:
        db.upsert_cases(session, [db.CaseIn("case-html", "p8", link, "test", "Fever.", None)])
        model = db.register_model_version(session, name="html", fusion="poe", config={}, label_names=(link, "normal"),
                                          metrics={}, checkpoint_path="/m")  # fmt: skip
        [case_id] = [c.id for batch in db.iter_case_inputs(session) for c in batch if c.case_key == "case-html"]
        db.save_predictions(session, [db.PredictionIn(case_id, model, link, {link: 0.9, "normal": 0.1}, [0.0] * 8,
                                                      ("text",))])  # fmt: skip
    at = signed_in(store, store.clinician, "pages/case.py", case="case-html")
    [chart] = at.get("plotly_chart")
    labels = json.loads(chart.proto.spec)["data"][0]["y"]
    assert chart_text(link) in labels and link not in labels
    assert chart_text("covid & <b>") == "covid &amp; &lt;b&gt;"
