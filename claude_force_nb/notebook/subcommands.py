"""``%agent SUBCOMMAND``: tables, the cache, the budget, pacing, background runs and the apps.

Each subcommand takes the words after its name and refuses ones it does not use, so a
typo is never silently ignored. Tables come back as DataFrames
(``df = %agent costs --by day``); everything else prints one or two lines.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

from IPython.core.error import UsageError

from ..core.settings import budget_problem
from ..engine.limits import format_usd
from ..views.agent_list import agent_list
from .pacing import pacing_summary

if TYPE_CHECKING:  # pragma: no cover
    from .magics import AgentMagics

__all__ = ["SUBCOMMANDS", "Subcommands"]

SUBCOMMANDS = ("list", "workflows", "runs", "costs", "stats", "pacing", "cache", "budget", "cancel", "threads",
               "thread", "batches", "batch", "console", "compare-ui", "cache-ui", "dashboard", "workflow-ui", "help")
THREAD_ACTIONS = ("show", "reset")
CACHE_ACTIONS = ("stats", "list", "clear", "verify", "prune")
APPS = {
    "console": "AgentConsole", "compare-ui": "CompareView", "cache-ui": "CacheBrowser", "dashboard": "CostDashboard",
    "workflow-ui": "WorkflowApp",
}

USAGE = """%agent list | workflows | runs | costs [--team] [--by agent|model|day|session|user] | stats [--by ...]
| pacing | cache [stats|list|clear [--team --yes]|verify|prune] | budget [USD|off] | cancel
| threads | thread show|reset NAME | batches | batch resume|cancel ID
| console | compare-ui | cache-ui | dashboard | workflow-ui | help

