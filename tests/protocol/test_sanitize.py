from __future__ import annotations

import re
import time

import pytest
from hypothesis import given, settings, strategies as st

from agentim.protocol.sanitize import sanitize_content, sanitize_text
from agentim.protocol.textrules import JS_WHITESPACE, js_trim

# The reference's regexes, transcribed literally (JS `\s` and ASCII-only `i`), as an oracle.
WS = f"[{JS_WHITESPACE}]"
REF_FLAGS = re.ASCII | re.IGNORECASE
REF_BLOCKS = [
    re.compile(rf"<{name}\b[^>]*>.*?</{name}{WS}*>", REF_FLAGS | re.DOTALL)
    for name in ("script", "iframe", "object", "form")
]
REF_EMBED = re.compile(r"<embed\b[^>]*>", REF_FLAGS)
REF_TAG = re.compile(r"<[a-zA-Z][^>]*>")
REF_EVENT = re.compile(
    rf"{WS}+on\w+{WS}*={WS}*(?:\"[^\"]*\"|'[^']*'|[^{JS_WHITESPACE}>]+)", REF_FLAGS
)
REF_URL = re.compile(
    rf"({WS}(?:href|src|action|formaction){WS}*={WS}*)"
    r"(?:\"(?:javascript|vbscript|data):[^\"]*\"|'(?:javascript|vbscript|data):[^']*')",
    REF_FLAGS,
)


def reference_content(s: str) -> str:
    for block in REF_BLOCKS:
        s = block.sub("", s)
    s = REF_EMBED.sub("", s)
    return REF_TAG.sub(lambda m: REF_URL.sub(r'\1""', REF_EVENT.sub("", m[0])), s)


def reference_text(s: str) -> str:
    for entity, char in [
        ("&lt;", "<"),
        ("&gt;", ">"),
        ("&amp;", "&"),
        ("&quot;", '"'),
        ("&#x27;", "'"),
    ]:
        s = s.replace(entity, char)
    return js_trim(re.sub(r"<[^>]*>", "", s))


TOKENS = [
    "<",
    ">",
    "/",
    "</",
    "=",
    '"',
    "'",
    " ",
    "  ",
    "\n",
    "\u00a0",
    "\ufeff",
    "\x1c",
    "x",
    "ſ",
    "script",
    "SCRIPT",
    "iframe",
    "object",
    "Form",
    "embed",
    "a",
    "img",
    "b",
    "on",
    "onclick",
    "ONERROR",
    "href",
    "src",
    "action",
    "formaction",
    "javascript:",
    "VBScript:",
    "data:",
    "&lt;",
    "&gt;",
    "&amp;",
    "&quot;",
    "&#x27;",
    "<script>",
    "</script>",
    "</SCRIPT >",
    "<iframe src=x>",
    "</iframe>",
    "<object>",
    "</object>",
    "<form>",
    "</form\n>",
    "<embed ",
    "<a",
    "<img",
    " onclick=",
    ' onerror="x"',
    " href=",
    " src='",
    '"javascript:x"',
    "'data:x'",
]
html_like = st.lists(st.sampled_from(TOKENS), max_size=40).map("".join)

# --- sanitize_text (api.md §15.1) ---


def test_text_strips_tags_and_may_become_empty() -> None:
    assert sanitize_text("<b></b>") == ""
    assert sanitize_text("<b>bold</b> room") == "bold room"


def test_text_decodes_entities_then_strips_tags() -> None:
    assert sanitize_text("&lt;b&gt;x&lt;/b&gt;") == "x"
    assert sanitize_text("Tom &amp; Jerry") == "Tom & Jerry"
    assert sanitize_text("&quot;hi&quot; &#x27;there&#x27;") == "\"hi\" 'there'"


def test_text_decodes_in_order_once() -> None:
    # &amp; is decoded after &lt;/&gt;, so a double-escaped tag survives as entities.
    assert sanitize_text("&amp;lt;b&amp;gt;") == "&lt;b&gt;"
    assert sanitize_text("&amp;quot;") == '"'  # &quot; is decoded after &amp;
    assert sanitize_text("&#39;&apos;") == "&#39;&apos;"  # only the five entities


def test_text_trims_js_whitespace() -> None:
    assert sanitize_text("\ufeff\u00a0 name \u3000\n") == "name"
    assert sanitize_text("  <i> </i>  ") == ""


def test_text_keeps_lone_angle_brackets() -> None:
    assert sanitize_text("a < b") == "a < b"
    assert sanitize_text("a > b") == "a > b"
    assert sanitize_text("a < b > c") == "a  c"


# --- sanitize_content (api.md §15.2, realtime.md §3.11) ---


@pytest.mark.parametrize("name", ["script", "iframe", "object", "form"])
def test_content_removes_blocks(name: str) -> None:
    assert sanitize_content(f"a<{name} x='1'>inner</{name}>b") == "ab"


def test_content_block_removal_is_case_insensitive_and_multiline() -> None:
    assert sanitize_content("a<SCRIPT>\nalert(1)\n</ScRiPt >b") == "ab"
    assert sanitize_content("a<script\ntype='x'>1</script\n>b") == "ab"


