"""The SQLite store: migrations, concurrent writers, crash safety."""

from __future__ import annotations

import multiprocessing
import sqlite3
import subprocess
import sys
import threading
from pathlib import Path

import pytest

from chatapp.core.reply_stats import ReplyStats
from chatapp.core.store import SCHEMA_VERSION, Store, StoreError, db_path


def test_an_empty_file_is_migrated_to_the_current_schema(tmp_path: Path) -> None:
    path = tmp_path / "chatapp.db"
    path.touch()
    store = Store(path)
    assert store.schema_version() == SCHEMA_VERSION
    tables = {r[0] for r in sqlite3.connect(path).execute("SELECT name FROM sqlite_master")}
    assert {"conversations", "messages", "message_stats", "prompt_history"} <= tables
    assert sqlite3.connect(path).execute("PRAGMA journal_mode").fetchone()[0] == "wal"
    store.close()
    assert Store(path).schema_version() == SCHEMA_VERSION  # reopening does not re-migrate


def test_a_database_from_a_newer_chatapp_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "chatapp.db"
    sqlite3.connect(path).execute(f"PRAGMA user_version = {SCHEMA_VERSION + 1}")
    with pytest.raises(StoreError, match="newer chatapp"):
        Store(path)


def test_the_default_path_matches_the_engine_data_dir(chatapp_home: Path) -> None:
    import engine

    assert db_path() == engine.data_dir() / "chatapp.db"


def test_messages_keep_order_parents_and_stats(tmp_path: Path) -> None:
    store = Store(tmp_path / "db")
    cid = store.create_conversation("hi", "smollm2", "be nice", {"temperature": 0.5})
    u = store.add_message(cid, "user", "hi")
    a = store.add_message(
        cid, "assistant", "hello", parent_id=u, stats=ReplyStats(new_tokens=3, stop_reason="eos")
    )
    msgs = store.messages(cid)
    assert [(m.id, m.parent_id, m.role) for m in msgs] == [(u, None, "user"), (a, u, "assistant")]
    assert msgs[0].stats is None
    assert msgs[1].stats is not None
    assert (msgs[1].stats.new_tokens, msgs[1].stats.stop_reason) == (3, "eos")
    conv = store.get_conversation(cid)
    assert conv is not None and conv.params == {"temperature": 0.5} and conv.system == "be nice"
    store.delete_conversation(cid)
    assert store.messages(cid) == [] and store.list_conversations() == []


def test_conversations_are_listed_by_latest_activity(tmp_path: Path) -> None:
    store = Store(tmp_path / "db")
    old = store.create_conversation("old")
    new = store.create_conversation("new")
    assert [c.id for c in store.list_conversations()] == [new, old]
    store.add_message(old, "user", "bump")
    assert [c.id for c in store.list_conversations()] == [old, new]


def test_prompt_history_skips_consecutive_duplicates(tmp_path: Path) -> None:
    store = Store(tmp_path / "db")
    for text in ["a", "a", "b", "a", "  "]:
        store.add_prompt(text)
    assert store.prompts() == ["a", "b", "a"]


def _writer(path: str, tag: str, n: int) -> None:
    store = Store(path)
    cid = store.create_conversation(tag)
    for i in range(n):
        store.add_prompt(f"{tag}-{i}")
        store.add_message(cid, "user", f"{tag}-{i}")
    store.close()


def test_two_processes_writing_at_once_lose_nothing(tmp_path: Path) -> None:
    path = str(tmp_path / "chatapp.db")  # neither process finds the schema in place
    ctx = multiprocessing.get_context("spawn")
    procs = [ctx.Process(target=_writer, args=(path, tag, 60)) for tag in ("p", "q")]
    for p in procs:
        p.start()
    for p in procs:
        p.join(60)
        assert p.exitcode == 0
    store = Store(path)
    prompts = store.prompts()
    assert sorted(prompts) == sorted([f"{t}-{i}" for t in "pq" for i in range(60)])
    for conv in store.list_conversations():
        assert [m.content for m in store.messages(conv.id)] == [
            f"{conv.title}-{i}" for i in range(60)
        ]
    assert store._db.execute("PRAGMA integrity_check").fetchone()[0] == "ok"


def test_two_connections_in_threads_write_at_once(tmp_path: Path) -> None:
    path = tmp_path / "chatapp.db"
    threads = [threading.Thread(target=_writer, args=(str(path), t, 40)) for t in "xy"]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert len(Store(path).prompts()) == 80


KILL_MID_WRITE = """
import os, sys
from chatapp.core.store import Store
store = Store(sys.argv[1])
cid = store.create_conversation("crash")
store.add_message(cid, "user", "kept")
db = store._db
db.execute("BEGIN IMMEDIATE")
db.execute("INSERT INTO messages (conversation_id, role, content, created_at)"
           " VALUES (?, 'assistant', 'half a rep', 0)", (cid,))
os._exit(9)  # killed before COMMIT
"""


