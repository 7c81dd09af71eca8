"""Extrait FINESS des établissements comme référentiel ; outre-mer et Mayotte."""

from __future__ import annotations

import shutil
from pathlib import Path

import pandas as pd
import pytest
from tables import independent_levels

from analysis.reading import finess
from analysis.reading.cleaning import clean_folder
from analysis.reading.parsing import parse_departement, parse_finess
from analysis.reading.regions import (
    REGIONS,
    departement_of_finess,
    departement_region,
    region_of_departement,
)
from analysis.rules.loader import load_rules

RULES = load_rules()
SAMPLE = "finess/etalab-cs1100502-stock-echantillon.csv"


def _files(res):
    return {f.fichier: f for f in res.files}


# ----------------------------------------------------------------------------- tables and parsing


def test_departement_table_covers_every_region_and_overseas():
    table = departement_region()
    assert len(table) == 101  # 96 metropolitan (2A, 2B) + 5 overseas
    assert set(table.values()) == set(REGIONS)
    assert table["971"] == "01" and table["974"] == "04" and table["976"] == "06"
    assert table["2A"] == table["2B"] == "94"
    assert region_of_departement("9F") == "06" and region_of_departement("9A") == "01"
    assert region_of_departement("9E") is None and region_of_departement("9J") is None  # no ARS


def test_overseas_and_mayotte_numbers_are_valid():
    p = parse_finess(pd.Series(["980501506", "970100400", "2A0000123", "990000000", "960000000"]))
    assert p.values.tolist()[:3] == ["980501506", "970100400", "2A0000123"]
    assert p.errors.tolist()[:3] == [None, None, None]
    assert p.errors.notna().tolist()[3:] == [True, True]
    assert departement_of_finess("980501506") == "976"
    assert departement_of_finess("970100400") == "971"
    assert departement_of_finess("970400024") == "974"
    assert departement_of_finess("2B0000017") == "2B"
    assert departement_of_finess("980000000") is None  # Monaco (HAS certifies its hospital)
    assert departement_of_finess("970500039") is None  # Saint-Pierre-et-Miquelon
    d = parse_departement(pd.Series(["9A", "9b", "9F", "9E", "976", "1"]))
    assert d.values.tolist()[:3] == ["971", "972", "976"]
    assert d.errors.notna().tolist() == [False, False, False, True, False, False]
    assert d.repaired.tolist() == [False, False, False, False, False, True]


# ----------------------------------------------------------------------------- the seven real lines


@pytest.fixture(scope="module")
def sample(real_data) -> Path:
    return real_data / SAMPLE


def test_sample_reader_keeps_quotes_and_fields(sample):
    t = finess.read_extract(sample)
    assert t.data.attrs["finess"]["date_extraction"] == "2026-05-12"
    assert len(t.data) == 7 and not t.malformed
    mayotte = t.data[t.data["nofinesset"] == "980501506"].iloc[0]
    assert mayotte["rs"] == 'LIEU DE VIE "MAVOUNA MEMA 1"'
    assert mayotte["rslongue"] == 'LIEU DE VIE ET D\'ACCUEIL "MAVOUNA MEMA 1"'
    assert mayotte["departement"] == "9F" and mayotte["numuai"] == ""
    assert t.data["_ligne"].tolist() == [2, 3, 4, 5, 6, 7, 8]


