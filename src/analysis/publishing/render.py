"""Notebook exécuté → HTML imprimable → PDF A4 (WeasyPrint), sans code ni JavaScript.

- :func:`notebook_to_html` : nbconvert ``HTMLExporter`` avec le modèle ``templates/rapport``
  (hérite du rendu des cellules « lab », en remplace l'en-tête et le pied) ; code, invites et
  avertissements (stderr) masqués ; cellules étiquetées ``remove_cell`` supprimées, sorties des
  cellules étiquetées ``remove_output`` supprimées, entrées ``remove_input`` (de toute façon
  masquées). Ajoute une page de couverture, un sommaire (``<nav class="toc">``, numéros de page
  calculés par WeasyPrint avec ``target-counter``) construit à partir des titres ``h1``/``h2``,
  l'en-tête courant (région, année, chapitre) et la pagination « n / N ». Avec ``fictif=True``,
  bandeau rouge « DONNÉES FICTIVES » sur la couverture et en haut de chaque page.
  Aucune ressource externe : pas de MathJax, require.js ni CDN ; police DejaVu Sans locale ;
  figures en SVG vectoriel incorporé au HTML comme image ``data:image/svg+xml;base64`` (voir
  :func:`analysis.figures.show` ; pas de ``<svg>`` en ligne, voir le modèle).
- :func:`html_to_pdf` : WeasyPrint, A4 ; déterministe (aucune date sauf ``SOURCE_DATE_EPOCH``,
  qui fixe alors la date de création/modification du PDF ; horodatage des polices incorporées
  fixé dans tous les cas) ; titre et langue ``fr`` en métadonnées.

HTML déterministe : les identifiants de cellules (``id="cell-id=…"``, aléatoires pour la cellule
injectée par Papermill) sont retirés et les ancres des titres recalculées (``sec-…``).
"""

from __future__ import annotations

import contextlib
import datetime as _dt
import html
import os
import re
import unicodedata
from pathlib import Path

TEMPLATES_DIR = Path(__file__).parent / "templates"
REPORT_TEMPLATE = "rapport"
TOC_PLACEHOLDER = "<!--TABLE-DES-MATIERES-->"

__all__ = [
    "notebook_to_html",
    "html_to_pdf",
    "build_toc",
    "css_string",
    "source_date",
    "fixed_font_timestamps",
    "local_url_fetcher",
    "TEMPLATES_DIR",
]


def source_date() -> _dt.datetime | None:
    """Date fixée par ``SOURCE_DATE_EPOCH`` (UTC), ou ``None`` si la variable est absente."""
    raw = os.environ.get("SOURCE_DATE_EPOCH", "").strip()
    if not raw:
        return None
    try:
        return _dt.datetime.fromtimestamp(int(raw), tz=_dt.timezone.utc)
    except (ValueError, OverflowError, OSError):
        return None


#: horodatage des polices incorporées quand ``SOURCE_DATE_EPOCH`` est absent (1980-01-01)
FALLBACK_EPOCH = "315532800"


@contextlib.contextmanager
def fixed_font_timestamps():
    """fontTools (qui sous-ensemble les polices pour WeasyPrint) inscrit l'heure courante dans
    chaque police incorporée, sauf si ``SOURCE_DATE_EPOCH`` est défini : on le fixe le temps
    de l'écriture du PDF s'il est absent, pour des PDF identiques à l'octet près."""
    if os.environ.get("SOURCE_DATE_EPOCH"):
        yield
        return
    os.environ["SOURCE_DATE_EPOCH"] = FALLBACK_EPOCH
    try:
        yield
    finally:
        os.environ.pop("SOURCE_DATE_EPOCH", None)


def css_string(text: str) -> str:
    """Chaîne CSS entre guillemets, échappée (utilisable dans ``content:``, sûre dans <style>)."""
    out = []
    for ch in str(text):
        if ch in '"\\<>&' or ord(ch) < 0x20 or ord(ch) == 0x7F:
            out.append(f"\\{ord(ch):06x}")
        else:
            out.append(ch)
    return '"' + "".join(out) + '"'


