"""The report as one Markdown document, and the same document as self-contained HTML.

``report.md`` links ``figures/*.png``; ``index.html`` is that Markdown converted (markdown-it,
CommonMark with tables, raw HTML off) with each figure inlined as a data URI and the CSS inline,
so it opens offline and from anywhere (no CDN, unlike ``dvc plots``' HTML).
"""

from __future__ import annotations

import base64
import html
from dataclasses import dataclass, field
from pathlib import Path

import pandas as pd

FIGURES = "figures"  # beside report.md


@dataclass
class ReportSection:
    title: str
    paragraphs: list[str] = field(default_factory=list)
    table: pd.DataFrame | None = None
    figures: list[tuple[str, str]] = field(default_factory=list)  # (file name in figures/, caption)
    folded: bool = False  # closed by default: <details> in both report.md (GitHub renders it) and index.html


FOLD_START, FOLD_END = "<details><summary>", "</details>"


def markdown_table(df: pd.DataFrame) -> str:
    """A GitHub-flavoured Markdown table of df (floats as they are; format them before)."""
    cols = [str(c) for c in df.columns]
    rows = ["| " + " | ".join(cols) + " |", "|" + "|".join("---" for _ in cols) + "|"]
    for _, r in df.iterrows():
        rows.append("| " + " | ".join(str(v).replace("|", "\\|") for v in r.tolist()) + " |")
    return "\n".join(rows)


def render_markdown(title: str, sections: list[ReportSection]) -> str:
    lines = [f"# {title}", ""]
    for s in sections:
        if s.folded:  # the title goes in <summary>; the markers are found again by markdown_to_html
            lines += [f"{FOLD_START}{html.escape(s.title)}</summary>", ""]
        else:
            lines += [f"## {s.title}", ""]
        for p in s.paragraphs:
            lines += [p, ""] if p else []  # a reading with nothing to say is left out
        if s.table is not None:
            lines += [markdown_table(s.table), ""]
        for name, caption in s.figures:
            lines += [f"![{caption}]({FIGURES}/{name})", "", f"*{caption}*", ""]
        if s.folded:
            lines += [FOLD_END, ""]
    return "\n".join(lines).rstrip() + "\n"


CSS = """
body{font-family:system-ui,-apple-system,Segoe UI,Roboto,sans-serif;max-width:1100px;margin:2em auto;padding:0 1em;color:#222}
h1{border-bottom:2px solid #ddd;padding-bottom:.3em}h2{margin-top:1.6em;border-bottom:1px solid #eee}
table{border-collapse:collapse;margin:1em 0;font-size:.92em}td,th{border:1px solid #ccc;padding:.3em .6em;text-align:left}
th{background:#f4f4f4}img{max-width:100%;height:auto;border:1px solid #eee}
em{color:#555;font-size:.9em}code{background:#f4f4f4;padding:0 .2em}
summary{font-size:1.2em;font-weight:600;margin-top:1.6em;cursor:pointer}
"""


def markdown_to_html(markdown: str, title: str, figures_dir: Path) -> str:
    """The Markdown document as one HTML file; every ``figures/<name>`` image inlined."""
    from markdown_it import MarkdownIt

    md = MarkdownIt("commonmark", {"html": False}).enable("table")
    default_image = md.renderer.rules["image"]

    def inline_image(renderer, tokens, idx, options, env):
        token = tokens[idx]
        src = token.attrGet("src") or ""
        if src.startswith(f"{FIGURES}/"):
            data = base64.b64encode((figures_dir / src.removeprefix(f"{FIGURES}/")).read_bytes()).decode()
            token.attrSet("src", f"data:image/png;base64,{data}")
        return default_image(tokens, idx, options, env)

    md.add_render_rule("image", inline_image)
    # Raw HTML stays off (class names and params are text, never markup): the only tags are the
    # fold markers render_markdown wrote, each on a line of its own, turned into tags here.
    body, chunk = [], []
    for line in markdown.splitlines(keepends=True):
        if line.startswith(FOLD_START) or line.rstrip("\n") == FOLD_END:
            body.append(md.render("".join(chunk)))
            chunk = []
            body.append(line.rstrip("\n") + "\n")  # the summary's title was escaped when written
        else:
            chunk.append(line)
    body.append(md.render("".join(chunk)))
    return ("<!DOCTYPE html>\n<html lang=\"en\"><head><meta charset=\"utf-8\">"
            f"<title>{html.escape(title)}</title><style>{CSS}</style></head><body>\n"
            f"{''.join(body)}</body></html>\n")
