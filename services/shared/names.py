"""Display names are plain text: the rule for new names, and the cleaning of old ones.

A name goes out as `userName` with every message, to clients that render messages as
HTML, and into other people's windows, so it may carry no markup and nothing that
changes how the text around it looks:

* no `<` or `>` (no tag can start or end in a name);
* no control characters (C0, DEL, C1), no line or paragraph separators;
* no invisible format characters (bidirectional overrides and isolates, zero-width
  spaces, byte-order marks), which can make a name display as someone else's; the
  zero-width joiner and non-joiner stay, as emoji sequences and several scripts need them;
* no unpaired surrogates, private-use or unassigned code points.

`&` and quotes are allowed: as text they are harmless, and every output escapes them.
"""

from __future__ import annotations

import unicodedata

MARKUP = frozenset("<>")
_REFUSED_CATEGORIES = frozenset({"Cc", "Cf", "Cs", "Co", "Cn", "Zl", "Zp"})
_JOINERS = frozenset({"\u200c", "\u200d"})  # ZWNJ, ZWJ
PLACEHOLDER = "Unnamed"


def is_refused(char: str) -> bool:
    """True for a character a display name may not contain."""
    if char in MARKUP:
        return True
    return char not in _JOINERS and unicodedata.category(char) in _REFUSED_CATEGORIES


def name_problem(name: str) -> str | None:
    """Why `name` is not plain text, or None when it is."""
    if any(c in MARKUP for c in name):
        return "must not contain < or >"
    if any(is_refused(c) for c in name):
        return "must not contain control or invisible formatting characters"
    return None


def plain_name(name: str) -> str:
    """`name` without the characters the rule refuses (for names stored before it)."""
    if name_problem(name) is None:
        return name
    cleaned = " ".join("".join(c for c in name if not is_refused(c)).split())
    return cleaned or PLACEHOLDER
