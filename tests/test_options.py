"""RunOptions: every per-call option, its one rule, and how defaults are filled in."""

from __future__ import annotations

import dataclasses
import math
from pathlib import Path

import pytest

from claude_force_nb.core.agent_files import DefinitionProblem, parse_definition
from claude_force_nb.core.agents import AgentDefinition
from claude_force_nb.core.errors import ConfigurationError, InvalidInputError
from claude_force_nb.core.options import (
    MAX_OUTPUT_TOKENS,
    RunOptions,
    max_tokens_problem,
    model_problem,
    temperature_problem,
)
from claude_force_nb.core.settings import Settings


def settings(**changes: object) -> Settings:
    return Settings(data_dir=Path("unused"), secrets_dir=Path("unused"), **changes)  # type: ignore[arg-type]


def test_defaults_leave_every_choice_to_the_agent_and_settings() -> None:
    assert RunOptions() == RunOptions(model=None, max_tokens=None, temperature=None, system=None,
                                      use_cache=True, refresh=False, stream=None)
    assert [f.name for f in dataclasses.fields(RunOptions)] == [
        "model", "max_tokens", "temperature", "system", "use_cache", "refresh", "stream",
        "tools", "schema", "thread", "max_steps", "cell_id", "notebook"]


def test_good_values_of_every_field_are_kept() -> None:
    options = RunOptions(model="claude-haiku-4-5", max_tokens=MAX_OUTPUT_TOKENS, temperature=0, system="Be brief.",
                         use_cache=False, refresh=True, stream=False)
    assert options.as_kwargs() == {"model": "claude-haiku-4-5", "max_tokens": 128_000, "temperature": 0,
                                   "system": "Be brief.", "use_cache": False, "refresh": True, "stream": False,
                                   "tools": None, "schema": None, "thread": None, "max_steps": None,
                                   "cell_id": None, "notebook": None}
    assert RunOptions(max_tokens=1, temperature=1.0, model="", stream=True).max_tokens == 1
    assert RunOptions(model="us.anthropic.claude-sonnet-4-6-v1:0").model == "us.anthropic.claude-sonnet-4-6-v1:0"


@pytest.mark.parametrize(
    "changes,message",
    [
        (dict(model=4), "model=4 is not text: use a model id such as 'claude-sonnet-4-6'."),
        (dict(model="claude sonnet"), "Malformed model id 'claude sonnet': use an id such as 'claude-sonnet-4-6'."),
        (dict(model=" claude-haiku-4-5"), "Malformed model id ' claude-haiku-4-5'"),
        (dict(model="x" * 129), "Malformed model id 'xxx"),
        (dict(max_tokens=0), "max_tokens=0 is out of range: use a whole number from 1 to 128,000."),
        (dict(max_tokens=-1), "max_tokens=-1 is out of range: use a whole number from 1 to 128,000."),
        (dict(max_tokens=128_001), "max_tokens=128001 is out of range: use a whole number from 1 to 128,000."),
        (dict(max_tokens=1.0), "max_tokens=1.0 is not a whole number: use one from 1 to 128,000."),
        (dict(max_tokens="100"), "max_tokens='100' is not a whole number: use one from 1 to 128,000."),
        (dict(max_tokens=True), "max_tokens=True is not a whole number: use one from 1 to 128,000."),
        (dict(temperature=1.5), "temperature=1.5 is out of range: use a number from 0 to 1."),
        (dict(temperature=-0.1), "temperature=-0.1 is out of range: use a number from 0 to 1."),
        (dict(temperature=math.nan), "temperature=nan is out of range: use a number from 0 to 1."),
        (dict(temperature="0.5"), "temperature='0.5' is not a number: use one from 0 to 1."),
        (dict(temperature=False), "temperature=False is not a number: use one from 0 to 1."),
        (dict(system=["be brief"]), "system must be text, not list: pass a str of extra instructions, or None."),
        (dict(use_cache=None), "use_cache=None is not True or False: pass a bool."),
        (dict(use_cache=1), "use_cache=1 is not True or False: pass a bool."),
        (dict(refresh="yes"), "refresh='yes' is not True or False: pass a bool."),
        (dict(stream=0), "stream=0 is not True, False or None (None: Settings decides): pass a bool."),
    ],
)
def test_each_bad_value_is_refused_with_its_fix(changes: dict[str, object], message: str) -> None:
    with pytest.raises(InvalidInputError) as info:
        RunOptions(**changes)  # type: ignore[arg-type]
    assert str(info.value).startswith(message)
    with pytest.raises(InvalidInputError):  # a changed copy is checked too
        dataclasses.replace(RunOptions(), **changes)


@pytest.mark.parametrize("key,value", [("max_tokens", 128_001), ("max_tokens", 0), ("temperature", 2),
                                       ("model", "claude sonnet")])