def test_a_write_interrupted_by_a_kill_is_rolled_back_on_reopen(tmp_path: Path) -> None:
    path = tmp_path / "chatapp.db"
    proc = subprocess.run([sys.executable, "-c", KILL_MID_WRITE, str(path)], check=False)
    assert proc.returncode == 9
    store = Store(path)
    (conv,) = store.list_conversations()
    assert [m.content for m in store.messages(conv.id)] == ["kept"]
    store.add_message(conv.id, "assistant", "after")  # and the file is still writable
    assert store._db.execute("PRAGMA integrity_check").fetchone()[0] == "ok"


def test_a_file_that_is_not_a_database_gives_one_line(tmp_path: Path) -> None:
    path = tmp_path / "chatapp.db"
    path.write_bytes(b"not sqlite at all" * 100)
    with pytest.raises(StoreError, match="move it away") as e:
        Store(path)
    assert "\n" not in str(e.value)


def test_a_data_folder_that_cannot_be_made_is_one_line(tmp_path: Path) -> None:
    """CHATAPP_HOME pointing at a file (or a read-only place): a StoreError naming the folder
    and what to do, which the CLI prints as one line, not a traceback."""
    blocker = tmp_path / "a-file"
    blocker.write_text("")
    with pytest.raises(StoreError, match="cannot create the data folder .*CHATAPP_HOME") as e:
        Store(blocker / "sub" / "chatapp.db")
    assert "\n" not in str(e.value)


def test_a_killed_build_leaves_nothing_for_long(tmp_path: Path) -> None:
    """Temp folders of a build killed mid-way are removed by the next build in the same place;
    a recent one (a build still running elsewhere) stays."""
    import os
    import time

    from engine.atomic_dir import STALE_SECONDS, building

    dest = tmp_path / "model"
    old = tmp_path / ".model.import-abc"
    old.mkdir()
    past = time.time() - STALE_SECONDS - 10
    os.utime(old, (past, past))
    running = tmp_path / ".model.xyz"
    running.mkdir()
    with building(dest) as tmp:
        (tmp / "config.json").write_text("{}")
    assert (dest / "config.json").read_text() == "{}"
    assert not old.exists() and running.exists()
    with pytest.raises(KeyboardInterrupt), building(dest) as tmp:
        (tmp / "half").write_text("")
        raise KeyboardInterrupt
    assert sorted(p.name for p in tmp_path.iterdir()) == [".model.xyz", "model"]
    assert (dest / "config.json").exists()  # the old folder is untouched by a failed build


def test_a_database_made_by_the_sql_text_migration_still_opens(tmp_path: Path) -> None:
    """Version 1 as the first chatapp wrote it (one SQL script): the named migrations number
    the schema the same way, so it opens without migrating again and its rows are kept."""
    path = tmp_path / "old.db"
    old = sqlite3.connect(path)
    old.executescript(
        "CREATE TABLE conversations (id INTEGER PRIMARY KEY, title TEXT NOT NULL DEFAULT '',"
        " model TEXT NOT NULL DEFAULT '', system TEXT NOT NULL DEFAULT '',"
        " params TEXT NOT NULL DEFAULT '{}', created_at REAL NOT NULL, updated_at REAL NOT NULL);"
        "CREATE TABLE messages (id INTEGER PRIMARY KEY, conversation_id INTEGER NOT NULL,"
        " parent_id INTEGER, role TEXT NOT NULL, content TEXT NOT NULL,"
        " stopped INTEGER NOT NULL DEFAULT 0, created_at REAL NOT NULL);"
        "CREATE TABLE message_stats (message_id INTEGER PRIMARY KEY, model TEXT, prompt_tokens"
        " INTEGER, reused_tokens INTEGER, new_tokens INTEGER, time_to_first_token REAL,"
        " tokens_per_second REAL, stop_reason TEXT);"
        "CREATE TABLE prompt_history (id INTEGER PRIMARY KEY, text TEXT NOT NULL,"
        " created_at REAL NOT NULL);"
        "CREATE TABLE app_state (key TEXT PRIMARY KEY, value TEXT NOT NULL);"
        "INSERT INTO conversations VALUES (1, 'kept', 'guide', '', '{}', 0, 0);"
        "INSERT INTO messages VALUES (1, 1, NULL, 'user', 'hi', 0, 0);"
        "INSERT INTO messages VALUES (2, 1, 1, 'assistant', 'hello', 0, 0);"
        "INSERT INTO message_stats VALUES (2, 'guide', 5, 0, 3, 0.1, 40.0, 'eos');"
        "PRAGMA user_version = 1;"
    )
    old.close()
    store = Store(path)
    assert store.schema_version() == SCHEMA_VERSION
    (conv,) = store.list_conversations()
    assert conv.title == "kept"
    reply = store.messages(conv.id)[-1]
    assert reply.stats == ReplyStats("guide", 5, 0, 3, 0.1, 40.0, "eos")
