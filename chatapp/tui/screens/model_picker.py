"""A modal that lists the installed models and returns the chosen name."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

from rich.text import Text
from textual import work
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Vertical
from textual.screen import ModalScreen
from textual.widgets import DataTable, Label

from chatapp.console_text import printable
from chatapp.models.choice import BUILTIN_SOURCE, REMOTE_ARCHITECTURE
from chatapp.units import human_count, human_size


class ModelPicker(ModalScreen[str | None]):
    """Lists the models: the built-in one and the installed ones (read in a thread: it
    touches every checkpoint header)."""

    BINDINGS = [Binding("escape", "dismiss(None)", "Cancel", id="dialog_cancel")]

    def __init__(self, list_models: Callable[[], Sequence[Any]], current: str = "") -> None:
        super().__init__(classes="dialog")
        self._list_models = list_models
        self.current = current

    def compose(self) -> ComposeResult:
        with Vertical():
            yield Label("Pick a model for this chat (Enter), Esc to cancel")
            table: DataTable[Any] = DataTable(cursor_type="row", zebra_stripes=True)
            table.loading = True
            yield table

    def on_mount(self) -> None:
        table = self.query_one(DataTable)
        table.add_columns("name", "architecture", "parameters", "context", "size")
        self._load()

    @work(thread=True, exclusive=True)
    def _load(self) -> None:
        try:
            models = list(self._list_models())
        except Exception as e:  # noqa: BLE001 - shown as one line
            self.app.call_from_thread(self._show_error, str(e))
            return
        self.app.call_from_thread(self._fill, models)

    def _show_error(self, message: str) -> None:
        table = self.query_one(DataTable)
        table.loading = False
        self.query_one(Label).update(Text(printable(f"could not list models: {message}")))

    def _fill(self, models: list[Any]) -> None:
        table = self.query_one(DataTable)
        table.loading = False
        if not models:
            self.query_one(Label).update(
                "No models installed: run `chatapp pull smollm2` or `chatapp import FILE`"
            )
            return
        for m in models:
            # Names and architectures come from files on disk: Text, never markup.
            name = Text(printable(m.name), style="bold" if m.name == self.current else "")
            if getattr(m, "source", "") == BUILTIN_SOURCE:
                name.append(" (built-in)", style="dim")
            if m.architecture == REMOTE_ARCHITECTURE:  # on a server: its model id and URL
                name.append(" (remote)", style="dim")
                table.add_row(name, Text(printable(m.source)), "-", "-", "-", key=m.name)
                continue
            table.add_row(
                name,
                Text(printable(m.architecture)),
                human_count(m.parameters),
                str(m.context_length),
                human_size(m.size_bytes),
                key=m.name,
            )
        names = [m.name for m in models]
        if self.current in names:
            table.move_cursor(row=names.index(self.current))
        table.focus()

    def on_data_table_row_selected(self, event: DataTable.RowSelected) -> None:
        self.dismiss(event.row_key.value)
