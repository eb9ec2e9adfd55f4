"""``chatapp history`` and ``chatapp chats --json``: the saved prompts and chats for scripts."""

from __future__ import annotations

import json
import time

import pytest

from chatapp.cli import main
from chatapp.core.store import Store


def fill(store: Store, prompts: list[str]) -> None:
    for text in prompts:
        store.add_prompt(text)


def test_history_prints_prompts_newest_last_with_multi_line_ones_indented(
    capsys: pytest.CaptureFixture[str],
) -> None:
    fill(Store(), ["first question", "a poem\nwith two lines\n\nand a gap", "last one"])
    assert main(["history"]) == 0
    out = capsys.readouterr().out.splitlines()
    when = time.strftime("%Y-%m-%d")
    assert [line[:10] for line in out if line[:1].strip()] == [when] * 3
    texts = [line[18:] for line in out]  # "YYYY-MM-DD HH:MM  " then the text
    assert texts == ["first question", "a poem", "with two lines", "", "and a gap", "last one"]
    assert out[2].startswith(" " * 18)  # a continuation line is indented, not a new entry


def test_history_search_limit_and_json(capsys: pytest.CaptureFixture[str]) -> None:
    fill(Store(), ["Explain RoPE", "tell a joke", "rope scaling again", "Ёлка", "bye"])
    assert main(["history", "--search", "rope"]) == 0
    out = capsys.readouterr().out
    assert "Explain RoPE" in out and "rope scaling again" in out and "joke" not in out
    assert main(["history", "--search", "ёлка"]) == 0  # any case, any script
    assert "Ёлка" in capsys.readouterr().out
    assert main(["history", "--limit", "2", "--json"]) == 0
    rows = json.loads(capsys.readouterr().out)
    assert [r["text"] for r in rows] == ["Ёлка", "bye"]  # the newest two, newest last
    assert all(isinstance(r["created_at"], float) for r in rows)
    assert main(["history", "--search", "zzz"]) == 1
    assert capsys.readouterr().out == 'No past prompt contains "zzz".\n'
    assert main(["history", "--limit", "0"]) == 2
    assert "--limit must be at least 1" in capsys.readouterr().err


def test_history_shows_controls_and_never_sends_them(capsys: pytest.CaptureFixture[str]) -> None:
    fill(Store(), ["evil\x1b]0;title\x07 text\x9b31m"])
    assert main(["history"]) == 0
    out = capsys.readouterr().out
    assert "evil␛]0;title␇ text\ufffd31m" in out
    assert main(["history", "--json"]) == 0
    raw = capsys.readouterr().out
    assert not any(ord(c) < 0x20 and c != "\n" or 0x7F <= ord(c) <= 0x9F for c in raw)
    assert json.loads(raw)[0]["text"] == "evil\x1b]0;title\x07 text\x9b31m"  # round-trips


def test_an_empty_history_says_so(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["history"]) == 0
    assert capsys.readouterr().out == "No past prompts yet.\n"


def test_chats_json_lists_the_saved_chats(capsys: pytest.CaptureFixture[str]) -> None:
    store = Store()
    first = store.create_conversation("first\x1b[2J", "smollm2", "", {"temperature": 0.5})
    store.create_conversation("second", "guide", "Be brief.", {})
    assert main(["chats", "--json"]) == 0
    raw = capsys.readouterr().out
    assert "\x1b" not in raw
    rows = json.loads(raw)
    assert [r["title"] for r in rows] == ["second", "first\x1b[2J"]  # newest first, as the table
    assert rows[1]["id"] == first and rows[1]["params"] == {"temperature": 0.5}
    assert set(rows[0]) == {"id", "title", "model", "system", "params", "created_at", "updated_at"}