def test_sample_referential(sample, tmp_path):
    shutil.copy(sample, tmp_path / "export.csv")  # any name: recognised by its first line
    res = clean_folder(tmp_path, RULES)
    etab = res.tables["etablissements"].set_index("finess_geo")
    assert list(etab.index) == ["010000024", "970100012", "970100400", "970400024", "970409645"]
    assert etab["departement"].tolist() == ["01", "971", "971", "974", "974"]
    assert etab["region"].tolist() == ["84", "01", "01", "04", "04"]
    # codesph 1 → public; codesph 0 with codemft 07 (ex-OQN: lucratif or not) → not known
    assert etab["statut"].tolist()[:1] == ["public"]
    assert etab.loc["970100400", "statut"] == etab.loc["970400024", "statut"] == "public"
    assert etab.loc[["970100012", "970409645"], "statut"].isna().all()
    first = etab.loc["010000024"]
    assert first["finess_ej"] == "010780054"
    assert first["raison_sociale"] == "CENTRE HOSPITALIER DE BOURG-EN-BRESSE FLEYRIAT"
    assert first["categorie"] == "Centre Hospitalier (C.H.)"
    # the EHPAD and the Mayotte "lieu de vie" are not health establishments: left out, counted
    rep = _files(res)["export.csv"]
    assert rep.nature == "extrait FINESS du 2026-05-12" and rep.date_extraction == "2026-05-12"
    assert (rep.lignes_lues, rep.acceptees, rep.hors_referentiel, rep.rejetees) == (7, 5, 2, 0)
    assert rep.reconciles()
    text = " ".join(res.warnings)
    assert "(500) : 1" in text and "(462) : 1" in text
    assert "Statut non renseigné pour 2 établissement(s)" in text
    assert len(res.rejects) == 0


def test_hand_made_file_completes_overrides_and_adds(sample, tmp_path):
    shutil.copy(sample, tmp_path / sample.name)
    (tmp_path / "etablissements.csv").write_text(
        "finess_geo;raison_sociale;departement;statut;mco;ssr;lits\n"
        "970100012;;;prive_lucratif;oui;non;120\n"       # completes an extract line
        "980501506;;;prive_non_lucratif;;;\n"             # named: kept although not sanitary
        "750000001;CLINIQUE FERMEE EN 2023;75;prive_lucratif;oui;;\n"  # closed: added, region derived
        "690000001;SANS STATUT;69;;;;\n",                 # absent from the extract and incomplete
        encoding="utf-8",
    )
    res = clean_folder(tmp_path, RULES)
    etab = res.tables["etablissements"].set_index("finess_geo")
    assert etab.loc["970100012", "statut"] == "prive_lucratif"
    assert etab.loc["970100012", "mco"] == True and etab.loc["970100012", "ssr"] == False  # noqa: E712
    assert etab.loc["970100012", "lits"] == 120
    assert etab.loc["970100012", "raison_sociale"] == "POLYCLINIQUE DE GUADELOUPE"  # from the extract
    may = etab.loc["980501506"]
    assert (may["departement"], may["region"]) == ("976", "06")
    assert may["raison_sociale"] == 'LIEU DE VIE ET D\'ACCUEIL "MAVOUNA MEMA 1"'
    assert etab.loc["750000001", "region"] == "11"
    assert "690000001" not in etab.index
    rej = res.rejects
    assert rej["motif"].str.contains("absent de l'extrait FINESS du 12/05/2026").any()
    assert set(rej.loc[rej["ligne"] == 5, "colonne"]) == {"statut"}
    hand = _files(res)["etablissements.csv"]
    assert (hand.lignes_lues, hand.acceptees, hand.rejetees) == (4, 3, 1)
    ext = _files(res)[sample.name]
    assert (ext.acceptees, ext.hors_referentiel) == (6, 1)
    assert any("en complète 2 et en ajoute 1" in w for w in res.warnings)

    # Mayotte (region 06) is a region like any other
    from analysis.indicators.ciblage import compute_ciblage
    from analysis.indicators.suivi import compute_suivi

    assert compute_ciblage(res.tables, RULES, 2024, "06").empty
    s = compute_suivi(res.tables, RULES, 2024, "06")
    assert set(s["finess_geo"]) == {"980501506"}


def test_no_referential_at_all_names_both_options(tmp_path):
    (tmp_path / "esin.csv").write_text("finess_geo;annee;signalements;responsable_connecte\n010000024;2024;1;oui\n")
    from analysis.reading.readers import InputError

    with pytest.raises(InputError, match="extrait FINESS"):
        clean_folder(tmp_path, RULES)


