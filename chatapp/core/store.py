"""The app's SQLite database: conversations, messages, per-message stats, prompt history.

WAL mode, a busy timeout and one short transaction per write let two app instances share the
file. The schema is versioned with ``PRAGMA user_version``: each ``@migration`` function brings
it one step up (``m001_initial`` makes version 1) and runs inside the transaction that records
the new version.
"""

from __future__ import annotations

import json
import os
import sqlite3
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import astuple, dataclass, fields
from pathlib import Path
from typing import Any

from chatapp.core.reply_stats import ReplyStats
from engine.paths import data_dir

Migration = Callable[[sqlite3.Connection], None]
MIGRATIONS: list[Migration] = []


def migration(step: Migration) -> Migration:
    """Register the next schema step: the n-th function brings ``user_version`` n-1 to n (so
    never reorder or remove one; add ``m002_...`` below)."""
    MIGRATIONS.append(step)
    return step


@migration
def m001_initial(db: sqlite3.Connection) -> None:
    """Conversations, messages with their stats, prompt history, small app state."""
    db.execute(
        """
        CREATE TABLE conversations (
            id INTEGER PRIMARY KEY,
            title TEXT NOT NULL DEFAULT '',
            model TEXT NOT NULL DEFAULT '',
            system TEXT NOT NULL DEFAULT '',
            params TEXT NOT NULL DEFAULT '{}',
            created_at REAL NOT NULL,
            updated_at REAL NOT NULL
        )
        """
    )
    db.execute(
        """
        CREATE TABLE messages (
            id INTEGER PRIMARY KEY,
            conversation_id INTEGER NOT NULL REFERENCES conversations(id) ON DELETE CASCADE,
            parent_id INTEGER REFERENCES messages(id) ON DELETE CASCADE,
            role TEXT NOT NULL CHECK (role IN ('system', 'user', 'assistant')),
            content TEXT NOT NULL,
            stopped INTEGER NOT NULL DEFAULT 0,
            created_at REAL NOT NULL
        )
        """
    )
    db.execute("CREATE INDEX messages_by_conversation ON messages(conversation_id, id)")
    db.execute(
        """
        CREATE TABLE message_stats (
            message_id INTEGER PRIMARY KEY REFERENCES messages(id) ON DELETE CASCADE,
            model TEXT NOT NULL DEFAULT '',
            prompt_tokens INTEGER NOT NULL DEFAULT 0,
            reused_tokens INTEGER NOT NULL DEFAULT 0,
            new_tokens INTEGER NOT NULL DEFAULT 0,
            time_to_first_token REAL NOT NULL DEFAULT 0,
            tokens_per_second REAL NOT NULL DEFAULT 0,
            stop_reason TEXT NOT NULL DEFAULT ''
        )
        """
    )
    db.execute(
        """
        CREATE TABLE prompt_history (
            id INTEGER PRIMARY KEY,
            text TEXT NOT NULL,
            created_at REAL NOT NULL
        )
        """
    )
    db.execute("CREATE TABLE app_state (key TEXT PRIMARY KEY, value TEXT NOT NULL)")


@migration
def m002_dropped_messages(db: sqlite3.Connection) -> None:
    """How many earlier messages a reply's prompt left out to fit the context."""
    db.execute("ALTER TABLE message_stats ADD COLUMN dropped_messages INTEGER NOT NULL DEFAULT 0")


