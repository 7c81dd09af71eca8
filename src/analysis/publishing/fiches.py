"""Fiches établissement (PDF/UA-1 A4, une ou deux pages) pour les négociateurs des CPOM.

Rendues **sans notebook ni noyau** par Typst (paquet PyPI ``typst``, compilateur inclus) : le
gabarit ``templates/fiche/fiche.typ`` reçoit les données de la fiche en JSON (``sys.inputs``) et
les affiche comme du texte, jamais comme du balisage. Environ 10 ms par fiche (contre ~0,1 s avec
l'ancien rendu HTML + WeasyPrint, gardé comme référence pour ``make bench``).

- **Accessible et archivable** : document PDF/UA-1 balisé (titre, langue ``fr``, titres H1/H2,
  en-têtes de tableaux, texte alternatif de la figure éventuelle) ; Typst refuse de produire un
  PDF/UA-1 incomplet.
- **Textes sûrs** : les contrôles bidirectionnels (U+202A–U+202E, U+2066–U+2069, LRM, RLM, ALM)
  sont retirés (« gnp.exe » reste « gnp.exe ») ; un caractère absent de la police (DejaVu Sans de
  matplotlib, seule police utilisée : mêmes octets sur toute machine), par exemple un idéogramme
  chinois, est remplacé par « � » ; dans les deux cas un avertissement nomme la fiche.
- **Même résultat partout** : octets identiques d'une exécution à l'autre et quel que soit
  ``jobs`` ; aucune date sauf ``SOURCE_DATE_EPOCH``.
- **Cache** (:class:`SheetCache`) : une fiche dont les données, le gabarit et le moteur n'ont pas
  changé n'est pas rendue à nouveau (clé :func:`sheet_key`) ; le cache est borné.

Schéma d'une fiche (``dict``)
-----------------------------
Clés obligatoires : ``finess_geo``, ``raison_sociale``. Toute autre clé peut manquer ou valoir
``None`` (affiché « — ») ; les listes absentes valent ``[]``. Les textes sont affichés tels quels
(aucun balisage Typst ni HTML interprété).

.. code-block:: python

    {
        # identité
        "finess_geo": "350000016",            # str, 9 caractères ; nom du fichier PDF
        "finess_ej": "350000008",             # str | None
        "raison_sociale": "CH de Rennes",     # str
        "departement": "35",                  # str | None
        "categorie": "Centre hospitalier",    # str | None
        "statut": "public",                   # code (public, prive_non_lucratif,
                                              #   prive_lucratif) ou libellé libre
        "lits": 120,                          # int | None
        "activites": ["MCO", "SSR"],          # list[str] | str | None (alias : "activities")
        # ciblage de l'année (liste vide : « non ciblé »)
        "ciblage": [
            {"risque": "infectieux",          # code (infectieux, management_qualite,
                                              #   rupture_parcours) ou libellé
             "motif": "Non déclarant : aucun signalement e-SIN en 2024"},
        ],
        # engagements suivis dans l'année
        "engagements": [
            {"engagement": "lettre_liaison",  # code (certification, lettre_liaison,
                                              #   signalement_esin, prevention_ias) ou libellé
             "periode": "2023–2027",          # facultatif (str)
             "indicateurs": [                 # alias : "indicators"
                 {"indicateur": "score_qls_mco",   # code connu ou libellé
                  "valeur": 78.5,             # nombre, bool, str (déjà mis en forme) ou None
                  "cible": "≥ 80 %",          # str (ou nombre, mis en forme comme valeur)
                  "unite": "%",               # facultatif : "%" -> « 78,5 % »
                  "statut": "non_atteint",    # atteint | non_atteint | non_evaluable |
                                              #   non_concerne | sans_cible
                  "historique": {2022: 70.0, 2023: 75.0}},  # facultatif {année: valeur}
             ]},
        ],
        # plans d'actions (liste vide : « aucun plan transmis »)
        "plans_actions": [
            {"engagement": "lettre_liaison", "action": "Audit des lettres de liaison",
             "pilote": "Direction qualité", "echeance": "2025-06-30",  # date, Timestamp ou str
             "statut": "en_cours"},           # a_faire | en_cours | realise | abandonne
        ],
        # facultatif : expérience patient (e-Satis), sans cible
        "experience_patient": [
            {"annee": 2024, "secteur": "SSR", "score": 73.2, "classement": "B",
             "evolution": "stable"},
        ],
        # facultatif : contrôle qualité du recueil QLS (un résultat contrôlé par ligne, textes mis
        # en forme ; verdict_code : concordant | surcotation | non_evaluable)
        "controle_qls": [
            {"annee": 2024, "secteur": "MCO", "n_dossiers": 40, "score_declare": "85,0 %",
             "score_recalcule": "62,0 %", "intervalle": "55,1 – 68,9",
             "verdict": "Surcotation (non validé)", "verdict_code": "surcotation",
             "motif": "résultat non validé par le contrôle qualité du recueil (…)"},
        ],
        # facultatif : petite figure d'historique (texte SVG, p. ex. de
        # analysis.figures.fig_to_svg ; incorporée comme image), son titre et son texte
        # alternatif (ce qu'elle montre ; à défaut, le titre)
        "figure_svg": "<svg ...>...</svg>",
        "figure_titre": "Historique des indicateurs",
        "figure_alt": "Score QLS MCO de 2021 à 2024 : de 70 % à 78,5 %, sous la cible de 80 %",
        # facultatif : remarques libres
        "observations": ["Nouvelle direction qualité depuis mars 2024."],
    }

Les valeurs numériques sont mises en forme à la française (:mod:`analysis.fmt`) : avec
``unite == "%"`` en pourcentage (valeur en points 0–100), sinon entier ou une décimale suivie de
l'unité ; ``True``/``False`` → « oui »/« non ». Dans le tableau des engagements, les colonnes
d'historique sont les (au plus) trois dernières années antérieures à ``annee`` présentes dans les
``historique`` de la fiche.
"""

