"""Textual's footer, without its leak: each time the bindings change it recomposes, and the
keys it made before stay referenced by its data-binding watchers (about 20 widgets a chat turn,
~0.5 MB) until the watched value changes, which it never does. This one drops the watchers of
keys that are gone after every recompose."""

from __future__ import annotations

from textual.widgets import Footer


class ChatFooter(Footer):
    async def recompose(self) -> None:
        await super().recompose()
        watchers: dict[str, list[tuple[object, object]]] = getattr(self, "__watchers", {})
        for name, watching in watchers.items():
            watchers[name] = [
                (node, callback)
                for node, callback in watching
                if getattr(node, "is_attached", True)
            ]
