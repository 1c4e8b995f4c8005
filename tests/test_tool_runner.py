"""run_tool_calls (engine/tool_runner.py): one turn's calls run together, results in call order,
every failure returned to the model, timeouts and interrupts that never hang the loop.

No test sleeps: concurrency is proven by calls that can only finish together (each waits for
the other), and timeouts by calls that wait on an event nobody sets until the test ends.
"""

from __future__ import annotations

import asyncio
import contextvars
import threading
from dataclasses import dataclass

import pytest
from anthropic.types import TextBlock, ToolUseBlock
from pydantic import BaseModel

from claude_force_nb.core.errors import ToolError
from claude_force_nb.core.tools import ToolStep, tool
from claude_force_nb.engine.tool_runner import ToolTurn, result_text, run_tool_calls, tool_use_blocks

GUARD_S = 5.0  # a broken runner fails the test after this long instead of hanging it


def use(call_id: str, name: str, **arguments: object) -> ToolUseBlock:
    return ToolUseBlock(type="tool_use", id=call_id, name=name, input=arguments)


@tool
def add(a: int, b: int) -> int:
    """Add two numbers."""
    return a + b


@tool
async def lookup(key: str) -> str:
    """Look a key up."""
    raise KeyError(key)


@tool
def refuse(reason: str) -> str:
    """Fail the way a tool reports a problem to the model."""
    raise ToolError(f"Cannot do that: {reason}.")


@tool
def bare_failure() -> str:
    """Fail without a message."""
    raise ValueError()


@tool
def leave() -> str:
    """Exit the way argparse does."""
    raise SystemExit(2)


def run(content: list, tools: list, **options: object) -> ToolTurn:
    return asyncio.run(asyncio.wait_for(run_tool_calls(content, tools, **options), GUARD_S))  # type: ignore[arg-type]


def test_results_come_back_in_the_order_of_the_calls_with_every_failure_as_an_error_result() -> None:
    content = [
        TextBlock(type="text", text="Let me look."),
        use("toolu_1", "add", a=1, b="2"),
        use("toolu_2", "lookup", key="north"),
        use("toolu_3", "refuse", reason="no access"),
        use("toolu_4", "add", a=1),
        use("toolu_5", "subtract", a=1, b=2),
        use("toolu_6", "bare_failure"),
        use("toolu_7", "leave"),
    ]
    turn = run(content, [add, lookup, refuse, bare_failure, leave])
    assert turn.results == [
        {"type": "tool_result", "tool_use_id": "toolu_1", "content": "3"},
        {"type": "tool_result", "tool_use_id": "toolu_2", "content": "KeyError: 'north'", "is_error": True},
        {"type": "tool_result", "tool_use_id": "toolu_3", "content": "Cannot do that: no access.", "is_error": True},
        {"type": "tool_result", "tool_use_id": "toolu_4", "is_error": True,
         "content": "Invalid arguments for add: b: Field required. Call it again with arguments that fit its "
                    "input_schema."},
        {"type": "tool_result", "tool_use_id": "toolu_5", "is_error": True,
         "content": "Unknown tool 'subtract': use one of add, lookup, refuse, bare_failure, leave."},
        {"type": "tool_result", "tool_use_id": "toolu_6", "content": "ValueError", "is_error": True},
        {"type": "tool_result", "tool_use_id": "toolu_7", "content": "SystemExit: 2", "is_error": True},
    ]
    assert turn.message == {"role": "user", "content": turn.results}
    assert turn.errors == 6
    assert [(s.tool, s.arguments, s.tool_use_id, s.ok) for s in turn.steps] == [
        ("add", {"a": 1, "b": "2"}, "toolu_1", True),
        ("lookup", {"key": "north"}, "toolu_2", False),
        ("refuse", {"reason": "no access"}, "toolu_3", False),
        ("add", {"a": 1}, "toolu_4", False),
        ("subtract", {"a": 1, "b": 2}, "toolu_5", False),
        ("bare_failure", {}, "toolu_6", False),
        ("leave", {}, "toolu_7", False),
    ]
    assert turn.steps[1].error == "KeyError: 'north'" and turn.steps[0].result_preview == "3"
    assert all(step.duration_s >= 0 for step in turn.steps)


def test_async_calls_of_one_turn_run_at_the_same_time() -> None:
    async def main() -> ToolTurn:
        arrived = {"a": asyncio.Event(), "b": asyncio.Event()}

        @tool
        async def meet(me: str, other: str) -> str:
            """Finish only once the other call has started too."""
            arrived[me].set()
            await arrived[other].wait()
            return f"{me} met {other}"

        calls = [use("t1", "meet", me="a", other="b"), use("t2", "meet", me="b", other="a")]
        return await asyncio.wait_for(run_tool_calls(calls, [meet]), GUARD_S)

    turn = asyncio.run(main())
    assert [r["content"] for r in turn.results] == ["a met b", "b met a"]


def test_sync_calls_run_in_threads_at_the_same_time_without_blocking_the_loop() -> None:
    barrier = threading.Barrier(2, timeout=GUARD_S)
    released = threading.Event()
    loop_threads: list[threading.Thread] = []

    @tool
    def crunch(part: int) -> str:
        """A blocking call: both must be running at once to pass the barrier."""
        barrier.wait()
        assert released.wait(GUARD_S)
        return f"part {part} in {threading.current_thread().name}"

    @tool
    async def release() -> str:
        """Runs on the loop while both threads block: proves the loop is free."""
        loop_threads.append(threading.current_thread())
        released.set()
        return "released"

    calls = [use("t1", "crunch", part=1), use("t2", "crunch", part=2), use("t3", "release")]
    turn = run(calls, [crunch, release])
    assert [r["content"] for r in turn.results] == [
        "part 1 in claude-force-tool-crunch", "part 2 in claude-force-tool-crunch", "released",
    ]
    assert loop_threads == [threading.main_thread()]


