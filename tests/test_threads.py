"""ThreadStore over real SQLite files: turns keyed by cell id, history, several processes, restarts."""

from __future__ import annotations

import os
import sqlite3
import stat
import subprocess
import sys
from pathlib import Path

import anthropic
import pytest

from claude_force_nb.core.errors import ClaudeForceError, ConfigurationError, InvalidInputError, UnknownThreadError
from claude_force_nb.core.results import AgentResult, Usage
from claude_force_nb.core.settings import Settings
from claude_force_nb.store.ledger import current_session_id
from claude_force_nb.store.migrations import migrate
from claude_force_nb.store.thread_history import turn_tokens
from claude_force_nb.store.threads import MIGRATIONS, THREADS_FILE, ThreadStore, check_thread_name

MODEL = "claude-sonnet-4-6"
BREAKPOINT = {"type": "ephemeral"}


@pytest.fixture
def settings(tmp_path) -> Settings:
    home = tmp_path / "home"
    return Settings(data_dir=home, secrets_dir=home / "secrets", cache_secret=b"threads-test-secret")


@pytest.fixture
def store(settings):
    with ThreadStore(settings) as threads:
        yield threads


def add(store: ThreadStore, thread: str, n: int, **kw) -> None:
    kw.setdefault("created", float(n))
    store.add_turn(thread, f"question {n}", f"answer {n}", agent="analyst", model=MODEL, **kw)


def texts(store: ThreadStore, thread: str) -> list[tuple[int, str, str]]:
    return [(t.index, t.user, t.assistant) for t in store.turns(thread)]


# ------------------------------------------------------------------ names

@pytest.mark.parametrize("name", ["sales", "Q3-review", "a", "run_2.b", "x" * 64])
def test_valid_thread_names(name):
    assert check_thread_name(name) == name


@pytest.mark.parametrize(("name", "fix"), [
    ("my thread", "my-thread"), ("-lead", "lead"), ("ünï", "uni"), ("", "my-thread"), ("   ", "my-thread"),
    ("x" * 65, "x" * 64), ("a\n", "a"),
])
def test_invalid_thread_names_are_refused_in_one_line(store, name, fix):
    with pytest.raises(InvalidInputError) as info:
        check_thread_name(name)
    message = str(info.value)
    assert message == (f"{name!r} cannot name a thread: use 1-64 letters, digits, '.', '_' or '-', "
                       f"starting with a letter or digit, e.g. {fix!r}.")
    with pytest.raises(InvalidInputError, match="cannot name a thread"):
        add(store, name, 1)
    assert store.names() == []


def test_a_name_that_is_not_text():
    with pytest.raises(InvalidInputError, match="^A thread name must be text, not int.$"):
        check_thread_name(3)


# ------------------------------------------------------------------ turns

def test_first_turn_creates_the_thread_and_turns_append(store):
    first = store.add_turn("sales", "How did Q3 go?", "Revenue grew 4%.", agent="analyst", model=MODEL,
                           usage=Usage(120, 30, 5, 0, 7), cost_usd=0.0012, notebook="work/q3.ipynb", created=10.0)
    assert first.index == 1 and first.user == "How did Q3 go?" and first.assistant == "Revenue grew 4%."
    assert first.usage == Usage(120, 30, 5, 0, 7) and first.cost_usd == 0.0012 and first.created == 10.0
    assert first.session_id == current_session_id() and first.notebook == "work/q3.ipynb" and first.cell_id is None
    assert first.tokens == turn_tokens("How did Q3 go?", "Revenue grew 4%.")
    add(store, "sales", 2)
    add(store, "sales", 2)                         # the same text again, no cell id: a new turn
    assert texts(store, "sales") == [(1, "How did Q3 go?", "Revenue grew 4%."), (2, "question 2", "answer 2"),
                                     (3, "question 2", "answer 2")]
    assert store.turns("sales")[0] == first
    assert store.names() == ["sales"]


