"""Tests du générateur de données de démonstration fictives (tools.demo)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from tools.demo import MARKER_FILE, _luhn_key, generate_demo

RAW = Path(__file__).resolve().parents[1] / "data" / "raw"
CSV_FILES = ["etablissements.csv", "activite.csv", "certification.csv", "qls.csv", "esin.csv", "formation.csv",
             "audits.csv", "plan_epidemies.csv", "engagements.csv", "plans_actions.csv", "qls_dossiers.csv"]
V2020 = {"certifie_mention": "A", "certifie": "B", "certifie_sous_conditions": "C", "non_certifie": "E"}


@pytest.fixture(scope="module")
def demo(tmp_path_factory) -> tuple[Path, dict[str, int]]:
    out = tmp_path_factory.mktemp("demo")
    return out, generate_demo(out)


def _etab(d: Path) -> pd.DataFrame:
    return pd.read_csv(d / "etablissements.csv", sep=";", dtype=str, encoding="utf-8-sig", keep_default_na=False)


def _qls(d: Path) -> pd.DataFrame:
    return pd.read_csv(d / "qls.csv", sep=";", dtype={"finess_geo": str}, decimal=",")


def test_expected_files_and_counts(demo):
    d, counts = demo
    expected = set(CSV_FILES) | {"esatis_ssr_2024.xlsx"}
    assert set(counts) == expected
    for name in expected | {MARKER_FILE}:
        assert (d / name).is_file(), name
    for name in CSV_FILES:
        data = (d / name).read_bytes()
        assert b"\r\n" not in data
        assert data.count(b"\n") == counts[name] + 1, name
    marker = (d / MARKER_FILE).read_text(encoding="utf-8")
    assert "DONNÉES FICTIVES" in marker and "python -m analysis demo" in marker and "2024" in marker


def test_deterministic_and_equal_to_committed(demo, tmp_path):
    d, counts = demo
    generate_demo(tmp_path)
    names = sorted(counts) + [MARKER_FILE]
    for name in names:
        assert (d / name).read_bytes() == (tmp_path / name).read_bytes(), name
    for name in names:
        committed = RAW / name
        assert committed.is_file(), f"{committed} absent : régénérer data/raw avec generate_demo"
        assert committed.read_bytes() == (d / name).read_bytes(), f"{name} diffère de data/raw"


def test_other_seed_differs(demo, tmp_path):
    d, _ = demo
    generate_demo(tmp_path, seed=7)
    assert (tmp_path / "qls.csv").read_bytes() != (d / "qls.csv").read_bytes()


def test_single_region_referential(demo):
    d, _ = demo
    raw = (d / "etablissements.csv").read_bytes()
    assert raw.startswith(b"\xef\xbb\xbf")
    e = _etab(d)
    assert list(e.columns[:3]) == ["FINESS géo", "finess_ej", "Raison sociale"]
    assert 270 <= len(e) <= 330
    assert set(e.region) == {"28"}
    assert set(e.departement) == {"14", "27", "50", "61", "76"}
    f = e["FINESS géo"]
    assert f.is_unique and (f.str.len() == 9).all() and (f.str[2] == "9").all()
    assert (f.str[:2] == e.departement).all()
    assert set(e.statut) == {"public", "prive_non_lucratif", "prive_lucratif"}
    assert {"hemodialyse", "mecss", "pouponniere", "hdj", "pedopsychiatrie", "had_pediatrique",
            "post_cure_alcoolique"} <= set(e.specificite)
    assert e["Raison sociale"].str.contains("'").any()
    # anomalie volontaire : entité juridique de l'Aisne écrite sur 8 chiffres
    assert (e.finess_ej.str.len() == 8).sum() == 2


def test_luhn_key_matches_real_finess():
    assert _luhn_key(np.array(["14000007", "14000009"])).tolist() == [6, 2]  # 140000076, 140000092


def test_formats(demo):
    d, _ = demo
    raw = (d / "formation.csv").read_bytes()
    with pytest.raises(UnicodeDecodeError):
        raw.decode("utf-8")
    head = raw.decode("cp1252").splitlines()[0]
    assert "Catégorie personnel" in head and "Formés" in head
    assert "/" in (d / "certification.csv").read_text(encoding="utf-8").splitlines()[1]
    esin = pd.read_csv(d / "esin.csv", sep=";", dtype=str)
    assert set(esin.responsable_connecte) == {"Oui", "Non"}
    assert "," in (d / "qls.csv").read_text(encoding="utf-8").splitlines()[1]
    pa = pd.read_csv(d / "plans_actions.csv", sep=",", dtype=str)
    assert set(pa.statut) <= {"a_faire", "en_cours", "realise", "abandonne"}
    x = pd.read_excel(d / "esatis_ssr_2024.xlsx", sheet_name="Resultats", dtype=str)
    real_cols = ["finess", "rs_finess", "finess_geo", "rs_finess_geo", "region", "type", "participation", "Depot",
                 "nb_rep_score_ALL_ssr_ajust", "score_ALL_ssr_ajust", "classement", "evolution"]
    assert list(x.columns[:12]) == real_cols and len(x.columns) == 27
    assert {"A", "B", "C", "D", "DI", "NR", "NV"} <= set(x.classement)


def test_qls_scores(demo):
    d, _ = demo
    e = _etab(d)
    q = _qls(d)
    valid = q[q.finess_geo.isin(e["FINESS géo"]) & (q.score <= 100)]
    assert len(q) - len(valid) == 2  # score 104 et FINESS inconnu
    assert valid.score.between(0, 100).all()
    assert valid.n_dossiers.notna().all() and valid.n_dossiers.between(30, 80).all()
    with_ic = valid.dropna(subset=["ic_bas", "ic_haut"])
    assert 0.3 < len(with_ic) / len(valid) < 0.7
    assert ((with_ic.ic_bas <= with_ic.score) & (with_ic.score <= with_ic.ic_haut)).all()
    medians = valid.groupby("annee").score.median()
    assert list(medians.index) == [2018, 2020, 2022, 2024]
    assert medians.is_monotonic_increasing and medians.iloc[-1] > medians.iloc[0]
    assert set(q[q.annee == 2024].secteur) == {"MCO", "SMR", "PSY"}
    assert "PSY" not in set(q[q.annee < 2022].secteur)
    excluded = e[e.specificite.isin(["hemodialyse", "pouponniere", "hdj", "pedopsychiatrie", "had_pediatrique"])]
    assert not q.finess_geo.isin(excluded["FINESS géo"]).any()
    last = valid[(valid.annee == 2024) & (valid.score < 20)]
    assert 3 <= last.finess_geo.nunique() <= 8


def test_certification_has_current_e_level(demo):
    d, _ = demo
    c = pd.read_csv(d / "certification.csv", sep=";", dtype=str)
    c["date"] = pd.to_datetime(c.date_decision, format="%d/%m/%Y", errors="coerce")
    assert c.date.isna().sum() == 1  # 31/06 volontaire
    assert {"certifie", "certifie_mention", "non_certifie"} <= set(c.niveau) and {"A", "B", "C"} <= set(c.niveau)
    assert set(c[c.date.dt.year < 2021].niveau) <= set("ABCDE")
    c["lvl"] = c.niveau.map(lambda v: V2020.get(v, v))
    current = c.dropna(subset=["date"]).query("date <= '2024-12-31'").sort_values("date").groupby("finess_geo").last()
    assert 1 <= (current.lvl == "E").sum() <= 8
    assert current.lvl.isin(["A", "B"]).mean() > 0.75


def test_esin_and_activity(demo):
    d, _ = demo
    s = pd.read_csv(d / "esin.csv", sep=";", dtype={"finess_geo": str})
    last = s[s.annee == 2024].drop_duplicates()
    share0 = (last.signalements == 0).mean()
    assert 0.03 <= share0 <= 0.12
    a = pd.read_csv(d / "activite.csv", sep=";", dtype={"finess_geo": str})
    assert (a.sejours < 0).sum() == 1
    rate = last.merge(a, on=["finess_geo", "annee"]).pipe(lambda t: t.signalements.sum() / t.sejours.sum())
    assert 1e-4 <= rate <= 4e-4


def test_other_sources(demo):
    d, _ = demo
    f = pd.read_csv(d / "formation.csv", sep=";", encoding="cp1252", dtype={"finess_geo": str})
    assert set(f["Catégorie personnel"]) == {"medical", "paramedical", "ash"}
    assert (f.Effectif > 0).all() and (f["Formés"] > f.Effectif).sum() == 1
    rates = (f["Formés"] / f.Effectif).groupby(f.annee).median()
    assert rates.is_monotonic_increasing
    au = pd.read_csv(d / "audits.csv", sep=";", dtype={"finess_geo": str})
    assert (au.audits_precautions <= au.audits_total).all() and au.audits_total.max() <= 12
    assert au.duplicated(["finess_geo", "annee"]).sum() == 1
    pl = pd.read_csv(d / "plan_epidemies.csv", sep=";", dtype={"finess_geo": str})
    assert (pl.criteres_total == 20).all() and pl.criteres_remplis.between(10, 20).all()
    en = pd.read_csv(d / "engagements.csv", sep=";", dtype=str, keep_default_na=False)
    assert 60 <= len(en) <= 100
    assert not en.duplicated(["finess_geo", "engagement"]).any()
    assert set(en.engagement) == {"certification", "lettre_liaison", "signalement_esin", "prevention_ias"}
    assert (en.cible != "").sum() == 2
    assert (en.annee_debut.astype(int) <= 2024).all()


def test_national(tmp_path):
    counts = generate_demo(tmp_path, national=True, first_year=2021, last_year=2024)
    e = _etab(tmp_path)
    assert e.region.nunique() == 18
    assert 2500 <= len(e) <= 3500
    assert e["FINESS géo"].is_unique
    assert {"2A", "2B", "971", "972", "973", "974", "976"} <= set(e.departement)
    assert (e.loc[e.departement.str.len() == 3, "FINESS géo"].str[:2] == "97").all()
    q = _qls(tmp_path)
    assert q.score.between(0, 100).all()  # pas d'anomalie volontaire en national
    assert counts["esatis_ssr_2024.xlsx"] > 500
