"""Notebook exécuté → HTML (document imprimable et page web) → PDF A4 balisé (Typst), sans code.

- :func:`notebook_to_html` : nbconvert ``HTMLExporter`` avec le modèle ``templates/rapport``
  (hérite du rendu des cellules « lab », en remplace l'en-tête et le pied) ; code, invites et
  avertissements (stderr) masqués ; cellules étiquetées ``remove_cell`` supprimées, sorties des
  cellules étiquetées ``remove_output`` supprimées, entrées ``remove_input`` (de toute façon
  masquées). Ajoute une page de couverture et un sommaire (``<nav class="toc">``) construit à
  partir des titres ``h1``/``h2``. Avec ``fictif=True``, bandeau rouge « DONNÉES FICTIVES ».
  Figures numérotées « Figure n : légende » (:func:`number_figures`), avec le texte alternatif
  passé à :func:`analysis.publishing.figures.show` ; en-têtes de tableau avec ``scope``
  (:func:`add_header_scopes`).
  Page web : feuille d'écran ``ecran.css`` (``@media screen`` : colonne lisible, sommaire et
  recherche dans une colonne latérale qui reste visible) et script ``ecran.js`` (recherche d'un
  établissement par nom ou FINESS, tri des longs tableaux, section courante du sommaire), tous
  deux incorporés ; lien d'évitement et champ de recherche masqués à l'impression.
  Aucune ressource externe : pas de MathJax, require.js ni CDN ; police DejaVu Sans locale ;
  figures en SVG vectoriel incorporé au HTML comme image ``data:image/svg+xml;base64`` (voir
  :func:`analysis.figures.show` ; pas de ``<svg>`` en ligne, voir le modèle).
- le PDF : ce HTML composé par Typst (:func:`analysis.publishing.rapport_pdf.html_to_pdf`) : A4,
  couverture, sommaire paginé, en-tête courant (région, année, chapitre), pagination « n / N »,
  bandeau « DONNÉES FICTIVES » sur chaque page ; PDF balisé PDF/A-2a et PDF/UA-1, déterministe.
  La feuille ``print.css`` sert à l'impression de la page web depuis un navigateur.

HTML déterministe : les identifiants de cellules (``id="cell-id=…"``, aléatoires pour la cellule
injectée par Papermill) sont retirés et les ancres des titres recalculées (``sec-…``).
"""

from __future__ import annotations

import contextlib
import datetime as _dt
import functools
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
    "build_toc",
    "css_string",
    "source_date",
    "fixed_font_timestamps",
    "local_url_fetcher",
    "number_figures",
    "add_header_scopes",
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


def pdf_date() -> list[int]:
    """Date d'un PDF/A (qui en exige une) en ``[année, mois, jour, heure, minute, seconde]`` pour
    les gabarits Typst : ``SOURCE_DATE_EPOCH``, sinon le 1er janvier 1980 (:data:`FALLBACK_EPOCH`),
    pour des octets identiques d'une exécution à l'autre."""
    d = source_date() or _dt.datetime.fromtimestamp(int(FALLBACK_EPOCH), tz=_dt.timezone.utc)
    return [d.year, d.month, d.day, d.hour, d.minute, d.second]


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


#: champ de recherche de la page web (masqué à l'impression, affiché par ecran.js)
SEARCH_BOX = (
    '<div class="recherche ecran-seulement" role="search" hidden>\n'
    '<label for="recherche-etab">Rechercher un établissement</label>\n'
    '<input type="search" id="recherche-etab" autocomplete="off" spellcheck="false" '
    'aria-describedby="recherche-aide">\n'
    '<p id="recherche-aide" class="aide">Nom ou numéro FINESS : seules les lignes correspondantes '
    "des tableaux d'établissements restent affichées.</p>\n"
    '<p id="recherche-statut" class="statut" role="status"></p>\n'
    "</div>\n"
)

_FIGURE_RE = re.compile(
    r'<figure class="figure([^"]*)">(.*?)<figcaption class="legende-figure">(.*?)</figcaption>', re.S
)