def test_rerunning_a_cell_replaces_its_turn_in_place(store):
    for n, cell in enumerate(["cell-a", "cell-b", "cell-c"], start=1):
        add(store, "eda", n, cell_id=cell)
    replaced = store.add_turn("eda", "question 2, edited", "answer 2, new", agent="writer", model="claude-haiku-4-5",
                              cell_id="cell-b", usage=Usage(9, 9), cost_usd=0.5, created=50.0)
    assert replaced.index == 2 and replaced.cell_id == "cell-b" and replaced.agent == "writer"
    assert texts(store, "eda") == [(1, "question 1", "answer 1"), (2, "question 2, edited", "answer 2, new"),
                                   (3, "question 3", "answer 3")]
    assert store.turns("eda")[1] == replaced and replaced.usage == Usage(9, 9) and replaced.created == 50.0
    add(store, "eda", 4)                           # no cell id: appended after the others
    add(store, "other", 1, cell_id="cell-b")      # the same cell in another thread is another turn
    assert [t.index for t in store.turns("eda")] == [1, 2, 3, 4] and len(store.turns("other")) == 1


@pytest.mark.parametrize(("user", "assistant", "message"), [
    ("", "answer", "The user message is empty"),
    ("question", " \n\t", "The answer is empty"),
    (None, "answer", "The user message must be text, not NoneType"),
    ("bad \ud800 text", "answer", "The user message holds a lone surrogate"),
])
def test_messages_the_api_would_refuse_are_not_stored(store, user, assistant, message):
    with pytest.raises(InvalidInputError, match=message):
        store.add_turn("t", user, assistant, agent="a", model=MODEL)
    assert store.names() == []


@pytest.mark.parametrize("cell_id", ["", 7])
def test_a_bad_cell_id_is_refused(store, cell_id):
    with pytest.raises(InvalidInputError, match="cell_id must be a non-empty str or None"):
        store.add_turn("t", "q", "a", agent="a", model=MODEL, cell_id=cell_id)


def test_record_keeps_a_successful_call_and_refuses_a_failed_one(store):
    ok = AgentResult(agent="analyst", model=MODEL, text="Sales rose.", usage=Usage(10, 3), cost_usd=float("nan"))
    turn = store.record("t", "What happened?", ok, cell_id="c1", notebook="nb")
    assert (turn.user, turn.assistant, turn.agent, turn.model) == ("What happened?", "Sales rose.", "analyst", MODEL)
    assert turn.usage == Usage(10, 3) and turn.cost_usd is None and (turn.cell_id, turn.notebook) == ("c1", "nb")
    failed = AgentResult(agent="analyst", model=MODEL, error="overloaded", error_type="overloaded_error")
    with pytest.raises(InvalidInputError, match=r"^A failed call cannot join a thread \(overloaded_error\)"):
        store.record("t", "again", failed)
    assert len(store.turns("t")) == 1


# ------------------------------------------------------------------ history

def test_history_is_the_thread_as_api_messages_with_one_breakpoint(store):
    add(store, "t", 1)
    add(store, "t", 2)
    assert store.history("t", 10_000) == [
        {"role": "user", "content": "question 1"},
        {"role": "assistant", "content": "answer 1"},
        {"role": "user", "content": "question 2"},
        {"role": "assistant", "content": [{"type": "text", "text": "answer 2", "cache_control": BREAKPOINT}]},
    ]
    assert store.history("t", 10_000, cache=False)[-1] == {"role": "assistant", "content": "answer 2"}
    assert store.history("new-thread", 10_000) == []


def test_history_drops_the_oldest_turns_to_fit_the_budget(store):
    for n in range(1, 6):
        store.add_turn("long", f"q{n} " + "x" * 297, f"a{n} " + "y" * 297, agent="a", model=MODEL)
    size = turn_tokens("q1 " + "x" * 297, "a1 " + "y" * 297)
    assert size == 208
    # 5 turns = 1040 tokens; budget 700 is 340 over; the cut rounds up to 350 (half the budget): two turns go
    messages = store.history("long", 700)
    assert [m["content"] if isinstance(m["content"], str) else m["content"][0]["text"] for m in messages] == [
        "q3 " + "x" * 297, "a3 " + "y" * 297, "q4 " + "x" * 297, "a4 " + "y" * 297, "q5 " + "x" * 297,
        "a5 " + "y" * 297,
    ]
    assert messages[-1]["content"][0]["cache_control"] == BREAKPOINT
    assert [t.index for t in store.window("long", 700)] == [3, 4, 5]
    assert store.history("long", 0) == [] and store.history("long", size - 1) == []


def test_a_rerun_cell_sees_only_the_turns_before_its_own(store):
    for n, cell in enumerate(["c1", "c2", "c3"], start=1):
        add(store, "t", n, cell_id=cell)
    assert store.history("t", 10_000, cell_id="c2", cache=False) == [
        {"role": "user", "content": "question 1"}, {"role": "assistant", "content": "answer 1"},
    ]
    assert store.history("t", 10_000, cell_id="c1") == []
    assert len(store.history("t", 10_000, cell_id="a-new-cell")) == 6      # a new cell continues the thread


