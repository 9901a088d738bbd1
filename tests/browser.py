"""Headless Chromium for tests: load a local HTML file, dump its DOM after its scripts ran, and
screenshot it.

``render_in_chromium(path)`` returns ``(dom_html, screenshot_path)``, ``dump_dom(path)`` the DOM
only; ``parse_html`` reads a dumped DOM into a small element tree (the standard library's
``html.parser``, no extra dependency). A test that needs a browser
calls ``require_browser()`` first: without one it skips with the install command, except under CI
(``CI`` set), where a skipped browser test would hide a broken report, so it fails instead.
Each run gets its own throw-away profile, so parallel runs never share Chromium's profile lock.
"""

from __future__ import annotations

import logging
import os
import shutil
import subprocess
import tempfile
from collections.abc import Iterator
from dataclasses import dataclass, field
from html.parser import HTMLParser
from pathlib import Path

import pytest

log = logging.getLogger(__name__)

BROWSERS = ("chromium", "chromium-browser", "google-chrome")  # .ci/run checks the same names
INSTALL_HINT = "install Chromium with `apt-get install -y chromium` (Debian/Ubuntu)"
WINDOW_SIZE = (1280, 2000)
TIMEOUT_S = 60


class BrowserError(RuntimeError):
    """Chromium failed, timed out or wrote no output."""


def find_browser() -> str | None:
    """The path of the first Chromium-family binary on PATH, or None."""
    for name in BROWSERS:
        path = shutil.which(name)
        if path:
            return path
    return None


def in_ci() -> bool:
    """``CI`` set to anything but empty, 0, false or no (CI services set ``CI=true``)."""
    return os.environ.get("CI", "").strip().lower() not in ("", "0", "false", "no")


def require_browser() -> str:
    """The browser binary; skips the test when there is none, fails instead under CI."""
    browser = find_browser()
    if browser is None:
        message = f"no headless browser found (tried {', '.join(BROWSERS)}): {INSTALL_HINT}"
        if in_ci():
            pytest.fail(f"CI must run the browser tests; {message}", pytrace=False)
        pytest.skip(message)
    return browser


def _run(browser: str, args: list[str], url: str, timeout: float) -> subprocess.CompletedProcess:
    with tempfile.TemporaryDirectory(prefix="vrexp-chromium-") as profile:
        command = [
            browser,
            "--headless",
            "--no-sandbox",  # containers run as root, where the sandbox refuses to start
            "--disable-gpu",
            "--disable-dev-shm-usage",  # a container's small /dev/shm crashes the renderer
            f"--user-data-dir={profile}",
            "--no-first-run",
            "--no-default-browser-check",
            "--disable-extensions",
            "--hide-scrollbars",
            *args,
            url,
        ]
        try:
            done = subprocess.run(
                command, capture_output=True, text=True, timeout=timeout, check=False
            )
        except subprocess.TimeoutExpired as err:
            raise BrowserError(f"{browser} did not finish within {timeout} s on {url}") from err
    if done.returncode != 0:
        # Chromium's stderr is mostly D-Bus noise; its tail holds the reason.
        raise BrowserError(
            f"{browser} exited with {done.returncode} on {url}:\n{done.stderr[-2000:]}"
        )
    return done


def _url(html_path: str | Path, fragment: str, query: str = "") -> str:
    url = Path(html_path).resolve().as_uri()
    return url + (f"?{query}" if query else "") + (f"#{fragment}" if fragment else "")


def dump_dom(
    html_path: str | Path,
    *,
    fragment: str = "",
    query: str = "",
    timeout: float = TIMEOUT_S,
    browser: str | None = None,
) -> str:
    """The DOM of ``html_path`` (plus ``?query`` and ``#fragment``) as serialized after load
    (scripts ran)."""
    browser = browser or require_browser()
    url = _url(html_path, fragment, query)
    done = _run(browser, ["--dump-dom"], url, timeout)
    if not done.stdout.strip():
        raise BrowserError(f"{browser} dumped no DOM for {url}")
    return done.stdout


