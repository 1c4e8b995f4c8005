"""The API key: surrounding whitespace dropped, a malformed key refused before sending, never logged.

Real SDK over real HTTP against FakeAnthropicServer; every log record of every logger is
captured at DEBUG (ours, the SDK's, httpx2's, httpcore2's) and searched for the key.
"""

from __future__ import annotations

import logging

import pytest

from claude_force_nb.core.errors import InvalidAPIKeyError, MissingAPIKeyError
from claude_force_nb.engine.sending import usable_api_key
from claude_force_nb.testing import Fault

from .conftest import TEST_KEY


class Everything(logging.Handler):
    """Every record, formatted with its traceback, as a handler on the root logger sees it."""

    def __init__(self) -> None:
        super().__init__(logging.DEBUG)
        self.setFormatter(logging.Formatter("%(name)s %(levelname)s %(message)s"))
        self.lines: list[str] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.lines.append(self.format(record) + repr(record.__dict__))


@pytest.fixture
def all_logs():
    """Root and every library logger at DEBUG for the test; the records' text afterwards."""
    handler = Everything()
    root = logging.getLogger()
    names = ["claude_force_nb", "anthropic", "anthropic._base_client", "httpx2", "httpx", "httpcore2", "httpcore"]
    saved = [(root, root.level)] + [(logging.getLogger(n), logging.getLogger(n).level) for n in names]
    root.addHandler(handler)
    for logger, _ in saved:
        logger.setLevel(logging.DEBUG)
    yield handler.lines
    root.removeHandler(handler)
    for logger, level in saved:
        logger.setLevel(level)


@pytest.mark.parametrize("pasted", [f"{TEST_KEY}\n", f"  {TEST_KEY}  ", f"\t{TEST_KEY}\r\n"])
def test_a_key_with_surrounding_whitespace_works_and_is_never_logged(make_orch, server, all_logs, pasted):
    orch = make_orch(api_key=pasted, max_attempts=2)
    server.fail_next(529, retry_after_ms=1)  # a retry: more log lines that could hold it
    result = orch.run_sync("assistant", "hello")
    assert result.ok and result.attempts == 2
    assert [r.headers["authorization"] for r in server.requests] == [f"Bearer {TEST_KEY}"] * 2
    assert len(all_logs) > 5 and not [line for line in all_logs if TEST_KEY in line]


@pytest.mark.parametrize("key,problem", [
    (f"{TEST_KEY[:10]} {TEST_KEY[10:]}", "a space at character 11"),
    (f"{TEST_KEY[:10]}\n{TEST_KEY[10:]}", "a line break at character 11"),
    (f"{TEST_KEY}\x00", f"a control character at character {len(TEST_KEY) + 1}"),
    (f"{TEST_KEY[:-1]}…", f"a non-ASCII character (U+2026) at character {len(TEST_KEY)}"),
])
def test_a_key_with_a_bad_character_inside_is_refused_in_one_line_before_sending(make_orch, server, all_logs, key,
                                                                                  problem):
    orch = make_orch(api_key=key)
    with pytest.raises(InvalidAPIKeyError) as info:
        orch.run_sync("assistant", "hello")
    message = str(info.value)
    assert message == (f"The API key (ANTHROPIC_API_KEY or Settings.api_key) has {problem} of {len(key.strip())}: "
                       f"an API key is one word of printable ASCII; copy it again from the Console.")
    assert server.request_count == 0 and orch.ledger.rows() == []
    assert TEST_KEY[:10] not in message and not [line for line in all_logs if TEST_KEY[10:20] in line]


def test_a_blank_key_is_a_missing_key() -> None:
    with pytest.raises(MissingAPIKeyError):
        usable_api_key(" \n")
    assert usable_api_key(f" {TEST_KEY}\n") == TEST_KEY


def test_the_key_is_not_logged_when_the_api_refuses_it(make_orch, server, all_logs):
    server.script(Fault(status=401), Fault(body="{oops"))
    orch = make_orch()
    assert orch.run_sync("assistant", "refused").error_type == "authentication_error"
    assert orch.run_sync("assistant", "garbled").error_type == "malformed_response"
    assert not [line for line in all_logs if TEST_KEY in line]