from __future__ import annotations

import base64
import contextlib
import datetime as _dt
import functools
import hashlib
import json
import math
import numbers
import os
import re
import unicodedata
from collections import OrderedDict
from collections.abc import Callable, Iterable, Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from ..cache import ContentCache
from .fmt import MISSING, fmt_date, fmt_dec, fmt_num, fmt_pct, is_missing
from .render import fixed_font_timestamps, local_url_fetcher, pdf_date, source_date

TEMPLATES_DIR = Path(__file__).parent / "templates" / "fiche"
MAX_HISTORY_YEARS = 3

__all__ = ["render_fiches", "render_fiche_html", "normalize_fiche", "STATUTS"]

#: code de statut -> (symbole, libellé) ; la couleur seule ne porte jamais l'information
STATUTS: dict[str, tuple[str, str]] = {
    "atteint": ("✓", "Atteint"),
    "non_atteint": ("✗", "Non atteint"),
    "non_evaluable": ("?", "Non évaluable"),
    "non_concerne": ("–", "Non concerné"),
    "sans_cible": ("○", "Sans cible"),
}
# --------------------------------------------------------------------------- mise en forme


def _text(value: Any) -> str:
    if is_missing(value):
        return MISSING
    text = str(value).strip()
    return text if text else MISSING


def _fmt_value(value: Any, unite: str | None = None) -> str:
    if is_missing(value):
        return MISSING
    if isinstance(value, (bool, np.bool_)):
        return "oui" if value else "non"
    if isinstance(value, (_dt.date, _dt.datetime)):
        return fmt_date(value)
    if isinstance(value, (numbers.Real, np.number)):
        x = float(value)
        if math.isnan(x):
            return MISSING
        if unite == "%":
            return fmt_pct(x, 1)
        text = fmt_num(x) if x.is_integer() else fmt_dec(x, 1)
        return f"{text}\u00a0{unite}" if unite else text
    text = str(value).strip()
    return text if text else MISSING


def _year(value: Any) -> int | None:
    try:
        return int(value)
    except (TypeError, ValueError):
        return None


def _as_list(value: Any) -> list:
    if value is None:
        return []
    if isinstance(value, (list, tuple)):
        return list(value)
    return list(value) if isinstance(value, Iterable) and not isinstance(value, (str, Mapping)) \
        else [value]


_SAFE_FINESS = re.compile(r"^[0-9A-Za-z]{1,20}$")


