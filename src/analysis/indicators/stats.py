"""Outils statistiques pour comparer les établissements (intervalles, tests, entonnoirs).

Les lois (Poisson, binomiale, Student, normale) sont les fonctions spéciales de SciPy
(``scipy.special`` : ``pdtr``/``pdtrik``, ``bdtr``/``bdtrik``, ``stdtrit``, ``ndtri``), celles sur
lesquelles ``scipy.stats`` construit ces lois, avec le même traitement des bornes et des valeurs
hors domaine (:func:`poisson_cdf`, :func:`poisson_ppf`, :func:`binom_cdf`, :func:`binom_ppf`,
:func:`t_ppf`, :func:`norm_isf`). Pourquoi pas ``scipy.stats`` lui-même : son import (et celui de
statsmodels, qui l'importe) coûte 0,5 s de processeur de plus que ``scipy.special`` au processus
des résultats, au début de chaque construction, sur le chemin de la relance après une correction
(mesuré : relance 8 % plus courte, six paires alternées sur six). Les tests comparent chaque
fonction à ``scipy.stats`` et l'intervalle de Wilson à statsmodels.

- intervalle de Wilson d'un score en % (formule de ``statsmodels.stats.proportion.proportion_confint``,
  ``method="wilson"``) ;
- probabilité de Poisson ``P(X <= observé)`` (:func:`poisson_cdf`) ;
- position d'un intervalle par rapport à une cible (au-dessus / non différent / en dessous), à la
  manière des tableaux de bord publics (HAS QualiScope, CMS Care Compare) ;
- évolution entre deux campagnes par la règle de non-chevauchement des intervalles (dispositif IFAQ) ;
- limites des graphiques en entonnoir (Spiegelhalter, *Stat Med* 2005), binomiales exactes pour les
  proportions et de Poisson pour les nombres d'événements.

Les fonctions acceptent un scalaire (elles rendent alors un scalaire) ou un tableau / une ``Series``
(elles rendent alors un tableau ou une ``Series`` de même index). Une valeur manquante en entrée donne
une valeur manquante en sortie (``NaN`` pour les nombres, ``None`` / ``<NA>`` pour les libellés).

Le module regroupe aussi la mise en forme française des nombres (virgule décimale, espace des milliers)
utilisée dans les motifs et commentaires destinés aux lecteurs.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np
import pandas as pd

from ..publishing.fmt import fmt_shortest


def scipy_special():
    """``scipy.special``, importé au premier calcul : le noyau des notebooks, qui relit des résultats
    déjà calculés, n'en paie pas l'import."""
    from scipy import special

    return special


# --------------------------------------------------------------------------------------------------
# Lois (comme scipy.stats : mêmes fonctions spéciales, mêmes bornes)
# --------------------------------------------------------------------------------------------------
def _floats(*args) -> list[np.ndarray]:
    return [np.array(a, dtype=float) for a in np.broadcast_arrays(*(np.asarray(a, dtype=float) for a in args))]


def poisson_cdf(k, mu) -> np.ndarray:
    """``P(X <= k)`` pour ``X ~ Poisson(mu)`` (``scipy.stats.poisson.cdf``) : 0 sous 0, 1 en
    ``+inf`` ; ``NaN`` si ``mu < 0`` ou si une entrée manque."""
    k, mu = _floats(k, mu)
    valid = mu >= 0
    out = np.where(valid & (k == np.inf), 1.0, np.where(valid & (k < 0), 0.0, np.nan))
    ok = valid & (k >= 0) & np.isfinite(k)
    if ok.any():
        out[ok] = np.clip(scipy_special().pdtr(np.floor(k[ok]), mu[ok]), 0.0, 1.0)
    return out


def poisson_ppf(q, mu) -> np.ndarray:
    """Plus petit entier ``k`` tel que ``P(X <= k) >= q`` (``scipy.stats.poisson.ppf``) : -1 pour
    ``q = 0``, ``+inf`` pour ``q = 1`` ; ``NaN`` hors domaine."""
    sp = scipy_special()
    q, mu = _floats(q, mu)
    valid = mu >= 0
    out = np.full(q.shape, np.nan)
    out[q == 0] = -1.0  # comme scipy.stats, quels que soient les paramètres
    out[valid & (q == 1)] = np.inf
    ok = valid & (q > 0) & (q < 1)
    if ok.any():
        qq, m = q[ok], mu[ok]
        vals = np.ceil(sp.pdtrik(qq, m))
        below = np.maximum(vals - 1, 0)
        out[ok] = np.where(sp.pdtr(below, m) >= qq, below, vals)
    return out


def _binom_valid(n: np.ndarray, p: np.ndarray) -> np.ndarray:
    with np.errstate(invalid="ignore"):
        return (n >= 0) & (n == np.floor(n)) & (p >= 0) & (p <= 1)


def binom_cdf(k, n, p) -> np.ndarray:
    """``P(X <= k)`` pour ``X ~ B(n, p)`` (``scipy.stats.binom.cdf``) : 0 sous 0, 1 à partir de
    ``n`` ; ``NaN`` si ``n`` n'est pas un entier positif ou ``p`` hors de [0, 1]."""
    k, n, p = _floats(k, n, p)
    valid = _binom_valid(n, p)
    out = np.where(valid & (k >= n), 1.0, np.where(valid, 0.0, np.nan))
    out[np.isnan(k)] = np.nan
    ok = valid & (k >= 0) & (k < n)
    if ok.any():
        # nombres entiers (bdtr refuse désormais des flottants)
        out[ok] = np.clip(scipy_special().bdtr(np.floor(k[ok]).astype(np.int64), n[ok].astype(np.int64), p[ok]),
                          0.0, 1.0)
    return out


