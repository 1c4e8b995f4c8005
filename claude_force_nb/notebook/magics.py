"""AgentMagics: ``%%agent``, ``%agent <subcommand>`` and ``%%compare``.

Settings are traitlets, so ``%config AgentMagics.default_model = "claude-haiku-4-5"``
and ``c.AgentMagics.budget_usd = 5.0`` in ipython_config.py both work.

The magics parse arguments (arguments.py), delegate to the Orchestrator (through the
notebook-safe runner) and render through display.py; ``%agent SUBCOMMAND`` lives in
subcommands.py. Mistakes a user can make print one line with the fix (a refused
``%config`` value too: each setting trait follows its Settings rule); bugs keep their
tracebacks.
"""

from __future__ import annotations

import concurrent.futures
import itertools
import threading
import traceback
from typing import TYPE_CHECKING, Any

from IPython.core.error import UsageError
from IPython.core.magic import Magics, cell_magic, line_magic, magics_class
from IPython.core.magic_arguments import argument, magic_arguments
from IPython.display import HTML, display
from traitlets import Bool, Float, Int, TraitError, Unicode, observe, validate

from ..core.errors import ClaudeForceError
from ..core.options import RunOptions
from ..core.settings import DEFAULT_MODEL, Settings, setting_problem
from ..engine.background import BackgroundJob
from ..views.compare import comparison_frame
from .arguments import comma_list, parse, split, text_for_agent, variable_name
from .arguments import friendly as _friendly
from .arguments import run_options as cell_run_options
from .display import StreamView, compare_html, extract_code, provenance
from .interpolate import TABLE_CHARS, interpolate
from .map_magic import map_arguments, run_over, wants_map
from .subcommands import USAGE, Subcommands
from .workflow_magics import WorkflowMagics

if TYPE_CHECKING:
    from ..core.agents import AgentDefinition
    from ..core.results import AgentResult
    from ..engine.orchestrator import Orchestrator

__all__ = ["AgentMagics", "interpolate", "load", "unload"]