Subcommands that show tables return DataFrames: ``df = %agent costs --by day``."""


Words = Sequence[str]  # a magic line's words (a method here is named `list`, so not Words)

def _no_arguments(command: str, rest: Words) -> None:
    if rest:
        raise UsageError(f"%agent {command} takes no arguments (got {' '.join(rest)!r}): use `%agent {command}`.")



def _noted(frame: Any) -> Any:
    """A report, after printing its note (what the ledger could not save) if it has one."""
    if note := frame.attrs.get("note"):
        print(note)
    return frame

class Subcommands:
    """The subcommands of one AgentMagics (its orchestrator, background runs and apps)."""

    def __init__(self, magics: AgentMagics) -> None:
        self.magics = magics

    def run(self, words: Words) -> Any:
        if not words:
            raise UsageError(f"Usage: %agent SUBCOMMAND — one of {', '.join(SUBCOMMANDS)} (`%agent help`).")
        command, rest = words[0], words[1:]
        if command not in SUBCOMMANDS:
            raise UsageError(f"Unknown subcommand {command!r}: use one of {', '.join(SUBCOMMANDS)}.")
        if command in APPS:
            return self.open_app(command, rest)
        return getattr(self, command.replace("-", "_"))(rest)

    @property
    def orch(self) -> Any:
        return self.magics.orchestrator

    def help(self, rest: Words) -> None:
        _no_arguments("help", rest)
        print(USAGE)
        print("Cell magics: %%agent AGENT [options] (see %%agent?), %%compare -a A,B [-m M1,M2], "
              "%%workflow [NAME] (see %%workflow?), %%heavy [-n 4] [-a AGENT]")

    def list(self, rest: Words) -> Any:
        _no_arguments("list", rest)
        return agent_list(self.orch.registry)

    def workflows(self, rest: Words) -> Any:
        from ..views.workflows import workflows_frame

        _no_arguments("workflows", rest)
        return workflows_frame(self.orch.registry.workflows())

    def runs(self, rest: Words) -> Any:
        from ..views import reports

        _no_arguments("runs", rest)
        return _noted(reports.runs(ledger=self.orch.ledger))

    def _by(self, command: str, rest: Words, groupings: tuple[str, ...] | None = None) -> str:
        from ..views.reports import GROUPINGS  # pandas and the stores load with the first report

        groupings = groupings or GROUPINGS
        usage = f"Usage: %agent {command} [--by {'|'.join(groupings)}]"
        if not rest:
            return "agent"
        if len(rest) != 2 or rest[0] != "--by":
            raise UsageError(f"{usage} (got {' '.join(rest)!r}).")
        if rest[1] not in groupings:
            raise UsageError(f"Cannot group by {rest[1]!r}: use one of {', '.join(groupings)}, "
                             f"e.g. `%agent {command} --by model`.")
        return rest[1]

    def costs(self, rest: Words) -> Any:
        """``%agent costs [--team] [--by ...]``: this home's spend, or the team's (from Redis)."""
        from ..views import reports

        team = "--team" in rest
        rest = [word for word in rest if word != "--team"]
        if not team:
            return _noted(reports.costs(by=self._by("costs", rest), ledger=self.orch.ledger))
        by = self._by("costs --team", rest, reports.TEAM_GROUPINGS)
        return reports.costs(by=by, scope="team", ledger=self.orch.ledger)

    def stats(self, rest: Words) -> Any:
        from ..views import reports

        by = self._by("stats", rest)
        paced = self.orch.pacer.stats()
        if paced.rate_limited or paced.overloaded or paced.waited_s:
            print(pacing_summary(paced))
        return _noted(reports.stats(by=by, ledger=self.orch.ledger))

    def pacing(self, rest: Words) -> None:
        _no_arguments("pacing", rest)
        print(pacing_summary(self.orch.pacer.stats()))

    def cache(self, rest: Words) -> Any:
        from ..views import reports

        action = rest[0] if rest else "stats"
        if action == "clear" and rest[1:]:
            return self._clear_team(rest[1:])
        if action not in CACHE_ACTIONS or len(rest) > 1:
            raise UsageError(f"Usage: %agent cache [{'|'.join(CACHE_ACTIONS)}] (got {' '.join(rest)!r}).")
        cache = self.orch.cache
        if action == "stats":
            stats = cache.stats()
            if team := stats.get("redis"):
                state = "up" if team["up"] else "down (skipped until it answers)"
                print(f"Hits per tier: local {stats['hits']:,}, Redis {team['hits']:,} (team {team['team']} at "
                      f"{team['url']}, {state}; {team['integrity_failures']:,} rejected values)")
            return stats
        if action == "list":
            return reports.cache_contents(cache=cache)
        if action == "clear":
            print(f"Removed {cache.clear()} cached answers (the ledger is kept).")
        elif action == "verify":
            bad = cache.verify()
            print(f"{len(bad)} entries failed verification" + (f": {', '.join(k[:15] for k in bad)}" if bad else "."))
            return bad
        else:
            print(f"Pruned {cache.prune()} expired or excess entries.")
        return None

    def _clear_team(self, flags: Words) -> None:
        """``%agent cache clear --team --yes``: delete the team's entries on Redis, for everyone."""
        if sorted(flags) != ["--team", "--yes"]:
            if flags == ["--team"]:
                raise UsageError("This deletes the cached answers of everyone sharing the team secret: "
                                 "run `%agent cache clear --team --yes` to go ahead.")
            raise UsageError(f"Usage: %agent cache clear [--team --yes] (got {' '.join(flags)!r}).")
        print(f"Removed {self.orch.cache.clear_team():,} team cache entries from Redis "
              "(local caches and ledgers are kept).")

    def budget(self, rest: Words) -> None:
        if len(rest) > 1:
            raise UsageError(f"Usage: %agent budget [USD|off] (got {' '.join(rest)!r}).")
        if rest:
            value = self._budget_value(rest[0])
            self.magics.budget_usd = value
            if value is None:  # "off" means off, whatever CLAUDE_FORCE_BUDGET_USD says
                self.orch.configure(budget_usd=None)
        guard = self.orch.budget
        limit = "none" if guard.budget_usd is None else format_usd(guard.budget_usd)
        print(f"Budget: {limit}; spent this kernel: {format_usd(guard.spent_usd)}")

    @staticmethod
    def _budget_value(word: str) -> float | None:
        if word.lower() in ("none", "off"):
            return None
        fix = "use an amount in USD such as `%agent budget 5`, or `%agent budget off`"
        try:
            value = float(word.lstrip("$"))
        except ValueError:
            raise UsageError(f"Budget {word!r} is not a number: {fix}.") from None
        if budget_problem(value) is not None:
            raise UsageError(f"Budget {word!r} is not a budget (it must be 0 or more, and finite): {fix}.")
        return value

    def cancel(self, rest: Words) -> None:
        _no_arguments("cancel", rest)
        n = self.magics.cancel_all()
        print(f"Cancelled {n} background run{'s' if n != 1 else ''}.")

    def threads(self, rest: Words) -> Any:
        from ..views.threads import threads_frame

        _no_arguments("threads", rest)
        return threads_frame(self.orch.threads)

    def thread(self, rest: Words) -> Any:
        from ..views.threads import thread_frame

        if len(rest) != 2 or rest[0] not in THREAD_ACTIONS:
            raise UsageError(f"Usage: %agent thread show|reset NAME (got {' '.join(rest)!r}); "
                             "`%agent threads` lists the names.")
        action, name = rest
        if action == "show":
            return thread_frame(self.orch.threads, name)  # an unknown name: one line with close names
        removed = self.orch.threads.reset(name)
        print(f"Thread {name!r} reset: {removed} turn{'s' if removed != 1 else ''} forgotten (the ledger is kept).")
        return None

    def batches(self, rest: Words) -> Any:
        from .batch_commands import batches_command  # the SDK loads with the first batch command

        return batches_command(self.orch, rest)

    def batch(self, rest: Words) -> None:
        from .batch_commands import batch_command

        batch_command(self.orch, rest)

    def open_app(self, command: str, rest: Words) -> Any:
        from . import widgets

        _no_arguments(command, rest)
        orch = self.orch
        app_class = getattr(widgets, APPS[command])
        if command == "cache-ui":
            app = app_class(cache=orch.cache)
        elif command == "dashboard":
            app = app_class(ledger=orch.ledger)
        else:
            app = app_class(orch)
        self.magics.add_app(app)
        return app
