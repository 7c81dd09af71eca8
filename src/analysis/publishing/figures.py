"""Figures matplotlib pour l'impression (rapport HTML/PDF et fiches établissement).

- Palette Okabe–Ito (lisible par les personnes daltoniennes), doublée de marqueurs et de types de
  trait différents : une courbe se reconnaît aussi en noir et blanc.
- Virgule décimale et espace insécable des milliers sur les axes (:class:`FrenchFormatter`), sans
  dépendre d'une locale système.
- Sortie SVG déterministe : ``svg.hashsalt`` fixé, métadonnée ``Date`` supprimée. Le texte reste
  du texte (``svg.fonttype = 'none'``, police DejaVu Sans, celle du corps du rapport) : il se
  sélectionne et se cherche dans le PDF (Typst garde le texte des SVG ; ancrages, rotations et
  alignements vérifiés sur les pages rendues).

Les aides construisent des ``matplotlib.figure.Figure`` sans pyplot (aucun backend requis, pas
de fuite mémoire sur 300 fiches). Dans un notebook, **toujours** afficher une figure avec :func:`show` (sortie ``image/svg+xml``) :
une figure laissée à ``plt.show()`` sous un backend non interactif n'atteint jamais les sorties
du notebook et disparaît du HTML et du PDF.
"""

from __future__ import annotations

import hashlib
import io
import json
import math
from collections.abc import Sequence
from pathlib import Path
from typing import Any, NamedTuple

import matplotlib
import numpy as np
import pandas as pd
from matplotlib.figure import Figure
from matplotlib.ticker import Formatter, LogLocator, MaxNLocator, NullFormatter

from .fiches import FIGURE_CACHE, FIGURE_CACHE_MAX_ENTRIES  # noqa: F401 - nom du cache des figures
from .fmt import fmt_dec

__all__ = [
    "OKABE_ITO",
    "PALETTE",
    "MARKERS",
    "STATUT_COLORS",
    "setup_matplotlib",
    "FrenchFormatter",
    "french_axis",
    "line_trend",
    "funnel_plot",
    "bar_share",
    "interval_comparison",
    "fig_to_svg",
    "figure_title",
    "GENERIC_ALT",
    "show",
    "DrawnFigure",
    "draw",
    "use_cache",
]

OKABE_ITO = {
    "noir": "#000000",
    "orange": "#E69F00",
    "bleu_ciel": "#56B4E9",
    "vert": "#009E73",
    "jaune": "#F0E442",
    "bleu": "#0072B2",
    "vermillon": "#D55E00",
    "pourpre": "#CC79A7",
}
#: ordre d'usage des couleurs (le jaune, peu visible sur blanc, en dernier)
PALETTE = [
    OKABE_ITO[k]
    for k in ("bleu", "orange", "vert", "vermillon", "pourpre", "bleu_ciel", "noir", "jaune")
]
MARKERS = ["o", "s", "^", "D", "v", "P", "X", "*"]
LINESTYLES = ["-", "--", "-.", ":"]
#: couleurs des statuts d'indicateur (identiques dans les fiches)
STATUT_COLORS = {
    "atteint": OKABE_ITO["bleu"],
    "non_atteint": OKABE_ITO["vermillon"],
    "non_evaluable": "#7F7F7F",
    "non_concerne": "#BBBBBB",
    "sans_cible": OKABE_ITO["bleu_ciel"],
}
GREY = "#6E6E6E"
SVG_HASHSALT = "cpom-qualite"

#: largeur utile d'une page A4 (marges 2 cm) en pouces
TEXT_WIDTH_IN = 6.6


def setup_matplotlib() -> None:
    """Réglages matplotlib pour l'impression ; à appeler en tête de chaque notebook.

    Idempotent. Rend les SVG déterministes (``svg.hashsalt``).
    """
    matplotlib.rcParams.update(
        {
            "svg.hashsalt": SVG_HASHSALT,
            "svg.fonttype": "none",
            "svg.image_inline": True,
            "font.family": "DejaVu Sans",
            "font.size": 9,
            "axes.titlesize": 10,
            "axes.titleweight": "bold",
            "axes.titlelocation": "left",
            "axes.labelsize": 9,
            "xtick.labelsize": 8,
            "ytick.labelsize": 8,
            "legend.fontsize": 8,
            "legend.frameon": False,
            "figure.figsize": (TEXT_WIDTH_IN, 3.4),
            "figure.dpi": 100,
            "savefig.dpi": 150,
            "figure.constrained_layout.use": True,
            "axes.prop_cycle": matplotlib.cycler(color=PALETTE),
            "axes.spines.top": False,
            "axes.spines.right": False,
            "axes.grid": True,
            "axes.grid.axis": "y",
            "grid.color": "#DDDDDD",
            "grid.linewidth": 0.6,
            "axes.axisbelow": True,
            "axes.unicode_minus": False,
            "axes.formatter.use_locale": False,
            "lines.linewidth": 1.6,
            "lines.markersize": 5,
            "path.simplify": True,
        }
    )


