"""Tests des outils statistiques (valeurs de référence calculées indépendamment, à la main)."""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
import pytest

from analysis.indicators import stats


# --- Intervalle de Wilson -------------------------------------------------------------------------
# Valeurs calculées à la main par la formule fermée de Wilson, z = 1,959964 :
#   centre = (p + z²/2n) / (1 + z²/n) ; demi-largeur = z/(1 + z²/n) · sqrt(p(1-p)/n + z²/4n²)
#   15/20 -> (53,130 ; 88,814) %   0/10 -> (0 ; 27,753) %   80/100 -> (71,117 ; 86,663) %
def test_wilson_15_sur_20():
    lo, hi = stats.wilson_interval(75.0, 20)
    assert lo == pytest.approx(53.130, abs=1e-3)
    assert hi == pytest.approx(88.814, abs=1e-3)


def test_wilson_score_nul_et_score_80():
    assert stats.wilson_interval(0.0, 10) == pytest.approx((0.0, 27.753), abs=1e-3)
    assert stats.wilson_interval(80.0, 100) == pytest.approx((71.117, 86.663), abs=1e-3)


def test_wilson_niveau_de_confiance_plus_large():
    lo95, hi95 = stats.wilson_interval(75.0, 20, confidence=0.95)
    lo99, hi99 = stats.wilson_interval(75.0, 20, confidence=0.99)
    assert lo99 < lo95 and hi99 > hi95


def test_wilson_vectorise_et_manquants():
    score = pd.Series([75.0, None, 50.0, 60.0], dtype="Float64")
    n = pd.Series([20, 30, 0, None], dtype="Int64")
    lo, hi = stats.wilson_interval(score, n)
    assert isinstance(lo, pd.Series) and lo.index.equals(score.index)
    assert lo.iloc[0] == pytest.approx(53.130, abs=1e-3)
    assert hi.iloc[0] == pytest.approx(88.814, abs=1e-3)
    assert lo.iloc[1:].isna().all() and hi.iloc[1:].isna().all()  # score manquant, n = 0, n manquant


def test_wilson_scalaire_manquant():
    lo, hi = stats.wilson_interval(50.0, 0)
    assert math.isnan(lo) and math.isnan(hi)


# --- Poisson --------------------------------------------------------------------------------------
def test_poisson_valeurs_calculees_a_la_main():
    # P(X <= 3 | 17) = e^-17 (1 + 17 + 17²/2 + 17³/6) = e^-17 × 981,333… = 4,0627e-5
    assert stats.poisson_lower_pvalue(3, 17.0) == pytest.approx(4.062658881e-05, rel=1e-8)
    # P(X <= 2 | 7,5) = e^-7,5 (1 + 7,5 + 28,125) = 0,0202567
    assert stats.poisson_lower_pvalue(2, 7.5) == pytest.approx(0.0202567151, rel=1e-8)
    # P(X <= 0 | 1,5) = e^-1,5
    assert stats.poisson_lower_pvalue(0, 1.5) == pytest.approx(math.exp(-1.5))


def test_poisson_vectorise():
    p = stats.poisson_lower_pvalue(pd.Series([0, 2, None], dtype="Int64"), pd.Series([1.5, 7.0, 3.0]))
    assert p.iloc[0] == pytest.approx(0.2231301601)
    assert p.iloc[1] == pytest.approx(0.0296361639)  # e^-7 × 32,5
    assert pd.isna(p.iloc[2])
    arr = stats.poisson_lower_pvalue(np.array([0, 1]), 0.0)
    assert list(arr) == [1.0, 1.0]


# --- Position et évolution ------------------------------------------------------------------------
def test_position_vs_target():
    assert stats.position_vs_target(81.0, 90.0, 80.0) == "au-dessus"
    assert stats.position_vs_target(70.0, 85.0, 80.0) == "non différent"
    assert stats.position_vs_target(80.0, 90.0, 80.0) == "non différent"  # borne = cible : contenue
    assert stats.position_vs_target(60.0, 79.9, 80.0) == "en dessous"
    assert stats.position_vs_target(float("nan"), 79.9, 80.0) is None


def test_position_vs_target_vectorise():
    out = stats.position_vs_target(pd.Series([81.0, 70.0, None]), pd.Series([90.0, 85.0, 1.0]), 80.0)
    assert out.tolist()[:2] == ["au-dessus", "non différent"]
    assert pd.isna(out.iloc[2])


def test_evolution_ifaq():
    assert stats.evolution_ifaq(40.0, 60.0, 61.0, 80.0) == "amélioration"
    assert stats.evolution_ifaq(40.0, 60.0, 60.0, 80.0) == "stable"  # intervalles qui se touchent
    assert stats.evolution_ifaq(40.0, 60.0, 20.0, 39.0) == "dégradation"
    assert stats.evolution_ifaq(40.0, 60.0, 45.0, 55.0) == "stable"
    assert stats.evolution_ifaq(None, 60.0, 45.0, 55.0) is None
    out = stats.evolution_ifaq(pd.Series([40.0, 40.0]), pd.Series([60.0, 60.0]), pd.Series([61.0, 10.0]),
                               pd.Series([80.0, 30.0]))
    assert out.tolist() == ["amélioration", "dégradation"]
    assert set(stats.EVOLUTION_LABELS) == {"amélioration", "stable", "dégradation"}


