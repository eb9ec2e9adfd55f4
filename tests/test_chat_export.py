"""Saved chats exported (JSON keeps the whole tree; Markdown the current branch) and imported."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from chatapp.cli import main
from chatapp.core.export import ChatFileError, current_branch, export_json, import_json
from chatapp.core.reply_stats import ReplyStats
from chatapp.core.store import Store

CODE = "Here:\n\n```python\ndef f(x):\n    return x * 2  # doubled\n```\n"


def a_chat_with_two_alternatives(store: Store) -> int:
    """system -> user -> (an old reply, then a regenerated one) -> user -> reply."""
    cid = store.create_conversation("Doubling", "smollm2", "Be brief.", {"temperature": 0.2})
    q = store.add_message(cid, "user", "Double x in Python?")
    store.add_message(cid, "assistant", "x*2", parent_id=q, stopped=True)
    stats = ReplyStats("smollm2", 40, 10, 25, 0.125, 48.5, "eos")
    a2 = store.add_message(cid, "assistant", CODE, parent_id=q, stats=stats)
    q2 = store.add_message(cid, "user", "Thanks — 谢谢 😀", parent_id=a2)
    store.add_message(cid, "assistant", "You're welcome.", parent_id=q2, stats=stats)
    return cid


def test_json_round_trip_is_byte_identical_and_keeps_the_tree(tmp_path: Path) -> None:
    store = Store(tmp_path / "a.db")
    cid = a_chat_with_two_alternatives(store)
    first = export_json(store, [cid])
    data = json.loads(first)
    (conv,) = data["conversations"]
    assert [m["parent"] for m in conv["messages"]] == [None, 1, 1, 3, 4]  # both alternatives
    assert conv["params"] == {"temperature": 0.2} and conv["system"] == "Be brief."
    assert conv["messages"][2]["stats"]["tokens_per_second"] == 48.5
    other = Store(tmp_path / "b.db")
    (new_id,) = import_json(other, first)
    assert export_json(other, [new_id]) == first
    assert [m.content for m in current_branch(other.messages(new_id))] == [
        "Double x in Python?", CODE, "Thanks — 谢谢 😀", "You're welcome.",
    ]  # fmt: skip


def test_markdown_shows_the_current_branch_readably(
    chatapp_home: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    store = Store(chatapp_home / "chatapp.db")
    cid = a_chat_with_two_alternatives(store)
    assert main(["export", str(cid), "--format", "md"]) == 0
    md = capsys.readouterr().out
    assert md.startswith("# Doubling\n")
    assert "## You\n\nDouble x in Python?" in md and "## Assistant (smollm2)" in md
    assert CODE in md  # code blocks intact
    assert "x*2" not in md  # the old alternative is not on the current branch


def test_cli_export_all_and_import_chat(
    chatapp_home: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    store = Store(chatapp_home / "chatapp.db")
    a_chat_with_two_alternatives(store)
    a_chat_with_two_alternatives(store)
    out = tmp_path / "all.json"
    assert main(["export", "--all", "-o", str(out)]) == 0
    assert main(["chats"]) == 0
    assert "Doubling" in capsys.readouterr().out
    assert main(["import-chat", str(out)]) == 0
    assert "Imported 2 chats" in capsys.readouterr().out
    assert len(Store(chatapp_home / "chatapp.db").list_conversations()) == 4


@pytest.mark.parametrize(
    ("text", "words"),
    [
        ("not json", "not JSON"),
        ('{"format": "other"}', "not a chatapp chat export"),
        ('{"format": "chatapp.chat", "version": 9, "conversations": []}', "version 9"),
        (
            '{"format": "chatapp.chat", "version": 1, "conversations": [{"title": "t", '
            '"model": "", "system": "", "params": {}, "created_at": 1.0, "updated_at": 1.0, '
            '"messages": [{"id": 1, "parent": 7, "role": "user", "content": "x", '
            '"stopped": false, "created_at": 1.0, "stats": null}]}]}',
            "parent 7 is not an earlier message",
        ),
    ],
)
def test_a_bad_chat_file_is_one_line_and_imports_nothing(
    text: str, words: str, tmp_path: Path
) -> None:
    store = Store(tmp_path / "c.db")
    with pytest.raises(ChatFileError, match=words) as info:
        import_json(store, text)
    assert "\n" not in str(info.value)
    assert store.list_conversations() == []