def normalize_fiche(fiche: Mapping[str, Any], annee: int) -> dict[str, Any]:
    """Contrôle une fiche (schéma du module) et la convertit en textes prêts à afficher."""
    for key in ("finess_geo", "raison_sociale"):
        if is_missing(fiche.get(key)) or not str(fiche.get(key)).strip():
            raise ValueError(f"Fiche établissement incomplète : clé « {key} » absente ou vide "
                             f"({ {k: fiche.get(k) for k in ('finess_geo', 'raison_sociale')} })")
    finess = str(fiche["finess_geo"]).strip()
    if not _SAFE_FINESS.match(finess):
        raise ValueError(f"FINESS géographique invalide pour un nom de fichier : {finess!r}")

    activites = fiche.get("activites", fiche.get("activities"))
    if isinstance(activites, str):
        activites_txt = activites.strip() or MISSING
    else:
        acts = [str(a) for a in _as_list(activites) if not is_missing(a) and str(a).strip()]
        activites_txt = ", ".join(acts) if acts else MISSING

    lits = fiche.get("lits")
    ciblage = [
        {"risque": _text(c.get("risque")), "motif": _text(c.get("motif"))}
        for c in _as_list(fiche.get("ciblage"))
    ]

    engagements = []
    years: set[int] = set()
    for e in _as_list(fiche.get("engagements")):
        indics = []
        for i in _as_list(e.get("indicateurs", e.get("indicators"))):
            unite = i.get("unite")
            unite = None if is_missing(unite) else str(unite)
            hist_raw = i.get("historique") or {}
            hist = {}
            for a, v in dict(hist_raw).items():
                y = _year(a)
                if y is not None and y < annee:
                    hist[y] = _fmt_value(v, unite)
                    years.add(y)
            code = "" if is_missing(i.get("statut")) else str(i.get("statut")).strip()
            symbole, label = STATUTS.get(code, ("", code.replace("_", " ") or MISSING))
            label = _text(i.get("statut_libelle")) if i.get("statut_libelle") else label
            indics.append(
                {
                    "indicateur": _text(i.get("indicateur")),
                    "valeur": _fmt_value(i.get("valeur"), unite),
                    "cible": "" if is_missing(i.get("cible")) else _fmt_value(i.get("cible"), unite),
                    "statut_code": code if code in STATUTS else "autre",
                    "statut_symbole": symbole,
                    "statut_label": label,
                    "historique": hist,
                }
            )
        periode = e.get("periode")
        engagements.append(
            {
                "engagement": _text(e.get("engagement")),
                "periode": None if is_missing(periode) or not str(periode).strip() else str(periode),
                "indicateurs": indics,
            }
        )
    annees_hist = sorted(years)[-MAX_HISTORY_YEARS:]

    plans = []
    for p in _as_list(fiche.get("plans_actions")):
        code = "" if is_missing(p.get("statut")) else str(p.get("statut")).strip()
        plans.append(
            {
                "engagement": _text(p.get("engagement")),
                "action": _text(p.get("action")),
                "pilote": _text(p.get("pilote")),
                "echeance": fmt_date(p.get("echeance")),
                "statut": _text(p.get("statut_libelle")) if p.get("statut_libelle") else (code or MISSING),
                "statut_code": code if code in ("a_faire", "en_cours", "realise", "abandonne") else "autre",
            }
        )

    experience = [
        {
            "annee": _text(x.get("annee") if _year(x.get("annee")) is None else _year(x.get("annee"))),
            "secteur": _text(x.get("secteur")),
            "score": _fmt_value(x.get("score")),
            "classement": _text(x.get("classement")),
            "evolution": _text(x.get("evolution")),
        }
        for x in _as_list(fiche.get("experience_patient"))
    ]
    controle = [
        {
            "annee": _text(x.get("annee")),
            "secteur": _text(x.get("secteur")),
            "n_dossiers": _fmt_value(x.get("n_dossiers")),
            "score_declare": _text(x.get("score_declare")),
            "score_recalcule": _text(x.get("score_recalcule")),
            "intervalle": _text(x.get("intervalle")),
            "verdict": _text(x.get("verdict")),
            "verdict_code": str(x.get("verdict_code") or ""),
            "motif": _text(x.get("motif")),
        }
        for x in _as_list(fiche.get("controle_qls"))
    ]
    svg = fiche.get("figure_svg")
    if svg is not None and not isinstance(svg, str):
        raise TypeError("figure_svg doit être une chaîne SVG (analysis.figures.fig_to_svg)")
    if svg:
        # image « data: » plutôt que <svg> en ligne : rendu identique, plus rapide, sans
        # avertissements de WeasyPrint ; un SVG n'exécute rien dans une image
        svg = "data:image/svg+xml;base64," + base64.b64encode(svg.encode("utf-8")).decode("ascii")

    return {
        "finess_geo": finess,
        "finess_ej": _text(fiche.get("finess_ej")),
        "raison_sociale": _text(fiche.get("raison_sociale")),
        "departement": _text(fiche.get("departement")),
        "categorie": _text(fiche.get("categorie")),
        # a FINESS extract does not always tell the statut: it stays missing, shown « non renseigné »
        "statut": "non renseigné" if is_missing(fiche.get("statut")) else _text(fiche.get("statut")),
        "lits": MISSING if is_missing(lits) else fmt_num(lits),
        "activites": activites_txt,
        "ciblage": ciblage,
        "engagements": engagements,
        "annees_historique": annees_hist,
        "plans_actions": plans,
        "experience_patient": experience,
        "controle_qls": controle,
        "figure_svg": svg or None,
        "figure_titre": _text(fiche.get("figure_titre") or "Historique"),
        "observations": [_text(o) for o in _as_list(fiche.get("observations")) if not is_missing(o)],
    }


# --------------------------------------------------------------------------- polices

#: caractères gardés dans les polices allégées : latin (français et noms européens), ponctuation
#: typographique, symboles des statuts. Un caractère hors liste est rendu par la police système
#: (repli de Pango) : correct, simplement plus lent.
FONT_UNICODES = sorted(
    set(range(0x20, 0x7F))
    | set(range(0xA0, 0x250))
    | set(range(0x2010, 0x2030))
    | {0x2039, 0x203A, 0x20AC, 0x2116, 0x2122, 0x2190, 0x2192, 0x2212, 0x2264, 0x2265, 0x2248,
       0x2260, 0x221E, 0x2713, 0x2717, 0x25CB, 0x25CF, 0x25A0, 0x25B2, 0x25BC, 0x2191, 0x2193,
       0x2197, 0x2198, 0x02C6, 0x02DA, 0x02DC}
)
FONT_FILES = {
    "regular": "DejaVuSans.ttf",
    "bold": "DejaVuSans-Bold.ttf",
    "oblique": "DejaVuSans-Oblique.ttf",
}
FONT_URL_PREFIX = "cpom-police:"
_FONT_CACHE: dict[str, bytes] = {}


def _font_bytes(face: str) -> bytes:
    """DejaVu Sans (copie livrée avec matplotlib : même version partout) réduite à
    :data:`FONT_UNICODES`, sans instructions de hinting.

    Pourquoi : WeasyPrint sous-ensemble chaque police dans chaque PDF ; sur la police DejaVu
    complète (tables GPOS énormes), cela coûte ~0,2 s par police et par fiche. Sur cette version
    allégée (crénage conservé), quelques millisecondes. Calculé une fois par processus, déterministe.
    """
    if face not in _FONT_CACHE:
        import io

        import matplotlib
        from fontTools import subset
        from fontTools.ttLib import TTFont

        src = Path(matplotlib.get_data_path()) / "fonts" / "ttf" / FONT_FILES[face]
        font = TTFont(str(src), recalcTimestamp=False)
        options = subset.Options()
        options.hinting = False
        options.name_IDs = ["*"]
        options.notdef_outline = True
        # sans tables OpenType GSUB/GPOS (coûteuses à relire pour chaque PDF) ; le crénage
        # reste assuré par l'ancienne table « kern », que HarfBuzz utilise en l'absence de GPOS
        options.legacy_kern = True
        options.drop_tables += ["FFTM", "GSUB", "GPOS", "GDEF", "MATH"]
        subsetter = subset.Subsetter(options)
        subsetter.populate(unicodes=FONT_UNICODES)
        subsetter.subset(font)
        buf = io.BytesIO()
        font.save(buf)
        _FONT_CACHE[face] = buf.getvalue()
    return _FONT_CACHE[face]