# --- Entonnoirs -----------------------------------------------------------------------------------
def test_funnel_binomial_valeur_de_reference():
    # n = 100, p = 0,5, 95 % : r = 40 (F(40) = 0,028444 >= 0,025 ; F(39) = 0,017600)
    # alpha = (0,028444 - 0,025) / (0,028444 - 0,017600) = 0,3176 -> (40 - 0,3176) / 100 = 39,68 %
    lim = stats.funnel_limits([100], 0.5)
    assert list(lim.columns) == ["denominateur", "attendu", "reference", "bas_95", "haut_95", "bas_998", "haut_998"]
    assert lim.loc[0, "bas_95"] == pytest.approx(39.68, abs=0.01)
    # 95 % haut : r = 60 (F(60) = 1 - F(39) = 0,982400 ; F(59) = 1 - F(40) = 0,971556)
    # alpha = (0,982400 - 0,975) / 0,010844 = 0,6824 -> (60 - 0,6824) / 100 = 59,32 %
    assert lim.loc[0, "haut_95"] == pytest.approx(59.32, abs=0.01)
    # proche de l'approximation normale 50 ± 1,96 × 5 (l'interpolation décale d'un demi-événement)
    assert lim.loc[0, "bas_95"] == pytest.approx(50 - 1.96 * 5 - 0.5, abs=0.05)
    assert lim.loc[0, "reference"] == 50.0 and lim.loc[0, "attendu"] == 50.0


def test_funnel_binomial_forme():
    lim = stats.funnel_limits([10, 100, 1000, 0], 0.8)
    width95 = (lim["haut_95"] - lim["bas_95"]).iloc[:3]
    assert width95.is_monotonic_decreasing
    assert (lim["bas_998"].iloc[:3] <= lim["bas_95"].iloc[:3]).all()
    assert (lim["haut_998"].iloc[:3] >= lim["haut_95"].iloc[:3]).all()
    assert (lim[["bas_95", "haut_95", "bas_998", "haut_998"]].iloc[:3].stack().between(0, 100)).all()
    assert lim.iloc[3][["bas_95", "haut_95"]].isna().all()  # dénominateur nul


def test_funnel_poisson_en_taux_pour_10000():
    # 10 000 séjours × 0,0005 = 5 attendus ; 95 % bas : r = 1 (F(1) = 0,040428 ; F(0) = 0,006738)
    # alpha = (0,040428 - 0,025) / (0,040428 - 0,006738) = 0,4579 -> 0,5421 événement
    # soit 0,5421 pour 10 000 séjours
    lim = stats.funnel_limits([10_000], 0.0005, kind="poisson")
    assert lim.loc[0, "attendu"] == pytest.approx(5.0)
    assert lim.loc[0, "reference"] == pytest.approx(5.0)  # taux pour 10 000 séjours
    assert lim.loc[0, "bas_95"] == pytest.approx(0.5421, abs=1e-3)
    assert lim.loc[0, "haut_95"] > 5.0


def test_funnel_kind_invalide():
    with pytest.raises(ValueError):
        stats.funnel_limits([10], 0.5, kind="normal")


def test_funnel_position():
    pos = stats.funnel_position(pd.Series([10.0, 50.0, 62.0, 90.0]), pd.Series([100, 100, 100, 100]), 0.5)
    assert pos.tolist() == ["en dessous (99,8\u00a0%)", "dans les limites", "au-dessus (95\u00a0%)", "au-dessus (99,8\u00a0%)"]


# --- Lois : mêmes valeurs que scipy.stats (et statsmodels pour Wilson), bornes comprises --------------
# Le paquet calcule les lois sur scipy.special (import deux fois moins cher que scipy.stats) : chaque
# fonction est comparée ici à la loi de scipy.stats, sur des paramètres tirés au hasard et sur les
# cas limites (probabilité 0 ou 1, moyenne nulle, n = 0, valeurs hors domaine ou manquantes).
def _grid_poisson():
    rng = np.random.default_rng(20261203)
    mu = np.concatenate([[0.0, 1e-9, 0.3, 1.0, 2.5, 10.0, 100.0, 1e4, -1.0, np.nan], rng.uniform(0, 500, 400)])
    return rng, mu


def test_lois_de_poisson_comme_scipy_stats():
    scipy_stats = pytest.importorskip("scipy.stats")
    rng, mu = _grid_poisson()
    for q in (0.0, 0.001, 0.025, 0.5, 0.975, 0.999, 1.0, -0.1, 1.1, np.nan):
        np.testing.assert_array_equal(stats.poisson_ppf(q, mu), scipy_stats.poisson.ppf(q, mu))
    k = np.concatenate([[-np.inf, -3.0, -0.5, 0.0, 0.5, np.inf, np.nan], np.floor(rng.uniform(-2, 600, 403))])
    np.testing.assert_array_equal(stats.poisson_cdf(k, mu), scipy_stats.poisson.cdf(k, mu))