# ----------------------------------------------------------------------------- real numbers, national


ESATIS_REGION_NAMES = {
    "Hauts de France": "32", "Ile de France": "11", "Nouvelle Aquitaine": "75", "Océan Indien": "04",
    "PACA": "93", **{v: k for k, v in REGIONS.items()},
}


def _finess_dep_code(f: str) -> str:
    """Department as the FINESS extract writes it (overseas as letters), from the number."""
    if f.startswith("9805"):
        return "9F"
    if f.startswith("970"):
        return "9" + "ABCDE"[int(f[3]) - 1]  # 9705…: Saint-Pierre-et-Miquelon (9E)
    return f[:2]  # 9800…: Monaco


def _line(fin: str, ej: str, name: str, cat: str, label: str, sph: str = "0", mft: str = "07") -> str:
    q = '"' + name.replace('"', '""') + '"'
    dep = _finess_dep_code(fin)
    fields = ["structureet", fin, ej, q, q, "", "", "", "", "", "", "", "", dep, "", "", "", "", cat, label,
              "", "", "", "", mft, "", sph, "", "", "", "", ""]
    assert len(fields) == 32
    return ";".join(fields)


@pytest.fixture(scope="module")
def national(real_data, tmp_path_factory):
    """A FINESS-layout extract from the real numbers and names: e-Satis SSR 2024 sites as SSR health
    establishments, the other certified sites as EHPAD (to be left out); plus the HAS files as they are."""
    dest = tmp_path_factory.mktemp("finess_national")
    es = real_data / "has-iqss-esatis-ssr" / "resultats-esatis-ssr-2024.xlsx"
    t = pd.read_excel(es, sheet_name="Resultats", dtype=str)
    geo = pd.read_csv(real_data / "has-certification-2021" / "etablissement-geo.csv", dtype=str)
    others = geo[~geo["FINESS_EG"].isin(set(t["finess_geo"]))].drop_duplicates("FINESS_EG")
    lines = ["finess;etalab;111;2026-05-12"]
    for r in t.itertuples():
        public = "CH" in r.rs_finess_geo or "CENTRE HOSPITALIER" in r.rs_finess_geo
        lines.append(_line(r.finess_geo, r.finess, r.rs_finess_geo, "109", "Etablissement de santé privé autorisé en SSR",
                           sph="1" if public else "0", mft="03" if public else "07"))
    for r in others.itertuples():
        lines.append(_line(r.FINESS_EG, r.FINESS_EJ, r.RS_eg, "500", "EHPAD", mft="40"))
    (dest / "etalab-cs1100502-stock-20260512-0339.csv").write_text("\n".join(lines) + "\n", encoding="utf-8")
    shutil.copy(real_data / "has-certification-2021" / "demarche.csv", dest / "demarche.csv")
    shutil.copy(real_data / "has-certification-2021" / "etablissement-geo.csv", dest / "etablissement-geo.csv")
    shutil.copy(es, dest / es.name)
    expected_region = t.set_index("finess_geo")["region"].map(ESATIS_REGION_NAMES)
    assert expected_region.notna().all()
    return t, others, expected_region, clean_folder(dest, RULES)


def test_national_referential_health_only_regions_right(national):
    t, others, expected_region, res = national
    etab = res.tables["etablissements"].set_index("finess_geo")
    assert set(etab.index) == set(t["finess_geo"])           # health establishments only
    assert not set(etab.index) & set(others["FINESS_EG"])     # the "EHPAD" are left out
    # regions derived from the departments agree with the regions HAS names
    got = etab["region"].reindex(expected_region.index)
    assert (got == expected_region).all(), got[got != expected_region].head()
    assert {"01", "02", "03", "04"} <= set(etab["region"])    # overseas included
    rep = _files(res)["etalab-cs1100502-stock-20260512-0339.csv"]
    assert rep.acceptees == len(t) and rep.hors_referentiel == len(others)
    assert all(f.reconciles() for f in res.files)
    assert len(res.rejects) == 0, res.rejects.head()