def test_an_agent_file_is_refused_with_the_same_message_as_a_call(key: str, value: object) -> None:
    with pytest.raises(InvalidInputError) as call:
        RunOptions(**{key: value})  # type: ignore[arg-type]
    with pytest.raises(DefinitionProblem) as file:
        parse_definition(f"---\n{key}: {value}\n---\nprompt", label="agents/x.md", stem="x")
    assert str(file.value) == f"agents/x.md: {call.value}"


def test_the_rules_accept_what_is_not_set() -> None:
    assert model_problem(None) is None and model_problem("") is None and model_problem("claude-opus-4-6") is None
    assert max_tokens_problem(None) is None and max_tokens_problem(MAX_OUTPUT_TOKENS) is None
    assert temperature_problem(None) is None and temperature_problem(0.7) is None


def test_from_kwargs_names_an_unknown_option_and_the_known_ones() -> None:
    assert RunOptions.from_kwargs(model="m", refresh=True) == RunOptions(model="m", refresh=True)
    with pytest.raises(InvalidInputError) as info:
        RunOptions.from_kwargs(max_token=5, temprature=0.1)
    assert str(info.value) == (
        "Unknown option(s) max_token, temprature: use model, max_tokens, temperature, system, use_cache, "
        "refresh, stream, tools, schema, thread, max_steps, cell_id, notebook (see help(Orchestrator.run))."
    )


def test_resolve_takes_the_call_then_the_agent_then_settings() -> None:
    agent = AgentDefinition("a", "sys", model="claude-opus-4-6", max_tokens=2048, temperature=0.3)
    bare = AgentDefinition("b", "sys")
    s = settings(default_model="claude-haiku-4-5", max_tokens=512, stream=False, max_steps=4)
    assert RunOptions().resolve(bare, s) == RunOptions(model="claude-haiku-4-5", max_tokens=512, stream=False,
                                                       max_steps=4)
    assert RunOptions().resolve(agent, s) == RunOptions(model="claude-opus-4-6", max_tokens=2048, temperature=0.3,
                                                        stream=False, max_steps=4)
    given = RunOptions(model="claude-sonnet-4-6", max_tokens=10, temperature=0.0, system="x", use_cache=False,
                       refresh=True, stream=True, max_steps=2)
    assert given.resolve(agent, s) == given  # temperature 0 is a choice, not "unset"


def test_a_bad_default_is_refused_where_it_is_set_with_the_same_rule() -> None:
    with pytest.raises(ConfigurationError, match=r"^Settings\.max_tokens=0 is out of range: use a whole number from 1 to 128,000\.$"):
        settings(max_tokens=0)
    with pytest.raises(ConfigurationError, match=r"^Settings\.default_model='bad model' is not a model id"):
        settings(default_model="bad model")


def test_a_lone_surrogate_is_found_with_its_line_and_column() -> None:
    from claude_force_nb.core.options import surrogate_problem

    assert surrogate_problem("all fine: ü 数 🙂", "The task") is None
    assert surrogate_problem("a\nbc\ud800", "The task") == (
        "The task holds a lone surrogate '\\ud800' at line 2, column 3: it cannot be sent as UTF-8 text. "
        "Remove it, or decode the data it came from with its real encoding.")
    with pytest.raises(InvalidInputError, match=r"^The system text holds a lone surrogate '\\udcff' at line 1, column 1"):
        RunOptions(system="\udcff")


def test_a_lone_surrogate_in_a_task_is_refused_before_sending(make_orch, server) -> None:
    orch = make_orch()
    with pytest.raises(InvalidInputError, match=r"^The task holds a lone surrogate '\\udce9' at line 1, column 4"):
        orch.run_sync("assistant", "caf\udce9")
    [result] = orch.run_many_sync([("assistant", "caf\udce9")])
    assert result.error_type == "InvalidInputError" and "lone surrogate" in result.error
    assert server.request_count == 0


def test_tools_and_schema_are_made_once_and_bad_ones_refused_in_one_line() -> None:
    def double(x: int) -> int:
        """Twice x."""
        return 2 * x

    options = RunOptions(tools=[double], schema="title, score float", thread="sales", max_steps=3)
    assert list(options.tools) == ["double"] and options.schema.columns == ("title", "score")
    assert RunOptions(tools=double).tools == options.tools or list(RunOptions(tools=double).tools) == ["double"]
    assert options.as_kwargs()["tools"] is options.tools  # handed on as it is, never copied
    with pytest.raises(InvalidInputError, match=r"^tools='double' is not a list of functions"):
        RunOptions(tools="double")
    with pytest.raises(InvalidInputError, match=r"^Cannot make a tool of 3 \(int\)"):
        RunOptions(tools=[3])
    with pytest.raises(InvalidInputError, match=r"^max_steps=0 is not a whole number from 1 to 1,000"):
        RunOptions(max_steps=0)
    with pytest.raises(InvalidInputError, match=r"^thread='' is not a non-empty str"):
        RunOptions(thread="")
    with pytest.raises(InvalidInputError, match=r"^Invalid schema string"):
        RunOptions(schema="title,, score")
