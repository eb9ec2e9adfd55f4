"""A conversation as the tree its messages form (``parent_id``): regenerating a reply or
editing a prompt adds a sibling beside the old message, and the chat shows one branch, the path
from a root to the conversation's leaf.

Pure data over ``StoredMessage``s: the session keeps one tree per open chat, the exporter reads
the same branch the chat shows.
"""

from __future__ import annotations

from collections.abc import Iterable

from chatapp.core.store import StoredMessage


class MessageTree:
    """The messages of one conversation, by id and by parent (children in the order written)."""

    def __init__(self, messages: Iterable[StoredMessage] = ()) -> None:
        self.by_id: dict[int, StoredMessage] = {}
        self._children: dict[int | None, list[StoredMessage]] = {}
        for m in sorted(messages, key=lambda m: m.id):
            self.add(m)

    def __len__(self) -> int:
        return len(self.by_id)

    def __contains__(self, message_id: object) -> bool:
        return message_id in self.by_id

    def _parent(self, message: StoredMessage) -> int | None:
        """The message's parent in this tree (None for a root, or a parent not in it)."""
        return message.parent_id if message.parent_id in self.by_id else None

    def add(self, message: StoredMessage) -> None:
        """A new message (its parent, if any, is in the tree already)."""
        parent = self._parent(message)
        self.by_id[message.id] = message
        self._children.setdefault(parent, []).append(message)

    def subtree(self, message_id: int) -> list[int]:
        """The message and every message below it (its replies, their alternatives...)."""
        out, todo = [], [message_id] if message_id in self.by_id else []
        while todo:
            out.append(todo.pop())
            todo += [m.id for m in self._children.get(out[-1], [])]
        return out

    def remove(self, message_id: int) -> list[int]:
        """Take a message out with everything below it (as the database's ON DELETE CASCADE
        does); the ids removed."""
        removed = self.subtree(message_id)
        if removed:
            parent = self._parent(self.by_id[message_id])
            self._children[parent] = [m for m in self._children[parent] if m.id != message_id]
        for i in removed:
            del self.by_id[i]
            self._children.pop(i, None)
        return removed

    def children(self, message_id: int | None) -> list[StoredMessage]:
        return list(self._children.get(message_id, []))

    def siblings(self, message_id: int) -> list[StoredMessage]:
        """The alternatives of a message: every child of its parent, itself included, oldest
        first (the roots, for a first message)."""
        return self.children(self._parent(self.by_id[message_id]))

    def newest_leaf(self, message_id: int | None = None) -> int | None:
        """The end of the branch that goes on from ``message_id`` (the whole tree for None)
        through the newest child at each step: where a chat continues after a jump."""
        if message_id is None:
            roots = self._children.get(None, [])
            if not roots:
                return None
            message_id = roots[-1].id
        while kids := self._children.get(message_id):
            message_id = kids[-1].id
        return message_id

    def path(self, leaf_id: int | None) -> list[StoredMessage]:
        """The branch from its root to ``leaf_id``, in order (empty for None)."""
        out: list[StoredMessage] = []
        m = self.by_id.get(leaf_id) if leaf_id is not None else None
        while m is not None:
            out.append(m)
            m = self.by_id.get(m.parent_id) if m.parent_id is not None else None
        return out[::-1]

    def leaf_or_newest(self, leaf_id: int | None) -> int | None:
        """``leaf_id`` when it is in the tree, else the newest message's branch end (chats
        from before branches, or a leaf deleted meanwhile)."""
        if leaf_id is not None and leaf_id in self.by_id:
            return leaf_id
        if not self.by_id:
            return None
        return self.newest_leaf(max(self.by_id))
