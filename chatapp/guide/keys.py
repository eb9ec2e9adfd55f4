"""The keys the guide's answers name, as Textual key names, and what they must do in the app.
``tests/test_guide_corpus.py`` checks this table against the app's bindings."""

from __future__ import annotations

# How an answer writes a key → the Textual key name.
KEY_NAMES: dict[str, str] = {
    "Enter": "enter",
    "Shift+Enter": "shift+enter",
    "Ctrl+J": "ctrl+j",
    "Esc": "escape",
    "Ctrl+C": "ctrl+c",
    "Ctrl+Q": "ctrl+q",
    "Ctrl+N": "ctrl+n",
    "Ctrl+B": "ctrl+b",
    "Ctrl+O": "ctrl+o",
    "Ctrl+P": "ctrl+p",
    "Ctrl+R": "ctrl+r",
    "Ctrl+G": "ctrl+g",
    "F1": "f1",
    "F5": "f5",
    "Ctrl+Up": "ctrl+up",
    "Tab": "tab",
    "Up arrow": "up",
    "上箭头": "up",
    "Del": "delete",
}

# App-wide keys → the action they run (``ChatApp.BINDINGS`` or Textual's own App bindings).
APP_ACTIONS: dict[str, str] = {
    "Esc": "stop_reply",
    "Ctrl+C": "stop_reply",
    "Ctrl+Q": "quit",
    "Ctrl+N": "new_chat",
    "Ctrl+B": "toggle_sidebar",
    "Ctrl+O": "pick_model",
    "Ctrl+P": "command_palette",
    "Ctrl+R": "search_history",
    "Ctrl+G": "open_editor",
    "F1": "show_help",
    "F5": "regenerate",
    "Ctrl+Up": "select_message",
}

# Keys handled by one widget: the prompt (Enter, new line, Tab, history) and the chat list.
PROMPT_KEYS = ("Enter", "Shift+Enter", "Ctrl+J", "Tab", "Up arrow", "上箭头")
CHAT_LIST_KEYS = ("Del",)
