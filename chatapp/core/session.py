"""One conversation and its engine calls: the chat logic, kept out of the widgets.

The session works with any object that has the engine's ``Model`` interface (``chat``,
``last_stats``, ``tokenizer``, ``context_length``, ``name``), so tests can drive it with a fake.
``engine`` itself is imported lazily (in worker threads): it pulls in torch, and the app must
draw its first frame before that.
"""

from __future__ import annotations

import contextlib
import sqlite3
import threading
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Protocol

from chatapp.core.reply_stats import ReplyStats
from chatapp.core.settings import SAMPLING_KEYS, Settings, parse_value, sampling_params
from chatapp.core.store import Store, StoredMessage, StoreError
from chatapp.models.choice import resolve_model_name, resolve_model_source
from engine.errors import ModelLoadError

if TYPE_CHECKING:
    from engine.generate import GenerationStats

TITLE_LENGTH = 48


class ModelLike(Protocol):
    """The part of ``engine.Model`` the chat uses."""

    name: str
    path: str  # where it was loaded from ("" when not from disk)
    tokenizer: Any
    last_stats: GenerationStats
    warnings: list[str]  # one-line notes from loading, shown to the user
    base_model_note: str | None  # set when it has no chat template (most likely a base model)

    @property
    def context_length(self) -> int: ...

    def chat(
        self,
        messages: Sequence[dict[str, str]],
        params: Any = None,
        *,
        cancel: threading.Event | None = None,
    ) -> Iterator[str]: ...


Loader = Callable[[str], ModelLike]


class ModelUnavailable(Exception):
    """No model could be chosen or loaded; the message is one line for the user."""


def engine_loader(source: str) -> ModelLike:
    """The model ``source`` names: a remote model, the built-in ``guide``, an installed name,
    a pull alias, a unique prefix or a path (a name that is none of these fails with the
    closest names)."""
    from chatapp.models.loading import load_model

    model: ModelLike = load_model(source)
    return model


def title_for(prompt: str) -> str:
    line = " ".join(prompt.split())
    return line if len(line) <= TITLE_LENGTH else line[: TITLE_LENGTH - 1] + "…"


@dataclass(frozen=True)
class ReplyRequest:
    """What one reply is asked for, taken on the UI thread when the prompt is sent: the
    worker reads this, the model and the store, never the session's changing state."""

    conversation_id: int | None
    parent_id: int | None  # the prompt's message id: the reply's parent
    messages: list[dict[str, str]]
    sampling: dict[str, Any]


@dataclass
class ReplyResult:
    text: str
    stopped: bool
    stats: ReplyStats | None = None
    error: str | None = None
    message_id: int | None = None