def binom_ppf(q, n, p) -> np.ndarray:
    """Plus petit entier ``k`` tel que ``P(X <= k) >= q`` (``scipy.stats.binom.ppf``) : -1 pour
    ``q = 0``, ``n`` pour ``q = 1`` ; ``NaN`` hors domaine."""
    sp = scipy_special()
    q, n, p = _floats(q, n, p)
    valid = _binom_valid(n, p)
    out = np.full(q.shape, np.nan)
    out[q == 0] = -1.0  # comme scipy.stats, quels que soient les paramètres
    at_one = valid & (q == 1)
    out[at_one] = n[at_one]
    ok = valid & (q > 0) & (q < 1)
    if ok.any():
        qq, nn, pp = q[ok], n[ok], p[ok]
        with np.errstate(invalid="ignore"):
            vals = np.ceil(sp.bdtrik(qq, nn, pp))
        # p = 0 ou 1 (loi dégénérée) : bdtrik n'a pas de réponse, le quantile est 0 ou n
        vals = np.clip(np.where(np.isnan(vals), np.where(pp == 0, 0.0, nn), vals), 0.0, nn)
        below = np.maximum(vals - 1, 0)
        out[ok] = np.where(sp.bdtr(below.astype(np.int64), nn.astype(np.int64), pp) >= qq, below, vals)
    return out


def t_ppf(q: float, df: float) -> float:
    """Quantile ``q`` de la loi de Student à ``df`` degrés de liberté (``scipy.stats.t.ppf``)."""
    return float(scipy_special().stdtrit(df, q))


def norm_isf(q: float) -> float:
    """Quantile ``1 - q`` de la loi normale centrée réduite (``scipy.stats.norm.isf``)."""
    return float(-scipy_special().ndtri(q))


# Libellés (valeurs montrées aux lecteurs : accentués).
POSITION_AU_DESSUS = "au-dessus"
POSITION_NON_DIFFERENT = "non différent"
POSITION_EN_DESSOUS = "en dessous"
POSITION_LABELS = (POSITION_AU_DESSUS, POSITION_NON_DIFFERENT, POSITION_EN_DESSOUS)

EVOLUTION_AMELIORATION = "amélioration"
EVOLUTION_STABLE = "stable"
EVOLUTION_DEGRADATION = "dégradation"
EVOLUTION_LABELS = (EVOLUTION_AMELIORATION, EVOLUTION_STABLE, EVOLUTION_DEGRADATION)

# Séparateur des milliers des textes français (espace simple : « 85 000 séjours »).


# --------------------------------------------------------------------------------------------------
# Aides internes : scalaire ou vecteur
# --------------------------------------------------------------------------------------------------
def _is_scalar(x: Any) -> bool:
    return np.ndim(x) == 0 and not isinstance(x, (pd.Series, pd.Index))


def _index_of(*args: Any) -> pd.Index | None:
    for a in args:
        if isinstance(a, pd.Series):
            return a.index
    return None