@migration
def m003_search(db: sqlite3.Connection) -> None:
    """Full-text search over every message (SQLite FTS5, trigrams: substrings of three or more
    characters match in any language, Chinese included), kept in step by triggers; the
    messages already stored are indexed here."""
    db.execute(
        "CREATE VIRTUAL TABLE message_search USING fts5("
        "content, content='messages', content_rowid='id', tokenize='trigram')"
    )
    db.execute(
        "CREATE TRIGGER message_search_insert AFTER INSERT ON messages BEGIN "
        "INSERT INTO message_search(rowid, content) VALUES (new.id, new.content); END"
    )
    db.execute(
        "CREATE TRIGGER message_search_delete AFTER DELETE ON messages BEGIN "
        "INSERT INTO message_search(message_search, rowid, content) "
        "VALUES ('delete', old.id, old.content); END"
    )
    db.execute(
        "CREATE TRIGGER message_search_update AFTER UPDATE OF content ON messages BEGIN "
        "INSERT INTO message_search(message_search, rowid, content) "
        "VALUES ('delete', old.id, old.content); "
        "INSERT INTO message_search(rowid, content) VALUES (new.id, new.content); END"
    )
    db.execute("INSERT INTO message_search(message_search) VALUES ('rebuild')")


@migration
def m004_branches(db: sqlite3.Connection) -> None:
    """Conversations are trees (regenerate and edit add siblings): each remembers the message
    its current branch ends at. Chats written before parents were kept become one chain."""
    db.execute(
        "ALTER TABLE conversations ADD COLUMN leaf_id INTEGER"
        " REFERENCES messages(id) ON DELETE SET NULL"
    )
    db.execute(
        "UPDATE messages SET parent_id = (SELECT max(p.id) FROM messages p"
        " WHERE p.conversation_id = messages.conversation_id AND p.id < messages.id)"
        " WHERE conversation_id IN (SELECT conversation_id FROM messages"
        " GROUP BY conversation_id HAVING count(*) > 1 AND count(parent_id) = 0)"
    )
    db.execute("CREATE INDEX messages_by_parent ON messages(parent_id)")


SCHEMA_VERSION = len(MIGRATIONS)

# Marks around the matching text in a search hit's snippet (the UI styles them).
MATCH_START, MATCH_END = "\x02", "\x03"


@dataclass(frozen=True)
class SearchHit:
    conversation_id: int
    message_id: int
    title: str
    role: str
    snippet: str  # the match between MATCH_START and MATCH_END, with some context


def db_path() -> Path:
    """``<data dir>/chatapp.db``."""
    return data_dir() / "chatapp.db"


def _can_write(path: Path) -> bool:
    """Whether this process may change the database file and create its -wal and -shm files
    beside it (root may, even where the mode bits say no; a read-only mount stops root too)."""
    return os.access(path, os.W_OK) and os.access(path.parent, os.W_OK)


class StoreError(Exception):
    """The database cannot be opened or is from a newer chatapp."""


@dataclass(frozen=True)
class Conversation:
    id: int
    title: str
    model: str
    system: str
    params: dict[str, Any]
    created_at: float
    updated_at: float
    leaf_id: int | None = None  # where the current branch ends (None: at the newest message)


@dataclass(frozen=True)
class PastPrompt:
    """One entry of the prompt history."""

    text: str
    created_at: float


@dataclass(frozen=True)
class StoredMessage:
    id: int
    conversation_id: int
    parent_id: int | None
    role: str
    content: str
    stopped: bool
    stats: ReplyStats | None = None
    created_at: float = 0.0


# The message_stats columns: ReplyStats' fields, by the same names.
STATS_FIELDS = tuple(f.name for f in fields(ReplyStats))