def test_a_sync_call_that_runs_too_long_is_an_error_result_and_its_late_result_is_dropped() -> None:
    finish = threading.Event()
    finished = threading.Event()

    @tool
    def slow() -> str:
        """Wait until the test lets go."""
        finish.wait(GUARD_S)
        finished.set()
        return "late"

    turn = run([use("t1", "slow"), use("t2", "add", a=2, b=2)], [slow, add], timeout_s=0.05)
    assert turn.results == [
        {"type": "tool_result", "tool_use_id": "t1", "is_error": True,
         "content": "slow did not finish within 0.05 s (its result is dropped): try a smaller request."},
        {"type": "tool_result", "tool_use_id": "t2", "content": "4"},
    ]
    finish.set()
    assert finished.wait(GUARD_S)  # the thread ends on its own; nothing waits for it


def test_a_tools_own_timeout_wins_and_an_async_call_is_cancelled_when_it_runs_out() -> None:
    cancelled = []

    @tool(timeout_s=0.05)
    async def stuck() -> str:
        """Never finishes by itself."""
        try:
            await asyncio.Event().wait()
        except asyncio.CancelledError:
            cancelled.append(True)
            raise
        return "never"

    turn = run([use("t1", "stuck")], [stuck], timeout_s=GUARD_S)
    assert turn.steps[0].error == "stuck did not finish within 0.05 s (its result is dropped): try a smaller request."
    assert cancelled == [True]


def test_an_interrupt_cancels_async_calls_and_stops_waiting_for_threads() -> None:
    thread_started, release_thread = threading.Event(), threading.Event()
    outcome: dict[str, object] = {}

    @tool
    def blocking() -> str:
        """Blocks its thread until the test ends."""
        thread_started.set()
        release_thread.wait(GUARD_S)
        outcome["thread"] = "finished late"
        return "late"

    async def main() -> None:
        async_started = asyncio.Event()

        @tool
        async def waiting() -> str:
            """Waits forever on the loop."""
            async_started.set()
            try:
                await asyncio.Event().wait()
            except asyncio.CancelledError:
                outcome["async"] = "cancelled"
                raise
            return "never"

        steps: list[ToolStep] = []
        task = asyncio.create_task(
            run_tool_calls([use("t1", "blocking"), use("t2", "waiting")], [blocking, waiting], on_step=steps.append)
        )
        await asyncio.wait_for(async_started.wait(), GUARD_S)
        assert await asyncio.to_thread(thread_started.wait, GUARD_S)
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await asyncio.wait_for(task, GUARD_S)
        outcome["steps"] = steps

    asyncio.run(main())
    assert outcome == {"async": "cancelled", "steps": []}  # the thread is still blocked: nobody waited
    release_thread.set()


def test_on_step_reports_each_call_as_it_finishes() -> None:
    seen: list[str] = []
    turn = run([use("t1", "add", a=1, b=1), use("t2", "lookup", key="k")], [add, lookup],
               on_step=lambda step: seen.append(step.label().split(" · ")[0]))
    assert sorted(seen) == ["→ add(a=1, b=1)", "→ lookup(key='k')"]
    assert len(turn.steps) == 2


def test_thread_calls_see_the_callers_context_variables() -> None:
    run_id = contextvars.ContextVar("run_id", default="none")

    @tool
    def which_run() -> str:
        """The run this call belongs to."""
        return run_id.get()

    async def main() -> ToolTurn:
        run_id.set("run-7")
        return await run_tool_calls([use("t1", "which_run")], [which_run])

    assert asyncio.run(main()).results[0]["content"] == "run-7"


def test_no_tool_calls_is_an_empty_turn() -> None:
    assert run([TextBlock(type="text", text="Done.")], [add]) == ToolTurn(results=[], steps=[])


def test_blocks_may_be_sdk_objects_or_dicts() -> None:
    content = [
        {"type": "text", "text": "x"},
        {"type": "tool_use", "id": "t1", "name": "add", "input": {"a": 1, "b": 2}},
        use("t2", "add", a=3, b=4),
    ]
    assert tool_use_blocks(content) == [
        {"id": "t1", "name": "add", "input": {"a": 1, "b": 2}},
        {"id": "t2", "name": "add", "input": {"a": 3, "b": 4}},
    ]
    assert [r["content"] for r in run(content, {"add": add}).results] == ["3", "7"]


class Summary(BaseModel):
    rows: int
    columns: list[str]


@dataclass
class Cell:
    row: int
    column: str


@pytest.mark.parametrize(
    ("value", "text"),
    [
        ("plain text", "plain text"),
        ("", "(empty result)"),
        (None, "null"),
        (42, "42"),
        ({"north": 3, "dates": [1.5, True]}, '{"north":3,"dates":[1.5,true]}'),
        (Summary(rows=3, columns=["a"]), '{"rows":3,"columns":["a"]}'),
        (Cell(row=2, column="price"), '{"row":2,"column":"price"}'),
        ({"thing": object.__new__(type("Thing", (), {"__str__": lambda self: "a thing"}))}, '{"thing":"a thing"}'),
    ],
)
def test_return_values_become_text(value: object, text: str) -> None:
    assert result_text(value) == text


def test_a_long_result_is_cut_with_a_note() -> None:
    assert result_text("x" * 30, max_chars=10) == (
        "xxxxxxxxxx\n[cut: the result has 30 characters, only the first 10 are shown; ask for less]"
    )