def test_content_blocks_are_removed_script_first() -> None:
    assert sanitize_content("<iframe><script></iframe></script>x") == "<iframe>x"
    assert sanitize_content("<form><iframe></form></iframe>x") == "<form>x"


def test_content_block_ends_at_first_closing_tag() -> None:
    text = "a<script>1</script>b<script>2</script>c"
    assert sanitize_content(text) == "abc"
    assert sanitize_content("<script><script>x</script>y</script>") == "y</script>"


def test_content_keeps_unclosed_block() -> None:
    assert sanitize_content("<script>alert(1)") == "<script>alert(1)"
    assert sanitize_content("x <script") == "x <script"


def test_content_block_needs_tag_boundary() -> None:
    assert sanitize_content("<scripts>x</scripts>") == "<scripts>x</scripts>"


def test_content_removes_embed_tags() -> None:
    assert sanitize_content('a<embed src="x.swf">b<EMBED/>c') == "abc"


def test_content_removes_event_handlers_in_every_quoting() -> None:
    assert sanitize_content('<img src="x" onerror="alert(1)">') == '<img src="x">'
    assert sanitize_content("<img src='x' onerror='alert(1)'>") == "<img src='x'>"
    assert sanitize_content("<img src=x onerror=alert(1)>") == "<img src=x>"
    assert sanitize_content('<div ONCLICK = "x" onmouseover=y>t</div>') == "<div>t</div>"


def test_content_event_handler_takes_the_whole_whitespace_run() -> None:
    assert sanitize_content('<img src="x" \n\t onerror="y" >') == '<img src="x" >'


def test_content_event_handler_needs_leading_whitespace() -> None:
    assert sanitize_content('<a data-onclick="x">') == '<a data-onclick="x">'


def test_content_event_handlers_only_inside_opening_tags() -> None:
    assert sanitize_content('text onclick="x" here') == 'text onclick="x" here'
    assert sanitize_content('</a onclick="x">') == '</a onclick="x">'


def test_content_blanks_quoted_script_urls() -> None:
    assert sanitize_content('<a href="javascript:alert(1)">x</a>') == '<a href="">x</a>'
    assert sanitize_content("<a href='JavaScript:alert(1)'>x</a>") == '<a href="">x</a>'
    assert sanitize_content('<img src="data:text/html,x">') == '<img src="">'
    assert sanitize_content('<form2 action="vbscript:x">') == '<form2 action="">'
    assert sanitize_content('<button formaction="javascript:x">') == '<button formaction="">'


def test_content_keeps_unquoted_script_urls() -> None:
    # Only quoted values are rewritten (spec).
    assert sanitize_content("<a href=javascript:alert(1)>x</a>") == (
        "<a href=javascript:alert(1)>x</a>"
    )


def test_content_keeps_safe_urls() -> None:
    text = '<a href="https://example.com/javascript:x">x</a>'
    assert sanitize_content(text) == text


def test_content_keeps_markdown_and_text() -> None:
    for text in [
        "# Title\n\n**bold** _it_ `code` [link](javascript:alert(1))",
        "a < b and c > d",
        "<b>bold</b>",
        "if (x<y && y>z) {}",
        "",
        "```html\n<p>hi</p>\n```",
    ]:
        assert sanitize_content(text) == text


def test_content_may_become_empty() -> None:
    assert sanitize_content("<script>x</script>") == ""


def test_content_is_not_trimmed() -> None:
    assert sanitize_content("  hi  ") == "  hi  "


@given(st.text(alphabet=st.characters(blacklist_characters="<")))
def test_content_without_tags_is_unchanged(text: str) -> None:
    assert sanitize_content(text) == text


@given(st.text())
def test_text_output_has_no_tags(text: str) -> None:
    result = sanitize_text(text)
    assert "<" not in result or ">" not in result.split("<", 1)[1]


def test_ascii_only_case_folding() -> None:
    # JS `i` without `u` never folds U+017F (long s) to "s".
    assert sanitize_content("<ſcript>x</ſcript>") == "<ſcript>x</ſcript>"


@settings(max_examples=500)
@given(html_like | st.text())
def test_content_matches_reference_regexes(text: str) -> None:
    assert sanitize_content(text) == reference_content(text)


@settings(max_examples=300)
@given(html_like | st.text())
def test_text_matches_reference_regexes(text: str) -> None:
    assert sanitize_text(text) == reference_text(text)


HOSTILE = [
    "<script>" * 12_500,
    "<script" * 14_000,
    "<a" * 50_000,
    "<a" + " " * 100_000 + ">",
    "<a" + (" " * 1000 + "onx") * 100 + ">",
    "<embed" * 15_000,
    "<" * 100_000,
]


@pytest.mark.parametrize("text", HOSTILE, ids=range(len(HOSTILE)))
def test_hostile_input_takes_linear_time(text: str) -> None:
    started = time.perf_counter()
    sanitize_content(text)
    sanitize_text(text)
    # The naive regexes take seconds to minutes on these; linear scans take milliseconds.
    assert time.perf_counter() - started < 1.0
