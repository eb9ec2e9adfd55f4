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


def _saved_chat(path: Path) -> bytes:
    """A database holding one chat (closed, so its WAL is checkpointed away); its bytes."""
    store = Store(path)
    chat = store.create_conversation("an old chat", "m")
    store.add_message(chat, "user", "what about the kv cache")
    store.add_message(chat, "assistant", "it is reused")
    store.add_prompt("what about the kv cache")
    store.close()
    return path.read_bytes()


def test_a_read_only_store_reads_everything_and_refuses_writes_in_one_line(
    tmp_path: Path,
) -> None:
    path = tmp_path / "chatapp.db"
    before = _saved_chat(path)
    store = Store(path, read_only=True)
    (conv,) = store.list_conversations()
    assert [m.content for m in store.messages(conv.id)] == [
        "what about the kv cache",
        "it is reused",
    ]
    assert [h.role for h in store.search("kv cache")] == ["user"]
    assert store.prompts() == ["what about the kv cache"]
    writes = [
        lambda: store.add_prompt("more"),
        lambda: store.create_conversation("new"),
        lambda: store.add_message(conv.id, "user", "more"),
        lambda: store.update_conversation(conv.id, title="x"),
        lambda: store.delete_conversation(conv.id),
    ]
    for write in writes:
        with pytest.raises(StoreError) as info:
            write()
        assert str(info.value) == f"{path} is read-only: nothing new is saved"
    store.close()
    assert path.read_bytes() == before


def test_a_read_only_database_from_an_older_chatapp_is_one_line(tmp_path: Path) -> None:
    path = tmp_path / "chatapp.db"
    db = sqlite3.connect(path)
    db.execute("PRAGMA user_version = 1")
    db.close()
    with pytest.raises(StoreError, match="read-only and from an older chatapp.*writable once"):
        Store(path, read_only=True)


def _run_read_only(
    folder: Path, argv: list[str], env: dict[str, str]
) -> subprocess.CompletedProcess:
    """``argv`` with ``folder`` read-only for it: chmod for a user; for root (whom the mode
    bits do not stop) a read-only bind mount in a mount namespace of its own."""
    import os
    import shutil

    if os.geteuid() != 0:
        folder.chmod(0o555)
        try:
            return subprocess.run(argv, env=env, capture_output=True, text=True, timeout=120)
        finally:
            folder.chmod(0o755)
    if shutil.which("unshare") is None:
        pytest.skip("running as root without unshare: cannot make a folder read-only")
    script = 'mount --bind "$0" "$0" && mount -o remount,bind,ro "$0" && exec "$@"'
    done = subprocess.run(["unshare", "-m", "sh", "-c", script, str(folder), *argv], env=env,
                          capture_output=True, text=True, timeout=120)  # fmt: skip
    if "mount" in done.stderr and done.returncode != 0:
        pytest.skip(f"cannot make a read-only mount here: {done.stderr.strip()[:200]}")
    return done


CLI_ON_READ_ONLY = """
from chatapp.cli import main
from chatapp.core.store import Store
print("read-only:", Store().read_only, flush=True)
for argv in (["chats"], ["search", "kv", "cache"], ["export", "1", "--format", "md"]):
    print("exit:", main(argv), flush=True)
"""


def test_a_read_only_data_dir_opens_the_database_to_browse_from_the_cli(
    tmp_path: Path, chatapp_home: Path
) -> None:
    import os

    chatapp_home.mkdir(parents=True, exist_ok=True)
    before = _saved_chat(chatapp_home / "chatapp.db")
    env = os.environ | {"CHATAPP_HOME": str(chatapp_home)}
    done = _run_read_only(chatapp_home, [sys.executable, "-c", CLI_ON_READ_ONLY], env)
    assert done.returncode == 0, done.stderr
    out = done.stdout
    assert "read-only: True" in out and out.count("exit: 0") == 3, (out, done.stderr)
    assert out.count("an old chat") >= 2  # listed, found, exported
    assert "it is reused" in out  # the export has the reply
    assert "Traceback" not in done.stderr
    assert (chatapp_home / "chatapp.db").read_bytes() == before
    assert sorted(p.name for p in chatapp_home.iterdir()) == ["chatapp.db"]  # no -wal, no -shm


def test_a_read_only_data_dir_without_a_database_says_what_to_do(chatapp_home: Path) -> None:
    import os

    chatapp_home.mkdir(parents=True, exist_ok=True)
    env = os.environ | {"CHATAPP_HOME": str(chatapp_home)}
    code = "from chatapp.cli import main; raise SystemExit(main(['chats']))"
    done = _run_read_only(chatapp_home, [sys.executable, "-c", code], env)
    assert done.returncode == 1 and "Traceback" not in done.stderr
    (line,) = done.stderr.splitlines()
    assert f"{chatapp_home} is read-only" in line and "CHATAPP_HOME" in line
