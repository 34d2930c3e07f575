"""``index.html``: one static page listing every image with its drawing and a searchable triplet table.

The page needs no server and no network: the drawings are relative links, the table is
plain HTML and the search is a few lines of inline JavaScript. Typing in the search box
keeps the table rows whose subject, predicate or object contains the text (any case) and
hides the cards left without a row; ``index.html?q=TEXT`` opens the page searched for TEXT.
When its script has run, ``<body>`` carries ``data-ready="true"``.
"""
from __future__ import annotations

import html
from dataclasses import dataclass
from typing import Sequence

from .records import Triplet

STYLE = """
body { font-family: sans-serif; margin: 1em 2em; background: #f6f6f6; }
header { position: sticky; top: 0; background: #f6f6f6; padding: .5em 0; }
#search { font-size: 1.1em; width: 24em; padding: .3em; }
.card { background: white; border: 1px solid #ddd; border-radius: 6px; margin: 1em 0; padding: .5em 1em; }
.card img { max-width: 100%; height: auto; }
table { border-collapse: collapse; margin: .5em 0; }
td, th { border-bottom: 1px solid #eee; padding: .15em .8em; text-align: left; }
td.score { text-align: right; font-family: monospace; }
"""

SCRIPT = """
(function () {
  var search = document.getElementById("search");
  var cards = Array.prototype.slice.call(document.querySelectorAll(".card"));
  var status = document.getElementById("status");
  function apply() {
    var query = search.value.trim().toLowerCase();
    var shownCards = 0, shownRows = 0;
    cards.forEach(function (card) {
      var rows = card.querySelectorAll("tbody tr");
      var kept = 0;
      Array.prototype.forEach.call(rows, function (row) {
        var match = !query || row.textContent.toLowerCase().indexOf(query) !== -1;
        row.hidden = !match;
        if (match) { kept += 1; }
      });
      card.hidden = Boolean(query) && kept === 0;
      card.querySelector(".count").textContent = kept + " of " + rows.length + " relations";
      if (!card.hidden) { shownCards += 1; shownRows += kept; }
    });
    status.textContent = shownCards + " of " + cards.length + " images, " + shownRows + " relations";
  }
  search.value = new URLSearchParams(window.location.search).get("q") || "";
  search.addEventListener("input", apply);
  apply();
  document.body.dataset.ready = "true";
})();
"""


@dataclass(frozen=True)
class IndexCard:
    """One image of the page: its name, its drawing and record (paths relative to the page), its relations."""

    name: str
    drawing: str
    record: str
    triplets: Sequence[Triplet]


def _row(t: Triplet) -> str:
    cells = (f"{t.subject}:{t.subject_name}", t.predicate, f"{t.object}:{t.object_name}")
    return ("<tr>" + "".join(f"<td>{html.escape(c)}</td>" for c in cells)
            + f'<td class="score">{t.score:.3g}</td></tr>')


def _card(card: IndexCard) -> str:
    rows = "\n".join(_row(t) for t in card.triplets)
    name = html.escape(card.name)
    return (f'<section class="card" data-image="{name}">\n<h2>{name}</h2>\n'
            f'<p><a href="{html.escape(card.record)}">JSON</a> <span class="count"></span></p>\n'
            f'<img src="{html.escape(card.drawing)}" alt="scene graph of {name}" loading="lazy">\n'
            f"<table><thead><tr><th>subject</th><th>predicate</th><th>object</th><th>score</th></tr></thead>\n"
            f"<tbody>\n{rows}\n</tbody></table>\n</section>")


def render_index(cards: Sequence[IndexCard], title: str) -> str:
    """The whole page as a string."""
    body = "\n".join(_card(card) for card in cards)
    return (f'<!DOCTYPE html>\n<html lang="en">\n<head>\n<meta charset="utf-8">\n'
            f"<title>{html.escape(title)}</title>\n<style>{STYLE}</style>\n</head>\n<body>\n"
            f"<header><h1>{html.escape(title)}</h1>\n"
            f'<input id="search" type="search" placeholder="search subject, predicate or object" '
            f'autocomplete="off"> <span id="status"></span></header>\n'
            f"<main>\n{body}\n</main>\n<script>{SCRIPT}</script>\n</body>\n</html>\n")