def number_figures(body: str) -> str:
    """Numérote les figures dans l'ordre du document : identifiant ``figure-n`` et légende
    « Figure n : … » (« Figure n » seul si la figure n'a pas de légende)."""
    counter = iter(range(1, 10**6))

    def repl(m: re.Match) -> str:
        n = next(counter)
        caption = m.group(3).strip()
        label = f"Figure {n}" + ("\u00a0: " if caption else "")
        return (
            f'<figure id="figure-{n}" class="figure{m.group(1)}">{m.group(2)}'
            f'<figcaption class="legende-figure"><span class="numero-figure">{label}</span>'
            f"{caption}</figcaption>"
        )

    return _FIGURE_RE.sub(repl, body)


_TABLE_RE = re.compile(r"<table\b.*?</table>", re.S | re.I)
_THEAD_RE = re.compile(r"<thead\b.*?</thead>", re.S | re.I)
_TH_NO_SCOPE_RE = re.compile(r"<th(?![^>]*\bscope=)(?=[\s>])", re.I)


def add_header_scopes(body: str) -> str:
    """``scope="col"`` sur les en-têtes de ``<thead>``, ``scope="row"`` sur ceux du corps (index
    d'un DataFrame) : les cellules sont rattachées à leurs en-têtes dans le PDF balisé et pour
    les lecteurs d'écran. Un ``scope`` déjà présent est gardé."""

    def table(m: re.Match) -> str:
        text = m.group(0)
        parts, last = [], 0
        for h in _THEAD_RE.finditer(text):
            parts.append(_TH_NO_SCOPE_RE.sub('<th scope="row"', text[last:h.start()]))
            parts.append(_TH_NO_SCOPE_RE.sub('<th scope="col"', h.group(0)))
            last = h.end()
        parts.append(_TH_NO_SCOPE_RE.sub('<th scope="row"', text[last:]))
        return "".join(parts)

    return _TABLE_RE.sub(table, body)


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


#: dossier du cache des modèles compilés (Jinja ``FileSystemBytecodeCache``), fixé par ``make report``
#: (:func:`use_template_cache`) ; aucun sinon
_TEMPLATE_CACHE: dict = {"dossier": None}


def use_template_cache(folder: Path | None) -> None:
    """Les modèles nbconvert compilés par Jinja sont gardés dans ``folder`` d'une exécution à l'autre
    (clé : nom et contenu du modèle ; le HTML produit est le même) ; ``None`` : pas de cache.
    Un chemin relatif l'est au dossier courant de l'appel : ``make report`` charge les modèles
    pendant que Papermill exécute un notebook dans le dossier du rapport en construction, et le cache
    y aurait sinon été écrit (publié avec le rapport)."""
    folder = None if folder is None else Path(folder).resolve()
    if folder != _TEMPLATE_CACHE["dossier"]:
        _TEMPLATE_CACHE["dossier"] = folder
        _exporter.cache_clear()


def _exporter_class():
    from nbconvert import HTMLExporter
    from nbconvert.exporters.templateexporter import TemplateExporter
    from nbconvert.filters.highlight import Highlight2HTML
    from nbconvert.filters.widgetsdatatypefilter import WidgetsDataTypeFilter

    class ReportExporter(HTMLExporter):
        """``HTMLExporter`` sans sa passe BeautifulSoup finale, qui relit et réécrit toute la page
        pour donner un texte alternatif par défaut aux images qui n'en ont pas et rendre
        focalisables les zones de cellule du modèle « lab » : le modèle du rapport n'a ni les unes ni
        les autres (chaque figure reçoit le texte alternatif passé à ``figures.show``, les entrées
        sont masquées et les sorties rendues sans ces zones), la passe ne changeait donc rien, et
        coûtait 0,14 s au rendu du rapport, plus 0,2 s de compilation de ses sélecteurs CSS au premier
        rendu d'un processus. Les filtres que ``HTMLExporter`` enregistre à chaque conversion le sont
        ici de même ; le notebook est converti par le ``TemplateExporter`` dont il hérite."""

        def from_notebook_node(self, nb, resources=None, **kw):
            langinfo = nb.metadata.get("language_info", {})
            lexer = langinfo.get("pygments_lexer", langinfo.get("name", None))
            highlight_code = self.filters.get("highlight_code", Highlight2HTML(pygments_lexer=lexer, parent=self))
            resources = self._init_resources(resources)
            filter_data_type = WidgetsDataTypeFilter(notebook_metadata=self._nb_metadata, parent=self,
                                                     resources=resources)
            self.register_filter("highlight_code", highlight_code)
            self.register_filter("filter_data_type", filter_data_type)
            return TemplateExporter.from_notebook_node(self, nb, resources, **kw)

    return ReportExporter