@pytest.mark.parametrize("region", ["84", "04"])
def test_national_targeting_and_follow_up_against_independent_computation(real_data, national, region):
    from analysis.indicators.ciblage import compute_ciblage
    from analysis.indicators.suivi import compute_suivi

    t, _others, expected_region, res = national
    sites = set(expected_region[expected_region == region].index)
    levels = independent_levels(real_data, sites, 2024)
    cib = compute_ciblage(res.tables, RULES, 2024, region)
    assert set(cib.loc[cib["risque"] == "management_qualite", "finess_geo"]) == set(levels[levels == "Non certifié"].index)
    suivi = compute_suivi(res.tables, RULES, 2024, region)
    cert = suivi[suivi["indicateur"] == "niveau_certification"]
    assert set(cert["finess_geo"]) == sites  # monitoring mode: every site of the region
    counts = cert["statut"].value_counts()
    assert counts.get("atteint", 0) == int(levels.isin(["Certifié avec mention", "Certifié"]).sum())
    assert counts.get("non_evaluable", 0) == len(sites) - len(levels)


def test_geolocated_extract_latin1_crlf_and_a_damaged_line(tmp_path):
    """File 1100507 (geolocalisation section), an older Latin-1 extract with CRLF, a short line."""
    ch = _line("010000024", "010780054", "CH DE FLEYRIAT", "355", "Centre Hospitalier (C.H.)", sph="1", mft="03")
    clinic = _line("2A0000123", "2A0000115", "CLINIQUE DE L'ÉTANG", "365", "Etablissement de Soins Pluridisciplinaire")
    pharma = _line("010000099", "010000081", "PHARMACIE", "620", "Pharmacie d'Officine", mft="01")
    text = "\r\n".join([
        "finess;etalab;111;2019-03-01", ch, "structureet;010000040;010780070;TROP COURT", clinic, pharma,
        "geolocalisation;010000024;870000.1;6570000.2;1,ATLASANTE,100,IGN,LAMBERT_93;2019-02-01",
        "geolocalisation;2A0000123;1200000.0;6100000.0;1,ATLASANTE,100,IGN,LAMBERT_93;2019-02-01",
    ]) + "\r\n"
    p = tmp_path / "etalab-cs1100507-stock-20190301-0410.csv"
    p.write_bytes(text.encode("cp1252"))
    bom = tmp_path / "autre" / "extrait.csv"
    bom.parent.mkdir()
    bom.write_bytes(("\ufeff" + text).encode("utf-8"))
    assert finess.sniff(bom) == "2019-03-01"
    res = clean_folder(tmp_path, RULES)
    etab = res.tables["etablissements"].set_index("finess_geo")
    assert list(etab.index) == ["010000024", "2A0000123"]
    assert etab.loc["2A0000123", "raison_sociale"] == "CLINIQUE DE L'ÉTANG"
    assert (etab.loc["2A0000123", "departement"], etab.loc["2A0000123", "region"]) == ("2A", "94")
    rep = _files(res)[p.name]
    assert rep.encodage == "windows-1252" and rep.date_extraction == "2019-03-01"
    assert (rep.lignes_lues, rep.acceptees, rep.rejetees, rep.hors_referentiel, rep.sans_objet) == (6, 2, 1, 1, 2)
    assert res.rejects[["ligne", "motif"]].values.tolist() == [
        [3, "ligne mal formée : ligne « structureet » de 4 champs pour 32 attendus (séparateur « ; »)"]]
    assert any("2 « geolocalisation »" in w for w in res.warnings)
    assert any("Pharmacie d'Officine (620) : 1" in w for w in res.warnings)
