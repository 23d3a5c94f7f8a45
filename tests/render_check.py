"""Checking an HTML report without a browser (a strict tree built with ``html.parser``) and with one (headless
Chromium: a screenshot, the DOM after rendering, and the page's console messages).

Kept outside ``conftest.py`` so that test modules import it as a plain module.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import tempfile
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from html.parser import HTMLParser
from pathlib import Path

VOID = {"area", "base", "br", "col", "embed", "hr", "img", "input", "link", "meta", "source", "track", "wbr"}
CHROMIUM_NAMES = ("chromium", "chromium-browser", "google-chrome", "google-chrome-stable")
CHROMIUM_FLAGS = ("--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                  "--disable-background-networking", "--disable-component-update", "--disable-sync",
                  "--enable-logging=stderr", "--v=0")


# --------------------------------------------------------------------------------------------------------------
# A strict tree from html.parser


@dataclass
class Node:
    tag: str
    attrs: dict[str, str]
    parent: Node | None = None
    children: list[Node | str] = field(default_factory=list)

    def iter(self) -> Iterator[Node]:
        yield self
        for child in self.children:
            if isinstance(child, Node):
                yield from child.iter()

    def find_all(self, tag: str | None = None, class_: str | None = None) -> list[Node]:
        return [n for n in self.iter() if (tag is None or n.tag == tag)
                and (class_ is None or class_ in n.attrs.get("class", "").split())]

    def find(self, tag: str | None = None, class_: str | None = None) -> Node:
        found = self.find_all(tag, class_)
        assert found, f"no <{tag} class={class_}> under <{self.tag}>"
        return found[0]

    def by_id(self, name: str) -> Node:
        found = [n for n in self.iter() if n.attrs.get("id") == name]
        assert len(found) == 1, f"{len(found)} elements with id {name!r}"
        return found[0]

    def text(self) -> str:
        """The text content, entities decoded, as a browser's ``textContent``."""
        return "".join(c if isinstance(c, str) else c.text() for c in self.children)


class Page(HTMLParser):
    """Parses a whole document into a tree of ``Node`` and records every structural error: a stray or
    mismatched end tag, an element left open, a duplicate id."""

    def __init__(self, text: str) -> None:
        super().__init__(convert_charrefs=True)
        self.root = Node("#document", {})
        self.current = self.root
        self.errors: list[str] = []
        self.doctype: str | None = None
        self.feed(text)
        self.close()
        open_tags = []
        node: Node | None = self.current
        while node is not None and node is not self.root:
            open_tags.append(node.tag)
            node = node.parent
        if open_tags:
            self.errors.append(f"left open: {', '.join(open_tags)}")
        ids = [n.attrs["id"] for n in self.root.iter() if "id" in n.attrs]
        duplicates = sorted({i for i in ids if ids.count(i) > 1})
        if duplicates:
            self.errors.append(f"duplicate ids: {duplicates[:10]}")

    def handle_decl(self, decl: str) -> None:
        self.doctype = decl

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        node = Node(tag, {k: v or "" for k, v in attrs}, self.current)
        self.current.children.append(node)
        if tag not in VOID:
            self.current = node

    def handle_startendtag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self.current.children.append(Node(tag, {k: v or "" for k, v in attrs}, self.current))

    def handle_endtag(self, tag: str) -> None:
        if tag in VOID:
            return
        if self.current.tag != tag or self.current.parent is None:
            self.errors.append(f"</{tag}> closes <{self.current.tag}>")
            return
        self.current = self.current.parent

    def handle_data(self, data: str) -> None:
        self.current.children.append(data)


# --------------------------------------------------------------------------------------------------------------
# Headless Chromium


def find_chromium() -> str | None:
    """$DYNSCALING_CHROMIUM, else the first Chromium or Chrome on PATH."""
    configured = os.environ.get("DYNSCALING_CHROMIUM")
    if configured:
        return configured
    return next((found for name in CHROMIUM_NAMES if (found := shutil.which(name))), None)


@dataclass(frozen=True)
class Rendered:
    screenshot: Path
    dom: str
    console: list[str]  # the page's console messages (CSP violations, failed loads, script errors)
    errors: list[str]  # non-zero exits and their stderr tails
    seconds: float


def _chromium(binary: str, workdir: Path, args: list[str], timeout: float) -> subprocess.CompletedProcess[str]:
    profile = tempfile.mkdtemp(prefix="chromium-profile-", dir=workdir)  # a fresh profile for every run
    try:
        return subprocess.run([binary, *CHROMIUM_FLAGS, f"--user-data-dir={profile}", *args], capture_output=True,
                              text=True, timeout=timeout, check=False)
    finally:
        shutil.rmtree(profile, ignore_errors=True)


def render(binary: str, page: Path, workdir: Path, width: int = 1280, height: int = 2400,
           timeout: float = 120.0) -> Rendered:
    """Screenshot ``page`` (a local file) into ``workdir/screenshot.png`` and dump its DOM after rendering."""
    url = page.resolve().as_uri()
    screenshot = workdir / "screenshot.png"
    started = time.monotonic()
    shot = _chromium(binary, workdir, [f"--screenshot={screenshot}", f"--window-size={width},{height}", url],
                     timeout)
    dump = _chromium(binary, workdir, [f"--window-size={width},{height}", "--dump-dom", url], timeout)
    console, errors = [], []
    for run in (shot, dump):
        console += [line for line in run.stderr.splitlines() if ":CONSOLE" in line]
        if run.returncode != 0:
            errors.append(f"exit {run.returncode}: {run.stderr[-2000:]}")
    return Rendered(screenshot, dump.stdout, console, errors, time.monotonic() - started)
