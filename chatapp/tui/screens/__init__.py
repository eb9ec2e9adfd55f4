"""The chat screen and the modal screens it opens (help, confirm, rename, history, models)."""