def _url_fetcher(url: str, *args, **kwargs):
    if url.startswith(FONT_URL_PREFIX):
        face = url[len(FONT_URL_PREFIX):]
        return {"string": _font_bytes(face), "mime_type": "font/ttf", "redirected_url": url}
    return local_url_fetcher(url, *args, **kwargs)


_FONT_FACE_CSS = """
@font-face { font-family: "Fiche Sans"; src: url("cpom-police:regular");
             font-weight: normal; font-style: normal; }
@font-face { font-family: "Fiche Sans"; src: url("cpom-police:bold");
             font-weight: bold; font-style: normal; }
@font-face { font-family: "Fiche Sans"; src: url("cpom-police:oblique");
             font-weight: normal; font-style: italic; }
"""


# --------------------------------------------------------------------------- sous-ensembles de polices

#: (empreinte de la police, index, glyphes, hinting, SOURCE_DATE_EPOCH) -> police réduite
_SUBSET_CACHE: OrderedDict[tuple, bytes] = OrderedDict()
_SUBSET_CACHE_MAX = 1024


@contextlib.contextmanager
def _memoized_font_subsets():
    """WeasyPrint réduit chaque police de chaque PDF aux glyphes utilisés (fontTools, ~20 ms par
    police et par fiche). D'une fiche à l'autre, les mêmes ensembles de glyphes reviennent souvent
    (titres en gras, italiques, fiches semblables) : le résultat, déterministe, est gardé en mémoire
    pour la durée du processus. Les PDF sont identiques à l'octet près au calcul sans mémoire.
    """
    try:
        from weasyprint.pdf.fonts import Font
    except ImportError:  # pragma: no cover - autre version de WeasyPrint
        yield
        return
    original = getattr(Font, "subset", None)
    if original is None:  # pragma: no cover
        yield
        return

    def subset(self, cmap, hinting):
        if not cmap:
            return original(self, cmap, hinting)
        key = (hashlib.sha256(self.file_content).digest(), self.index, tuple(sorted(cmap)), bool(hinting),
               os.environ.get("SOURCE_DATE_EPOCH"))
        hit = _SUBSET_CACHE.get(key)
        if hit is not None:
            _SUBSET_CACHE.move_to_end(key)
            self.file_content = hit
            return None
        result = original(self, cmap, hinting)
        _SUBSET_CACHE[key] = self.file_content
        if len(_SUBSET_CACHE) > _SUBSET_CACHE_MAX:
            _SUBSET_CACHE.popitem(last=False)
        return result

    Font.subset = subset
    try:
        yield
    finally:
        Font.subset = original


# --------------------------------------------------------------------------- rendu WeasyPrint (référence)


class _Renderer:
    """Rendu HTML + WeasyPrint d'avant Typst, gardé comme référence (``make bench``, ``engine="weasyprint"``).

    État réutilisé d'une fiche à l'autre dans un processus : gabarit, CSS analysée, polices."""

    def __init__(self) -> None:
        import jinja2
        from weasyprint import CSS
        from weasyprint.text.fonts import FontConfiguration

        from .. import __version__

        self.env = jinja2.Environment(
            loader=jinja2.FileSystemLoader(str(TEMPLATES_DIR)),
            autoescape=True,
            undefined=jinja2.StrictUndefined,
            trim_blocks=False,
            lstrip_blocks=False,
        )
        self.template = self.env.get_template("fiche.html.j2")
        self.font_config = FontConfiguration()
        self.css = CSS(
            string=_FONT_FACE_CSS + (TEMPLATES_DIR / "fiche.css").read_text(encoding="utf-8"),
            font_config=self.font_config,
            url_fetcher=_url_fetcher,
            base_url=str(TEMPLATES_DIR),
        )
        self.generator = f"cpom-qualite {__version__}"

    def html(self, fiche: Mapping[str, Any], *, region_label: str, annee: int, fictif: bool) -> str:
        generated = source_date()
        return self.template.render(
            f=normalize_fiche(fiche, annee),
            region_label=region_label,
            annee=annee,
            fictif=bool(fictif),
            generator=self.generator,
            created=generated.strftime("%Y-%m-%dT%H:%M:%SZ") if generated else "",
        )

    def pdf(self, fiche: Mapping[str, Any], out: Path, pdf_variant: str | None = None, **kw) -> Path:
        from weasyprint import HTML

        doc = HTML(string=self.html(fiche, **kw), base_url=str(TEMPLATES_DIR),
                   url_fetcher=_url_fetcher).render(
            stylesheets=[self.css], font_config=self.font_config, pdf_tags=bool(pdf_variant)
        )
        doc.metadata.lang = doc.metadata.lang or "fr"
        tmp = out.with_name(out.name + ".tmp")
        with fixed_font_timestamps(), _memoized_font_subsets():
            doc.write_pdf(str(tmp), pdf_variant=pdf_variant)
        os.replace(tmp, out)
        return out


_RENDERER: _Renderer | None = None


def _renderer() -> _Renderer:
    global _RENDERER
    if _RENDERER is None:
        _RENDERER = _Renderer()
    return _RENDERER


