"""Conversations as trees: regenerate and edit add alternatives, the chat shows one branch, and
the tree, the chosen branch and the alternatives survive a restart, a migration and a search."""

from __future__ import annotations

import base64
import sqlite3
import threading
from pathlib import Path
from typing import Any

from fakes import FakeModel, async_test, fake_loader, wait_until

import engine
from chatapp.core.branches import MessageTree
from chatapp.core.session import ChatSession
from chatapp.core.settings import Settings
from chatapp.core.store import MIGRATIONS, SCHEMA_VERSION, Store, StoredMessage
from chatapp.tui.app import ChatApp
from chatapp.tui.screens.chat_search import ChatSearch
from chatapp.tui.screens.dialogs import ConfirmScreen
from chatapp.tui.widgets.chat_view import (
    SHOWN_AT_ONCE,
    AssistantMessage,
    EarlierMessages,
    Notice,
    UserMessage,
)

SIZE = (100, 32)


def msg(i: int, parent: int | None, role: str = "user") -> StoredMessage:
    return StoredMessage(i, 1, parent, role, f"m{i}", False)


# The tree ---------------------------------------------------------------------------------------


def test_the_tree_walks_branches_and_alternatives() -> None:
    # 1 -> 2 -> 3 ; 1 -> 4 (a regenerated reply) -> 5 ; a second root 6 (an edited first prompt)
    tree = MessageTree([msg(1, None), msg(2, 1, "assistant"), msg(3, 2), msg(4, 1, "assistant"),
                        msg(5, 4), msg(6, None)])  # fmt: skip
    assert [m.id for m in tree.path(3)] == [1, 2, 3]
    assert [m.id for m in tree.siblings(4)] == [2, 4]
    assert [m.id for m in tree.siblings(6)] == [1, 6]
    assert tree.newest_leaf(1) == 5 and tree.newest_leaf(None) == 6
    assert tree.leaf_or_newest(3) == 3 and tree.leaf_or_newest(99) == 6
    assert sorted(tree.remove(4)) == [4, 5]
    assert [m.id for m in tree.siblings(2)] == [2] and 5 not in tree


# The store --------------------------------------------------------------------------------------


def test_the_branch_migration_keeps_old_chats_and_links_parentless_ones(tmp_path: Path) -> None:
    """From schema 3 with data in it: a chat written before parents were kept becomes one
    chain; a chat with parents is untouched; every chat's branch is its newest message's."""
    path = tmp_path / "old.db"
    db = sqlite3.connect(path)
    for step in MIGRATIONS[:3]:
        step(db)
    db.execute("INSERT INTO conversations (title, created_at, updated_at) VALUES ('flat', 1, 1)")
    db.execute("INSERT INTO conversations (title, created_at, updated_at) VALUES ('tree', 1, 1)")
    rows = [(1, 1, None, "user", "q"), (2, 1, None, "assistant", "a"), (3, 1, None, "user", "q2"),
            (4, 2, None, "user", "x"), (5, 2, 4, "assistant", "y1"), (6, 2, 4, "assistant", "y2")]  # fmt: skip
    db.executemany(
        "INSERT INTO messages (id, conversation_id, parent_id, role, content, created_at)"
        " VALUES (?, ?, ?, ?, ?, 1)",
        rows,
    )
    db.execute("PRAGMA user_version = 3")
    db.commit()
    db.close()
    store = Store(path)
    assert store.schema_version() == SCHEMA_VERSION
    flat, tree = store.get_conversation(1), store.get_conversation(2)
    assert flat is not None and tree is not None and flat.leaf_id is None
    assert [m.parent_id for m in store.messages(1)] == [None, 1, 2]
    assert [m.parent_id for m in store.messages(2)] == [None, 4, 4]
    session = ChatSession(store, Settings())
    assert [m.content for m in session.open_conversation(2)] == ["x", "y2"]
    assert session.alternatives(6) == (2, 2)
    (hit,) = store.search("q2")  # the search index survived the migration
    assert hit.message_id == 3


def test_deleting_a_message_deletes_what_follows_it(tmp_path: Path) -> None:
    store = Store(tmp_path / "c.db")
    cid = store.create_conversation("t")
    q = store.add_message(cid, "user", "question")
    a = store.add_message(cid, "assistant", "answer", parent_id=q)
    store.add_message(cid, "user", "follow-up", parent_id=a)
    store.delete_message(a)
    assert [m.content for m in store.messages(cid)] == ["question"]
    assert store.search("follow-up") == []  # gone from the index too
    conv = store.get_conversation(cid)
    assert conv is not None and conv.leaf_id is None  # the leaf went with it


# The session, with a real (tiny) engine model --------------------------------------------------


