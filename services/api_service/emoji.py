"""Whether a reaction is one emoji (docs/ROOM_STATE.md, "Reactions").

A reaction is shown as one symbol next to a message and counted per distinct value,
so it must be exactly one emoji: one pictographic code point (optionally in emoji
presentation or with a skin tone), several of them joined into one by zero-width
joiners (a profession, a rainbow flag), a flag of two regional indicators, or a
keycap. Anything else (text, two emoji, a lone joiner or modifier)
is refused, so one person cannot fill a message with arbitrary strings. The code
points are those of Unicode's Extended_Pictographic property, by block, which keeps
this check free of a dependency and of the exact Unicode version.
"""

from __future__ import annotations

from typing import Final

# UTF-8 bytes: flags, skin tones and two-part sequences (🧑‍💻, 11 bytes) fit; a family of
# four (25 bytes) and the subdivision flags (28) do not.
MAX_EMOJI_BYTES: Final = 16

PICTOGRAPHIC: Final = (
    (0x00A9, 0x00A9),
    (0x00AE, 0x00AE),
    (0x203C, 0x203C),
    (0x2049, 0x2049),
    (0x2122, 0x2122),
    (0x2139, 0x2139),
    (0x2194, 0x2199),
    (0x21A9, 0x21AA),
    (0x231A, 0x231B),
    (0x2328, 0x2328),
    (0x23CF, 0x23CF),
    (0x23E9, 0x23F3),
    (0x23F8, 0x23FA),
    (0x24C2, 0x24C2),
    (0x25AA, 0x25AB),
    (0x25B6, 0x25B6),
    (0x25C0, 0x25C0),
    (0x25FB, 0x25FE),
    (0x2600, 0x27BF),  # miscellaneous symbols, dingbats
    (0x2934, 0x2935),
    (0x2B05, 0x2B07),
    (0x2B1B, 0x2B1C),
    (0x2B50, 0x2B50),
    (0x2B55, 0x2B55),
    (0x3030, 0x3030),
    (0x303D, 0x303D),
    (0x3297, 0x3297),
    (0x3299, 0x3299),
    (0x1F000, 0x1F0FF),  # mahjong, domino and playing cards
    (0x1F10D, 0x1F10F),
    (0x1F12F, 0x1F12F),
    (0x1F16C, 0x1F171),
    (0x1F17E, 0x1F17F),
    (0x1F18E, 0x1F18E),
    (0x1F191, 0x1F19A),
    (0x1F201, 0x1F20F),
    (0x1F21A, 0x1F21A),
    (0x1F22F, 0x1F22F),
    (0x1F232, 0x1F23A),
    (0x1F250, 0x1F251),
    (0x1F300, 0x1F3FA),  # pictographs (the skin tones 1F3FB-1F3FF are modifiers)
    (0x1F400, 0x1F64F),  # pictographs, emoticons
    (0x1F680, 0x1F6FF),  # transport and map
    (0x1F7E0, 0x1F7FF),  # geometric shapes extended
    (0x1F900, 0x1FAFF),  # supplemental symbols, extended-A
)
PRESENTATION: Final = 0xFE0F  # "show as emoji"
ZWJ: Final = 0x200D
KEYCAP: Final = 0x20E3
KEYCAP_BASES: Final = frozenset(map(ord, "0123456789#*"))


def _pictographic(cp: int) -> bool:
    return any(low <= cp <= high for low, high in PICTOGRAPHIC)


def _skin_tone(cp: int) -> bool:
    return 0x1F3FB <= cp <= 0x1F3FF


def _regional_indicator(cp: int) -> bool:
    return 0x1F1E6 <= cp <= 0x1F1FF


def is_one_emoji(value: str) -> bool:
    """True when `value` is exactly one emoji of at most MAX_EMOJI_BYTES bytes."""
    if not value or len(value.encode("utf-8", "surrogatepass")) > MAX_EMOJI_BYTES:
        return False
    cps = [ord(c) for c in value]
    if all(map(_regional_indicator, cps)):
        return len(cps) == 2  # a flag
    if cps[0] in KEYCAP_BASES:
        return cps[1:] in ([KEYCAP], [PRESENTATION, KEYCAP])
    return _zwj_sequence(cps)


def _zwj_sequence(cps: list[int]) -> bool:
    """Pictographs, each optionally in emoji presentation or skin-toned, joined by ZWJ."""
    i = 0
    while True:
        if i >= len(cps) or not _pictographic(cps[i]):
            return False
        i += 1
        if i < len(cps) and (cps[i] == PRESENTATION or _skin_tone(cps[i])):
            i += 1
        if i == len(cps):
            return True
        if cps[i] != ZWJ:
            return False
        i += 1