def _page_css(*, title: str, region_label: str, annee: int, fictif: bool) -> str:
    rules = [
        "@page {",
        f"  @top-left {{ content: {css_string(f'{region_label} — {annee}')}; }}",
        f"  @bottom-left {{ content: {css_string(title)}; }}",
    ]
    if fictif:
        # élément courant (position: running) : sa bordure épouse le texte, pas la marge
        rules.append("  @top-center { content: element(bandeau); vertical-align: bottom; }")
    rules.append("}")
    return "\n".join(rules)


_HEADING_RE = re.compile(r"<h([1-2])(\s[^>]*)?>(.*?)</h\1\s*>", re.S | re.I)
_ID_ATTR_RE = re.compile(r"""\sid\s*=\s*("[^"]*"|'[^']*'|[^\s>]+)""", re.I)
_TAG_RE = re.compile(r"<[^>]+>")
_ANCHOR_LINK_RE = re.compile(r'<a class="anchor-link"[^>]*>.*?</a>', re.S)
_CELL_ID_RE = re.compile(r'\sid="cell-id=[^"]*"')


def _slug(text: str) -> str:
    text = unicodedata.normalize("NFKD", html.unescape(text))
    text = "".join(c for c in text if not unicodedata.combining(c)).lower()
    text = re.sub(r"[^a-z0-9]+", "-", text).strip("-")
    return text[:60].strip("-") or "section"


def build_toc(body: str) -> tuple[str, str]:
    """Donne des ancres stables (``sec-<slug>``) aux titres h1/h2 de ``body`` et renvoie
    ``(body_modifié, html_du_sommaire)``. Le sommaire est vide s'il n'y a aucun titre."""
    entries: list[tuple[int, str, str]] = []
    used: set[str] = set()
    renamed: dict[str, str] = {}

    def repl(m: re.Match) -> str:
        level, attrs, inner = int(m.group(1)), m.group(2) or "", m.group(3)
        text = " ".join(html.unescape(_TAG_RE.sub("", inner)).split())
        base = "sec-" + _slug(text)
        anchor, k = base, 2
        while anchor in used:
            anchor, k = f"{base}-{k}", k + 1
        used.add(anchor)
        entries.append((level, anchor, text))
        old = _ID_ATTR_RE.search(attrs)
        if old:
            renamed.setdefault(old.group(1).strip("\"'"), anchor)
        attrs = _ID_ATTR_RE.sub("", attrs)
        return f'<h{level} id="{anchor}"{attrs}>{inner}</h{level}>'

    body = _HEADING_RE.sub(repl, body)
    for old, new in renamed.items():  # liens internes du Markdown vers les anciens identifiants
        body = body.replace(f'href="#{old}"', f'href="#{new}"')
    if not entries:
        return body, ""
    items = "\n".join(
        f'<li class="toc-h{level}"><a href="#{anchor}">{html.escape(text)}</a></li>'
        for level, anchor, text in entries
    )
    toc = (
        '<nav class="toc">\n<div class="toc-titre">Sommaire</div>\n<ul>\n'
        + items
        + "\n</ul>\n</nav>"
    )
    return body, toc


def _svg_base64(data: str | bytes) -> str:
    """Contenu ``image/svg+xml`` d'une sortie → base64 (pour ``<img src="data:…">``)."""
    import base64

    if isinstance(data, str):
        data = data.encode("utf-8")
    return base64.b64encode(data).decode("ascii")


def _default_note(generated: _dt.datetime | None) -> str:
    from .. import __version__

    note = f"Document produit automatiquement par cpom-qualite {__version__}"
    if generated is not None:
        note += f" le {generated:%d/%m/%Y}"
    return note + ", à partir des données transmises à l'agence régionale de santé."


