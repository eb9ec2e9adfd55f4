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
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, replace
from typing import TYPE_CHECKING, Any, Protocol

from chatapp.core.branches import MessageTree
from chatapp.core.reply_stats import ReplyStats
from chatapp.core.settings import SAMPLING_KEYS, Settings, parse_value, sampling_params
from chatapp.core.store import Store, StoredMessage, StoreError
from chatapp.models.choice import resolve_model_name, resolve_model_source
from engine.engine_thread import on_engine_thread
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


def is_remote(model: ModelLike | None) -> bool:
    """Whether ``model`` is a remote one (``chatapp remote add``): no torch work of its own."""
    return getattr(model, "weight_format", None) == "remote"


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
    leaf_id: int | None = None  # where the chat's branch ended when it was asked


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
        self.tree = MessageTree()  # every message of the conversation, alternatives included
        self.leaf_id: int | None = None  # where the branch shown ends
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
            model = on_engine_thread(self._loader, source)  # where it will generate
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

    @property
    def branch(self) -> list[StoredMessage]:
        """The messages the chat shows and continues: its root to its leaf."""
        return self.tree.path(self.leaf_id)

    @property
    def messages(self) -> list[dict[str, str]]:
        """The current branch as role/content pairs (empty stopped replies left out)."""
        return [{"role": m.role, "content": m.content} for m in self.branch if m.content]

    def alternatives(self, message_id: int) -> tuple[int, int]:
        """Which of its alternatives a message is, and how many there are: (2, 3) is "2/3"."""
        siblings = [m.id for m in self.tree.siblings(message_id)]
        return siblings.index(message_id) + 1, len(siblings)

    def new_conversation(self, keep_settings: bool = False) -> None:
        """Start afresh; it is stored when its first message is sent."""
        self.conversation_id = None
        self.title = ""
        self.tree = MessageTree()
        self.leaf_id = None
        self.context_used = 0
        self.last_stats = None
        if not keep_settings:
            self.system = self.settings.system
            self.sampling = dict(self.settings.sampling)

    def open_conversation(
        self, conversation_id: int, at_message: int | None = None
    ) -> list[StoredMessage]:
        """Load a stored conversation with its settings; returns its current branch to show.
        ``at_message`` (a search hit, say) makes the branch through that message current."""
        conv = self.store.get_conversation(conversation_id)
        if conv is None:
            raise KeyError(conversation_id)
        tree = MessageTree(self.store.messages(conversation_id))
        leaf = tree.leaf_or_newest(conv.leaf_id)
        if at_message is not None and at_message in tree:
            leaf = tree.newest_leaf(at_message)
            if leaf != conv.leaf_id:
                self.store.set_leaf(conversation_id, leaf)
        self.conversation_id = conv.id
        self.title = conv.title
        self.system = conv.system
        self.sampling = {k: v for k, v in conv.params.items() if k in SAMPLING_KEYS}
        self.tree, self.leaf_id = tree, leaf
        self._branch_changed()
        return self.branch

    def _branch_changed(self) -> None:
        """The stats and context gauge of the branch now shown."""
        self.last_stats = next((m.stats for m in reversed(self.branch) if m.stats), None)
        self.context_used = self.last_stats.context_used if self.last_stats else 0

    def add_user_message(self, text: str, *, instead_of: int | None = None) -> None:
        """Store the prompt in the conversation at once (creating the conversation if new).
        ``instead_of`` (an edit) stores it as a new alternative of that earlier prompt: a new
        branch from the same point, the old one kept."""
        if self.conversation_id is None:
            self.title = title_for(text)
            self.conversation_id = self.store.create_conversation(
                self.title, self.model_source, self.system, self.sampling
            )
        parent = self.leaf_id
        if instead_of is not None and instead_of in self.tree:
            parent = self.tree.by_id[instead_of].parent_id
        message_id = self.store.add_message(self.conversation_id, "user", text, parent_id=parent)
        self._added(StoredMessage(message_id, self.conversation_id, parent, "user", text, False))

    def _added(self, message: StoredMessage) -> None:
        self.tree.add(message)
        self.leaf_id = message.id

    def engine_messages(self, branch: list[StoredMessage] | None = None) -> list[dict[str, str]]:
        """The conversation (or ``branch`` of it) as the model sees it. A prompt that got no
        reply (the load failed, it was too long, it was stopped before any text) stays in the
        chat and the database but is left out here, with its empty reply: roles then
        alternate, as templates like Mistral's and Llama 2's demand, and a prompt that did not
        fit does not block every later turn."""
        path = self.branch if branch is None else branch
        said = [
            {"role": m.role, "content": m.content} for m in path if m.content or m.role == "user"
        ]
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
            self.conversation_id,
            self.leaf_id,
            self.engine_messages(),
            dict(self.sampling),
            leaf_id=self.leaf_id,
        )

    def begin_regenerate(self, message_id: int | None = None) -> ReplyRequest | None:
        """The request for a new alternative of the last reply (or of the reply, or the
        reply to the prompt, ``message_id``): the same history, so the engine reuses its
        cache up to the reply. None when there is no prompt to answer."""
        if message_id is None:
            branch = self.branch
            target = branch[-1] if branch else None
        else:
            target = self.tree.by_id.get(message_id)
        if target is not None and target.role == "assistant" and target.parent_id is not None:
            target = self.tree.by_id.get(target.parent_id)
        if target is None or target.role != "user":
            return None
        return ReplyRequest(
            self.conversation_id,
            target.id,
            self.engine_messages(self.tree.path(target.id)),
            dict(self.sampling),
            leaf_id=self.leaf_id,
        )

    def step_alternative(self, message_id: int, step: int) -> int | None:
        """Show the previous (-1) or next (+1) alternative of a message: its branch (to its
        newest end) becomes current, remembered in the database. The alternative's id, or
        None when there is none that way."""
        siblings = self.tree.siblings(message_id)
        at = [m.id for m in siblings].index(message_id) + step
        if not 0 <= at < len(siblings) or self.conversation_id is None:
            return None
        chosen = siblings[at].id
        self.select_branch(self.tree.newest_leaf(chosen))
        return chosen

    def select_branch(self, leaf_id: int | None) -> None:
        if self.conversation_id is not None and leaf_id != self.leaf_id:
            self.store.set_leaf(self.conversation_id, leaf_id)
        self.leaf_id = leaf_id
        self._branch_changed()

    def delete_message(self, message_id: int) -> None:
        """Delete a message with everything below it; when the current branch went through
        it, the chat goes on from its newest alternative (or its parent)."""
        if self.conversation_id is None or message_id not in self.tree:
            return
        parent = self.tree.by_id[message_id].parent_id
        self.store.delete_message(message_id)
        on_branch = message_id in {m.id for m in self.branch}
        self.tree.remove(message_id)
        if on_branch:
            siblings = self.tree.children(parent)
            if siblings:
                self.select_branch(self.tree.newest_leaf(siblings[-1].id))
            else:
                self.select_branch(parent)

    def fork(self) -> int:
        """Copy the current branch into a new conversation (same model and settings); its id."""
        if self.conversation_id is None:
            raise StoreError("nothing to fork yet: send a message first")
        conv = self.store.get_conversation(self.conversation_id)
        if conv is None:
            raise StoreError("this chat no longer exists")
        now = time.time()
        branch = self.branch
        copy = replace(
            conv, title=title_for(f"{conv.title} (fork)"), created_at=now, updated_at=now
        )
        chain = [(m, i - 1 if i else None) for i, m in enumerate(branch)]
        return self.store.import_conversation(copy, chain)

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

        def stream() -> str | None:
            """The reply's deltas to ``parts`` and ``emit``; the error as one line, or None."""
            try:
                for delta in model.chat(request.messages, params, cancel=cancel):
                    parts.append(delta)
                    emit(delta)
            except Exception as e:  # noqa: BLE001 - context overflow, template errors
                return one_line(e)
            return None

        # A local model generates on the thread that loaded it (engine.engine_thread); a
        # remote one is HTTP only, and must not queue behind a server in this process.
        error = stream() if is_remote(model) else on_engine_thread(stream)
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
        still where the request left it: the user may have moved to another chat (or branch)
        meanwhile, and a reply belongs to the chat it was asked in. True when applied."""
        if (
            result.message_id is None
            or request.conversation_id != self.conversation_id
            or request.leaf_id != self.leaf_id
            or request.conversation_id is None
        ):
            return False
        self._added(
            StoredMessage(
                result.message_id,
                request.conversation_id,
                request.parent_id,
                "assistant",
                result.text,
                result.stopped,
                result.stats,
            )  # fmt: skip
        )
        if result.stats is not None:
            self.last_stats = result.stats
            self.context_used = result.stats.context_used
        return True


def one_line(e: BaseException) -> str:
    """An exception as one line of at most 300 characters, for the chat."""
    text = " ".join(str(e).split()) or type(e).__name__
    return text if len(text) <= 300 else text[:299] + "…"
