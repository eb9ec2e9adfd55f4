"""Model output made safe for a terminal: no escape sequences, no cursor tricks."""

from __future__ import annotations

import re

# C0 controls except \t and \n, DEL, and the C1 range (U+0080-U+009F, where U+009B is CSI).
# Removing ESC alone disarms every escape sequence: what is left is printable text.
_CONTROL = re.compile("[\x00-\x08\x0b-\x1f\x7f-\x9f]")


def strip_control(text: str) -> str:
    """``text`` without control characters other than newline and tab (``\\r\\n`` -> ``\\n``)."""
    return _CONTROL.sub("", text.replace("\r\n", "\n"))