def render_fiche_html(fiche: Mapping[str, Any], *, region_label: str, annee: int,
                      fictif: bool) -> str:
    """HTML d'une fiche (rendu de référence WeasyPrint ; utile pour les tests et le débogage)."""
    return _renderer().html(fiche, region_label=region_label, annee=annee, fictif=fictif)


# --------------------------------------------------------------------------- textes sûrs

#: contrôles bidirectionnels (propriété Unicode Bidi_Control : ALM, LRM, RLM, LRE, RLE, PDF, LRO,
#: RLO, LRI, RLI, FSI, PDI). Retirés : un U+202E ferait lire « gnp.exe » comme « exe.png ».
#: L'ordre naturel des écritures de droite à gauche (arabe, hébreu) reste celui d'Unicode.
BIDI_CONTROLS = re.compile("[\u061c\u200e\u200f\u202a-\u202e\u2066-\u2069]")
#: caractères de contrôle (C0, DEL, C1) et séparateurs de ligne : remplacés par une espace
CONTROL_CHARS = re.compile("[\u0000-\u001f\u007f-\u009f\u2028\u2029]")
#: marque visible d'un caractère que la police ne sait pas dessiner (jamais effacé en silence)
MISSING_GLYPH = "\ufffd"
#: polices de la fiche : DejaVu Sans de matplotlib (même version partout, épinglée)
TYPST_FONT_FILES = ("DejaVuSans.ttf", "DejaVuSans-Bold.ttf", "DejaVuSans-Oblique.ttf")
_COVERAGE: frozenset[int] | None = None


@functools.lru_cache(maxsize=1)
def _font_dir() -> Path:
    """Polices de matplotlib (``matplotlib.get_data_path()``, toujours ``mpl-data`` à côté de son
    module), trouvées sans importer matplotlib : le processus principal n'en a pas besoin."""
    import importlib.util

    spec = importlib.util.find_spec("matplotlib")
    if spec is None or spec.origin is None:  # pragma: no cover - installation incomplète
        import matplotlib

        return Path(matplotlib.get_data_path()) / "fonts" / "ttf"
    return Path(spec.origin).parent / "mpl-data" / "fonts" / "ttf"


def font_coverage() -> frozenset[int]:
    """Caractères dessinables par la fiche : présents à la fois dans DejaVu Sans et DejaVu Sans
    Bold (les valeurs en gras ne tombent jamais sur une autre police). Aucune police système
    n'est utilisée : les PDF sont identiques sur toute machine ; un caractère chinois ou un emoji
    (absents de DejaVu) est remplacé par « � » et signalé."""
    global _COVERAGE
    if _COVERAGE is None:
        from fontTools.ttLib import TTFont

        sets = []
        for name in TYPST_FONT_FILES[:2]:
            font = TTFont(str(_font_dir() / name), lazy=True)
            sets.append(set(font.getBestCmap()))
            font.close()
        _COVERAGE = frozenset(sets[0] & sets[1])
    return _COVERAGE


#: textes déjà reconnus sans rien à changer (libellés, valeurs qui reviennent d'une fiche à l'autre)
_CLEAN_TEXTS: set[str] = set()


class _TextCleaner:
    """Nettoie les textes d'une fiche et compte ce qui a été changé (pour l'avertissement)."""

    def __init__(self) -> None:
        self.bidi = 0
        self.missing: dict[str, int] = {}
        self.cover = font_coverage()

    def __call__(self, text: str) -> str:
        if text in _CLEAN_TEXTS or (text.isascii() and text.isprintable()):
            return text
        if not BIDI_CONTROLS.search(text) and not CONTROL_CHARS.search(text) \
                and self.cover.issuperset(map(ord, text)):
            if len(_CLEAN_TEXTS) < 100_000:
                _CLEAN_TEXTS.add(text)
            return text
        text, n = BIDI_CONTROLS.subn("", text)
        self.bidi += n
        text = CONTROL_CHARS.sub(" ", text)
        if all(ord(c) in self.cover for c in text):
            return text
        out = []
        for c in text:
            if ord(c) in self.cover:
                out.append(c)
            elif unicodedata.category(c) == "Cf":  # autres formats invisibles (ZWJ, BOM…) : retirés
                continue
            else:
                self.missing[c] = self.missing.get(c, 0) + 1
                out.append(MISSING_GLYPH)
        return "".join(out)

    def warnings(self, subject: str) -> list[str]:
        """Avertissements en français ; ``subject`` : « Fiche 140000001 », « Rapport annuel »…"""
        out = []
        if self.bidi:
            out.append(f"{subject} : {self.bidi} caractère(s) de contrôle bidirectionnel "
                       "(U+202A–U+202E, U+2066–U+2069…) retiré(s) : le texte est affiché dans l'ordre saisi.")
        if self.missing:
            chars = ", ".join(f"U+{ord(c):04X} « {c} »" for c in sorted(self.missing)[:8])
            more = " …" if len(self.missing) > 8 else ""
            out.append(f"{subject} : {sum(self.missing.values())} caractère(s) absent(s) de la police "
                       f"DejaVu Sans ({chars}{more}) remplacé(s) par « {MISSING_GLYPH} ».")
        return out


