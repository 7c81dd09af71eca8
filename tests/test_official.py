"""Fichiers officiels HAS (certification 2021, e-Satis) reconnus tels que téléchargés, sur les vraies données."""

from __future__ import annotations

import shutil
from pathlib import Path

import pandas as pd
import pytest
from tables import independent_levels

from analysis.reading.cleaning import clean_folder
from analysis.reading.readers import read_any
from analysis.reading.regions import REGIONS
from analysis.rules.loader import load_rules

RULES = load_rules()
# e-Satis writes some region names its own way
ESATIS_REGION_NAMES = {
    "Hauts de France": "32",
    "Ile de France": "11",
    "Nouvelle Aquitaine": "75",
    "Océan Indien": "04",
    "PACA": "93",
    **{v: k for k, v in REGIONS.items()},
}
REGION = "84"
ANNEE = 2024


def build_input(real_data: Path, dest: Path) -> pd.DataFrame:
    """Referential from the e-Satis SSR 2024 file + both certification files as they are (renamed)."""
    esatis = real_data / "has-iqss-esatis-ssr" / "resultats-esatis-ssr-2024.xlsx"
    t = pd.read_excel(esatis, sheet_name="Resultats", dtype=str)
    ref = pd.DataFrame(
        {
            "finess_geo": t["finess_geo"],
            "finess_ej": t["finess"],
            "raison_sociale": t["rs_finess_geo"],
            # overseas FINESS: 97 + 0 + the département's last digit (970100228 → 971)
            "departement": t["finess_geo"].where(
                ~t["finess_geo"].str.startswith("97"), "97" + t["finess_geo"].str[3]
            ).str[:3].where(t["finess_geo"].str.startswith("97"), t["finess_geo"].str[:2]),
            "region": t["region"].map(ESATIS_REGION_NAMES),
            "statut": "public",
            "ssr": "oui",
        }
    )
    assert ref["region"].notna().all()
    dest.mkdir(parents=True, exist_ok=True)
    ref.to_csv(dest / "etablissements.csv", sep=";", index=False)
    # any file names: the files are recognised by their columns
    shutil.copy(real_data / "has-certification-2021" / "demarche.csv", dest / "export_has_1.csv")
    shutil.copy(real_data / "has-certification-2021" / "etablissement-geo.csv", dest / "export_has_2.csv")
    shutil.copy(esatis, dest / "resultats-esatis-ssr-2024.xlsx")
    return ref


@pytest.fixture(scope="module")
def cleaned(real_data, tmp_path_factory):
    dest = tmp_path_factory.mktemp("reel")
    ref = build_input(real_data, dest)
    return ref, clean_folder(dest, RULES)


def test_real_files_recognised_with_zero_rejects(cleaned):
    ref, res = cleaned
    assert len(res.rejects) == 0, res.rejects.head().to_string()
    kinds = {f.fichier: f.nature for f in res.files}
    assert "démarches" in kinds["export_has_1.csv"]
    assert "sites géographiques" in kinds["export_has_2.csv"]
    assert "e-Satis" in kinds["resultats-esatis-ssr-2024.xlsx"]
    for f in res.files:
        assert f.reconciles(), f


def test_finess_keep_leading_zeros(cleaned):
    ref, res = cleaned
    etab = res.tables["etablissements"]
    assert (etab["finess_geo"].str.len() == 9).all()
    assert etab["finess_geo"].str.startswith("0").sum() == ref["finess_geo"].str.startswith("0").sum() > 0
    cert = res.tables["certification"]
    assert cert["finess_geo"].str.startswith("0").any()
    assert "010000180" in set(res.tables["esatis"]["finess_geo"])


def test_esatis_classes_kept_as_text(cleaned):
    _, res = cleaned
    es = res.tables["esatis"]
    assert {"DI", "NR", "NV"} & set(es["classement"].dropna())
    di = es[es["classement"] == "DI"]
    assert di["score"].isna().all()
    assert set(es["annee"]) == {2024}
    assert es.loc[es["finess_geo"] == "010000180", "score"].iloc[0] == pytest.approx(81.46)


def test_decision_mapping_and_sites_without_decision(real_data, cleaned):
    _, res = cleaned
    cert = res.tables["certification"]
    assert set(cert["niveau"]) <= {"A", "B", "C", "E"}
    dem = pd.read_csv(real_data / "has-certification-2021" / "demarche.csv", dtype=str)
    no_decision = dem["Decision_de_la_CCES"].isna().sum()
    rep = {f.fichier: f for f in res.files}["export_has_1.csv"]
    assert rep.sans_objet == no_decision == 201


def test_targeted_management_qualite_equals_non_certified_sites(real_data, cleaned):
    from analysis.indicators.ciblage import compute_ciblage

    ref, res = cleaned
    sites = set(ref.loc[ref["region"] == REGION, "finess_geo"])
    levels = independent_levels(real_data, sites, ANNEE)
    expected = set(levels[levels == "Non certifié"].index)
    assert expected, "la région choisie doit compter au moins un site non certifié"
    cib = compute_ciblage(res.tables, RULES, ANNEE, REGION)
    got = set(cib.loc[cib["risque"] == "management_qualite", "finess_geo"])
    assert got == expected


def test_certification_follow_up_counts_are_consistent(real_data, cleaned):
    from analysis.indicators.suivi import compute_suivi

    ref, res = cleaned
    sites = set(ref.loc[ref["region"] == REGION, "finess_geo"])
    levels = independent_levels(real_data, sites, ANNEE)
    suivi = compute_suivi(res.tables, RULES, ANNEE, REGION)
    cert = suivi[suivi["indicateur"] == "niveau_certification"]
    assert len(cert) == len(sites)  # monitoring mode: every site of the region is followed
    counts = cert["statut"].value_counts()
    n_ok = int(levels.isin(["Certifié avec mention", "Certifié"]).sum())
    n_ko = int(levels.isin(["Certifié sous conditions", "Non certifié"]).sum())
    assert counts.get("atteint", 0) == n_ok
    assert counts.get("non_atteint", 0) == n_ko
    assert counts.get("non_evaluable", 0) == len(sites) - len(levels)


def test_raw_readers_keep_real_files_intact(real_data):
    geo = read_any(real_data / "has-certification-2021" / "etablissement-geo.csv")
    assert geo.encoding == "utf-8-sig" and geo.separator == ","
    assert not geo.malformed
    assert geo.data["finess_eg"].str.fullmatch(r"[0-9AB]{9}").all()
    es = read_any(real_data / "has-iqss-esatis-ssr" / "resultats-esatis-ssr-2023.xlsx", "Resultats")
    assert es.data["finess_geo"].str.len().eq(9).all()
