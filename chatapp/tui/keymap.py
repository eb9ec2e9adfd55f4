"""config.toml's ``[keys]``: binding ids remapped to other keys, checked before Textual's
keymap (``App.set_keymap``) applies them.

    [keys]
    new_chat = "ctrl+t"           # the id of a binding = its key(s), comma-separated

An unknown id, or a key that would then do two things at once (two remapped ids, or a
remapped id and a binding left as it was), is one warning line; that entry is dropped and
the binding keeps its default key.
"""

from __future__ import annotations

import difflib
from collections.abc import Iterable, Sequence

from textual.binding import Binding, BindingType
from textual.dom import DOMNode
from textual.keys import _character_to_key

from chatapp.tui.screens.dialogs import key_label


def merged_bindings(cls: type[DOMNode]) -> list[Binding]:
    """The bindings a widget class has, its bases' included (a subclass's win per key)."""
    merged = cls._merge_bindings()
    return [b for bindings in merged.key_to_bindings.values() for b in bindings]


def normalize_keys(text: str) -> str:
    """``"Ctrl+T, ?"`` → ``"ctrl+t,question_mark"``: Textual's key names."""
    keys = [k.strip() for k in text.split(",")]
    return ",".join(_character_to_key(k) if len(k) == 1 else k.lower() for k in keys if k)


def remapped(bindings: Iterable[BindingType], keymap: dict[str, str]) -> list[Binding]:
    """``bindings`` with the keys ``keymap`` gives their ids (what F1's help shows)."""
    out: list[Binding] = []
    done: set[str] = set()
    for binding in Binding.make_bindings(bindings):
        if binding.id is None or binding.id not in keymap:
            out.append(binding)
        elif binding.id not in done:
            done.add(binding.id)
            out.extend(binding.with_key(k) for k in keymap[binding.id].split(","))
    return out


def _keys(binding: Binding, keymap: dict[str, str]) -> list[str]:
    if binding.id is not None and binding.id in keymap:
        return keymap[binding.id].split(",")
    return [k.strip() for k in binding.key.split(",")]


def _first_clash(
    keymap: dict[str, str], defaults: dict[str, list[str]], contexts: Sequence[Sequence[Binding]]
) -> tuple[str, list[str], list[str]] | None:
    """A key that would do two things in one context: (key, what it would do, the remapped
    ids moved onto it). Keys shared by design (Ctrl+C stops a reply, else copies) are no
    clash: only a key an id was moved onto counts."""
    for bindings in contexts:
        owners: dict[str, dict[str, None]] = {}
        for binding in bindings:
            owner = binding.id or binding.action or binding.description
            for key in _keys(binding, keymap):
                owners.setdefault(key, {})[owner] = None
        for key, names in owners.items():
            moved = [n for n in names if n in keymap and key not in defaults[n]]
            if len(names) > 1 and moved:
                return key, list(names), moved
    return None


def check_keymap(
    requested: dict[str, str], contexts: Sequence[Sequence[Binding]], source: str
) -> tuple[dict[str, str], list[str]]:
    """The keymap to apply (ids → normalized keys) and one warning line per dropped entry.

    ``contexts`` are the groups of bindings active at the same time (the app's with the
    prompt's, the app's with the chat list's, a dialog's own)."""
    known: dict[str, list[str]] = {}  # id → its default keys
    for bindings in contexts:
        for binding in bindings:
            if binding.id is not None:
                keys = known.setdefault(binding.id, [])
                keys += [k for k in _keys(binding, {}) if k not in keys]
    warnings: list[str] = []
    keymap: dict[str, str] = {}
    for binding_id, text in requested.items():
        if binding_id not in known:
            near = difflib.get_close_matches(binding_id, list(known), n=2, cutoff=0.6)
            hint = f"did you mean {' or '.join(near)}? " if near else ""
            warnings.append(
                f"{source} [keys]: unknown binding id {binding_id!r}; {hint}"
                "the README lists the ids"
            )
        elif not (normalized := normalize_keys(text)):
            warnings.append(f"{source} [keys]: {binding_id} names no key")
        else:
            keymap[binding_id] = normalized
    while (clash := _first_clash(keymap, known, contexts)) is not None:
        key, names, moved = clash
        for name in moved:
            del keymap[name]
        kept = "; ".join(f"{n} keeps {' / '.join(key_label(k) for k in known[n])}" for n in moved)
        warnings.append(
            f"{source} [keys]: {key_label(key)} would be both {' and '.join(names)}; {kept}"
        )
    return keymap, warnings
