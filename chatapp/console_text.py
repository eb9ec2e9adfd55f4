"""Text from models, files, configs and the database made safe for a terminal.

Such text may carry escape sequences (``ESC ] 52`` writes the clipboard, ``ESC ] 0`` sets the
window title, ``ESC [ 2 J`` clears the screen). Removing or replacing ESC and the other
controls disarms every sequence: what is left is printable text.
"""

from __future__ import annotations

import re

# C0 controls except \t and \n, DEL, and the C1 range (U+0080-U+009F, where U+009B is CSI).
_CONTROL = re.compile("[\x00-\x08\x0b-\x1f\x7f-\x9f]")


def strip_control(text: str) -> str:
    """``text`` without control characters other than newline and tab (``\\r\\n`` -> ``\\n``).

    For output that scripts read (``chatapp ask``): nothing is added to the text."""
    return _CONTROL.sub("", text.replace("\r\n", "\n"))


def _picture(match: re.Match[str]) -> str:
    code = ord(match.group())
    if code == 0x0D:
        return ""  # a carriage return carries no text (and "\r\n" may arrive split in two)
    if code < 0x20:
        return chr(0x2400 + code)  # Unicode's control pictures: ESC shows as ␛
    if code == 0x7F:
        return "\u2421"  # ␡
    return "\ufffd"  # C1 controls have no pictures


def printable(text: str) -> str:
    """``text`` with each control character other than newline and tab made visible (ESC as
    ␛, C1 controls as �; carriage returns dropped), for every view of the TUI and the CLI's
    tables: the user sees that something was there, and the terminal receives no sequence."""
    return _CONTROL.sub(_picture, text)


def terminal_json(data: object, indent: int | None = 2) -> str:
    """``data`` as JSON (UTF-8 text kept) with every control character escaped: JSON itself
    escapes only C0, and DEL or a C1 control (U+009B is CSI) would reach the terminal raw."""
    import json

    text = json.dumps(data, ensure_ascii=False, indent=indent)
    # Such characters can only occur inside JSON strings, where \uXXXX means the same.
    return re.sub("[\x7f-\x9f]", lambda m: f"\\u{ord(m.group()):04x}", text)