class Store:
    """One connection, safe to share between the UI thread and workers (a lock serialises it)."""

    def __init__(self, path: Path | str | None = None, *, read_only: bool | None = None) -> None:
        """``read_only``: open the database only to read it (history to browse; every write
        is a ``StoreError``). None: so when the file exists but this process cannot change
        it, or cannot create its WAL files beside it (a read-only data dir)."""
        self.path = Path(path) if path is not None else db_path()
        if read_only is None:
            read_only = self.path.exists() and not _can_write(self.path)
        self.read_only = read_only
        if read_only:
            self._db = self._connect_read_only()
            self._lock = threading.RLock()
            return
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
        except OSError as e:  # read-only, a file in the way, no permission
            why = (
                "a file is in the way"
                if isinstance(e, (FileExistsError, NotADirectoryError))
                else e.strerror or str(e)
            )
            raise StoreError(
                f"cannot create the data folder {self.path.parent} ({why}); make it writable, "
                "or point CHATAPP_HOME at a folder you can write to"
            ) from None
        try:
            # isolation_level=None: we issue BEGIN ourselves, so each write is one transaction.
            self._db = sqlite3.connect(
                self.path, timeout=10.0, isolation_level=None, check_same_thread=False
            )
        except sqlite3.Error as e:
            raise StoreError(f"cannot open {self.path}: {e}{self._folder_hint()}") from None
        self._lock = threading.RLock()
        self._db.row_factory = sqlite3.Row
        try:
            self._db.execute("PRAGMA busy_timeout = 10000")
            self._enable_wal()
            self._db.execute("PRAGMA synchronous = NORMAL")
            self._db.execute("PRAGMA foreign_keys = ON")
            self.migrate()
        except sqlite3.DatabaseError as e:  # e.g. "file is not a database"
            self._db.close()
            raise StoreError(
                f"cannot use {self.path} ({e}); move it away and chatapp starts a new one"
            ) from None

    def _connect_read_only(self) -> sqlite3.Connection:
        """A read-only connection (``mode=ro``); when SQLite cannot read a WAL database that
        way because it may not create the -shm file in a read-only folder, ``immutable=1``
        (no locks, no -shm: right for a folder nobody writes to, as a read-only one mostly is;
        a write by someone who may would not be seen). The schema must be ours as it is: a
        read-only file cannot be migrated."""
        uri = self.path.resolve().as_uri()
        reason = ""
        for flags in ("mode=ro", "mode=ro&immutable=1"):
            db = None
            try:
                db = sqlite3.connect(
                    f"{uri}?{flags}", uri=True, isolation_level=None, check_same_thread=False
                )
                version = int(db.execute("PRAGMA user_version").fetchone()[0])
                db.execute("SELECT count(*) FROM sqlite_master").fetchone()
                break
            except sqlite3.DatabaseError as e:
                if db is not None:
                    db.close()
                reason = str(e)
        else:
            raise StoreError(f"cannot read {self.path} ({reason}); it is read-only here")
        db.row_factory = sqlite3.Row
        db.execute("PRAGMA foreign_keys = ON")
        if version != SCHEMA_VERSION:
            db.close()
            newer = version > SCHEMA_VERSION
            raise StoreError(
                f"{self.path} is read-only and from {'a newer' if newer else 'an older'} chatapp "
                f"(schema {version}); "
                + ("upgrade chatapp" if newer else "make it writable once so chatapp can update it")
            )
        return db

    def _folder_hint(self) -> str:
        """What to do when the database cannot be made because its folder is read-only."""
        if os.access(self.path.parent, os.W_OK):
            return ""
        return (
            f"; {self.path.parent} is read-only: make it writable, or point CHATAPP_HOME at a "
            "folder you can write to"
        )

    def _enable_wal(self) -> None:
        # Switching a new file to WAL needs an exclusive lock, and SQLite does not wait on the
        # busy timeout for it: when another instance is creating the file too, retry briefly.
        deadline = time.monotonic() + 10.0
        while True:
            try:
                self._db.execute("PRAGMA journal_mode = WAL")
                return
            except sqlite3.OperationalError as e:
                if "locked" not in str(e) or time.monotonic() > deadline:
                    raise StoreError(f"cannot open {self.path}: {e}{self._folder_hint()}") from None
                time.sleep(0.02)

    def close(self) -> None:
        with self._lock:
            self._db.close()

    @contextmanager
    def _write(self) -> Iterator[sqlite3.Connection]:
        """A short write transaction; BEGIN IMMEDIATE takes the write lock up front, so two
        instances queue on busy_timeout instead of failing on a read-to-write upgrade."""
        if self.read_only:
            raise StoreError(f"{self.path} is read-only: nothing new is saved")
        with self._lock:
            self._db.execute("BEGIN IMMEDIATE")
            try:
                yield self._db
            except BaseException:
                self._db.execute("ROLLBACK")
                raise
            self._db.execute("COMMIT")

    def schema_version(self) -> int:
        with self._lock:
            return int(self._db.execute("PRAGMA user_version").fetchone()[0])

    def migrate(self) -> None:
        with self._write() as db:
            version = int(db.execute("PRAGMA user_version").fetchone()[0])
            if version > SCHEMA_VERSION:
                raise StoreError(
                    f"{self.path} is from a newer chatapp (schema {version}); upgrade chatapp"
                )
            for number, step in enumerate(MIGRATIONS[version:], start=version + 1):
                step(db)
                db.execute(f"PRAGMA user_version = {number}")

    # Conversations ---------------------------------------------------------------------------

    def create_conversation(
        self, title: str, model: str = "", system: str = "", params: dict[str, Any] | None = None
    ) -> int:
        now = time.time()
        with self._write() as db:
            cur = db.execute(
                "INSERT INTO conversations (title, model, system, params, created_at, updated_at)"
                " VALUES (?, ?, ?, ?, ?, ?)",
                (title, model, system, json.dumps(params or {}), now, now),
            )
            return int(cur.lastrowid or 0)

    def update_conversation(
        self,
        conversation_id: int,
        *,
        title: str | None = None,
        model: str | None = None,
        system: str | None = None,
        params: dict[str, Any] | None = None,
    ) -> None:
        changes: dict[str, Any] = {}
        if title is not None:
            changes["title"] = title
        if model is not None:
            changes["model"] = model
        if system is not None:
            changes["system"] = system
        if params is not None:
            changes["params"] = json.dumps(params)
        if not changes:
            return
        sets = ", ".join(f"{k} = ?" for k in changes)
        with self._write() as db:
            db.execute(
                f"UPDATE conversations SET {sets} WHERE id = ?",
                (*changes.values(), conversation_id),
            )

    def get_conversation(self, conversation_id: int) -> Conversation | None:
        with self._lock:
            row = self._db.execute(
                "SELECT * FROM conversations WHERE id = ?", (conversation_id,)
            ).fetchone()
        return _conversation(row) if row else None

    def list_conversations(self, limit: int = 500) -> list[Conversation]:
        """Newest activity first."""
        with self._lock:
            rows = self._db.execute(
                "SELECT * FROM conversations ORDER BY updated_at DESC, id DESC LIMIT ?", (limit,)
            ).fetchall()
        return [_conversation(r) for r in rows]

    def delete_conversation(self, conversation_id: int) -> None:
        with self._write() as db:
            db.execute("DELETE FROM conversations WHERE id = ?", (conversation_id,))

    # Messages --------------------------------------------------------------------------------

    def add_message(
        self,
        conversation_id: int,
        role: str,
        content: str,
        *,
        parent_id: int | None = None,
        stopped: bool = False,
        stats: ReplyStats | None = None,
    ) -> int:
        """Append one complete message (and its stats) in one transaction; the conversation's
        current branch then ends at it."""
        now = time.time()
        with self._write() as db:
            cur = db.execute(
                "INSERT INTO messages (conversation_id, parent_id, role, content, stopped,"
                " created_at) VALUES (?, ?, ?, ?, ?, ?)",
                (conversation_id, parent_id, role, content, int(stopped), now),
            )
            message_id = int(cur.lastrowid or 0)
            if stats is not None:
                _insert_stats(db, message_id, stats)
            db.execute(
                "UPDATE conversations SET updated_at = ?, leaf_id = ? WHERE id = ?",
                (now, message_id, conversation_id),
            )
            return message_id

    def set_leaf(self, conversation_id: int, message_id: int | None) -> None:
        """Make the branch that ends at ``message_id`` the conversation's current one."""
        with self._write() as db:
            db.execute(
                "UPDATE conversations SET leaf_id = ? WHERE id = ?", (message_id, conversation_id)
            )

    def delete_message(self, message_id: int) -> None:
        """Delete a message and every message below it (its replies, their alternatives)."""
        with self._write() as db:
            db.execute("DELETE FROM messages WHERE id = ?", (message_id,))

    def messages(self, conversation_id: int) -> list[StoredMessage]:
        """The conversation's messages in order, each with its stats when it has them."""
        with self._lock:
            rows = self._db.execute(
                "SELECT m.*, s.message_id AS has_stats, "
                + ", ".join(f"s.{k} AS s_{k}" for k in STATS_FIELDS)
                + " FROM messages m LEFT JOIN message_stats s ON s.message_id = m.id"
                " WHERE m.conversation_id = ? ORDER BY m.id",
                (conversation_id,),
            ).fetchall()
        out = []
        for r in rows:
            stats = (
                ReplyStats.from_row({k: r[f"s_{k}"] for k in STATS_FIELDS})
                if r["has_stats"] is not None
                else None
            )
            out.append(
                StoredMessage(
                    id=r["id"],
                    conversation_id=r["conversation_id"],
                    parent_id=r["parent_id"],
                    role=r["role"],
                    content=r["content"],
                    stopped=bool(r["stopped"]),
                    stats=stats,
                    created_at=r["created_at"],
                )
            )
        return out

    def import_conversation(
        self,
        conversation: Conversation,
        messages: list[tuple[StoredMessage, int | None]],
        leaf: int | None = None,
    ) -> int:
        """Write a whole conversation at once (one transaction: a failed import leaves
        nothing), keeping its timestamps. ``messages`` are in order, each with the index in
        ``messages`` of its parent (None for a root); ``leaf`` is the index of the message its
        current branch ends at (None: the newest); ids are assigned here."""
        c = conversation
        with self._write() as db:
            cur = db.execute(
                "INSERT INTO conversations (title, model, system, params, created_at, updated_at)"
                " VALUES (?, ?, ?, ?, ?, ?)",
                (c.title, c.model, c.system, json.dumps(c.params), c.created_at, c.updated_at),
            )
            conversation_id = int(cur.lastrowid or 0)
            ids: list[int] = []
            for m, parent in messages:
                parent_id = ids[parent] if parent is not None else None
                cur = db.execute(
                    "INSERT INTO messages (conversation_id, parent_id, role, content, stopped,"
                    " created_at) VALUES (?, ?, ?, ?, ?, ?)",
                    (conversation_id, parent_id, m.role, m.content, int(m.stopped), m.created_at),
                )
                ids.append(int(cur.lastrowid or 0))
                if m.stats is not None:
                    _insert_stats(db, ids[-1], m.stats)
            if leaf is not None:
                db.execute(
                    "UPDATE conversations SET leaf_id = ? WHERE id = ?",
                    (ids[leaf], conversation_id),
                )
            return conversation_id

    def delete_messages(self, conversation_id: int) -> None:
        with self._write() as db:
            db.execute("DELETE FROM messages WHERE conversation_id = ?", (conversation_id,))

    # Search ----------------------------------------------------------------------------------

    def search(self, text: str, limit: int = 50) -> list[SearchHit]:
        """Messages containing ``text`` (case-insensitive for Latin letters), newest chats
        first. Three characters or more use the full-text index; shorter queries (two
        Chinese characters, say) scan the messages."""
        text = " ".join(text.split())
        if not text:
            return []
        with self._lock:
            if len(text) >= 3:
                rows = self._db.execute(
                    "SELECT m.conversation_id, m.id, c.title, m.role, snippet(message_search, 0,"
                    " ?, ?, '…', 12) AS snippet FROM message_search"
                    " JOIN messages m ON m.id = message_search.rowid"
                    " JOIN conversations c ON c.id = m.conversation_id"
                    " WHERE message_search MATCH ? ORDER BY c.updated_at DESC, m.id DESC LIMIT ?",
                    (MATCH_START, MATCH_END, '"' + text.replace('"', '""') + '"', limit),
                ).fetchall()
                return [SearchHit(*r) for r in rows]
            rows = self._db.execute(
                "SELECT m.conversation_id, m.id, c.title, m.role, m.content FROM messages m"
                " JOIN conversations c ON c.id = m.conversation_id"
                " WHERE instr(lower(m.content), lower(?)) > 0"
                " ORDER BY c.updated_at DESC, m.id DESC LIMIT ?",
                (text, limit),
            ).fetchall()
        return [SearchHit(r[0], r[1], r[2], r[3], _snippet(r[4], text)) for r in rows]

    # Prompt history --------------------------------------------------------------------------

    def add_prompt(self, text: str) -> bool:
        """Remember a sent prompt; a repeat of the newest one is not stored again."""
        if not text.strip():
            return False
        with self._write() as db:
            last = db.execute("SELECT text FROM prompt_history ORDER BY id DESC LIMIT 1").fetchone()
            if last is not None and last[0] == text:
                return False
            db.execute(
                "INSERT INTO prompt_history (text, created_at) VALUES (?, ?)", (text, time.time())
            )
            return True

    def prompts(self, limit: int = 1000) -> list[str]:
        """Past prompts, oldest first (the order Up walks backwards through)."""
        with self._lock:
            rows = self._db.execute(
                "SELECT text FROM prompt_history ORDER BY id DESC LIMIT ?", (limit,)
            ).fetchall()
        return [r[0] for r in reversed(rows)]

    def past_prompts(self, limit: int = 1000, search: str = "") -> list[PastPrompt]:
        """The newest ``limit`` past prompts that contain ``search`` (any case, any script),
        oldest first, with when each was sent (``chatapp history``)."""
        needle = search.casefold()
        with self._lock:
            rows = self._db.execute(
                "SELECT text, created_at FROM prompt_history ORDER BY id DESC"
            ).fetchall()
        hits: list[PastPrompt] = []
        for text, created_at in rows:
            if len(hits) >= limit:
                break
            if needle in text.casefold():
                hits.append(PastPrompt(text, created_at))
        return hits[::-1]

    # Small key/value state (unused since issue 16: the default model lives in config.toml) ---

    def get_state(self, key: str) -> str | None:
        with self._lock:
            row = self._db.execute("SELECT value FROM app_state WHERE key = ?", (key,)).fetchone()
        return row[0] if row else None

    def set_state(self, key: str, value: str) -> None:
        with self._write() as db:
            db.execute(
                "INSERT INTO app_state (key, value) VALUES (?, ?)"
                " ON CONFLICT(key) DO UPDATE SET value = excluded.value",
                (key, value),
            )


def _insert_stats(db: sqlite3.Connection, message_id: int, stats: ReplyStats) -> None:
    db.execute(
        f"INSERT INTO message_stats (message_id, {', '.join(STATS_FIELDS)})"
        f" VALUES (?, {', '.join('?' * len(STATS_FIELDS))})",
        (message_id, *astuple(stats)),
    )


def _snippet(content: str, text: str, around: int = 40) -> str:
    """``content`` near the first ``text``, the match marked as FTS5's snippet() marks it."""
    at = content.lower().find(text.lower())
    if at < 0:
        return content[: 2 * around]
    start, end = max(0, at - around), at + len(text)
    before = ("…" if start else "") + content[start:at]
    after = content[end : end + around] + ("…" if end + around < len(content) else "")
    return before + MATCH_START + content[at:end] + MATCH_END + after


def _conversation(row: sqlite3.Row) -> Conversation:
    try:
        params = json.loads(row["params"])
    except ValueError:
        params = {}
    return Conversation(
        id=row["id"],
        title=row["title"],
        model=row["model"],
        system=row["system"],
        params=params if isinstance(params, dict) else {},
        created_at=row["created_at"],
        updated_at=row["updated_at"],
        leaf_id=row["leaf_id"],
    )