@functools.lru_cache(maxsize=1)
def _exporter():
    """L'exportateur HTML du rapport, créé une fois par processus (ses modèles compilés une fois)."""
    from nbconvert.preprocessors import TagRemovePreprocessor

    exporter = _exporter_class()(
        template_name=REPORT_TEMPLATE,
        extra_template_basedirs=[str(TEMPLATES_DIR)],
        exclude_input=True,
        exclude_input_prompt=True,
        exclude_output_prompt=True,
        embed_images=True,
        sanitize_html=False,
        # notebook validé une fois, après tous les préprocesseurs, et non après chacun : nbformat
        # recompile son schéma à chaque validation « relax_add_props » (0,35 s sur le rapport)
        optimistic_validation=True,
    )
    tag_remove = TagRemovePreprocessor(
        remove_cell_tags={"remove_cell"},
        remove_all_outputs_tags={"remove_output"},
        remove_input_tags={"remove_input"},
        enabled=True,
    )
    exporter.register_preprocessor(tag_remove, enabled=True)
    exporter.register_filter("svg_base64", _svg_base64)
    folder = _TEMPLATE_CACHE["dossier"]
    if folder is not None:
        from jinja2 import FileSystemBytecodeCache

        Path(folder).mkdir(parents=True, exist_ok=True)
        exporter.environment.bytecode_cache = FileSystemBytecodeCache(str(folder))
    return exporter


def warm_up() -> None:
    """Charge ce que le premier rendu d'un processus chargerait (nbconvert et son modèle, le
    compilateur Typst et ses polices), sans rien rendre : appelé par ``make report`` pendant que le
    noyau exécute les notebooks (le processus principal attend)."""
    import nbformat

    from . import rapport_pdf

    # un notebook vide rendu : le modèle et ceux dont il hérite sont chargés et compilés (ou repris du
    # cache des modèles) avant le rapport
    _exporter().from_notebook_node(nbformat.v4.new_notebook(), resources=_resources(
        Path("rapport.ipynb"), title="", region_label="", annee=0, fictif=False, note=""))
    rapport_pdf.warm_up()


def _resources(executed_ipynb: Path, *, title: str, region_label: str, annee: int, fictif: bool,
               note: str | None) -> dict:
    """Ressources passées au modèle du rapport (titre, feuilles de style, script, couverture)."""
    from .. import __version__

    generated = source_date()
    tpl = TEMPLATES_DIR / REPORT_TEMPLATE
    css = (tpl / "print.css").read_text(encoding="utf-8")
    return {
        "metadata": {"name": Path(executed_ipynb).stem, "path": str(Path(executed_ipynb).parent)},
        "rapport": {
            "title": title,
            "region_label": region_label,
            "annee": annee,
            "fictif": bool(fictif),
            "note": note if note is not None else _default_note(generated),
            "css": css,
            "screen_css": (tpl / "ecran.css").read_text(encoding="utf-8"),
            "screen_js": (tpl / "ecran.js").read_text(encoding="utf-8"),
            "page_css": _page_css(
                title=title, region_label=region_label, annee=annee, fictif=bool(fictif)
            ),
            "generator": f"cpom-qualite {__version__}",
            "created": generated.strftime("%Y-%m-%dT%H:%M:%SZ") if generated else "",
        },
    }


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
    resources = _resources(executed_ipynb, title=title, region_label=region_label, annee=annee, fictif=fictif,
                           note=note)
    body, _ = _exporter().from_notebook_node(nb, resources=resources)
    body = _CELL_ID_RE.sub("", body)
    body = _ANCHOR_LINK_RE.sub("", body)
    head, sep, rest = body.partition(TOC_PLACEHOLDER)
    if not sep:  # pragma: no cover - modèle modifié
        raise RuntimeError("Modèle de rapport sans emplacement pour le sommaire")
    rest, toc = build_toc(rest)
    rest = add_header_scopes(number_figures(rest))
    out = head + '<div class="panneau">\n' + SEARCH_BOX + toc + "\n</div>\n" + rest
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