@magics_class
class AgentMagics(Magics):
    """Run Claude agents from cells: %%agent, %agent <subcommand>, %%compare."""

    # None means "as Settings.from_env() says" (CLAUDE_FORCE_MODEL, CLAUDE_FORCE_BUDGET_USD...).
    default_model = Unicode(None, allow_none=True, help=(
        f"Model used when neither the cell nor the agent names one (default: CLAUDE_FORCE_MODEL or {DEFAULT_MODEL})."
    )).tag(config=True)
    max_tokens = Int(None, allow_none=True, help="Default max_tokens per answer (default 1024).").tag(config=True)
    max_concurrent = Int(None, allow_none=True, help="Most requests in flight at once (default 8).").tag(config=True)
    budget_usd = Float(None, allow_none=True, help=(
        "Refuse calls that could take this kernel's spend past this many USD "
        "(default: CLAUDE_FORCE_BUDGET_USD or none)."
    )).tag(config=True)
    stream = Bool(None, allow_none=True,
                  help="Stream answers into the cell as they arrive (default True).").tag(config=True)
    interpolate = Bool(True, help="Fill {name} fields in cells from the user namespace.").tag(config=True)
    table_chars = Int(TABLE_CHARS, min=200, help="Most characters a {df} summary of a DataFrame takes "
                      "({df!full} sends it whole).").tag(config=True)

    @validate("default_model", "max_tokens", "max_concurrent", "budget_usd")
    def _check_setting(self, proposal: Any) -> Any:
        """The same rule as the Settings field: ``%config AgentMagics.max_concurrent = 0`` is
        refused with one line (IPython prints it), and the old value stays."""
        name, value = proposal["trait"].name, proposal["value"]
        if value is not None and (problem := setting_problem(name, value)) is not None:
            raise TraitError(f"AgentMagics.{problem}")
        return value

    def __init__(self, shell: Any = None, **kwargs: Any) -> None:
        self._orch: Orchestrator | None = None  # before super(): loading config fires observers
        self._jobs: set[BackgroundJob[AgentResult]] = set()  # unfinished --bg runs
        self._jobs_lock = threading.Lock()  # jobs leave the set from the runner thread
        self._apps: list[Any] = []  # widget apps opened by %agent console & co.
        self._subcommands = Subcommands(self)
        self.workflow_magics: Any = None  # %%workflow and %%heavy (workflow_magics.py), set by load()
        super().__init__(shell=shell, **kwargs)

    # -- the orchestrator: built on first use, reconfigured (never rebuilt) by %config ----

    _TRAIT_SETTINGS = ("default_model", "max_tokens", "max_concurrent", "budget_usd", "stream")

    def _settings(self) -> Settings:
        """The environment's settings, with every trait the user set on top."""
        overrides = {name: getattr(self, name) for name in self._TRAIT_SETTINGS}
        return Settings.from_env(**{k: v for k, v in overrides.items() if v is not None})

    @property
    def orchestrator(self) -> Orchestrator:
        if self._orch is None:
            from ..engine.orchestrator import Orchestrator  # the SDK loads on first use, not at %load_ext

            self._orch = Orchestrator(self._settings())
        return self._orch

    @observe(*_TRAIT_SETTINGS)
    def _settings_changed(self, change: Any) -> None:
        # The same orchestrator keeps its spend, its runs in flight and the widgets using it.
        if self._orch is not None:
            fresh = self._settings()
            self._orch.configure(**{name: getattr(fresh, name) for name in self._TRAIT_SETTINGS})

    def close_orchestrator(self) -> None:
        orch, self._orch = self._orch, None
        if orch is not None:
            orch.close()

    # -- %%agent --------------------------------------------------------------------------

    @magic_arguments()
    @argument("agent", help="Agent name (see `%agent list`).")
    @argument("-m", "--model", help="Model id, e.g. claude-haiku-4-5.")
    @argument("--max-tokens", type=int, help="Most tokens in the answer.")
    @argument("-t", "--temperature", type=float, help="Sampling temperature, 0 to 1.")
    @argument("--system", help="Extra instructions appended to the agent's definition.")
    @argument("--no-cache", action="store_true", help="Neither read nor write the response cache.")
    @argument("--refresh", action="store_true", help="Skip the cache read; store the new answer.")
    @argument("-o", "--out", metavar="VAR", help="Store the AgentResult in this variable.")
    @argument("-f", "--format", choices=("markdown", "text", "code"), default="markdown",
              help="How to show the answer; `code` also offers the code as the next cell.")
    @argument("--no-stream", action="store_true", help="Wait for the whole answer.")
    @argument("--bg", action="store_true",
              help="Return at once; the answer fills in later (`%%agent cancel` stops it).")
    @argument("--no-interpolate", action="store_true", help="Send {braces} exactly as written.")
    @argument("--tools", metavar="F,G",
              help="Notebook functions the agent may call (`notebook`: list_variables, describe).")
    @argument("--schema", metavar="SPEC",
              help="Answer in this shape: a variable (pydantic model or dict) or 'title, score float'.")
    @argument("--thread", metavar="T", help="Continue the conversation thread T (created if new).")
    @argument("-c", "--continue", dest="continue_latest", action="store_true",
              help="Continue this notebook's most recent thread.")
    @argument("--max-steps", type=int, metavar="N", help="Most model turns in a tool loop (default 10).")
    @map_arguments
    @cell_magic
    @_friendly
    def agent(self, line: str, cell: str) -> Any:
        """Send the cell to an agent; the answer streams in, then a badge with tokens, cost and latency.

        Each tool call shows as a line when it returns; with ``--schema`` the result's ``.data``
        holds the validated answer. Example::

            %%agent code-reviewer -m claude-haiku-4-5
            def add(a, b): return a - b

            %%agent analyst --tools notebook,top_customers --schema 'summary, risk float' -o r
            Which region is shrinking in {sales}?

        With ``--over DF`` the cell is a template sent once per row; the answers come back as a
        DataFrame (see notebook/map_magic.py: ``{column}`` is the row's value, any other
        ``{variable}`` is filled in once)::

            %%agent assistant --over reviews --into label -o labelled
            Classify as positive or negative: {review}
        """
        args = parse(self.agent.parser, line)
        variable_name(args.out)
        if wants_map(args):
            return run_over(self, args, cell)
        task = self._task(cell, args.no_interpolate)
        orch = self.orchestrator
        definition = orch.registry.get(args.agent)  # fail fast, before anything is shown
        acting = self._acting(args, definition)
        run_options = cell_run_options(args)
        model = run_options.resolve(definition, orch.settings).model or orch.settings.default_model
        view = StreamView(args.agent, model, args.format,
                          pacing=orch.pacer.stats)
        options = {**run_options.as_kwargs(), **acting, "on_step": view.on_step}
        if args.bg:
            self._start_background(args, task, options, view)
            return
        try:
            result = orch.run_sync(args.agent, task, on_text=view.on_text, **options)
        except ClaudeForceError as exc:
            view.fail(str(exc))
            raise
        except KeyboardInterrupt:
            view.fail("Interrupted: the request was cancelled.")
            raise
        finally:
            view.stop_pacing()
        self._finish(args, result, view)

    def _acting(self, args: Any, definition: AgentDefinition) -> dict[str, Any]:
        """The run's tools, schema, thread and where the cell is (only what the cell asks for).

        Tools come from ``--tools`` and from the agent file's ``tools:`` names that are not
        Claude Code's (``notebook``, ``describe``, a notebook function): both are looked up here."""
        # tools and schemas need pydantic: imported with the first cell that runs, not by %load_ext
        from ..engine.file_tools import agent_file_tools
        from .cell_options import NOTEBOOK, cell_id, notebook_key, resolve_schema, resolve_thread, resolve_tools
        from .context_tools import NOTEBOOK_TOOLS as NOTEBOOK_TOOL_NAMES

        user_ns = self.user_ns if self.shell is not None else {}
        hidden = getattr(self.shell, "user_ns_hidden", ())
        notebook = notebook_key(user_ns)
        acting: dict[str, Any] = {"cell_id": cell_id(self.shell), "notebook": notebook}
        from_file = agent_file_tools(definition.tools).other if definition.tools else []
        if from_file:  # list_variables and describe come as a pair: the `notebook` tools
            names = [NOTEBOOK if name in NOTEBOOK_TOOL_NAMES else name for name in from_file]
            given = [n.strip() for n in args.tools.split(",")] if args.tools is not None else []
            acting["tools"] = resolve_tools(",".join(dict.fromkeys([*given, *names])), user_ns, hidden)
        elif args.tools is not None:
            acting["tools"] = resolve_tools(args.tools, user_ns, hidden)
        if args.schema is not None:
            acting["schema"] = resolve_schema(args.schema, user_ns)
        if args.max_steps is not None:
            acting["max_steps"] = args.max_steps
        if args.thread is not None or args.continue_latest:
            acting["thread"] = resolve_thread(
                args.thread, args.continue_latest, lambda: self.orchestrator.threads, notebook
            )
        return acting

    def _task(self, cell: str, raw: bool) -> str:
        """The cell's text as it will be sent (refused before anything is shown if it cannot be)."""
        task = text_for_agent(cell, "The cell").strip("\n")
        if self.interpolate and not raw:
            task = interpolate(task, self.user_ns if self.shell else {}, self.table_chars)
        return task

    def _finish(self, args: Any, result: AgentResult, view: StreamView) -> None:
        view.finish(result)
        if args.out:
            self.user_ns[args.out] = result
        if args.format == "code" and result.ok and self.shell is not None:
            self.shell.set_next_input(extract_code(result.text), replace=False)

    def _start_background(self, args: Any, task: str, options: dict[str, Any], view: StreamView) -> None:
        orch = self.orchestrator

        async def work() -> AgentResult:
            # Everything shown happens here, on the runner loop, before the job's future
            # resolves: no delta can overwrite the final answer, error or "Cancelled.".
            try:
                result = await orch.run(args.agent, task, on_text=view.on_text, **options)
            except ClaudeForceError as exc:
                view.fail(str(exc))
                raise
            except Exception as exc:  # a bug: nobody awaits this job, so its traceback goes into the cell
                view.fail("".join(traceback.format_exception(exc)))
                raise
            finally:
                view.stop_pacing()
            view.finish(result)
            if args.out:
                self.user_ns[args.out] = result
            return result

        job = BackgroundJob(work, on_cancel=lambda: view.fail("Cancelled."))
        with self._jobs_lock:
            self._jobs.add(job)
        job.future.add_done_callback(lambda _future: self._forget(job))

    def _forget(self, job: BackgroundJob[Any]) -> None:
        with self._jobs_lock:
            self._jobs.discard(job)

    def wait_background(self, timeout: float | None = None) -> bool:
        """Wait until every ``%%agent --bg`` run started so far has finished and shown its
        outcome (answer, error or "Cancelled."); False if some are still running after ``timeout``."""
        with self._jobs_lock:
            futures = [job.future for job in self._jobs]
        _, not_done = concurrent.futures.wait(futures, timeout)
        return not not_done

    # -- %%compare ------------------------------------------------------------------------

    @magic_arguments()
    @argument("-a", "--agents", required=True, help="Comma-separated agent names.")
    @argument("-m", "--models", help="Comma-separated model ids (default: each agent's model).")
    @argument("--max-tokens", type=int, help="Most tokens per answer.")
    @argument("-t", "--temperature", type=float, help="Sampling temperature, 0 to 1.")
    @argument("--no-cache", action="store_true", help="Neither read nor write the response cache.")
    @argument("-o", "--out", metavar="VAR", help="Store the comparison DataFrame in this variable.")
    @argument("--no-interpolate", action="store_true", help="Send {braces} exactly as written.")
    @argument("--schema", metavar="SPEC", help="Answer in this shape; each field becomes a column of the table.")
    @cell_magic
    @_friendly
    def compare(self, line: str, cell: str) -> Any:
        """Run the cell's task on every agent × model, concurrently; answers side by side.

        Returns a DataFrame (agent, model, text, tokens, cost, latency, cached); with
        ``--schema 'label, score float'`` also one typed column per field. Example::

            %%compare -a python-expert,code-reviewer -m claude-haiku-4-5,claude-sonnet-4-6
            How should I deduplicate rows in a 10 GB CSV?
        """
        args = parse(self.compare.parser, line)
        variable_name(args.out)
        task = self._task(cell, args.no_interpolate)
        agents = comma_list(args.agents, "-a", "agent", "assistant,code-reviewer")
        models: list[str | None] = [None]  # each agent's own model
        if args.models is not None:
            models = list(comma_list(args.models, "-m", "model", "claude-haiku-4-5,claude-sonnet-4-6"))
        orch = self.orchestrator
        for name in agents:
            orch.registry.get(name)
        from .cell_options import resolve_schema

        schema = resolve_schema(args.schema, self.user_ns) if args.schema is not None else None
        common = RunOptions(max_tokens=args.max_tokens, temperature=args.temperature, use_cache=not args.no_cache,
                            schema=schema)
        checked = [RunOptions(model=m) for m in models]  # a bad model fails before any call
        jobs = [{"agent": a, "task": task, "model": o.model} for a, o in itertools.product(agents, checked)]
        results = orch.run_many_sync(jobs, **common.as_kwargs())
        provenances = [provenance(r)["claude_force_nb"] for r in results]
        display(HTML(compare_html(results)), metadata={"claude_force_nb": provenances})
        frame = comparison_frame(results, schema)
        if args.out:
            self.user_ns[args.out] = frame
        return frame

    # -- %agent <subcommand> ---------------------------------------------------------------

    @line_magic("agent")  # type: ignore[arg-type]  # IPython types line_magic(name) as if it took no name
    @_friendly
    def agent_line(self, line: str) -> Any:
        return self._subcommands.run(split(line))

    agent_line.__doc__ = USAGE  # type: ignore[assignment]  # (the same wrong type as above)

    @property
    def user_ns(self) -> dict[str, Any]:
        """The notebook's variables (magics are always registered with a shell)."""
        assert self.shell is not None
        return self.shell.user_ns

    def add_app(self, app: Any) -> None:
        """Keep a widget app opened by ``%agent console`` & co.: cancelled and closed with the extension."""
        self._apps.append(app)

    def cancel_all(self) -> int:
        """Cancel every unfinished --bg run and widget run; returns how many were cancelled."""
        with self._jobs_lock:
            jobs = list(self._jobs)
        cancelled = sum(job.cancel() for job in jobs)
        return cancelled + sum(app.cancel() for app in self._apps)

    def close_apps(self) -> None:
        apps, self._apps = self._apps, []
        for app in apps:
            app.close()


_loaded: dict[int, AgentMagics] = {}


def load(ipython: Any) -> None:
    """Register one AgentMagics instance for this shell."""
    if id(ipython) in _loaded:
        return
    try:
        magics = AgentMagics(shell=ipython)
    except TraitError as exc:  # c.AgentMagics.* in ipython_config.py or a profile
        raise UsageError(
            f"{exc} It is set in the IPython configuration (c.AgentMagics...): fix or remove it."
        ) from None
    ipython.register_magics(magics)
    magics.workflow_magics = WorkflowMagics(ipython, magics)
    ipython.register_magics(magics.workflow_magics)
    _loaded[id(ipython)] = magics


def unload(ipython: Any) -> None:
    """Remove the magics, cancel background runs and close the orchestrator."""
    magics = _loaded.pop(id(ipython), None)
    if magics is None:
        return
    magics.cancel_all()
    magics.close_apps()
    magics.close_orchestrator()
    for kind in ("cell", "line"):
        table = ipython.magics_manager.magics[kind]
        for name in ("agent", "compare", "workflow", "heavy"):
            table.pop(name, None)
    for configurable in (magics, getattr(magics, "workflow_magics", None)):
        if configurable in ipython.configurables:
            ipython.configurables.remove(configurable)