class FrenchFormatter(Formatter):
    """Graduations à la française : ``0,25``, ``1 500``, ``80 %``.

    Le nombre de décimales est déduit de l'écart entre graduations (sauf ``decimals`` fixé).
    ``thousands=False`` pour des années (``2024`` et non ``2 024``).
    """

    def __init__(self, decimals: int | None = None, suffix: str = "", thousands: bool = True):
        self.decimals = decimals
        self.suffix = suffix
        self.thousands = thousands
        self.locs: Sequence[float] = []

    def set_locs(self, locs):
        self.locs = list(locs)

    def _auto_decimals(self) -> int:
        locs = sorted(float(v) for v in self.locs if np.isfinite(v))
        steps = [b - a for a, b in zip(locs, locs[1:]) if b - a > 0]
        if not steps:
            return 0
        step = min(steps)
        for d in range(0, 7):
            if abs(round(step * 10**d) - step * 10**d) < 1e-6 * max(1.0, step * 10**d):
                return d
        return 6

    def __call__(self, x, pos=None):
        d = self.decimals if self.decimals is not None else self._auto_decimals()
        if abs(x) < 10 ** (-(d + 2)):
            x = 0.0
        return fmt_dec(x, d, thousands=self.thousands) + self.suffix

    def format_data_short(self, value):
        return fmt_dec(value, 3)


def french_axis(ax, axis: str = "y", *, decimals: int | None = None, suffix: str = "",
                thousands: bool = True) -> None:
    """Pose un :class:`FrenchFormatter` sur l'axe ``'x'``, ``'y'`` ou ``'both'``."""
    axes = {"x": [ax.xaxis], "y": [ax.yaxis], "both": [ax.xaxis, ax.yaxis]}[axis]
    for a in axes:
        a.set_major_formatter(FrenchFormatter(decimals, suffix, thousands))


def _is_year_like(values: pd.Series) -> bool:
    v = pd.to_numeric(pd.Series(values), errors="coerce").dropna()
    return len(v) > 0 and bool(((v % 1 == 0) & (v >= 1900) & (v <= 2200)).all())


