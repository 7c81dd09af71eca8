"""Fiches établissement (PDF A4, une ou deux pages) pour les négociateurs des CPOM.

Rendues **sans notebook ni noyau** : un gabarit Jinja2 (``templates/fiche/fiche.html.j2``,
échappement automatique activé) rempli à partir d'un simple ``dict`` par établissement, puis
WeasyPrint. La feuille de style est analysée une fois par processus et la configuration des
polices réutilisée ; ``jobs > 1`` répartit les fiches entre processus (résultat identique à
l'octet près à ``jobs=1``).

Schéma d'une fiche (``dict``)
-----------------------------
Clés obligatoires : ``finess_geo``, ``raison_sociale``. Toute autre clé peut manquer ou valoir
``None`` (affiché « — ») ; les listes absentes valent ``[]``. Les textes sont échappés (aucun HTML
interprété).

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
        # facultatif : petite figure d'historique (texte SVG, p. ex. de
        # analysis.figures.fig_to_svg ; incorporée comme image) et son titre
        "figure_svg": "<svg ...>...</svg>",
        "figure_titre": "Historique des indicateurs",
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
import hashlib
import math
import numbers
import os
import re
from collections import OrderedDict
from collections.abc import Callable, Iterable, Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from .fmt import MISSING, fmt_date, fmt_dec, fmt_num, fmt_pct, is_missing
from .render import fixed_font_timestamps, local_url_fetcher, source_date

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


# --------------------------------------------------------------------------- rendu


class _Renderer:
    """État réutilisé d'une fiche à l'autre dans un processus : gabarit, CSS analysée, polices."""

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

    def pdf(self, fiche: Mapping[str, Any], out: Path, **kw) -> Path:
        from weasyprint import HTML

        doc = HTML(string=self.html(fiche, **kw), base_url=str(TEMPLATES_DIR),
                   url_fetcher=_url_fetcher).render(
            stylesheets=[self.css], font_config=self.font_config
        )
        doc.metadata.lang = doc.metadata.lang or "fr"
        tmp = out.with_name(out.name + ".tmp")
        with fixed_font_timestamps(), _memoized_font_subsets():
            doc.write_pdf(str(tmp))
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
    """HTML d'une fiche (utile pour les tests et le débogage)."""
    return _renderer().html(fiche, region_label=region_label, annee=annee, fictif=fictif)


def _render_chunk(args: tuple) -> list[str]:
    fiches, out_dir, region_label, annee, fictif = args
    r = _renderer()
    out = []
    for fiche in fiches:
        path = Path(out_dir) / f"{str(fiche['finess_geo']).strip()}.pdf"
        r.pdf(fiche, path, region_label=region_label, annee=annee, fictif=fictif)
        out.append(str(path))
    return out


def _chunks(items: Sequence, size: int) -> list[list]:
    return [list(items[i:i + size]) for i in range(0, len(items), size)]


def _ordered(fiches: list[dict], out_dir: Path, annee: int) -> list[dict]:
    """Contrôle en amont (une erreur de schéma arrête tout avant d'écrire) ; fiches triées par FINESS."""
    out_dir.mkdir(parents=True, exist_ok=True)
    for f in fiches:
        normalize_fiche(f, annee)
    ordered = sorted(fiches, key=lambda f: str(f["finess_geo"]).strip())
    keys = [str(f["finess_geo"]).strip() for f in ordered]
    dup = sorted({k for k in keys if keys.count(k) > 1}) if len(set(keys)) != len(keys) else []
    if dup:
        raise ValueError(f"FINESS géographique en double dans les fiches : {', '.join(dup)}")
    return ordered


#: priorité abaissée des processus de fiches qui tournent pendant les notebooks (``nice``)
BACKGROUND_NICE = 10


def _background_worker() -> None:
    try:
        os.nice(BACKGROUND_NICE)
    except (AttributeError, OSError):  # pragma: no cover - Windows
        pass


def fiche_pool(jobs: int, *, background: bool = False):
    """Pool de ``jobs`` processus pour :func:`start_render_fiches` (à utiliser avec ``with``).

    À créer **avant** tout noyau Jupyter ou client ZMQ du processus (« fork » sous Linux).
    ``background`` : priorité abaissée, pour que les fiches n'occupent que le temps de
    processeur laissé libre par les notebooks et le rapport qui tournent en même temps.
    """
    import multiprocessing as mp

    method = "fork" if "fork" in mp.get_all_start_methods() else "spawn"
    return mp.get_context(method).Pool(max(1, int(jobs)),
                                       initializer=_background_worker if background else None)


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
) -> Callable[[], list[Path]]:
    """Comme :func:`render_fiches` avec un pool existant (:func:`fiche_pool`), sans attendre :
    les fiches sont rendues en arrière-plan ; la fonction renvoyée attend la dernière (en
    appelant ``progress``) et renvoie les chemins triés par FINESS. Fichiers identiques à
    l'octet près à ``jobs=1``."""
    out_dir = Path(out_dir)
    return _start(_ordered(fiches, out_dir, annee), out_dir, region_label, annee, fictif, pool, jobs,
                  progress)


def _start(ordered, out_dir, region_label, annee, fictif, pool, jobs, progress):
    total = len(ordered)
    if total == 0:
        return lambda: []
    jobs = max(1, min(int(jobs or 1), total))
    size = max(1, min(25, math.ceil(total / (jobs * 4))))
    tasks = [(c, str(out_dir), region_label, annee, fictif) for c in _chunks(ordered, size)]
    results = pool.imap(_render_chunk, tasks)

    def wait() -> list[Path]:
        done, paths = 0, []
        for result in results:
            paths += result
            done += len(result)
            if progress:
                progress(done, total)
        return [Path(p) for p in paths]

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
) -> list[Path]:
    """Écrit ``out_dir/<finess_geo>.pdf`` pour chaque fiche ; renvoie les chemins triés par FINESS.

    ``jobs > 1`` : processus parallèles (``multiprocessing``, « fork » sous Linux) ; fichiers
    identiques à l'octet près à ``jobs=1``. ``progress(faites, total)`` est appelé au fil de
    l'eau dans le processus appelant.
    """
    out_dir = Path(out_dir)
    ordered = _ordered(fiches, out_dir, annee)
    total = len(ordered)
    if total == 0:
        return []
    jobs = max(1, min(int(jobs or 1), total))
    if jobs == 1:
        done = 0
        paths: list[str] = []
        for chunk in _chunks(ordered, 1):
            paths += _render_chunk((chunk, str(out_dir), region_label, annee, fictif))
            done += len(chunk)
            if progress:
                progress(done, total)
        return [Path(p) for p in paths]
    # « fork » (Linux) : pas de ré-import du module principal, démarrage immédiat ; sinon
    # « spawn » (l'appelant doit alors protéger son point d'entrée par
    # ``if __name__ == "__main__":``).
    with fiche_pool(jobs) as pool:
        return _start(ordered, out_dir, region_label, annee, fictif, pool, jobs, progress)()