def test_regenerate_reuses_the_cache_and_keeps_both_replies(
    tiny_models: dict[str, Path], tmp_path: Path
) -> None:
    model = engine.load(tiny_models["llama"])
    store = Store(tmp_path / "s.db")
    session = ChatSession(store, Settings(sampling={"max_tokens": 6}), lambda _: model)
    session.load_model("tiny", session.begin_load("tiny"))

    def reply(request: Any) -> None:
        result = session.run_reply(request, threading.Event(), lambda _: None)
        assert session.apply_reply(request, result), result

    session.add_user_message("Hello there")
    reply(session.begin_reply())
    first = session.branch[-1]
    request = session.begin_regenerate()
    assert request is not None and request.messages[-1] == {
        "role": "user",
        "content": "Hello there",
    }
    reply(request)
    second = session.branch[-1]
    assert second.id != first.id and second.parent_id == first.parent_id
    assert session.alternatives(second.id) == (2, 2)
    stats = second.stats
    assert stats is not None and stats.prompt_tokens > 0
    # The prompt is the same as the first reply's: all of it but the last token (which the
    # engine runs again for the first logits) comes from the cache, none re-prefilled.
    assert stats.reused_tokens >= stats.prompt_tokens - 1
    # Back to the first alternative: the branch, the stats and the database follow.
    assert session.step_alternative(second.id, -1) == first.id
    assert session.branch[-1].id == first.id and session.last_stats == first.stats
    conv = store.get_conversation(session.conversation_id or 0)
    assert conv is not None and conv.leaf_id == first.id
    assert session.step_alternative(first.id, -1) is None  # no alternative before the first


def test_edit_starts_a_branch_and_fork_copies_it(tmp_path: Path) -> None:
    store = Store(tmp_path / "e.db")
    session = ChatSession(store, Settings())
    session.add_user_message("first")
    original = session.leaf_id
    session.add_user_message("first, edited", instead_of=original)
    assert [m.content for m in session.branch] == ["first, edited"]
    assert session.alternatives(session.leaf_id or 0) == (2, 2)
    fork = session.fork()
    copy = store.messages(fork)
    assert [m.content for m in copy] == ["first, edited"]
    assert store.get_conversation(fork).title.endswith("(fork)")  # type: ignore[union-attr]
    session.delete_message(session.leaf_id or 0)  # back on the other alternative
    assert [m.content for m in session.branch] == ["first"]


# The TUI ----------------------------------------------------------------------------------------


def make_app(model: FakeModel | None = None) -> tuple[ChatApp, FakeModel]:
    model = model or FakeModel()
    return ChatApp("fake", loader=fake_loader(model)), model


async def send(pilot: Any, app: ChatApp, text: str) -> None:
    """Send ``text`` and wait for its reply to be stored."""
    await wait_until(pilot, lambda: app.session.model_ready)
    before = len(app.session.tree)
    app.chat.prompt.text = text
    app.chat.prompt.focus()
    await pilot.press("enter")
    await wait_until(pilot, lambda: not app.chat.streaming and len(app.session.tree) == before + 2)


def shown(app: ChatApp) -> list[str]:
    return [w.text for w in app.chat.chat_view.query("UserMessage, AssistantMessage")]  # type: ignore[attr-defined]


def meta(view: AssistantMessage) -> str:
    return str(view.meta.render())


@async_test
async def test_regenerate_edit_and_step_through_alternatives_then_reopen(
    chatapp_home: Path,
) -> None:
    app, model = make_app(FakeModel(["one"]))
    async with app.run_test(size=SIZE) as pilot:
        await send(pilot, app, "question")
        model.chunks = ["two"]
        await pilot.press("f5")  # regenerate
        await wait_until(
            pilot, lambda: shown(app) == ["question", "two"] and not app.chat.streaming
        )
        reply = app.chat.query_one(AssistantMessage)
        assert "‹2/2›" in meta(reply)
        await pilot.press("ctrl+up")  # select the reply, step back to the first alternative
        assert app.focused is reply
        await pilot.press("left")
        await wait_until(pilot, lambda: shown(app) == ["question", "one"])
        assert "‹1/2›" in meta(app.chat.query_one(AssistantMessage))
        # Edit the prompt twice: each edit is a new alternative of it.
        for n, text in enumerate(("question, edited", "question, again"), start=2):
            model.chunks = [f"reply {n}"]
            await app.chat.run_command("/edit")
            assert app.chat.prompt.text.startswith("question") and app.chat.prompt.border_title
            app.chat.prompt.text = text
            await pilot.press("enter")
            await wait_until(pilot, lambda: not app.chat.streaming and len(shown(app)) == 2)
            await wait_until(pilot, lambda t=text: shown(app)[0] == t)  # type: ignore[misc]
            assert f"‹{n}/{n}›" in str(app.chat.query_one(UserMessage).render())
        assert model.calls[-1][-1] == {"role": "user", "content": "question, again"}
        assert len(model.calls[-1]) == 1  # the old branch is not in the new one's history
        user = app.chat.query_one(UserMessage)
        user.focus()
        await pilot.press("left")  # the previous prompt, and the reply on its branch
        await wait_until(pilot, lambda: shown(app) == ["question, edited", "reply 2"])
        conversation = app.session.conversation_id
    # Quit and reopen: the same tree, on the branch last shown.
    app2, _ = make_app()
    async with app2.run_test(size=SIZE) as pilot:
        await app2.chat.open_conversation(conversation or 0)
        await pilot.pause()
        assert shown(app2) == ["question, edited", "reply 2"]
        assert "‹2/3›" in str(app2.chat.query_one(UserMessage).render())
        app2.chat.query_one(UserMessage).focus()
        await pilot.press("left")  # a branch goes on through its newest alternatives
        await wait_until(pilot, lambda: shown(app2) == ["question", "two"])
        assert "‹2/2›" in meta(app2.chat.query_one(AssistantMessage))
    assert len(Store().messages(conversation or 0)) == 7  # 3 prompts, 4 replies


