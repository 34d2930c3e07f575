"""index.html in a real headless browser (Chromium from the distribution packages; skipped
without it): the page's script runs without console messages, shows one card per image, and
its search (``?q=``, the same code as typing) hides the rows and cards that do not match."""
import os
import subprocess
from html.parser import HTMLParser
from pathlib import Path

import cv2
import numpy as np
import pytest

from maskrcnn_benchmark.scene_graphs.html_index import IndexCard, render_index
from maskrcnn_benchmark.scene_graphs.records import Triplet

CHROMIUM = "/usr/bin/chromium"
FLAGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
         "--disable-background-networking", "--disable-component-update", "--disable-sync",
         "--enable-logging=stderr", "--v=0", "--virtual-time-budget=3000"]

pytestmark = pytest.mark.skipif(not os.access(CHROMIUM, os.X_OK),
                                reason=f"{CHROMIUM} is not installed (apt-get install -y chromium chromium-driver)")


class _Cards(HTMLParser):
    """Per card of the dumped DOM: whether it is hidden and its rows' (text, hidden)."""

    def __init__(self) -> None:
        super().__init__()
        self.cards, self.body, self.status = [], {}, ""
        self._row = self._in_status = None

    def handle_starttag(self, tag, attrs):
        attrs = dict(attrs)
        if tag == "body":
            self.body = attrs
        elif tag == "section":
            self.cards.append({"image": attrs.get("data-image"), "hidden": "hidden" in attrs, "rows": []})
        elif tag == "tr" and self.cards:
            self._row = {"text": "", "hidden": "hidden" in attrs}
        elif tag == "span" and attrs.get("id") == "status":
            self._in_status = True

    def handle_endtag(self, tag):
        if tag == "tr" and self._row is not None:
            if self._row["text"].strip() and "subject" not in self._row["text"]:
                self.cards[-1]["rows"].append((self._row["text"].strip(), self._row["hidden"]))
            self._row = None
        elif tag == "span":
            self._in_status = None

    def handle_data(self, data):
        if self._row is not None:
            self._row["text"] += data + " "
        if self._in_status:
            self.status += data


def _browse(url: str, profile: Path):
    """``(dumped DOM, console lines)`` of ``url`` after its scripts ran."""
    proc = subprocess.run([CHROMIUM, *FLAGS, f"--user-data-dir={profile}", "--dump-dom", url],
                          capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr[-2000:]
    return proc.stdout, [line for line in proc.stderr.splitlines() if ":CONSOLE" in line]


@pytest.fixture(scope="module")
def page(tmp_path_factory):
    folder = tmp_path_factory.mktemp("report")
    (folder / "graphs").mkdir()
    relations = {"kitchen.jpg": [Triplet(0, "cup", "on", 1, "table", 0.5),
                                 Triplet(2, "man", "holding", 0, "cup", 0.25)],
                 "park.jpg": [Triplet(0, "dog", "near", 1, "tree", 0.75)],
                 "office.jpg": [Triplet(1, "man", "holding", 0, "cup", 0.125)]}
    cards = []
    for name, triplets in relations.items():
        cv2.imwrite(str(folder / "graphs" / f"{name}.png"), np.full((40, 60, 3), 200, np.uint8))
        cards.append(IndexCard(name, f"graphs/{name}.png", f"graphs/{name}.json", triplets))
    (folder / "index.html").write_text(render_index(cards, "test <page>"), encoding="utf-8")
    return folder


def test_page_shows_every_image_without_console_messages(page, tmp_path):
    dom, console = _browse((page / "index.html").as_uri(), tmp_path / "profile")
    assert console == []
    parsed = _Cards()
    parsed.feed(dom)
    assert parsed.body.get("data-ready") == "true"
    assert [c["image"] for c in parsed.cards] == ["kitchen.jpg", "park.jpg", "office.jpg"]
    assert not any(c["hidden"] or any(hidden for _, hidden in c["rows"]) for c in parsed.cards)
    assert parsed.status.strip() == "3 of 3 images, 4 relations"


def test_search_keeps_matching_rows_and_hides_cards_without_any(page, tmp_path):
    dom, console = _browse((page / "index.html").as_uri() + "?q=HOLDING", tmp_path / "profile")
    assert console == []
    parsed = _Cards()
    parsed.feed(dom)
    shown = {c["image"]: [text for text, hidden in c["rows"] if not hidden] for c in parsed.cards if not c["hidden"]}
    assert shown == {"kitchen.jpg": ["2:man holding 0:cup 0.25"], "office.jpg": ["1:man holding 0:cup 0.125"]}
    assert parsed.status.strip() == "2 of 3 images, 2 relations"


def test_console_errors_of_a_broken_page_are_seen(tmp_path):
    broken = tmp_path / "broken.html"
    broken.write_text("<html><body><script>notDefined();</script></body></html>")
    _, console = _browse(broken.as_uri(), tmp_path / "profile")
    assert any("notDefined" in line for line in console)