def _as_float(x: Any) -> np.ndarray:
    """Convertit en tableau de flottants (``pd.NA`` / ``None`` -> ``NaN``)."""
    if isinstance(x, (pd.Series, pd.Index)):
        return pd.to_numeric(pd.Series(x), errors="coerce").astype("float64").to_numpy(na_value=np.nan)
    if _is_scalar(x):
        if x is None or x is pd.NA:
            return np.array(np.nan)
        try:
            if pd.isna(x):
                return np.array(np.nan)
        except (TypeError, ValueError):
            pass
        return np.array(float(x))
    return pd.to_numeric(pd.Series(np.asarray(x, dtype=object).ravel()), errors="coerce").astype(
        "float64"
    ).to_numpy(na_value=np.nan).reshape(np.shape(x))


def _labels_out(values: np.ndarray, scalar: bool, index: pd.Index | None):
    """Rend des libellés : scalaire (str ou None) ou Series ``string`` (ou tableau objet)."""
    if scalar:
        v = values.reshape(-1)[0]
        return None if v is None else str(v)
    if index is not None:
        return pd.Series(values, index=index, dtype="string")
    return values


# --------------------------------------------------------------------------------------------------
# Intervalles et tests
# --------------------------------------------------------------------------------------------------
def wilson_interval(score_pct, n, confidence: float = 0.95):
    """Intervalle de Wilson d'un score exprimé en % pour ``n`` dossiers.

    Le nombre de « succès » est ``score_pct / 100 × n`` (non arrondi, pour retrouver exactement le
    score publié). Rend ``(borne_basse_pct, borne_haute_pct)`` en %. Scalaire en entrée -> deux
    flottants ; tableau ou ``Series`` -> deux tableaux ou deux ``Series``. ``NaN`` quand le score ou
    ``n`` manque, ou quand ``n <= 0``.
    """
    scalar = _is_scalar(score_pct) and _is_scalar(n)
    index = _index_of(score_pct, n)
    s, m = np.broadcast_arrays(_as_float(score_pct), _as_float(n))
    s = s.astype(float).ravel()
    m = m.astype(float).ravel()
    lo = np.full(s.shape, np.nan)
    hi = np.full(s.shape, np.nan)
    ok = np.isfinite(s) & np.isfinite(m) & (m > 0)
    if ok.any():
        nobs = m[ok]
        count = np.clip(s[ok], 0.0, 100.0) / 100.0 * nobs
        # proportion_confint(count, nobs, alpha, method="wilson") de statsmodels, terme à terme
        share = count / nobs
        crit = norm_isf((1.0 - confidence) / 2.0)
        crit2 = crit**2
        denom = 1 + crit2 / nobs
        center = (share + crit2 / (2 * nobs)) / denom
        dist = crit * np.sqrt(share * (1.0 - share) / nobs + crit2 / (4.0 * nobs**2))
        dist /= denom
        lo[ok] = (center - dist) * 100.0
        hi[ok] = (center + dist) * 100.0
    if scalar:
        return float(lo[0]), float(hi[0])
    if index is not None:
        return pd.Series(lo, index=index, dtype="Float64"), pd.Series(hi, index=index, dtype="Float64")
    shape = np.broadcast(np.asarray(_as_float(score_pct)), np.asarray(_as_float(n))).shape
    return lo.reshape(shape), hi.reshape(shape)


def poisson_lower_pvalue(observed, expected):
    """``P(X <= observé)`` pour ``X ~ Poisson(attendu)`` (:func:`poisson_cdf`).

    Petite valeur = nombre observé significativement inférieur à l'attendu (« faiblement
    déclarant »). ``NaN`` quand une entrée manque ou que l'attendu est négatif.
    """
    scalar = _is_scalar(observed) and _is_scalar(expected)
    index = _index_of(observed, expected)
    o, e = np.broadcast_arrays(_as_float(observed), _as_float(expected))
    o = o.astype(float)
    e = e.astype(float)
    out = np.full(o.shape, np.nan)
    ok = np.isfinite(o) & np.isfinite(e) & (e >= 0)
    out[ok] = poisson_cdf(o[ok], e[ok])
    if scalar:
        return float(out.reshape(-1)[0])
    if index is not None:
        return pd.Series(out.ravel(), index=index, dtype="Float64")
    return out


