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


def test_search_finds_messages_in_any_language_and_marks_the_match(tmp_path: Path) -> None:
    from chatapp.core.store import MATCH_END, MATCH_START

    store = Store(tmp_path / "s.db")
    cid = a_chat_with_two_alternatives(store)
    other = store.create_conversation("Other", "m")
    store.add_message(other, "user", "语言模型在终端里运行")
    (hit,) = store.search("DOUBLE x")  # case-insensitive, several words as one phrase
    assert (hit.conversation_id, hit.role) == (cid, "user")
    assert f"{MATCH_START}Double x{MATCH_END}" in hit.snippet
    assert [h.conversation_id for h in store.search("模型")] == [other]  # two characters
    assert [h.conversation_id for h in store.search("终端里")] == [other]
    assert {h.role for h in store.search("return x")} == {"assistant"}  # inside a code block
    store.delete_conversation(other)
    assert store.search("终端里") == [] and store.search("模型") == []


def test_search_indexes_chats_stored_before_it_existed(tmp_path: Path) -> None:
    import sqlite3

    from chatapp.core.store import MIGRATIONS

    path = tmp_path / "old.db"
    db = sqlite3.connect(path)
    MIGRATIONS[0](db)  # the schema as the previous version left it, with a chat in it
    db.execute("INSERT INTO conversations (title, created_at, updated_at) VALUES ('Old', 1, 1)")
    db.execute(
        "INSERT INTO messages (conversation_id, role, content, created_at)"
        " VALUES (1, 'user', 'a question about the KV cache', 1)"
    )
    db.execute("PRAGMA user_version = 1")
    db.commit()
    db.close()
    (hit,) = Store(path).search("KV cache")
    assert hit.title == "Old"


def test_cli_search(chatapp_home: Path, capsys: pytest.CaptureFixture[str]) -> None:
    a_chat_with_two_alternatives(Store(chatapp_home / "chatapp.db"))
    assert main(["search", "welcome"]) == 0
    out = capsys.readouterr().out
    assert "Doubling" in out and "welcome" in out
    assert main(["search", "nothing like this"]) == 1
