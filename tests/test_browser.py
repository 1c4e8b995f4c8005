"""End to end in a real browser: JupyterLab on 127.0.0.1 renders the AgentConsole, a click on its
Run button streams the fake server's answer into it, and a screenshot is saved.

Needs Debian's Chromium (``make browser-deps``, which ``make test`` runs) and Playwright (the dev
extra). No browser is downloaded: Playwright's bundled driver launches /usr/bin/chromium. Skipped,
with the reason, when either is missing.
"""

from __future__ import annotations

import os
import re
import struct
from pathlib import Path
from urllib.parse import urlsplit

import nbformat
import pytest

from claude_force_nb.testing import FakeAnthropicServer

from .browser_support import JupyterLab, find_chromium, launch_browser
from .conftest import TEST_KEY
from .kernels import write_kernelspec

try:
    from playwright.sync_api import expect, sync_playwright
except ImportError:  # pragma: no cover - the dev extra installs it
    sync_playwright = None

CHROMIUM = find_chromium()
# On CI (root, apt-get) `make test` installs Chromium first, so a missing browser there is a
# failure to report, not a reason to skip: the check must run in CI.
ON_CI = os.environ.get("CI") == "true"

pytestmark = [
    pytest.mark.slow,
    pytest.mark.kernel,
    pytest.mark.skipif(CHROMIUM is None and not ON_CI, reason="no Chromium: `apt-get install chromium chromium-driver` "
                                                "(`make browser-deps` does it as root)"),
    pytest.mark.skipif(sync_playwright is None, reason="playwright is not installed: pip install -e '.[dev]'"),
]

TASK = "Explain a p-value"
NOTEBOOK = "console.ipynb"
VIEWPORT = {"width": 1280, "height": 900}
KERNEL_IDLE_JS = """() => {
    const app = window.jupyterapp;
    const panel = app && app.shell.currentWidget;
    const ctx = panel && panel.sessionContext;
    return !!(ctx && ctx.session && ctx.session.kernel && ctx.kernelDisplayStatus === 'idle');
}"""


def write_notebook(path: Path, kernel: str) -> None:
    nb = nbformat.v4.new_notebook()
    nb.metadata["kernelspec"] = {"name": kernel, "display_name": "Python (claude-force-nb)", "language": "python"}
    nb.cells = [
        nbformat.v4.new_code_cell("%load_ext claude_force_nb"),
        nbformat.v4.new_code_cell(f"c = %agent console\nc.task.value = {TASK!r}\nc"),
    ]
    nbformat.write(nb, path)


def png_size(path: Path) -> tuple[int, int]:
    data = path.read_bytes()
    assert data[:8] == b"\x89PNG\r\n\x1a\n" and data[12:16] == b"IHDR", f"{path} is not a PNG"
    return struct.unpack(">II", data[16:24])


def test_agent_console_answer_visible_in_jupyterlab(tmp_path: Path, server: FakeAnthropicServer) -> None:
    jupyter_path = tmp_path / "jupyter"
    kernel = write_kernelspec(jupyter_path)
    root = tmp_path / "lab-root"
    root.mkdir()
    write_notebook(root / NOTEBOOK, kernel)
    # os.environ already has the private HOME, CLAUDE_FORCE_HOME and IPYTHONDIR of conftest's
    # autouse fixture; the kernel inherits the server's environment.
    env = dict(
        os.environ,
        ANTHROPIC_API_KEY=TEST_KEY,
        ANTHROPIC_BASE_URL=server.url,
        CLAUDE_FORCE_CACHE_SECRET="browser-test-secret",
        JUPYTER_PATH=str(jupyter_path),
        JUPYTER_CONFIG_DIR=str(tmp_path / "jupyter-config"),
        JUPYTER_DATA_DIR=str(tmp_path / "jupyter-data"),
        JUPYTER_RUNTIME_DIR=str(tmp_path / "jupyter-runtime"),
        NO_PROXY="127.0.0.1,localhost",
        no_proxy="127.0.0.1,localhost",
    )
    shot = tmp_path / "browser-console.png"
    off_host: list[str] = []

    with JupyterLab(root, env, tmp_path / "jupyterlab.log") as lab, sync_playwright() as pw:
        browser = launch_browser(pw, CHROMIUM, tmp_path / "chromium-profile", viewport=VIEWPORT)
        try:
            browser.set_default_timeout(30_000)

            def local_only(route):  # the network is closed anyway: fail fast, and keep a record
                if route.request.url.startswith(lab.url + "/"):
                    route.continue_()
                else:
                    off_host.append(route.request.url)
                    route.abort()

            browser.route("**/*", local_only)
            page = browser.new_page()
            try:
                page.goto(lab.lab_url(NOTEBOOK), wait_until="domcontentloaded", timeout=60_000)
                # The notebook is open and its kernel (this interpreter, from our kernelspec) is idle.
                page.wait_for_function(KERNEL_IDLE_JS, timeout=60_000)
                page.evaluate("() => window.jupyterapp.shell.collapseLeft()")  # more room for the widget
                page.evaluate("() => window.jupyterapp.commands.execute('notebook:run-all-cells')")

                console = page.locator(".jp-OutputArea-output .widget-vbox").first
                run = console.get_by_role("button", name=re.compile(r"^\W*Run$"))  # name has the icon glyph
                expect(run).to_be_enabled(timeout=60_000)  # the widget rendered (ipywidgets 8 manager)
                expect(console.locator("textarea")).to_have_value(TASK)
                run.click()

                answer = console.locator(".widget-output")
                expect(answer.get_by_text("Offline answer")).to_be_visible(timeout=30_000)
                expect(answer).to_contain_text(f'You asked: "{TASK}"')
                expect(run).to_be_enabled(timeout=30_000)  # the run finished: final answer and badge shown
                expect(console).to_contain_text("This console: 1 run ·")
                answer.scroll_into_view_if_needed()
                expect(answer.get_by_text("Offline answer")).to_be_in_viewport()
                page.screenshot(path=str(shot))
            except Exception:
                failed = tmp_path / "browser-failure.png"
                try:
                    page.screenshot(path=str(failed))
                except Exception:  # noqa: BLE001 - the original error matters more
                    pass
                print(f"\nscreenshot: {failed}\njupyter lab log:\n{lab.log_tail()}")
                raise
        finally:
            browser.close()

    print(f"\nscreenshot: {shot}")
    if off_host:
        print(f"blocked off-host requests from the page: {off_host}")
    width, height = png_size(shot)
    assert (width, height) == (VIEWPORT["width"], VIEWPORT["height"])
    assert shot.stat().st_size > 20_000  # a rendered page, not a blank image

    posts = [r for r in server.requests if r.method == "POST" and urlsplit(r.path).path == "/v1/messages"]
    assert len(posts) == 1
    assert posts[0].body is not None and posts[0].body["messages"] == [{"role": "user", "content": TASK}]
    assert posts[0].headers.get("authorization") == f"Bearer {TEST_KEY}"  # the kernel got our env