def position_vs_target(lo, hi, target):
    """Position d'un intervalle ``[lo, hi]`` par rapport à une cible.

    ``"au-dessus"`` si l'intervalle est entièrement au-dessus de la cible (``lo > cible``),
    ``"en dessous"`` s'il est entièrement en dessous (``hi < cible``), ``"non différent"`` s'il la
    contient (bornes comprises). Manquant (``None`` / ``<NA>``) si une borne ou la cible manque.
    """
    scalar = _is_scalar(lo) and _is_scalar(hi) and _is_scalar(target)
    index = _index_of(lo, hi, target)
    a, b, t = np.broadcast_arrays(_as_float(lo), _as_float(hi), _as_float(target))
    known = np.isfinite(a) & np.isfinite(b) & np.isfinite(t)
    with np.errstate(invalid="ignore"):
        out = np.select(
            [~known, a > t, b < t],
            [None, POSITION_AU_DESSUS, POSITION_EN_DESSOUS],
            default=POSITION_NON_DIFFERENT,
        ).astype(object)
    out[~known] = None
    return _labels_out(out, scalar, index)


def evolution_ifaq(prev_lo, prev_hi, cur_lo, cur_hi):
    """Évolution entre deux campagnes par la règle de non-chevauchement des intervalles (IFAQ).

    ``"amélioration"`` quand ``cur_lo > prev_hi``, ``"dégradation"`` quand ``cur_hi < prev_lo``,
    ``"stable"`` sinon (intervalles qui se chevauchent). Manquant si une borne manque.
    """
    scalar = all(_is_scalar(x) for x in (prev_lo, prev_hi, cur_lo, cur_hi))
    index = _index_of(prev_lo, prev_hi, cur_lo, cur_hi)
    pl, ph, cl, ch = np.broadcast_arrays(
        _as_float(prev_lo), _as_float(prev_hi), _as_float(cur_lo), _as_float(cur_hi)
    )
    known = np.isfinite(pl) & np.isfinite(ph) & np.isfinite(cl) & np.isfinite(ch)
    with np.errstate(invalid="ignore"):
        out = np.select(
            [~known, cl > ph, ch < pl],
            [None, EVOLUTION_AMELIORATION, EVOLUTION_DEGRADATION],
            default=EVOLUTION_STABLE,
        ).astype(object)
    out[~known] = None
    return _labels_out(out, scalar, index)


# --------------------------------------------------------------------------------------------------
# Graphiques en entonnoir (Spiegelhalter 2005)
# --------------------------------------------------------------------------------------------------
def level_suffix(level: float) -> str:
    """Suffixe de colonne d'un niveau de confiance (chiffres du %) : 0.95 -> ``"95"``, 0.998 -> ``"998"``."""
    pct = np.format_float_positional(round(level * 100.0, 6), trim="-")
    return pct.replace(".", "")


def _exact_limit(cdf, ppf, p: float, cdf_args: tuple) -> np.ndarray:
    """Quantile « lissé » d'une loi discrète (annexe de Spiegelhalter 2005).

    ``r`` = plus petit entier tel que ``F(r) >= p`` ; ``alpha = (F(r) - p) / (F(r) - F(r-1))`` ;
    limite (en nombre d'événements) = ``r - alpha``. L'interpolation donne des courbes continues.
    """
    r = ppf(p, *cdf_args)
    f_r = cdf(r, *cdf_args)
    f_rm1 = cdf(r - 1, *cdf_args)
    with np.errstate(invalid="ignore", divide="ignore"):
        alpha = np.where(f_r - f_rm1 > 0, (f_r - p) / (f_r - f_rm1), 0.0)
    return r - alpha