@async_test
async def test_search_finds_a_message_on_a_side_branch_and_opens_it_there() -> None:
    app, model = make_app(FakeModel(["the walrus answer"]))
    async with app.run_test(size=SIZE) as pilot:
        await send(pilot, app, "tell me about seals")
        model.chunks = ["an answer about otters"]
        await app.chat.run_command("/regen")
        await wait_until(pilot, lambda: not app.chat.streaming and "otters" in shown(app)[-1])
        app.chat.action_new_chat()
        await wait_until(pilot, lambda: shown(app) == [])
        await app.chat.run_command("/search walrus")
        await wait_until(pilot, lambda: isinstance(app.screen, ChatSearch))
        screen = app.screen
        assert isinstance(screen, ChatSearch)
        await wait_until(pilot, lambda: len(screen.hits) == 1)
        await pilot.press("enter")
        await wait_until(pilot, lambda: shown(app) == ["tell me about seals", "the walrus answer"])
        selected = app.focused
        assert isinstance(selected, AssistantMessage) and selected.text == "the walrus answer"


@async_test
async def test_copy_writes_the_reply_or_its_code_block_as_osc_52() -> None:
    reply = "Two blocks:\n\n```python\nprint(1)\n```\n\nand\n\n```sh\necho 2\n```\n"
    app, _ = make_app(FakeModel([reply]))
    async with app.run_test(size=SIZE) as pilot:
        written: list[str] = []
        driver = app._driver
        assert driver is not None
        original = driver.write
        driver.write = lambda data: (written.append(data), original(data))[1]  # type: ignore[method-assign]
        await send(pilot, app, "code please")

        def payloads() -> list[str]:
            return [
                base64.b64decode(w.split(";", 2)[2].rstrip("\a")).decode()
                for w in written
                if w.startswith("\x1b]52;c;")
            ]

        await app.chat.run_command("/copy 2")
        assert payloads() == ["echo 2\n"]
        await app.chat.run_command("/copy")
        assert payloads()[-1] == reply
        await app.chat.run_command("/copy 3")
        assert "has 2 code blocks" in str(list(app.chat.query(Notice))[-1].render())
        for key in ("ctrl+up", "up", "c"):  # copy the selected prompt
            await pilot.press(key)
            await pilot.pause()
        assert payloads()[-1] == "code please"
        assert any("copied" in str(n.message) for n in app._notifications)


@async_test
async def test_deleting_a_selected_message_asks_and_removes_what_follows() -> None:
    app, _ = make_app(FakeModel(["answer"]))
    async with app.run_test(size=SIZE) as pilot:
        await send(pilot, app, "first")
        await send(pilot, app, "second")
        assert shown(app) == ["first", "answer", "second", "answer"]
        for key in ("ctrl+up", "up", "up", "delete"):  # on the first reply
            await pilot.press(key)
            await pilot.pause()
        await wait_until(pilot, lambda: isinstance(app.screen, ConfirmScreen))
        await pilot.press("y")
        await wait_until(pilot, lambda: shown(app) == ["first"])
        assert [m.content for m in Store().messages(app.session.conversation_id or 0)] == ["first"]


@async_test
async def test_export_writes_the_chat_and_never_over_a_file(
    tmp_path: Path, monkeypatch: Any
) -> None:
    monkeypatch.chdir(tmp_path)
    app, _ = make_app(FakeModel(["an answer"]))
    async with app.run_test(size=SIZE) as pilot:
        await send(pilot, app, "a question")
        cid = app.session.conversation_id
        await app.chat.run_command("/export md")
        await app.chat.run_command("/export md")
        await app.chat.run_command(f"/export json {tmp_path / 'all.json'}")
        await app.chat.run_command("/export pdf")
    first = (tmp_path / f"chat-{cid}.md").read_text(encoding="utf-8")
    assert "## You\n\na question" in first and "an answer" in first
    assert (tmp_path / f"chat-{cid}-2.md").read_text(encoding="utf-8") == first
    assert '"format": "chatapp.chat"' in (tmp_path / "all.json").read_text(encoding="utf-8")