@pytest.mark.parametrize("budget", [-1, 1.5, True, "100"])
def test_a_bad_budget_is_refused(store, budget):
    with pytest.raises(InvalidInputError, match="budget_tokens must be a whole number of tokens >= 0"):
        store.history("t", budget)


def test_history_is_accepted_by_the_api(store, server):
    """The messages go through the real SDK and HTTP to the offline server, with a new question."""
    add(store, "t", 1)
    add(store, "t", 2)
    messages = store.history("t", 10_000) + [{"role": "user", "content": "And question 3?"}]
    with anthropic.Anthropic(api_key="test-key", base_url=server.url, max_retries=0) as client:
        reply = client.messages.create(model=MODEL, max_tokens=200, messages=messages)
    assert reply.stop_reason == "end_turn" and "And question 3?" in reply.content[0].text


# ------------------------------------------------------------------ latest, threads, reset, delete

def test_latest_is_the_thread_of_the_most_recent_turn(store):
    assert store.latest() is None
    add(store, "a", 1, notebook="one.ipynb")
    add(store, "b", 2, notebook="two.ipynb")
    add(store, "c", 3, notebook="one.ipynb", cell_id="x")
    assert store.latest() == "c"
    assert store.latest(notebook="one.ipynb") == "c" and store.latest(notebook="two.ipynb") == "b"
    add(store, "a", 4, notebook="one.ipynb")
    assert store.latest(notebook="one.ipynb") == "a"
    add(store, "c", 5, notebook="one.ipynb", cell_id="x")   # re-running c's cell makes c the latest again
    assert store.latest(notebook="one.ipynb") == "c"
    assert store.latest(session=current_session_id()) == "c" and store.latest(session="not-this-one") is None
    assert store.latest(notebook="one.ipynb", session="not-this-one") is None
    assert store.latest(notebook="three.ipynb") is None


def test_threads_summarise_each_thread_most_recent_first(store):
    store.add_turn("a", "q", "answer", agent="analyst", model=MODEL, usage=Usage(10, 5, 1, 2, 3), cost_usd=0.25,
                   cell_id="c1", created=1.0)
    store.add_turn("a", "q2", "answer2", agent="writer", model="claude-haiku-4-5", usage=Usage(1, 1), cost_usd=0.5,
                   created=2.0)
    store.add_turn("b", "q", "answer", agent="analyst", model="unknown-model", cost_usd=None, created=3.0)
    store.add_turn("a", "q again", "answer", agent="critic", model=MODEL, cell_id="c1", cost_usd=0.125, created=4.0)
    a, b = store.threads()
    assert (a.name, a.turns, a.cost_usd, a.created, a.last_used) == ("a", 2, 0.625, 1.0, 4.0)
    assert (a.last_agent, a.last_model) == ("critic", MODEL)       # the latest run, not the last position
    assert a.total_tokens == 2 and a.history_tokens == turn_tokens("q again", "answer") + turn_tokens("q2", "answer2")
    assert (b.name, b.turns, b.cost_usd, b.total_tokens) == ("b", 1, None, 0)  # an unknown price is not $0


def test_reset_forgets_the_turns_and_keeps_the_name(store):
    add(store, "t", 1)
    add(store, "t", 2)
    assert store.reset("t") == 2
    assert store.turns("t") == [] and store.history("t", 1000) == [] and store.names() == ["t"]
    (summary,) = store.threads()
    assert (summary.turns, summary.cost_usd, summary.last_agent) == (0, 0.0, None) and summary.last_used > 2.0
    add(store, "t", 3)
    assert texts(store, "t") == [(1, "question 3", "answer 3")]


def test_delete_removes_the_thread_and_its_turns(store):
    add(store, "t", 1)
    add(store, "keep", 1)
    assert store.delete("t") == 1
    assert store.names() == ["keep"]
    connection = sqlite3.connect(store.path)
    assert connection.execute("SELECT COUNT(*) FROM turns").fetchone()[0] == 1
    connection.close()