def render_in_chromium(
    html_path: str | Path,
    *,
    fragment: str = "",
    screenshot_path: str | Path | None = None,
    window_size: tuple[int, int] = WINDOW_SIZE,
    timeout: float = TIMEOUT_S,
    browser: str | None = None,
) -> tuple[str, Path]:
    """Load ``html_path`` (plus ``#fragment``) headless; return the DOM as serialized after load
    (scripts ran) and the path of a ``window_size`` PNG screenshot (default: beside the file)."""
    browser = browser or require_browser()
    html_path = Path(html_path).resolve()
    url = _url(html_path, fragment)
    shot = Path(screenshot_path or html_path.with_suffix(".png")).resolve()
    shot.unlink(missing_ok=True)
    size = f"--window-size={window_size[0]},{window_size[1]}"
    # One launch does both where Chromium allows it (new headless mode); older builds honour only
    # --dump-dom, so a second launch takes the screenshot.
    done = _run(browser, ["--dump-dom", f"--screenshot={shot}", size], url, timeout)
    if not shot.is_file():
        _run(browser, [f"--screenshot={shot}", size], url, timeout)
    if not done.stdout.strip():
        raise BrowserError(f"{browser} dumped no DOM for {url}")
    if not shot.is_file():
        raise BrowserError(f"{browser} wrote no screenshot for {url}")
    log.debug("rendered %s in %s", url, browser)
    return done.stdout, shot


# --------------------------------------------------------------------------- DOM parsing
VOID = {"area", "base", "br", "col", "embed", "hr", "img", "input", "link", "meta", "source",
        "track", "wbr"}  # fmt: skip


@dataclass
class Element:
    """One element of a parsed document: tag, attributes (unescaped), children (elements and
    text strings, in order)."""

    tag: str
    attrs: dict[str, str | None] = field(default_factory=dict)
    children: list[Element | str] = field(default_factory=list)

    @property
    def classes(self) -> list[str]:
        return (self.attrs.get("class") or "").split()

    def text(self) -> str:
        """The text content (entities already decoded), as ``textContent``."""
        return "".join(c if isinstance(c, str) else c.text() for c in self.children)

    def iter(self) -> Iterator[Element]:
        """This element and every element below it, in document order."""
        yield self
        for child in self.children:
            if isinstance(child, Element):
                yield from child.iter()

    def find_all(
        self, tag: str | None = None, cls: str | None = None, **attrs: str
    ) -> list[Element]:
        """Descendants (self included) with this tag, class and attribute values (``data_x``
        means ``data-x``)."""
        wanted = {k.replace("_", "-"): v for k, v in attrs.items()}
        return [
            e
            for e in self.iter()
            if (tag is None or e.tag == tag)
            and (cls is None or cls in e.classes)
            and all(e.attrs.get(k) == v for k, v in wanted.items())
        ]

    def find(self, tag: str | None = None, cls: str | None = None, **attrs: str) -> Element:
        """The one matching descendant; an AssertionError names the search otherwise."""
        found = self.find_all(tag, cls, **attrs)
        assert len(found) == 1, (
            f"expected one <{tag or '*'} class={cls} {attrs}>, found {len(found)}"
        )
        return found[0]


class _TreeBuilder(HTMLParser):
    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.root = Element("#document")
        self.stack = [self.root]

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        element = Element(tag, dict(attrs))
        self.stack[-1].children.append(element)
        if tag not in VOID:
            self.stack.append(element)

    def handle_startendtag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self.stack[-1].children.append(Element(tag, dict(attrs)))  # <line/> in SVG

    def handle_endtag(self, tag: str) -> None:
        for depth in range(len(self.stack) - 1, 0, -1):
            if self.stack[depth].tag == tag:
                del self.stack[depth:]
                return

    def handle_data(self, data: str) -> None:
        self.stack[-1].children.append(data)


def parse_html(text: str) -> Element:
    """A document's element tree (serialized DOMs close every non-void element explicitly)."""
    builder = _TreeBuilder()
    builder.feed(text)
    builder.close()
    return builder.root