@async_test
async def test_a_long_chat_opens_with_its_newest_messages_and_shows_older_ones_on_demand() -> None:
    store = Store()
    cid = store.create_conversation("long")
    parent = None
    for i in range(150):
        parent = store.add_message(cid, "user" if i % 2 == 0 else "assistant", f"message {i}",
                                   parent_id=parent)  # fmt: skip
    store.close()
    app, _ = make_app()
    async with app.run_test(size=SIZE) as pilot:
        await app.chat.open_conversation(cid)
        await pilot.pause()
        assert len(shown(app)) == SHOWN_AT_ONCE and shown(app)[-1] == "message 149"
        marker = app.chat.query_one(EarlierMessages)
        assert f"{150 - SHOWN_AT_ONCE} earlier messages" in str(marker.render())
        app.chat.chat_view.scroll_to(y=1, animate=False)  # scrolling up to the top shows more
        await pilot.pause()
        app.chat.chat_view.scroll_to(y=0, animate=False)
        left = 150 - 2 * SHOWN_AT_ONCE
        await wait_until(pilot, lambda: f"{left} earlier messages" in str(marker.render()))
        assert len(shown(app)) == 2 * SHOWN_AT_ONCE
        # Moving the selection up past the oldest shown message shows older ones too (and
        # selects the message just above it).
        first = app.chat.chat_view.messages()[0]
        first.focus()
        await pilot.pause()
        await pilot.press("up")
        above = (first.message_id or 0) - 1
        await wait_until(pilot, lambda: getattr(app.focused, "message_id", None) == above)
        assert len(shown(app)) > 2 * SHOWN_AT_ONCE
        while app.chat.query(EarlierMessages):  # Enter on the line shows more, to the first
            marker.focus()
            await pilot.press("enter")
            await pilot.pause()
        assert len(shown(app)) == 150
        assert shown(app)[0] == "message 0" and not app.chat.query(EarlierMessages)


@async_test
async def test_the_sidebar_search_box_opens_the_search_with_its_text() -> None:
    app, _ = make_app(FakeModel(["about walruses"]))
    async with app.run_test(size=SIZE) as pilot:
        await send(pilot, app, "a question")
        await pilot.press("ctrl+b")
        app.chat.query_one("#chat-search").focus()
        await pilot.press(*"walrus", "enter")
        await wait_until(pilot, lambda: isinstance(app.screen, ChatSearch))
        screen = app.screen
        assert isinstance(screen, ChatSearch)
        await wait_until(pilot, lambda: [h.role for h in screen.hits] == ["assistant"])


@async_test
async def test_a_long_session_keeps_a_bounded_number_of_widgets() -> None:
    """Turn after turn, the oldest messages go behind the "earlier messages" line (and the
    footer's old keys are let go): what the app holds stays bounded, all of it reachable."""
    import gc

    from textual.widgets._footer import FooterKey

    app, _ = make_app(FakeModel(["an answer"]))
    async with app.run_test(size=SIZE) as pilot:
        for turn in range(40):
            await send(pilot, app, f"question {turn}")
        assert len(app.chat.chat_view.messages()) <= 2 * SHOWN_AT_ONCE
        assert shown(app)[-2:] == ["question 39", "an answer"]
        gc.collect()
        keys = [o for o in gc.get_objects() if isinstance(o, FooterKey)]
        assert len(keys) < 60, len(keys)  # a footer's worth, not ~20 per turn
        while app.chat.query(EarlierMessages):  # and the oldest are still there to see
            app.chat.query_one(EarlierMessages).focus()
            await pilot.press("enter")
            await pilot.pause()
        assert shown(app)[:2] == ["question 0", "an answer"] and len(shown(app)) == 80


@async_test
async def test_a_regenerate_that_fails_shows_the_old_reply_and_why() -> None:
    app, model = make_app(FakeModel(["the first answer"]))
    async with app.run_test(size=SIZE) as pilot:
        await send(pilot, app, "a question")
        model.chat = lambda *a, **k: (_ for _ in ()).throw(ValueError("the template broke"))  # type: ignore[method-assign]
        await app.chat.run_command("/regen")
        await wait_until(pilot, lambda: not app.chat.streaming and any(
            "the template broke" in str(n.render()) for n in app.chat.query(Notice)))  # fmt: skip
        assert shown(app) == ["a question", "the first answer"]
        assert len(app.session.tree) == 2  # nothing stored for the failed one