class ChatSession:
    """The current conversation, its settings and its model."""

    def __init__(self, store: Store, settings: Settings, loader: Loader | None = None) -> None:
        self.store = store
        self.settings = settings
        self._loader = loader or engine_loader
        self.model: ModelLike | None = None
        self.model_source = ""  # what was asked for: a name or a path
        self._loaded_source = ""  # the source of ``model``
        self.model_error: str | None = None
        self._ready = threading.Event()  # set when the current load finished, well or not
        self._load_serial = 0
        self.conversation_id: int | None = None
        self.title = ""
        self.messages: list[dict[str, str]] = []
        self._last_message_id: int | None = None
        self.system = settings.system
        self.sampling: dict[str, Any] = dict(settings.sampling)
        self.context_used = 0
        self.last_stats: ReplyStats | None = None

    # The model -------------------------------------------------------------------------------

    @property
    def model_ready(self) -> bool:
        return self._ready.is_set() and self.model is not None

    @property
    def loading(self) -> bool:
        return not self._ready.is_set()

    def begin_load(self, source: str | None) -> int:
        """Mark a load as started (UI thread); returns its serial number for ``load_model``.
        The model loaded now (if any) stays until the new one has loaded."""
        self._load_serial += 1
        self._ready.clear()
        self.model_error = None
        if source:
            self.model_source = source
        return self._load_serial

    def load_model(self, explicit: str | None, serial: int) -> ModelLike | None:
        """Choose and load a model (blocking: call it from a worker thread).

        Returns the model, or None when a newer load superseded this one; raises
        ModelUnavailable with a one-line reason. When another model was loaded, it stays
        loaded and in use after a failed load (a mistyped ``/model`` costs nothing).
        """
        source = explicit or ""
        try:
            try:
                source = resolve_model_name(resolve_model_source(explicit, self.settings.model))
            except ModelLoadError as e:  # nothing to load at all: say how to get a model
                raise ModelUnavailable(f"{e}, or type /model PATH") from None
            if serial == self._load_serial:
                self.model_source = source
            model = self._loader(source)
        except ModelUnavailable as e:
            raise ModelUnavailable(self._load_failed(serial, str(e))) from None
        except Exception as e:  # noqa: BLE001 - engine.ModelLoadError and anything unexpected
            message = one_line(e)
            if not isinstance(e, ModelLoadError):
                message = f"could not load {explicit or source}: {message}"
            raise ModelUnavailable(self._load_failed(serial, message)) from None
        if serial != self._load_serial:
            return None
        self.model, self.model_error, self._loaded_source = model, None, source
        self.model_source = source
        self._ready.set()
        if self.conversation_id is not None:
            # A read-only or full database must not fail a load that worked: the chat keeps
            # the model it names, which is all that is lost.
            with contextlib.suppress(sqlite3.Error, StoreError):
                self.store.update_conversation(self.conversation_id, model=source)
        return model

    def _load_failed(self, serial: int, message: str) -> str:
        """Settle a failed load; the message for the user."""
        if serial != self._load_serial:
            return message
        if self.model is not None:  # a failed switch: the loaded model stays
            self.model_source = self._loaded_source
            message = f"{message}; still using {self.model.name or self._loaded_source}"
        else:
            self.model_error = message
        self._ready.set()
        return message

    def wait_for_model(self, cancel: threading.Event) -> ModelLike | None:
        """Block until the model is loaded, the load failed, or ``cancel`` is set."""
        while not self._ready.wait(0.05):
            if cancel.is_set():
                return None
        return self.model

    # Settings --------------------------------------------------------------------------------

    def sampling_params(self) -> Any:
        """``engine.SamplingParams`` from the conversation's settings (raises ValueError)."""
        return sampling_params(self.sampling)

    def set_sampling(self, key: str, text: str) -> Any:
        """``/set KEY VALUE``: check it with the engine's own validation, then keep it."""
        value = parse_value(key, text)
        candidate = {**self.sampling, key: value}
        try:
            sampling_params(candidate)
        except ValueError as e:  # it names the engine's field: say the /set name
            raise ValueError(str(e).replace(SAMPLING_KEYS[key], key)) from None
        self.sampling = candidate
        if self.conversation_id is not None:
            self.store.update_conversation(self.conversation_id, params=self.sampling)
        return value

    def set_system(self, text: str) -> None:
        self.system = text.strip()
        if self.conversation_id is not None:
            self.store.update_conversation(self.conversation_id, system=self.system)

    def describe_settings(self) -> dict[str, Any]:
        """Every sampling value in effect (the engine's defaults filled in)."""
        try:
            params = self.sampling_params()
        except ValueError:
            return dict(self.sampling)
        return {k: getattr(params, f) for k, f in SAMPLING_KEYS.items()}

    # The conversation ------------------------------------------------------------------------

    def new_conversation(self, keep_settings: bool = False) -> None:
        """Start afresh; it is stored when its first message is sent."""
        self.conversation_id = None
        self.title = ""
        self.messages = []
        self._last_message_id = None
        self.context_used = 0
        self.last_stats = None
        if not keep_settings:
            self.system = self.settings.system
            self.sampling = dict(self.settings.sampling)

    def open_conversation(self, conversation_id: int) -> list[StoredMessage]:
        """Load a stored conversation with its settings; returns its messages to show."""
        conv = self.store.get_conversation(conversation_id)
        if conv is None:
            raise KeyError(conversation_id)
        stored = self.store.messages(conversation_id)
        self.conversation_id = conv.id
        self.title = conv.title
        self.system = conv.system
        self.sampling = {k: v for k, v in conv.params.items() if k in SAMPLING_KEYS}
        self.messages = [{"role": m.role, "content": m.content} for m in stored if m.content]
        self._last_message_id = stored[-1].id if stored else None
        self.last_stats = next((m.stats for m in reversed(stored) if m.stats), None)
        self.context_used = self.last_stats.context_used if self.last_stats else 0
        return stored

    def add_user_message(self, text: str) -> None:
        """Store the prompt in the conversation at once (creating the conversation if new)."""
        if self.conversation_id is None:
            self.title = title_for(text)
            self.conversation_id = self.store.create_conversation(
                self.title, self.model_source, self.system, self.sampling
            )
        self._last_message_id = self.store.add_message(
            self.conversation_id, "user", text, parent_id=self._last_message_id
        )
        self.messages.append({"role": "user", "content": text})

    def engine_messages(self) -> list[dict[str, str]]:
        """The conversation as the model sees it. A prompt that got no reply (the load failed,
        it was too long, it was stopped before any text) stays in the chat and the database
        but is left out here, with its empty reply: roles then alternate, as templates like
        Mistral's and Llama 2's demand, and a prompt that did not fit does not block every
        later turn."""
        said = [m for m in self.messages if m["role"] != "assistant" or m["content"]]
        kept = [
            m
            for i, m in enumerate(said)
            if m["role"] != "user" or i + 1 == len(said) or said[i + 1]["role"] == "assistant"
        ]
        system = [{"role": "system", "content": self.system}] if self.system else []
        return system + kept

    def begin_reply(self) -> ReplyRequest:
        """The request for a reply to the conversation as it is now (UI thread)."""
        return ReplyRequest(
            self.conversation_id, self._last_message_id, self.engine_messages(), dict(self.sampling)
        )

    def run_reply(
        self, request: ReplyRequest, cancel: threading.Event, emit: Callable[[str], object]
    ) -> ReplyResult:
        """Stream the reply to ``request`` (blocking: call it from a worker thread).

        Each text delta goes to ``emit`` (the UI's batch buffer); the finished reply,
        complete or stopped, is stored with its stats in one transaction. The session's own
        state is left alone: the UI thread applies the result with ``apply_reply``.
        """
        model = self.wait_for_model(cancel)
        if model is None:
            if cancel.is_set():
                return ReplyResult("", stopped=True)
            return ReplyResult("", stopped=False, error=self.model_error or "no model is loaded")
        try:
            params = sampling_params(request.sampling)
        except ValueError as e:
            return ReplyResult("", stopped=False, error=str(e))
        parts: list[str] = []
        error = None
        try:
            for delta in model.chat(request.messages, params, cancel=cancel):
                parts.append(delta)
                emit(delta)
        except Exception as e:  # noqa: BLE001 - context overflow, template errors: one line
            error = one_line(e)
        text = "".join(parts)
        stats = ReplyStats.from_generation(model.name, model.last_stats)
        # Cut short by Esc, or by an error mid-reply (a remote stream cut off): marked as such.
        stopped = cancel.is_set() or stats.stop_reason == "cancelled" or bool(error and text)
        result = ReplyResult(text, stopped=stopped, stats=stats, error=error)
        if (error is not None and not text) or request.conversation_id is None:
            return result
        try:
            result.message_id = self.store.add_message(
                request.conversation_id, "assistant", text, parent_id=request.parent_id,
                stopped=stopped, stats=stats,
            )  # fmt: skip
        except (sqlite3.Error, StoreError) as e:  # e.g. the disk is full: keep the reply shown
            result.error = f"the reply could not be saved ({one_line(e)})"
        return result

    def apply_reply(self, request: ReplyRequest, result: ReplyResult) -> bool:
        """Add a stored reply to the conversation (UI thread). Only when the conversation is
        still where the request left it: the user may have moved to another chat meanwhile,
        and a reply belongs to the chat it was asked in. True when applied."""
        if (
            result.message_id is None
            or request.conversation_id != self.conversation_id
            or request.parent_id != self._last_message_id
        ):
            return False
        self._last_message_id = result.message_id
        self.messages.append({"role": "assistant", "content": result.text})
        if result.stats is not None:
            self.last_stats = result.stats
            self.context_used = result.stats.context_used
        return True


def one_line(e: BaseException) -> str:
    """An exception as one line of at most 300 characters, for the chat."""
    text = " ".join(str(e).split()) or type(e).__name__
    return text if len(text) <= 300 else text[:299] + "…"