@pytest.mark.parametrize("action", ["turns", "reset", "delete"])
def test_an_unknown_thread_names_close_matches(store, action):
    add(store, "sales-q3", 1)
    add(store, "sales-q4", 1)
    with pytest.raises(UnknownThreadError) as info:
        getattr(store, action)("sales-q5")
    assert str(info.value) == (
        "Unknown thread 'sales-q5'. Did you mean 'sales-q4', 'sales-q3'? List threads with `%agent threads` or "
        "ThreadStore().names(); a thread starts with its first turn (`%%agent NAME --thread sales-q5`)."
    )
    assert isinstance(info.value, LookupError) and info.value.suggestions == ["sales-q4", "sales-q3"]
    with pytest.raises(UnknownThreadError, match=r"^Unknown thread 'zzz'\. List threads"):
        getattr(store, action)("zzz")


# ------------------------------------------------------------------ the file

EXPECTED_TURN_COLUMNS = [
    "id", "thread_id", "position", "cell_id", "user_text", "assistant_text", "agent", "model", "tokens",
    "input_tokens", "output_tokens", "cache_write_5m_tokens", "cache_write_1h_tokens", "cache_read_tokens",
    "cost_usd", "created", "session_id", "notebook",
]


def test_the_file_is_private_in_the_data_dir_and_migrated(settings, store):
    assert store.path == Path(settings.data_dir) / THREADS_FILE
    assert stat.S_IMODE(os.stat(settings.data_dir).st_mode) == 0o700
    connection = sqlite3.connect(store.path)
    try:
        assert [row[1] for row in connection.execute("PRAGMA table_info(turns)")] == EXPECTED_TURN_COLUMNS
        assert [row[1] for row in connection.execute("PRAGMA table_info(threads)")] == ["id", "name", "created",
                                                                                        "updated"]
        assert connection.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
        assert migrate(connection, MIGRATIONS) == []
    finally:
        connection.close()


def test_threads_survive_a_restart(settings):
    with ThreadStore(settings) as first:
        add(first, "t", 1, cell_id="c1")
        add(first, "t", 2)
        before = first.turns("t")
    with ThreadStore(settings) as second:
        assert second.turns("t") == before
        add(second, "t", 3, cell_id="c1")
        assert texts(second, "t") == [(1, "question 3", "answer 3"), (2, "question 2", "answer 2")]


def test_a_closed_store_says_so(settings):
    threads = ThreadStore(settings)
    threads.close()
    threads.close()
    with pytest.raises(ClaudeForceError, match="closed"):
        threads.names()


def test_a_garbage_file_is_reported_not_deleted(settings):
    Path(settings.data_dir).mkdir(mode=0o700)
    path = Path(settings.data_dir) / THREADS_FILE
    path.write_bytes(b"not a database " * 100)
    with pytest.raises(ConfigurationError, match="thread store .* is not a readable SQLite database"):
        ThreadStore(settings)
    assert path.read_bytes() == b"not a database " * 100


APPENDER = """
import sys
from pathlib import Path
from claude_force_nb.core.settings import Settings
from claude_force_nb.store.threads import ThreadStore

home, label, count = Path(sys.argv[1]), sys.argv[2], int(sys.argv[3])
with ThreadStore(Settings(data_dir=home, secrets_dir=home / "secrets")) as store:
    print("ready", flush=True)
    sys.stdin.readline()                   # both processes start appending together
    for n in range(count):
        store.add_turn("shared", f"{label} q{n}", f"{label} a{n}", agent=label, model="m")
"""


def test_two_processes_append_to_one_thread(settings, store):
    count = 60
    procs = [subprocess.Popen([sys.executable, "-c", APPENDER, str(settings.data_dir), label, str(count)],
                              stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True) for label in ("p1", "p2")]
    try:
        for proc in procs:
            assert proc.stdout.readline().strip() == "ready"
        for proc in procs:
            proc.stdin.write("go\n")
            proc.stdin.flush()
        for proc in procs:
            assert proc.wait(timeout=120) == 0
    finally:
        for proc in procs:
            if proc.poll() is None:
                proc.kill()
                proc.wait()
            proc.stdin.close()
            proc.stdout.close()
    turns = store.turns("shared")
    assert [t.index for t in turns] == list(range(1, 2 * count + 1))
    for label in ("p1", "p2"):
        mine = [t for t in turns if t.agent == label]
        assert [t.user for t in mine] == [f"{label} q{n}" for n in range(count)]
        assert len({t.session_id for t in mine}) == 1
    assert len({t.session_id for t in turns}) == 2 and current_session_id() not in {t.session_id for t in turns}
