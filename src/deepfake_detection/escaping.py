"""Text from a file (metadata, manifests, certificate subjects, file names) made inert for the
place it is shown: one helper per output kind, applied where the output is written, never per
field.

Whoever made an image wrote its metadata. Shown raw, `<img src=...>` or `[click](...)` becomes
an element or a link in the app, `\\x1b[2J` clears the user's terminal, and a cell starting with
`=` is a formula in a spreadsheet. JSON and JSONL keep the exact text (JSON escapes control
characters itself); everything else goes through here.
"""

from __future__ import annotations

import html
import re
import unicodedata
from typing import Any

# Unicode categories shown as escapes: control characters (C0, DEL, C1: ESC and CSI among them),
# format characters (bidirectional overrides that reorder what is seen) and line separators.
_HIDDEN = ("Cc", "Cf", "Zl", "Zp")
_ASCII_PUNCTUATION = re.compile(r"""([!"#$%&'()*+,\-./:;<=>?@\[\\\]^_`{|}~])""")
# Tab and carriage return also start formulas, but `visible` has already written them as escapes.
_FORMULA_STARTS = ("=", "+", "-", "@")


def visible(text: Any) -> str:
    """`text` with every control, format or separator character written as an escape
    (`\\x1b`, `\\n`, `\\u202e`), so what is printed is exactly what is seen."""
    text = str(text)
    if not any(unicodedata.category(c) in _HIDDEN for c in text):
        return text
    return "".join(c.encode("unicode_escape").decode("ascii")
                   if unicodedata.category(c) in _HIDDEN else c for c in text)


def for_terminal(text: Any) -> str:
    """Safe to print: no byte of it can move the cursor, recolour or clear the screen."""
    return visible(text)


def for_markdown(text: Any) -> str:
    """Literal text inside Markdown (and the HTML it becomes): every ASCII punctuation mark is
    backslash-escaped, as CommonMark allows for all of them, so no tag, link, image, emphasis,
    heading, table or bare URL can form; controls are made visible first."""
    return _ASCII_PUNCTUATION.sub(r"\\\1", visible(text))


def for_html(text: Any) -> str:
    """Literal text inside HTML (Gradio shows error messages as HTML)."""
    return html.escape(visible(text))


def for_csv(value: Any) -> Any:
    """A CSV cell: strings made visible and, when they would start a formula in Excel or
    LibreOffice (OWASP CSV injection), prefixed with an apostrophe; numbers and None pass."""
    if not isinstance(value, str):
        return value
    text = visible(value)
    return "'" + text if text.startswith(_FORMULA_STARTS) else text