def funnel_limits(
    denominators,
    p_ref: float,
    levels=(0.95, 0.998),
    kind: str = "binomial",
    scale: float | None = None,
) -> pd.DataFrame:
    """Limites d'un graphique en entonnoir autour d'une valeur de référence.

    Paramètres
    ----------
    denominators : nombres de dossiers (``binomial``) ou de séjours (``poisson``).
    p_ref : ``binomial`` -> proportion de référence entre 0 et 1 (ex. score régional / 100) ;
        ``poisson`` -> taux de référence **par séjour** (ex. Σ signalements / Σ séjours).
    levels : niveaux des limites (0.95 et 0.998 par défaut, Spiegelhalter 2005).
    kind : ``"binomial"`` (limites binomiales exactes) ou ``"poisson"`` (limites de Poisson,
        attendu = dénominateur × ``p_ref``).
    scale : unité des limites. Par défaut 100 pour ``binomial`` (limites en %, comme les scores)
        et 10 000 pour ``poisson`` (limites en taux **pour 10 000 séjours**).

    Rend un ``DataFrame`` avec ``denominateur``, ``attendu`` (nombre d'événements attendu),
    ``reference`` (``p_ref × scale``), puis pour chaque niveau ``bas_<n>`` et ``haut_<n>`` (ex.
    ``bas_95``, ``haut_95``, ``bas_998``, ``haut_998``), exprimées en taux ``× scale``. La limite
    en nombre d'événements s'obtient par ``limite × denominateur / scale``. Dénominateur <= 0 ou
    manquant -> limites manquantes.
    """
    if kind not in ("binomial", "poisson"):
        raise ValueError(f"kind doit valoir 'binomial' ou 'poisson', pas {kind!r}")
    if scale is None:
        scale = 100.0 if kind == "binomial" else 10_000.0
    n = _as_float(denominators).ravel()
    ok = np.isfinite(n) & (n > 0)
    p_ref = float(p_ref)
    if not math.isfinite(p_ref) or p_ref < 0 or (kind == "binomial" and p_ref > 1):
        raise ValueError(f"valeur de référence invalide : {p_ref!r}")
    out = pd.DataFrame(
        {
            "denominateur": n,
            "attendu": np.where(ok, n * p_ref, np.nan),
            "reference": p_ref * scale,
        }
    )
    for level in levels:
        suffix = level_suffix(level)
        lo = np.full(n.shape, np.nan)
        hi = np.full(n.shape, np.nan)
        if ok.any():
            nn = n[ok]
            p_lo = (1.0 - level) / 2.0
            p_hi = 1.0 - p_lo
            if kind == "binomial":
                nn = np.round(nn)
                args = (nn, p_ref)
                lo_c = _exact_limit(binom_cdf, binom_ppf, p_lo, args)
                hi_c = _exact_limit(binom_cdf, binom_ppf, p_hi, args)
                lo_c = np.clip(lo_c, 0.0, nn)
                hi_c = np.clip(hi_c, 0.0, nn)
            else:
                args = (nn * p_ref,)
                lo_c = np.clip(_exact_limit(poisson_cdf, poisson_ppf, p_lo, args), 0.0, None)
                hi_c = np.clip(_exact_limit(poisson_cdf, poisson_ppf, p_hi, args), 0.0, None)
            lo[ok] = lo_c / nn * scale
            hi[ok] = hi_c / nn * scale
        out[f"bas_{suffix}"] = lo
        out[f"haut_{suffix}"] = hi
    return out


def funnel_position(value, denominator, p_ref: float, levels=(0.95, 0.998), kind="binomial", scale=None):
    """Place chaque point par rapport aux limites de l'entonnoir calculées à son propre dénominateur.

    Rend des libellés ``"au-dessus (99,8 %)"``, ``"au-dessus (95 %)"``, ``"dans les limites"``,
    ``"en dessous (95 %)"``, ``"en dessous (99,8 %)"`` (manquant si la valeur ou le dénominateur
    manque). ``value`` est exprimée dans la même unité que les limites (voir ``funnel_limits``).
    """
    scalar = _is_scalar(value) and _is_scalar(denominator)
    index = _index_of(value, denominator)
    v = _as_float(value).ravel()
    lim = funnel_limits(_as_float(denominator).ravel(), p_ref, levels=levels, kind=kind, scale=scale)
    out = np.full(v.shape, None, dtype=object)
    known = np.isfinite(v) & lim["denominateur"].gt(0).to_numpy()
    out[known] = "dans les limites"
    for level in sorted(levels):  # du plus large au plus étroit : le plus extrême l'emporte
        suffix = level_suffix(level)
        label = fmt_shortest(level * 100) + "\u00a0%"
        below = known & (v < lim[f"bas_{suffix}"].to_numpy())
        above = known & (v > lim[f"haut_{suffix}"].to_numpy())
        out[below] = f"en dessous ({label})"
        out[above] = f"au-dessus ({label})"
    return _labels_out(out, scalar, index)
