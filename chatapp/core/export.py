"""Saved chats out of and back into the database: JSON that keeps everything (the whole tree
of messages with every alternative, the model, settings, stats and times; an export of an
import is byte-identical to the export it came from) and Markdown of the current branch, for
reading."""

from __future__ import annotations

import json
from dataclasses import asdict, fields
from typing import Any

from chatapp.core.branches import MessageTree
from chatapp.core.reply_stats import ReplyStats
from chatapp.core.store import Conversation, Store, StoredMessage

FORMAT = "chatapp.chat"  # the "format" of an export, so a foreign file is refused clearly
VERSION = 1
ROLES = ("system", "user", "assistant")


class ChatFileError(ValueError):
    """A chat file that cannot be imported: one line naming what is wrong."""


def conversation_dict(store: Store, conversation_id: int) -> dict[str, Any]:
    """One conversation as JSON data. Messages are numbered from 1 in their order, and
    ``parent`` refers to those numbers (database ids are not kept: they differ after an
    import)."""
    conv = store.get_conversation(conversation_id)
    if conv is None:
        raise ChatFileError(f"no saved chat {conversation_id} (see chatapp chats)")
    messages = store.messages(conversation_id)
    number = {m.id: i + 1 for i, m in enumerate(messages)}
    leaf = MessageTree(messages).leaf_or_newest(conv.leaf_id)
    return {
        "title": conv.title,
        "model": conv.model,
        "system": conv.system,
        "params": conv.params,
        "created_at": conv.created_at,
        "updated_at": conv.updated_at,
        "leaf": number.get(leaf) if leaf is not None else None,  # where the current branch ends
        "messages": [
            {
                "id": number[m.id],
                "parent": number.get(m.parent_id) if m.parent_id is not None else None,
                "role": m.role,
                "content": m.content,
                "stopped": m.stopped,
                "created_at": m.created_at,
                "stats": asdict(m.stats) if m.stats is not None else None,
            }
            for m in messages
        ],
    }


def export_json(store: Store, conversation_ids: list[int]) -> str:
    """The file for these conversations (one or many)."""
    data = {
        "format": FORMAT,
        "version": VERSION,
        "conversations": [conversation_dict(store, i) for i in conversation_ids],
    }
    return json.dumps(data, ensure_ascii=False, indent=2) + "\n"


def current_branch(
    messages: list[StoredMessage], leaf_id: int | None = None
) -> list[StoredMessage]:
    """The branch the chat shows and continues: from its root to ``leaf_id`` (None: to the
    end of the newest message's branch), in order."""
    tree = MessageTree(messages)
    return tree.path(tree.leaf_or_newest(leaf_id))


def export_markdown(store: Store, conversation_ids: list[int]) -> str:
    """Each conversation's current branch as Markdown: a heading per message with its role
    (and the model for replies); the messages' own text, code blocks included, as written."""
    parts = []
    for cid in conversation_ids:
        conv = store.get_conversation(cid)
        if conv is None:
            raise ChatFileError(f"no saved chat {cid} (see chatapp chats)")
        lines = [f"# {conv.title or 'Untitled chat'}", ""]
        if conv.model:
            lines += [f"Model: `{conv.model}`", ""]
        if conv.system:
            lines += ["## System", "", conv.system, ""]
        for m in current_branch(store.messages(cid), conv.leaf_id):
            if m.role == "user":
                lines += ["## You", ""]
            elif m.role == "assistant":
                model = m.stats.model if m.stats is not None and m.stats.model else conv.model
                lines += [f"## Assistant ({model})" if model else "## Assistant", ""]
            else:
                lines += ["## System", ""]
            lines += [m.content, ""]
            if m.stopped:
                lines += ["*(stopped)*", ""]
        parts.append("\n".join(lines).rstrip("\n") + "\n")
    return "\n---\n\n".join(parts)


def import_json(store: Store, text: str, source: str = "the file") -> list[int]:
    """Add the conversations of an export to the database; their new ids. Everything is
    checked before anything is written."""
    try:
        data = json.loads(text)
    except ValueError as e:
        raise ChatFileError(f"{source} is not JSON ({e})") from None
    if not isinstance(data, dict) or data.get("format") != FORMAT:
        raise ChatFileError(f"{source} is not a chatapp chat export (format {FORMAT!r})")
    if data.get("version") != VERSION:
        raise ChatFileError(
            f"{source} is version {data.get('version')!r}; this chatapp reads {VERSION}"
        )
    convs = data.get("conversations")
    if not isinstance(convs, list):
        raise ChatFileError(f"{source} has no list of conversations")
    parsed = [_conversation(c, f"{source}: conversation {i + 1}") for i, c in enumerate(convs)]
    return [store.import_conversation(conv, msgs, leaf) for conv, msgs, leaf in parsed]


def _conversation(
    c: Any, where: str
) -> tuple[Conversation, list[tuple[StoredMessage, int | None]], int | None]:
    if not isinstance(c, dict):
        raise ChatFileError(f"{where} is not an object")

    def field(obj: dict[str, Any], key: str, kind: type | tuple[type, ...], at: str) -> Any:
        value = obj.get(key)
        if not isinstance(value, kind) or (isinstance(value, bool) and kind is not bool):
            raise ChatFileError(f"{at}: {key!r} is missing or of the wrong type")
        return value

    conv = Conversation(
        id=0,
        title=field(c, "title", str, where),
        model=field(c, "model", str, where),
        system=field(c, "system", str, where),
        params=field(c, "params", dict, where),
        created_at=float(field(c, "created_at", (int, float), where)),
        updated_at=float(field(c, "updated_at", (int, float), where)),
    )
    raw = field(c, "messages", list, where)
    position: dict[int, int] = {}
    messages: list[tuple[StoredMessage, int | None]] = []
    stat_names = {f.name for f in fields(ReplyStats)}
    for i, m in enumerate(raw):
        at = f"{where}, message {i + 1}"
        if not isinstance(m, dict):
            raise ChatFileError(f"{at} is not an object")
        number = field(m, "id", int, at)
        parent = m.get("parent")
        if parent is not None and parent not in position:
            raise ChatFileError(f"{at}: its parent {parent!r} is not an earlier message")
        role = field(m, "role", str, at)
        if role not in ROLES:
            raise ChatFileError(f"{at}: role {role!r} is not one of {', '.join(ROLES)}")
        stats = m.get("stats")
        if stats is not None:
            if not isinstance(stats, dict):
                raise ChatFileError(f"{at}: stats must be an object")
            try:
                stats = ReplyStats(**{k: v for k, v in stats.items() if k in stat_names})
            except TypeError as e:
                raise ChatFileError(f"{at}: bad stats ({e})") from None
        stored = StoredMessage(
            id=0,
            conversation_id=0,
            parent_id=None,
            role=role,
            content=field(m, "content", str, at),
            stopped=field(m, "stopped", bool, at),
            stats=stats,
            created_at=float(field(m, "created_at", (int, float), at)),
        )
        position[number] = len(messages)
        messages.append((stored, position[parent] if parent is not None else None))
    leaf = c.get("leaf")  # optional: without it, the chat goes on from its newest message
    if leaf is not None and (isinstance(leaf, bool) or leaf not in position):
        raise ChatFileError(f"{where}: its leaf {leaf!r} is not one of its messages")
    return conv, messages, position[leaf] if leaf is not None else None