def _clean_tree(obj: Any, clean: _TextCleaner) -> Any:
    if isinstance(obj, str):
        return clean(obj)
    if isinstance(obj, Mapping):
        return {str(k): _clean_tree(v, clean) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [_clean_tree(v, clean) for v in obj]
    return obj


def sheet_view(fiche: Mapping[str, Any], *, region_label: str, annee: int,
               fictif: bool) -> tuple[dict[str, Any], list[str]]:
    """Données d'une fiche telles que le gabarit Typst les affiche (tout en texte, nettoyé) et les
    avertissements en français (contrôles bidirectionnels retirés, caractères sans glyphe)."""
    n = normalize_fiche(fiche, annee)
    svg = fiche.get("figure_svg") or None
    figure_alt = fiche.get("figure_alt")
    n.pop("figure_svg", None)
    clean = _TextCleaner()
    n = _clean_tree(n, clean)
    label = clean(_text(region_label))
    titre = f"Fiche établissement — {n['raison_sociale']} ({n['finess_geo']}) — {label} {annee}"
    view = {
        **n,
        "annee": str(int(annee)),
        "fictif": bool(fictif),
        "titre": titre,
        "auteur": "cpom-qualite",
        "mots_cles": ["CPOM", "qualité", "fiche établissement", n["finess_geo"]],
        "date": pdf_date(),  # PDF/A exige une date
        "surtitre": f"Fiche établissement · suivi qualité des CPOM · {label} · {annee}",
        "entete": f"{n['raison_sociale']} — FINESS {n['finess_geo']}",
        "pied": f"Fiche établissement — {label} {annee}",
        "figure_svg": svg,
        "figure_alt": clean(_text(figure_alt)) if not is_missing(figure_alt) and str(figure_alt).strip()
        else n["figure_titre"],
    }
    return view, clean.warnings(f"Fiche {n['finess_geo']}")


def sheet_json(view: Mapping[str, Any]) -> str:
    """JSON canonique d'une fiche (clés triées) : ce que reçoit Typst et ce qu'on empreinte."""
    return json.dumps(view, ensure_ascii=False, sort_keys=True, separators=(",", ":"))


# --------------------------------------------------------------------------- rendu Typst

TYPST_TEMPLATE = TEMPLATES_DIR / "fiche.typ"
PDF_STANDARDS = ["a-2a", "ua-1"]  # archivage (PDF/A-2a, balisé) et accessibilité (PDF/UA-1)
#: à changer si le sens des données de la fiche change sans que gabarit ni moteur ne changent
SHEET_FORMAT = "fiche-typst-1"


def engine_version() -> str:
    from importlib.metadata import version

    return f"typst {version('typst')}"


_ENGINE_SALT: str | None = None


def engine_salt() -> str:
    """Empreinte de ce qui, hors données, détermine les octets d'une fiche : gabarit, version de
    Typst, polices, norme PDF, ``SHEET_FORMAT``."""
    global _ENGINE_SALT
    if _ENGINE_SALT is None:
        h = hashlib.sha256()
        h.update(f"{SHEET_FORMAT}|{engine_version()}|{','.join(PDF_STANDARDS)}|".encode())
        h.update(TYPST_TEMPLATE.read_bytes())
        for name in TYPST_FONT_FILES:
            h.update(hashlib.sha256((_font_dir() / name).read_bytes()).digest())
        _ENGINE_SALT = h.hexdigest()
    return _ENGINE_SALT


def sheet_key(data_json: str) -> str:
    """Clé de cache d'une fiche : empreinte de ses données, du gabarit et du moteur."""
    return hashlib.sha256((engine_salt() + "\n" + data_json).encode("utf-8")).hexdigest()


class _TypstRenderer:
    """Compilateur Typst réutilisé d'une fiche à l'autre dans un processus (polices chargées une fois)."""

    def __init__(self) -> None:
        import typst

        self.compiler = typst.Compiler(
            str(TYPST_TEMPLATE), root=str(TEMPLATES_DIR), font_paths=[str(_font_dir())],
            ignore_system_fonts=True,
        )

    def pdf(self, data_json: str) -> bytes:
        return self.compiler.compile(sys_inputs={"fiche": data_json}, pdf_standards=PDF_STANDARDS)


_TYPST: _TypstRenderer | None = None


def _typst() -> _TypstRenderer:
    global _TYPST
    if _TYPST is None:
        _TYPST = _TypstRenderer()
    return _TYPST


def render_sheet_pdf(fiche: Mapping[str, Any], *, region_label: str, annee: int, fictif: bool) -> bytes:
    """PDF/UA-1 d'une fiche (octets), sans cache."""
    view, _ = sheet_view(fiche, region_label=region_label, annee=annee, fictif=fictif)
    return _typst().pdf(sheet_json(view))


# --------------------------------------------------------------------------- cache des fiches

#: entrées gardées au plus (les plus anciennement utilisées sont retirées) : de quoi garder
#: plusieurs générations des ~3 000 fiches nationales (~40 Ko chacune)
CACHE_MAX_ENTRIES = 12_000
#: sous-dossier du dossier des tables nettoyées où ``make report`` garde les figures dessinées
#: (:func:`analysis.publishing.figures.draw`), et entrées gardées au plus : ~15 figures par région.
#: Ici, avec la classe du cache, pour que ``make report`` les nomme sans importer matplotlib.
FIGURE_CACHE = ".cache-figures"
FIGURE_CACHE_MAX_ENTRIES = 4000


#: PDF déjà rendus (ou figures déjà dessinées, ``suffix=".json"``) rangés par clé de contenu
SheetCache = ContentCache


# --------------------------------------------------------------------------- orchestration


#: rendus de référence (HTML + WeasyPrint) mesurés par ``make bench`` : non balisé (la fiche
#: d'avant Typst) et balisé PDF/UA-1
WEASYPRINT_ENGINES = {"weasyprint": None, "weasyprint-ua": "pdf/ua-1"}


def _render_chunk(args: tuple) -> list[str]:
    """Processus de rendu : ``("typst", [(finess, json, clé)], dossier, cache)`` ou
    ``("weasyprint", [fiche], dossier, region_label, annee, fictif)``."""
    if args[0] in WEASYPRINT_ENGINES:
        engine, fiches, out_dir, region_label, annee, fictif = args
        r = _renderer()
        out = []
        for fiche in fiches:
            path = Path(out_dir) / f"{str(fiche['finess_geo']).strip()}.pdf"
            r.pdf(fiche, path, pdf_variant=WEASYPRINT_ENGINES[engine], region_label=region_label,
                  annee=annee, fictif=fictif)
            out.append(str(path))
        return out
    _, jobs, out_dir, cache_dir = args
    r = _typst()
    cache = SheetCache(cache_dir) if cache_dir else None
    out = []
    for finess, data_json, key in jobs:
        try:
            pdf = r.pdf(data_json)
        except Exception as exc:  # TypstError : message du compilateur, en anglais
            raise RuntimeError(f"La fiche établissement {finess} n'a pas pu être composée par Typst "
                               f"(PDF/UA-1) : {exc}") from None
        path = Path(out_dir) / f"{finess}.pdf"
        path.write_bytes(pdf)  # dossier de sortie temporaire : c'est lui qui est remplacé d'un coup
        if cache is not None:
            cache.put(key, pdf)
        out.append(str(path))
    return out


def _chunks(items: Sequence, size: int) -> list[list]:
    return [list(items[i:i + size]) for i in range(0, len(items), size)]


def _ordered(fiches: list[dict], out_dir: Path, annee: int, check: bool = True) -> list[dict]:
    """Contrôle en amont (une erreur de schéma arrête tout avant d'écrire ; ``check=False`` : le
    contrôle est fait par :func:`_plan`) ; fiches triées par FINESS."""
    out_dir.mkdir(parents=True, exist_ok=True)
    if check:
        for f in fiches:
            normalize_fiche(f, annee)
    ordered = sorted(fiches, key=lambda f: str(f["finess_geo"]).strip())
    keys = [str(f["finess_geo"]).strip() for f in ordered]
    dup = sorted({k for k in keys if keys.count(k) > 1}) if len(set(keys)) != len(keys) else []
    if dup:
        raise ValueError(f"FINESS géographique en double dans les fiches : {', '.join(dup)}")
    return ordered


#: priorité abaissée des processus de fiches qui tournent pendant les notebooks (``nice``) : la
#: plus basse, pour qu'ils ne prennent que le temps de processeur que le noyau et le rapport laissent
BACKGROUND_NICE = 19


def ignore_interrupt() -> None:
    """Dans un processus de travail : Ctrl-C (SIGINT, envoyé à tout le groupe de processus) est
    laissé au processus principal, qui arrête alors ses processus de travail. Sans cela, chacun
    s'arrête de lui-même, avec sa trace, est remplacé par le pool, et l'arrêt du pool peut rester
    bloqué (observé)."""
    import signal

    signal.signal(signal.SIGINT, signal.SIG_IGN)


def _foreground_worker() -> None:
    ignore_interrupt()


def _background_worker() -> None:
    ignore_interrupt()
    # un fil de calcul par processus de fiches : le compilateur Typst en lancerait sinon un par cœur
    # dans chaque processus (rayon), qui disputeraient les cœurs aux notebooks et au rapport
    os.environ["RAYON_NUM_THREADS"] = "1"
    try:
        os.nice(BACKGROUND_NICE)
    except (AttributeError, OSError):  # pragma: no cover - Windows
        pass


class _InlinePool:
    """Remplace le pool quand ce processus a déjà utilisé Typst : rendu dans le processus même
    (mêmes octets, Typst ne prenant que ~10 ms par fiche)."""

    def imap(self, fn, items):
        return map(fn, items)

    def __enter__(self) -> "_InlinePool":
        return self

    def __exit__(self, *exc) -> None:
        return None


def typst_started() -> bool:
    """Vrai si ce processus a déjà chargé Typst (une fiche, ou le PDF du rapport annuel :
    :mod:`analysis.publishing.rapport_pdf`). Son compilateur a alors des fils d'exécution (rayon)
    qu'un « fork » ne recopie pas : un processus créé ensuite par « fork » qui rendrait une fiche
    resterait bloqué."""
    import sys

    report = sys.modules.get("analysis.publishing.rapport_pdf")
    return _TYPST is not None or (report is not None and report.started())


def fiche_pool(jobs: int, *, background: bool = False):
    """Pool de ``jobs`` processus pour :func:`start_render_fiches` (à utiliser avec ``with``).

    À créer **avant** tout noyau Jupyter ou client ZMQ du processus (« fork » sous Linux), et
    avant tout rendu Typst dans ce processus (voir :func:`typst_started` ; sinon les fiches sont
    rendues dans le processus même).
    ``background`` : priorité abaissée, pour que les fiches n'occupent que le temps de
    processeur laissé libre par les notebooks et le rapport qui tournent en même temps.
    """
    import multiprocessing as mp

    if typst_started() or "fork" not in mp.get_all_start_methods():
        return _InlinePool()
    return mp.get_context("fork").Pool(max(1, int(jobs)),
                                       initializer=_background_worker if background else _foreground_worker)


def start_render_fiches(
    fiches: list[dict],
    out_dir: Path,
    *,
    region_label: str,
    annee: int,
    fictif: bool,
    pool,
    jobs: int = 2,
    progress: Callable[[int, int], None] | None = None,
    cache_dir: Path | str | None = None,
    stats: dict | None = None,
    engine: str = "typst",
    refresh: bool = False,
) -> Callable[[], list[Path]]:
    """Comme :func:`render_fiches` avec un pool existant (:func:`fiche_pool`), sans attendre :
    les fiches sont rendues en arrière-plan ; la fonction renvoyée attend la dernière (en
    appelant ``progress``) et renvoie les chemins triés par FINESS. Fichiers identiques à
    l'octet près à ``jobs=1``."""
    out_dir = Path(out_dir)
    return _start(_ordered(fiches, out_dir, annee, check=engine in WEASYPRINT_ENGINES), out_dir, region_label,
                  annee, fictif, pool, jobs,
                  progress, cache_dir, stats, engine, refresh)


def _plan(ordered, out_dir, region_label, annee, fictif, cache_dir, stats, progress, refresh=False):
    """Dans le processus appelant : données de chaque fiche, clé, reprise depuis le cache.
    Renvoie les fiches à rendre ``[(finess, json, clé)]`` et les chemins déjà écrits."""
    cache = SheetCache(cache_dir) if cache_dir else None
    todo, done_paths, warnings, planned = [], [], [], []
    # toutes les fiches d'abord (une erreur de schéma arrête tout avant d'écrire), puis les reprises
    for fiche in ordered:
        view, warn = sheet_view(fiche, region_label=region_label, annee=annee, fictif=fictif)
        warnings += warn
        data_json = sheet_json(view)
        planned.append((view["finess_geo"], data_json, sheet_key(data_json)))
    for finess, data_json, key in planned:
        hit = cache.get(key) if cache is not None and not refresh else None
        if hit is not None:
            path = out_dir / f"{finess}.pdf"
            path.write_bytes(hit)
            done_paths.append(str(path))
        else:
            todo.append((finess, data_json, key))
    if stats is not None:
        stats.update(total=len(ordered), reprises=len(done_paths), rendues=len(todo),
                     avertissements=warnings, moteur=engine_version())
    if progress and done_paths:
        progress(len(done_paths), len(ordered))
    return todo, done_paths


def _start(ordered, out_dir, region_label, annee, fictif, pool, jobs, progress, cache_dir=None, stats=None,
           engine="typst", refresh=False):
    total = len(ordered)
    if total == 0:
        if stats is not None:
            stats.update(total=0, reprises=0, rendues=0, avertissements=[], moteur=engine_version())
        return lambda: []
    jobs = max(1, min(int(jobs or 1), total))
    if engine in WEASYPRINT_ENGINES:
        size = max(1, min(25, math.ceil(total / (jobs * 4))))
        tasks = [(engine, c, str(out_dir), region_label, annee, fictif) for c in _chunks(ordered, size)]
        already: list[str] = []
    else:
        todo, already = _plan(ordered, out_dir, region_label, annee, fictif, cache_dir, stats, progress, refresh)
        size = max(1, min(50, math.ceil(len(todo) / (jobs * 4)))) if todo else 1
        tasks = [("typst", c, str(out_dir), str(cache_dir) if cache_dir else None) for c in _chunks(todo, size)]
    results = pool.imap(_render_chunk, tasks) if pool is not None else map(_render_chunk, tasks)

    def wait() -> list[Path]:
        done, paths = len(already), list(already)
        for result in results:
            paths += result
            done += len(result)
            if progress:
                progress(done, total)
        return sorted((Path(p) for p in paths), key=lambda p: p.name)

    return wait


def render_fiches(
    fiches: list[dict],
    out_dir: Path,
    *,
    region_label: str,
    annee: int,
    fictif: bool,
    jobs: int = 1,
    progress: Callable[[int, int], None] | None = None,
    cache_dir: Path | str | None = None,
    stats: dict | None = None,
    engine: str = "typst",
    refresh: bool = False,
) -> list[Path]:
    """Écrit ``out_dir/<finess_geo>.pdf`` (PDF/UA-1, Typst) pour chaque fiche ; renvoie les chemins
    triés par FINESS.

    ``cache_dir`` : fiches déjà rendues (:class:`SheetCache`) ; une fiche dont les données, le
    gabarit et le moteur n'ont pas changé est reprise telle quelle, sans nouveau rendu (mêmes
    octets). ``stats`` (``dict``) reçoit ``total``, ``reprises``, ``rendues`` et
    ``avertissements`` (textes nettoyés). ``jobs > 1`` : processus parallèles ; fichiers
    identiques à l'octet près à ``jobs=1``. ``progress(faites, total)`` est appelé au fil de
    l'eau dans le processus appelant. ``refresh`` : le cache n'est pas lu (toutes les fiches sont
    rendues) mais il est mis à jour. ``engine="weasyprint"`` (``"weasyprint-ua"``) : rendu de
    référence d'avant Typst (HTML + WeasyPrint, non balisé (balisé PDF/UA-1), sans cache), pour
    ``make bench``.
    """
    out_dir = Path(out_dir)
    ordered = _ordered(fiches, out_dir, annee, check=engine in WEASYPRINT_ENGINES)
    jobs = max(1, min(int(jobs or 1), len(ordered) or 1))
    if jobs == 1:
        return _start(ordered, out_dir, region_label, annee, fictif, None, 1, progress, cache_dir, stats,
                      engine, refresh)()
    with fiche_pool(jobs) as pool:
        return _start(ordered, out_dir, region_label, annee, fictif, pool, jobs, progress, cache_dir, stats,
                      engine, refresh)()