def test_lois_binomiales_comme_scipy_stats():
    scipy_stats = pytest.importorskip("scipy.stats")
    rng = np.random.default_rng(3)
    n = np.concatenate([[0.0, 1.0, 2.0, 5.0, 30.0, 2.5, -1.0, np.nan], np.round(rng.uniform(0, 3000, 400))])
    k = np.concatenate([[-1.0, 0.0, 0.0, 5.0, 31.0, 1.0, 0.0, 1.0], np.floor(rng.uniform(-1, 3001, 400))])
    for p in (0.0, 1e-6, 0.01, 0.3, 0.5, 0.97, 1.0, -0.2, 1.5):
        # (pas q = 0,5 avec p = 0,5 : F(k) y vaut exactement 0,5 pour n impair, et les deux calculs
        # arrondis ne tombent pas du même côté)
        for q in (0.0, 0.001, 0.025, 0.1, 0.9, 0.975, 0.999, 1.2):
            np.testing.assert_array_equal(stats.binom_ppf(q, n, p), scipy_stats.binom.ppf(q, n, p))
        # q = 1 : n (scipy.stats 1.16 décale ses réponses quand des n invalides précèdent : comparé
        # sur les n valides, l'attendu écrit à la main sinon)
        np.testing.assert_array_equal(stats.binom_ppf(1.0, n[8:], p), scipy_stats.binom.ppf(1.0, n[8:], p))
        np.testing.assert_array_equal(stats.binom_ppf(1.0, n[:8], p),
                                      [0, 1, 2, 5, 30, np.nan, np.nan, np.nan] if 0 <= p <= 1 else [np.nan] * 8)
        # fonction de répartition : celle de Cephes (scipy.special.bdtr) et non celle de Boost
        # (scipy.stats) : mêmes valeurs à 1e-11 près
        np.testing.assert_allclose(stats.binom_cdf(k, n, p), scipy_stats.binom.cdf(k, n, p), rtol=0, atol=1e-11)


def test_student_et_normale_comme_scipy_stats():
    scipy_stats = pytest.importorskip("scipy.stats")
    for df in (1, 2, 9, 29, 250):
        for q in (0.9, 0.975, 0.995):
            assert stats.t_ppf(q, df) == scipy_stats.t.ppf(q, df)
    for q in (0.05, 0.025, 0.001):
        assert stats.norm_isf(q) == scipy_stats.norm.isf(q)


def test_wilson_comme_statsmodels():
    proportion = pytest.importorskip("statsmodels.stats.proportion")
    rng = np.random.default_rng(7)
    score = np.concatenate([[0.0, 100.0, 50.0, 75.0], rng.uniform(0, 100, 300)])
    n = np.concatenate([[10.0, 1.0, 3.0, 20.0], rng.integers(1, 500, 300).astype(float)])
    for conf in (0.9, 0.95, 0.99):
        lo, hi = stats.wilson_interval(score, n, confidence=conf)
        low, upp = proportion.proportion_confint(score / 100.0 * n, n, alpha=1.0 - conf, method="wilson")
        np.testing.assert_array_equal(lo, np.asarray(low) * 100.0)
        np.testing.assert_array_equal(hi, np.asarray(upp) * 100.0)


def test_le_calcul_des_resultats_n_importe_ni_scipy_stats_ni_statsmodels():
    """Les étapes (ciblage, suivi, tendances, contrôle QLS) et leurs lois n'importent que
    scipy.special : scipy.stats et statsmodels coûteraient 0,5 s de processeur de plus au processus des
    résultats, au début de chaque relance."""
    import subprocess
    import sys

    code = ("import sys\n"
            "from analysis.indicators import stats\n"
            "stats.funnel_limits([10, 100], 0.3); stats.funnel_limits([1000], 0.001, kind='poisson')\n"
            "stats.wilson_interval(75.0, 20); stats.poisson_lower_pvalue(3, 17.0); stats.t_ppf(0.975, 9)\n"
            "print(sorted(m for m in sys.modules if m.split('.')[0] == 'statsmodels' or m.startswith('scipy.stats')))")
    out = subprocess.run([sys.executable, "-c", code], check=True, capture_output=True, text=True).stdout
    assert out.strip() == "[]"


# --- Mise en forme française (formateur unique, analysis.publishing.fmt) -------------------------------
def test_formats_francais():
    from analysis.publishing.fmt import fmt_machine, fmt_num, fmt_pct, fmt_pvalue, fmt_shortest

    assert fmt_num(85000) == "85\u00a0000"
    assert fmt_shortest(0.025) == "0,025" and fmt_shortest(20.0) == "20"
    assert fmt_pct(18.0) == "18,0\u00a0%"
    assert fmt_pvalue(0.00038) == "p = 0,0004"
    assert fmt_pvalue(0.00001) == "p < 0,0001"
    assert fmt_machine(18.0) == "18" and fmt_machine(19.9) == "19.9" and fmt_machine(True) == "oui"
