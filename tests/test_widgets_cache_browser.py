"""CacheBrowser, driven headless against a real signed cache."""

from __future__ import annotations

import sqlite3

from claude_force_nb.notebook import widgets
from claude_force_nb.store.cache import ResponseCache
from claude_force_nb.views import reports

from .widget_support import TIMEOUT, filled, open_app  # noqa: F401  (fixtures)


def test_browser_lists_filters_and_previews(filled, open_app):
    browser = open_app(widgets.CacheBrowser, filled)
    assert "<b>3</b> entries" in browser.header.value and "<b>0</b> integrity failures" in browser.header.value
    assert list(browser.agent_filter.options) == [widgets.ALL, "assistant", "sql-expert"]
    assert list(browser.model_filter.options) == [widgets.ALL, "claude-haiku-4-5-20251001", "claude-sonnet-4-6"]
    assert len(browser.selector.options) == 3 and browser.selected_key is None and browser.delete_button.disabled
    browser.agent_filter.value = "assistant"
    assert len(browser.selector.options) == 2
    browser.search.value = "BOOTSTRAP"
    ((label, key),) = browser.selector.options
    entries = reports.cache_contents(cache=filled.cache)
    assert "Explain bootstrapping" in label and key == entries.index[entries["task"] == "Explain bootstrapping"][0]
    assert "1 of 3 entries" in browser.table.outputs[0]["data"]["text/html"]
    browser.selector.value = key
    preview = browser.preview.outputs[0]["data"]["text/plain"]
    assert "Task: Explain bootstrapping" in preview and "Model: claude-sonnet-4-6" in preview
    assert "Answer: **Offline answer** from `claude-sonnet-4-6`" in preview and "Expires: 20" in preview
    assert not browser.delete_button.disabled


def test_browser_delete_removes_the_selected_entry(filled, open_app):
    browser = open_app(widgets.CacheBrowser, filled)
    victim = browser.selector.options[1][1]
    browser.selector.value = victim
    browser.delete_button.click()
    assert filled.cache.stats()["entries"] == 2 and victim not in reports.cache_contents(cache=filled.cache).index
    assert "<b>2</b> entries" in browser.header.value and len(browser.selector.options) == 2
    assert "Deleted entry" in browser.status.value and browser.selected_key is None
    assert browser.delete() is False and "Select an entry first" in browser.status.value


def test_browser_verify_counts_bad_signatures(filled, open_app):
    browser = open_app(widgets.CacheBrowser, filled)
    browser.verify_button.click()
    assert browser.future.result(TIMEOUT) == []
    assert "Verified: 0 bad entries." in browser.status.value and not browser.verify_button.disabled
    key = reports.cache_contents(cache=filled.cache).index[0]
    with sqlite3.connect(filled.cache.path) as conn:
        conn.execute("UPDATE entries SET payload = CAST(? AS BLOB) WHERE key = ?", ('{"tampered": true}', key))
    conn.close()
    assert browser.verify().result(TIMEOUT) == [key]
    assert f"1 bad entries: {key[:15]}" in browser.status.value


def test_browser_works_on_the_cache_it_is_given_without_an_orchestrator(filled, make_settings, open_app):
    cache = ResponseCache(make_settings())
    browser = open_app(widgets.CacheBrowser, cache=cache)
    assert browser.cache is cache and browser._orchestrator is None  # none was built
    assert "<b>3</b> entries" in browser.header.value and len(browser.selector.options) == 3
    browser.selector.value = browser.selector.options[0][1]
    assert browser.delete() and filled.cache.stats()["entries"] == 2  # the same file
    browser.close()
    assert browser._orchestrator is None
    cache.close()