def _style(i: int) -> dict[str, Any]:
    return {
        "color": PALETTE[i % len(PALETTE)],
        "marker": MARKERS[i % len(MARKERS)],
        "linestyle": LINESTYLES[(i // len(PALETTE)) % len(LINESTYLES)],
    }


def _legend_ncol(labels: Sequence[str], width_in: float, max_cols: int,
                 handlelength: float = 2.0) -> int:
    """Nombre de colonnes de légende qui tient dans la largeur de la figure (estimation :
    ~0,6 em par caractère à la taille de police de la légende)."""
    size_in = float(matplotlib.rcParams["legend.fontsize"]
                    if not isinstance(matplotlib.rcParams["legend.fontsize"], str) else 8) / 72
    widest = max((len(str(lab)) for lab in labels), default=0)
    entry = (0.6 * widest + handlelength + 0.8 + 2.0) * size_in  # texte, symbole, marges
    fit = int((width_in * 0.96) // max(entry, 1e-6))
    return max(1, min(max_cols, len(labels), fit))


def _bottom_legend(fig: Figure, ax, width_in: float, max_cols: int = 4,
                   handlelength: float = 2.0) -> None:
    """Légende sous le graphique, sur toute la largeur (placée par la mise en page
    « constrained » : jamais rognée ni superposée aux axes)."""
    handles, labels = ax.get_legend_handles_labels()
    if not labels:
        return
    fig.legend(handles, labels, loc="outside lower center",
               ncol=_legend_ncol(labels, width_in, max_cols, handlelength),
               handlelength=handlelength)


def _new_figure(height: float, width: float = TEXT_WIDTH_IN) -> tuple[Figure, Any]:
    setup_matplotlib()
    fig = Figure(figsize=(width, height), layout="constrained")
    ax = fig.add_subplot()
    return fig, ax


def line_trend(
    df: pd.DataFrame,
    x: str,
    y: str,
    hue: str | None = None,
    title: str = "",
    ylabel: str = "",
    target: float | None = None,
    *,
    xlabel: str = "",
    percent: bool = False,
    target_label: str = "Cible",
    ylim: tuple[float, float] | None = None,
    height: float = 3.2,
    width: float = TEXT_WIDTH_IN,
) -> Figure:
    """Évolution d'une valeur (``y``) selon ``x`` (souvent ``annee``), une courbe par ``hue``.

    ``target`` trace une ligne horizontale pointillée « Cible ». ``percent=True`` suffixe les
    graduations de ``%`` (valeurs en points 0–100).
    """
    fig, ax = _new_figure(height, width)
    data = df[[c for c in dict.fromkeys([x, y, hue]) if c is not None]].dropna(subset=[y])
    groups = [(None, data)] if hue is None else list(data.groupby(hue, sort=True, dropna=False, observed=True))
    for i, (key, g) in enumerate(groups):
        g = g.sort_values(x)
        ax.plot(g[x].to_numpy(dtype=float) if _is_year_like(g[x]) else g[x], g[y].astype(float),
                label=None if key is None else str(key), **_style(i))
    if target is not None and not (isinstance(target, float) and math.isnan(target)):
        ax.axhline(float(target), color=GREY, linestyle="--", linewidth=1.1, zorder=1)
        ax.annotate(
            f"{target_label} : {fmt_dec(target, 0 if float(target).is_integer() else 1)}"
            + (" %" if percent else ""),
            xy=(1.0, float(target)), xycoords=("axes fraction", "data"),
            xytext=(-2, 3), textcoords="offset points", ha="right", va="bottom",
            fontsize=7.5, color=GREY,
        )
    if _is_year_like(data[x]):
        years = sorted(pd.to_numeric(data[x]).dropna().astype(int).unique())
        ax.set_xticks(years)
        ax.xaxis.set_major_formatter(FrenchFormatter(0, thousands=False))
        if len(years) == 1:
            ax.set_xlim(years[0] - 1, years[0] + 1)
    elif pd.api.types.is_numeric_dtype(data[x]):
        french_axis(ax, "x")
    french_axis(ax, "y", suffix="\u00a0%" if percent else "")
    if ylim is not None:
        ax.set_ylim(*ylim)
    ax.set_title(title)
    ax.set_ylabel(ylabel)
    ax.set_xlabel(xlabel)
    if hue is not None and len(groups) > 0:
        _bottom_legend(fig, ax, width, handlelength=2.6)
    return fig


def funnel_plot(
    points_df: pd.DataFrame,
    limits_df: pd.DataFrame,
    title: str = "",
    *,
    x: str = "n",
    y: str = "valeur",
    reference: float | None = None,
    xlabel: str = "Effectif (dénominateur)",
    ylabel: str = "",
    percent: bool = False,
    label: str | None = None,
    highlight: str | None = None,
    logx: bool = False,
    height: float = 3.6,
    width: float = TEXT_WIDTH_IN,
) -> Figure:
    """Diagramme en entonnoir (Spiegelhalter 2005).

    - ``points_df`` : un point par établissement, colonnes ``x`` (dénominateur) et ``y`` (valeur) ;
      facultatif : ``label`` (nom d'une colonne de texte, annotée pour les points ``highlight``) et
      ``highlight`` (nom d'une colonne booléenne : points mis en évidence, ex. hors limites).
    - ``limits_df`` : limites calculées ailleurs, colonnes ``x`` et ``bas_95``, ``haut_95``,
      ``bas_998``, ``haut_998`` (celles qui manquent ne sont pas tracées) ; facultatif
      ``reference`` (valeur de référence, sinon l'argument ``reference``).
    """
    fig, ax = _new_figure(height, width)
    lim = limits_df.sort_values(x)
    xs = lim[x].to_numpy(dtype=float)
    for lo, hi, style, lab in (
        ("bas_998", "haut_998", "-", "Limites à 99,8 %"),
        ("bas_95", "haut_95", "--", "Limites à 95 %"),
    ):
        first = True
        for col in (lo, hi):
            if col in lim.columns:
                ax.plot(xs, lim[col].to_numpy(dtype=float), color=GREY, linestyle=style,
                        linewidth=1.0, label=lab if first else None, zorder=2)
                first = False
    ref = reference
    if ref is None and "reference" in lim.columns and lim["reference"].notna().any():
        ref = float(lim["reference"].dropna().iloc[0])
    if ref is not None:
        ax.axhline(float(ref), color="#000000", linewidth=1.0, zorder=2,
                   label="Valeur de référence")
    pts = points_df.dropna(subset=[x, y])
    hl = pts[highlight].fillna(False).astype(bool) if highlight and highlight in pts else None
    base = pts if hl is None else pts[~hl]
    ax.scatter(base[x].astype(float), base[y].astype(float), s=16, color=PALETTE[0],
               edgecolor="white", linewidth=0.4, zorder=3, label="Établissement")
    if hl is not None and hl.any():
        out = pts[hl]
        ax.scatter(out[x].astype(float), out[y].astype(float), s=30, marker="D",
                   color=OKABE_ITO["vermillon"], edgecolor="black", linewidth=0.5, zorder=4,
                   label="Établissement hors limites")
        if label and label in out:
            for _, row in out.sort_values([x, y]).iterrows():
                ax.annotate(str(row[label])[:28], (float(row[x]), float(row[y])),
                            xytext=(4, 3), textcoords="offset points", fontsize=6.5)
    if logx:
        ax.set_xscale("log")
        xmin = float(np.nanmin(pd.to_numeric(pts[x], errors="coerce"))) if len(pts) else 1.0
        xmax = float(np.nanmax(pd.to_numeric(pts[x], errors="coerce"))) if len(pts) else 10.0
        decades = math.log10(max(xmax, 1e-9) / max(xmin, 1e-9)) if xmin > 0 else 3.0
        subs = (1.0, 2.0, 5.0) if decades <= 2.2 else (1.0, 3.0) if decades <= 3.2 else (1.0,)
        ax.xaxis.set_major_locator(LogLocator(base=10, subs=subs))
        ax.xaxis.set_minor_formatter(NullFormatter())
        ax.xaxis.set_major_formatter(FrenchFormatter(0))
    else:
        french_axis(ax, "x")
    french_axis(ax, "y", suffix="\u00a0%" if percent else "")
    ax.set_title(title)
    ax.set_xlabel(xlabel)
    ax.set_ylabel(ylabel)
    _bottom_legend(fig, ax, width)
    return fig


def bar_share(
    df: pd.DataFrame,
    category: str,
    value: str,
    title: str = "",
    *,
    hue: str | None = None,
    xlabel: str = "",
    percent: bool = True,
    horizontal: bool = True,
    sort: bool = True,
    colors: dict[str, str] | None = None,
    annotate: bool = True,
    height: float | None = None,
    width: float = TEXT_WIDTH_IN,
) -> Figure:
    """Barres (horizontales par défaut) : part ou effectif par catégorie.

    Avec ``hue``, barres empilées (une couleur par modalité de ``hue``, ``colors`` pour imposer
    les couleurs, ex. :data:`STATUT_COLORS`). Les valeurs sont écrites au bout des barres.
    """
    if hue is None:
        table = df.set_index(category)[[value]]
    else:
        table = df.pivot_table(index=category, columns=hue, values=value, aggfunc="sum",
                               fill_value=0, sort=True, observed=True)
    if sort:
        table = table.loc[table.sum(axis=1).sort_values(ascending=True, kind="mergesort").index]
    n = len(table)
    if height is None:
        height = min(9.0, max(1.8, 0.32 * n + 1.1))
    fig, ax = _new_figure(height, width)
    labels = [str(v) for v in table.index]
    pos = np.arange(n)
    left = np.zeros(n)
    for i, col in enumerate(table.columns):
        vals = table[col].to_numpy(dtype=float)
        color = (colors or {}).get(str(col), PALETTE[i % len(PALETTE)])
        kw = {"color": color, "label": None if hue is None else str(col),
              "edgecolor": "white", "linewidth": 0.5}
        if horizontal:
            ax.barh(pos, vals, left=left, height=0.65, **kw)
        else:
            ax.bar(pos, vals, bottom=left, width=0.65, **kw)
        left = left + vals
    if annotate:
        dec = 1 if percent else (0 if np.allclose(left, np.round(left)) else 1)
        for p, tot in zip(pos, left):
            txt = fmt_dec(tot, dec) + ("\u00a0%" if percent else "")
            if horizontal:
                ax.annotate(txt, (tot, p), xytext=(3, 0), textcoords="offset points",
                            va="center", fontsize=7.5)
            else:
                ax.annotate(txt, (p, tot), xytext=(0, 3), textcoords="offset points",
                            ha="center", fontsize=7.5)
    if horizontal:
        ax.set_yticks(pos, labels)
        ax.grid(False, axis="y")
        ax.grid(True, axis="x")
        french_axis(ax, "x", suffix="\u00a0%" if percent else "")
        ax.set_xlabel(xlabel)
        ax.margins(x=0.08)
    else:
        ax.set_xticks(pos, labels, rotation=30 if max(map(len, labels), default=0) > 8 else 0,
                      ha="right" if max(map(len, labels), default=0) > 8 else "center")
        french_axis(ax, "y", suffix="\u00a0%" if percent else "")
        ax.set_ylabel(xlabel)
        ax.yaxis.set_major_locator(MaxNLocator(integer=not percent))
    ax.set_title(title)
    if hue is not None:
        _bottom_legend(fig, ax, width, max_cols=5)
    return fig


def interval_comparison(
    df: pd.DataFrame,
    category: str,
    value: str,
    lo: str,
    hi: str,
    other: str,
    title: str = "",
    *,
    flag: str | None = None,
    value_label: str = "Valeur recalculée (intervalle)",
    other_label: str = "Valeur déclarée",
    flag_label: str = "Valeur déclarée hors intervalle",
    xlabel: str = "",
    percent: bool = True,
    height: float | None = None,
    width: float = TEXT_WIDTH_IN,
) -> Figure:
    """Une ligne par catégorie (ordre de ``df``, la première en haut) : ``value`` (rond) et son
    intervalle ``lo``–``hi`` (trait), face à ``other`` (losange) ; les lignes où ``flag`` est vrai ont
    un losange plein vermillon (forme et couleur : l'écart se voit aussi en noir et blanc)."""
    n = len(df)
    if height is None:
        height = min(9.0, max(2.0, 0.3 * n + 1.3))
    fig, ax = _new_figure(height, width)
    pos = np.arange(n)[::-1]
    v = pd.to_numeric(df[value], errors="coerce").to_numpy(dtype=float)
    lo_v = pd.to_numeric(df[lo], errors="coerce").to_numpy(dtype=float)
    hi_v = pd.to_numeric(df[hi], errors="coerce").to_numpy(dtype=float)
    o = pd.to_numeric(df[other], errors="coerce").to_numpy(dtype=float)
    flagged = (df[flag].fillna(False).astype(bool).to_numpy() if flag and flag in df else np.zeros(n, dtype=bool))
    ok = np.isfinite(lo_v) & np.isfinite(hi_v)
    ax.hlines(pos[ok], lo_v[ok], hi_v[ok], color=PALETTE[0], linewidth=2.2, zorder=2)
    ax.scatter(v, pos, s=28, color=PALETTE[0], edgecolor="white", linewidth=0.5, zorder=3, label=value_label)
    base = ~flagged & np.isfinite(o)
    ax.scatter(o[base], pos[base], s=34, marker="D", facecolor="white", edgecolor="black", linewidth=0.9,
               zorder=4, label=other_label)
    out = flagged & np.isfinite(o)
    if out.any():
        ax.scatter(o[out], pos[out], s=40, marker="D", color=OKABE_ITO["vermillon"], edgecolor="black",
                   linewidth=0.6, zorder=5, label=flag_label)
    ax.set_yticks(pos, [str(x) for x in df[category]])
    ax.grid(False, axis="y")
    ax.grid(True, axis="x")
    if percent:
        ax.set_xlim(-2, 102)
    french_axis(ax, "x", suffix="\u00a0%" if percent else "")
    ax.set_xlabel(xlabel)
    ax.set_title(title)
    _bottom_legend(fig, ax, width, max_cols=3)
    return fig


def _svg_bytes(fig: Figure) -> bytes:
    setup_matplotlib()
    buf = io.BytesIO()
    fig.savefig(buf, format="svg", metadata={"Date": None, "Creator": None})
    return buf.getvalue()


def fig_to_svg(fig: Figure, *, close: bool = True) -> str:
    """SVG (texte) de la figure, sans en-tête XML ni DOCTYPE, prêt à insérer dans du HTML.

    Déterministe : mêmes octets d'une exécution à l'autre.
    """
    svg = _svg_bytes(fig).decode("utf-8")
    start = svg.find("<svg")
    svg = svg[start:] if start >= 0 else svg
    if close:
        # une figure créée par pyplot serait sinon ré-affichée (PNG) par le backend inline
        import matplotlib.pyplot as plt

        plt.close(fig)
    return svg.strip() + "\n"


#: texte alternatif par défaut d'une figure, générique : les tests le repèrent (à remplacer par
#: une description tirée des données, passée à :func:`show` par ``alt=``)
GENERIC_ALT = "Figure"


def figure_title(fig: Figure) -> str:
    """Titre du premier axe titré de la figure (titre à gauche, au centre ou à droite), ou ``""``."""
    for ax in fig.axes:
        for loc in ("left", "center", "right"):
            title = ax.get_title(loc=loc).strip()
            if title:
                return title
    return ""


# --------------------------------------------------------------------------- figures déjà dessinées


class DrawnFigure(NamedTuple):
    """Figure déjà convertie en SVG (:func:`draw`), avec son titre ; s'affiche par :func:`show`."""

    svg: str
    title: str


#: figures déjà dessinées, par clé (:func:`_figure_key`) : ``None`` tant que :func:`use_cache`
#: n'a rien désigné (un notebook lancé seul dessine tout)
_CACHE = None


def use_cache(folder: Path | str | None) -> None:
    """Figures déjà dessinées reprises de ``folder`` (``None`` : aucune). Appelé par
    :func:`analysis.orchestration.context.load_context` quand ``make report`` lance le notebook."""
    global _CACHE
    from .fiches import SheetCache

    _CACHE = None if folder is None else SheetCache(folder, suffix=".json")


class _Unhashable(Exception):
    pass


def _column_types(values: pd.Series) -> tuple:
    """Ce que les valeurs hachées d'une colonne ne disent pas : catégories et leur ordre, types
    des valeurs d'une colonne ``object`` (``1`` et ``"1"`` ont la même empreinte)."""
    if isinstance(values.dtype, pd.CategoricalDtype):
        return ("category", list(values.cat.categories), bool(values.cat.ordered))
    if values.dtype == object:
        return ("object", pd.api.types.infer_dtype(values, skipna=False))
    return (str(values.dtype),)


def _hash_values(h, value) -> None:
    try:
        h.update(pd.util.hash_pandas_object(value, index=True).to_numpy().tobytes())
    except TypeError as exc:  # listes ou dictionnaires dans les cellules
        raise _Unhashable(str(exc)) from exc


def _feed(h, value) -> None:
    """Empreinte d'un argument d'une fonction de dessin : tableaux (valeurs, index, colonnes,
    types, catégories), textes, nombres, listes et dictionnaires ; autre chose : pas de reprise."""
    if isinstance(value, pd.DataFrame):
        h.update(b"D" + repr((list(value.columns), [_column_types(value[c]) for c in value.columns],
                              list(value.index.names), _column_types(value.index.to_series()),
                              value.shape)).encode())
        _hash_values(h, value)
    elif isinstance(value, pd.Series):
        h.update(b"S" + repr((value.name, _column_types(value), _column_types(value.index.to_series()),
                              value.shape)).encode())
        _hash_values(h, value)
    elif value is None or isinstance(value, (bool, int, float, str, np.integer, np.floating)):
        h.update(b"V" + repr((type(value).__name__, value)).encode() + b"\0")
    elif isinstance(value, (list, tuple)):
        h.update(f"L{len(value)}".encode())
        for v in value:
            _feed(h, v)
    elif isinstance(value, dict):
        h.update(f"M{len(value)}".encode())
        for k in sorted(value, key=repr):
            _feed(h, k)
            _feed(h, value[k])
    else:
        raise _Unhashable(type(value).__name__)


_CODE_SALT: str | None = None


def _code_salt() -> str:
    """Ce qui dessine une figure, hors ses arguments : ce module et la mise en forme des nombres,
    versions de matplotlib, NumPy, pandas, IPython et Python."""
    global _CODE_SALT
    if _CODE_SALT is None:
        import platform

        import IPython

        from . import fmt

        # IPython : le SVG gardé est celui que réécrit son affichage (_as_displayed), avec le
        # xml.dom.minidom de cette version de Python
        h = hashlib.sha256(f"{matplotlib.__version__}|{np.__version__}|{pd.__version__}|{IPython.__version__}|"
                           f"{platform.python_version()}|".encode())
        for path in (Path(__file__), Path(fmt.__file__)):
            h.update(path.read_bytes())
        _CODE_SALT = h.hexdigest()
    return _CODE_SALT


def _figure_key(builder, args, kwargs) -> str | None:
    if getattr(builder, "__module__", None) != __name__ or "<" in getattr(builder, "__qualname__", "<"):
        return None  # une fonction d'ailleurs : son code n'est pas dans l'empreinte, jamais reprise
    h = hashlib.sha256(f"{_code_salt()}|{builder.__module__}.{builder.__qualname__}|".encode())
    # réglages en vigueur (setup_matplotlib, ou changés par un notebook)
    h.update(repr(sorted(matplotlib.rcParams.items())).encode())
    try:
        _feed(h, list(args))
        _feed(h, dict(kwargs))
    except _Unhashable:
        return None
    return h.hexdigest()


def draw(builder, *args, **kwargs) -> DrawnFigure:
    """La figure ``builder(*args, **kwargs)`` (une fonction de ce module) en SVG, avec son titre.

    Reprise du cache (:func:`use_cache`) quand la même fonction, avec les mêmes arguments (mêmes
    valeurs des tableaux), les mêmes réglages et le même code de dessin, l'a déjà dessinée : mêmes
    octets qu'un nouveau dessin. Une relance après la correction d'une ligne ne redessine ainsi que
    les figures dont les données ont changé."""
    key = _figure_key(builder, args, kwargs) if _CACHE is not None else None
    if key is not None:
        data = _CACHE.get(key)
        if data is not None:
            try:
                d = json.loads(data)
                return DrawnFigure(d["svg"], d["titre"])
            except (ValueError, KeyError, TypeError):
                pass  # entrée illisible : redessinée (et remplacée) ci-dessous
    fig = builder(*args, **kwargs)
    drawn = DrawnFigure(_as_displayed(fig_to_svg(fig)), figure_title(fig))
    if key is not None:
        _CACHE.put(key, json.dumps({"svg": drawn.svg, "titre": drawn.title}, ensure_ascii=False).encode("utf-8"))
    return drawn


def _as_displayed(svg: str) -> str:
    """Le SVG tel que l'affiche IPython (``IPython.display.SVG`` : élément ``<svg>`` relu puis
    réécrit par ``xml.dom.minidom``). Fait une fois au dessin d'une figure :func:`draw`, gardé ainsi
    dans le cache, puis affiché tel quel par :func:`show`, sans relire le XML à chaque reprise."""
    from IPython.display import SVG

    return SVG(data=svg).data


def show(fig: Figure | DrawnFigure, *, alt: str | None = None, caption: str | None = None,
         close: bool = True) -> None:
    """Affiche la figure dans le notebook en SVG (incorporé au HTML puis au PDF).

    - ``alt`` : texte alternatif (ce que montre la figure et son message principal, tiré des
      données) ; lu par les lecteurs d'écran dans la page web et dans le PDF balisé. Sans
      ``alt``, le texte générique :data:`GENERIC_ALT`.
    - ``caption`` : légende ; numérotée « Figure n : … » à la mise en page du rapport
      (:mod:`analysis.publishing.render`). Sans ``caption``, le titre du graphique.

    Les deux textes voyagent dans les métadonnées de la sortie du notebook
    (``metadata["cpom_figure"]``), lues par le modèle ``templates/rapport``.
    Ne renvoie rien (sinon, en dernière ligne de cellule, la figure serait affichée deux fois).
    ``fig`` : une figure matplotlib, ou une figure déjà dessinée (:func:`draw`).
    """
    from IPython.display import display

    drawn = isinstance(fig, DrawnFigure)
    caption = (caption if caption is not None else fig.title if drawn else figure_title(fig)).strip()
    alt = " ".join(str(alt).split()) if alt is not None and str(alt).strip() else GENERIC_ALT
    svg = fig.svg if drawn else _as_displayed(fig_to_svg(fig, close=close))
    # la sortie de display(SVG(data=svg)), sans relire le XML (déjà fait : _as_displayed), et en
    # texte brut le texte alternatif plutôt que « <IPython.core.display.SVG object> »
    display({"image/svg+xml": svg, "text/plain": alt}, raw=True,
            metadata={"cpom_figure": {"alt": alt, "caption": " ".join(caption.split())}})