def _exporter():
    from nbconvert import HTMLExporter
    from nbconvert.preprocessors import TagRemovePreprocessor

    exporter = HTMLExporter(
        template_name=REPORT_TEMPLATE,
        extra_template_basedirs=[str(TEMPLATES_DIR)],
        exclude_input=True,
        exclude_input_prompt=True,
        exclude_output_prompt=True,
        embed_images=True,
        sanitize_html=False,
    )
    tag_remove = TagRemovePreprocessor(
        remove_cell_tags={"remove_cell"},
        remove_all_outputs_tags={"remove_output"},
        remove_input_tags={"remove_input"},
        enabled=True,
    )
    exporter.register_preprocessor(tag_remove, enabled=True)
    exporter.register_filter("svg_base64", _svg_base64)
    return exporter


def notebook_to_html(
    executed_ipynb: Path,
    html_out: Path,
    *,
    title: str,
    region_label: str,
    annee: int,
    fictif: bool,
    note: str | None = None,
) -> None:
    """Convertit un notebook exécuté en HTML imprimable autonome (un seul fichier).

    ``note`` : texte de bas de couverture (par défaut : outil, version et, si
    ``SOURCE_DATE_EPOCH`` est défini, date de production — aucune date sinon, pour rester
    reproductible).
    """
    import nbformat

    nb = nbformat.read(str(executed_ipynb), as_version=4)
    generated = source_date()
    from .. import __version__

    css = (TEMPLATES_DIR / REPORT_TEMPLATE / "print.css").read_text(encoding="utf-8")
    resources = {
        "metadata": {"name": Path(executed_ipynb).stem, "path": str(Path(executed_ipynb).parent)},
        "rapport": {
            "title": title,
            "region_label": region_label,
            "annee": annee,
            "fictif": bool(fictif),
            "note": note if note is not None else _default_note(generated),
            "css": css,
            "page_css": _page_css(
                title=title, region_label=region_label, annee=annee, fictif=bool(fictif)
            ),
            "generator": f"cpom-qualite {__version__}",
            "created": generated.strftime("%Y-%m-%dT%H:%M:%SZ") if generated else "",
        },
    }
    body, _ = _exporter().from_notebook_node(nb, resources=resources)
    body = _CELL_ID_RE.sub("", body)
    body = _ANCHOR_LINK_RE.sub("", body)
    head, sep, rest = body.partition(TOC_PLACEHOLDER)
    if not sep:  # pragma: no cover - modèle modifié
        raise RuntimeError("Modèle de rapport sans emplacement pour le sommaire")
    rest, toc = build_toc(rest)
    out = head + toc + rest
    if not out.endswith("\n"):
        out += "\n"
    html_out = Path(html_out)
    html_out.parent.mkdir(parents=True, exist_ok=True)
    html_out.write_text(out, encoding="utf-8")


def local_url_fetcher(url: str, *args, **kwargs):
    """N'autorise que les ressources locales (``file:``, ``data:``) : un rapport ne dépend
    jamais du réseau. Une ressource distante est ignorée (avertissement de WeasyPrint)."""
    from weasyprint.urls import default_url_fetcher

    if not url.startswith(("file:", "data:")):
        raise ValueError(f"Ressource externe refusée : {url}")
    return default_url_fetcher(url, *args, **kwargs)


def html_to_pdf(html_path: Path, pdf_out: Path) -> None:
    """HTML (produit par :func:`notebook_to_html`) → PDF A4 avec WeasyPrint.

    Reproductible : aucune date n'est écrite, sauf ``SOURCE_DATE_EPOCH`` (dates de création et
    de modification du PDF). Le titre et la langue viennent du HTML (``<title>``, ``lang="fr"``).
    """
    from weasyprint import HTML

    html_path = Path(html_path)
    document = HTML(
        filename=str(html_path), base_url=str(html_path.parent), url_fetcher=local_url_fetcher
    ).render()
    meta = document.metadata
    meta.lang = meta.lang or "fr"
    generated = source_date()
    if generated is not None:
        stamp = generated.strftime("%Y-%m-%dT%H:%M:%SZ")
        meta.created = meta.created or stamp
        meta.modified = meta.modified or stamp
    pdf_out = Path(pdf_out)
    pdf_out.parent.mkdir(parents=True, exist_ok=True)
    tmp = pdf_out.with_name(pdf_out.name + ".tmp")
    with fixed_font_timestamps():
        document.write_pdf(str(tmp))
    os.replace(tmp, pdf_out)
