"""The Textual chat: the app, its screens, widgets, slash commands and stylesheet."""
