"""One look for every HTML report: a Jinja base template, one stylesheet and macros for a
section, a table and a figure (toolchain/reports/templates/). Reports pass tables as
``Table`` records and figures as PNG bytes; pages are self-contained (CSS inlined, PNGs as
data URIs)."""

from __future__ import annotations

import base64
from dataclasses import dataclass, field
from functools import cache
from pathlib import Path
from typing import Any

TEMPLATES = Path(__file__).resolve().parent / "templates"
FLAG_WORDS = ("DIFFERENT", "FLAGGED", "OVER", "FAIL", "not converged")


@dataclass
class Table:
    """A table: header labels (never empty) and rows of strings; ``note`` is printed below."""

    head: list[str]
    rows: list[list[str]]
    id: str | None = None
    title: str | None = None
    note: str | None = None
    numeric_from: int = 1  # columns from this index are right-aligned
    attrs: dict[str, str] = field(default_factory=dict)

    def __post_init__(self) -> None:
        if any(not str(h).strip() for h in self.head):
            raise ValueError(f"empty header cell in table {self.id or self.title}: {self.head}")

    def markdown(self) -> str:
        lines = []
        if self.title:
            lines += [f"### {self.title}", ""]
        lines += ["| " + " | ".join(self.head) + " |", "|" + "---|" * len(self.head)]
        lines += ["| " + " | ".join(r) + " |" for r in self.rows]
        if self.note:
            lines += ["", self.note]
        return "\n".join(lines) + "\n"


def png_uri(png: bytes) -> str:
    return "data:image/png;base64," + base64.b64encode(png).decode()


def flagged(cell: str) -> bool:
    return any(w in str(cell) for w in FLAG_WORDS)


@cache
def _env() -> Any:
    import jinja2

    env = jinja2.Environment(loader=jinja2.FileSystemLoader(str(TEMPLATES)),
                             autoescape=jinja2.select_autoescape(["html", "j2"]),
                             trim_blocks=True, lstrip_blocks=True)
    env.globals.update(png_uri=png_uri, flagged=flagged)
    return env


def render(template: str, **ctx: Any) -> str:
    """Render ``template`` (which extends base.html.j2) with the stylesheet inlined."""
    css = (TEMPLATES / "style.css").read_text()
    return _env().get_template(template).render(css=css, **ctx)


@dataclass
class Section:
    """A titled section of a page: blocks of ("table", Table), ("figure", {png, alt, id, cls,
    caption}), ("text", str), ("note", str), ("heading", str), ("checks", {items: [(ok, text)],
    id}) or ("link", (href, text))."""

    title: str | None
    id: str | None = None
    blocks: list[tuple[str, Any]] = field(default_factory=list)

    def add(self, kind: str, item: Any) -> Section:
        self.blocks.append((kind, item))
        return self


def page(title: str, sections: list[Section], lead: str | None = None) -> str:
    return render("page.html.j2", title=title, sections=sections, lead=lead)


def markdown(title: str, sections: list[Section], lead: str | None = None) -> str:
    """The same page as Markdown (figures left out)."""
    out = [f"# {title}", ""] + ([lead, ""] if lead else [])
    for sec in sections:
        if sec.title:
            out += [f"## {sec.title}", ""]
        for kind, item in sec.blocks:
            if kind == "table":
                out.append(item.markdown())
            elif kind in ("text", "note"):
                out += [item, ""]
            elif kind == "heading":
                out += [f"### {item}", ""]
            elif kind == "checks":
                out += [f"- {'ok' if ok else '**FLAGGED**'}: {t}" for ok, t in item["items"]]
                out.append("")
            elif kind == "link":
                out += [f"[{item[1]}]({item[0]})", ""]
    return "\n".join(out)
