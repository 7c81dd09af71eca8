"""HAS BQSS (valeur.csv + metadata.csv) telle que téléchargée : petit jeu synthétique au format documenté."""

from __future__ import annotations

import pandas as pd
import pytest

from analysis.reading import bqss
from analysis.reading.cleaning import clean_folder
from analysis.rules.loader import load_rules

RULES = load_rules()
A, B, D, E = "010000024", "970100400", "970400024", "970409645"
OUT = "750000000"  # not in the referential

META_HEADER = ("name,title,description,type,source,indicateur,secteur,theme,acronyme,version,variable,annee,"
               "ancienne_variable,url_rapport,type_metier,finess_type")
META = [
    "certif_V2014_id_niveau,Niveau de certification,,integer,Certification v2014,,,,,,,,,,,geo",
    "certif_date,Date de décision,,date,Certification v2014,,,,,,,,,,,geo",
    "certif_V2014_id_demarche,Identifiant de la démarche,,integer,Certification v2014,,,,,,,,,,,geo",
    "certification_ref_2021_decision,Décision,,string,Certification v2021,,,,,,,,,,,geo",
    "certification_ref_2021_date_decision,Date de décision,,date,Certification v2021,,,,,,,,,,,geo",
    "score_all_rea_ajust_dp,Score e-Satis MCO +48h,,float,IQSS questionnaire patient,,MCO,,ESATIS48H,,,,,,resultat,geo",
    "mco_qls_2022-qls_resultat,QLS MCO,,float,IQSS dossier patient,QLS,MCO,,QLS,,,2022,,,resultat,geo",
    "mco_qls_2022-qls_intervalle_bas,QLS MCO borne basse,,float,IQSS dossier patient,QLS,MCO,,QLS,,,2022,,,intervalle_bas,geo",
    "mco_qls_2022-qls_intervalle_haut,QLS MCO borne haute,,float,IQSS dossier patient,QLS,MCO,,QLS,,,2022,,,intervalle_haut,geo",
    "mco_qls_2022-qls_effectif,QLS MCO dossiers,,integer,IQSS dossier patient,QLS,MCO,,QLS,,,2022,,,effectif,geo",
    "mco_qls_2022-qls_classe,QLS MCO classe,,string,IQSS dossier patient,QLS,MCO,,QLS,,,2022,,,classe,geo",
    "had_qls_2022-qls_resultat,QLS HAD,,float,IQSS dossier patient,QLS,HAD,,QLS,,,2022,,,resultat,geo",
    "filtre_heb_med,Hébergement,,boolean,Activités ET,,,,,,,,,,,geo",
]
VAL_HEADER = "annee,finess,finess_type,key,value_boolean,value_string,value_integer,value_float,missing_value,value_date"


def _v(annee, fin, key, *, b="", s="", i="", f="", miss="", d=""):
    return f"{annee},{fin},geo,{key},{b},{s},{i},{f},{miss},{d}"


VALUES = [
    _v(2019, A, "filtre_heb_med", b="True"),                                   # 2 unused key
    _v(2019, A, "certif_V2014_id_niveau", i="1"),                              # 3 level A
    _v(2019, A, "certif_date", d="2016-03-10 00:00:00"),                       # 4
    _v(2020, A, "certif_V2014_id_niveau", i="1"),                              # 5 same decision, later edition
    _v(2020, A, "certif_date", d="2016-03-10 00:00:00"),                       # 6
    _v(2021, A, "certif_V2014_id_niveau", miss="Non concerné"),                # 7 missing value
    _v(2018, B, "certif_V2014_id_niveau", i="4.0"),                            # 8 level D
    _v(2018, B, "certif_date", d="2015-01-20 00:00:00"),                       # 9
    _v(2019, B, "certif_V2014_id_niveau", i="5"),                              # 10 level E
    _v(2019, B, "certif_date", d="2017-06-01 00:00:00"),                       # 11
    _v(2019, D, "certif_V2014_id_niveau", i="2"),                              # 12 level B
    _v(2019, D, "certif_date", d="2016-05-05 00:00:00"),                       # 13
    _v(2019, E, "certif_V2014_id_niveau", i="3"),                              # 14 level C
    _v(2019, E, "certif_date", d="2016-07-07 00:00:00"),                       # 15
    _v(2019, E, "certif_V2014_id_demarche", i="1234"),                         # 16 unused key
    _v(2019, OUT, "certif_V2014_id_niveau", i="2"),                            # 17 outside the referential
    _v(2019, OUT, "certif_date", d="2016-01-01 00:00:00"),                     # 18 its date: outside too
    _v(2025, A, "certification_ref_2021_decision", s="Certifié avec mention"),  # 19
    _v(2025, A, "certification_ref_2021_date_decision", d="2024-11-15 00:00:00"),  # 20
    _v(2023, A, "score_all_rea_ajust_dp", f="74.5"),                           # 21 e-Satis
    _v(2022, A, "mco_qls_2022-qls_resultat", f="18.5"),                        # 22 QLS
    _v(2022, A, "mco_qls_2022-qls_intervalle_bas", f="12.0"),                  # 23
    _v(2022, A, "mco_qls_2022-qls_intervalle_haut", f="26.0"),                 # 24
    _v(2022, A, "mco_qls_2022-qls_effectif", i="80"),                          # 25
    _v(2022, A, "mco_qls_2022-qls_classe", s="C"),                             # 26 key without role
    _v(2022, A, "had_qls_2022-qls_resultat", f="90.0"),                        # 27 sector not retained
    _v(2022, B, "mco_qls_2022-qls_resultat", f="55.0"),                        # 28
    _v(2022, OUT, "mco_qls_2022-qls_resultat", f="10.0"),                      # 29 outside
    _v(2022, OUT, "mco_qls_2022-qls_intervalle_bas", f="5.0"),                 # 30 outside
]


@pytest.fixture(scope="module")
def cleaned(tmp_path_factory):
    d = tmp_path_factory.mktemp("bqss")
    (d / "etablissements.csv").write_text(
        "finess_geo;raison_sociale;departement;region;statut\n"
        + "".join(f"{f};ETAB {f};{dep};{reg};public\n" for f, dep, reg in
                  ((A, "01", "84"), (B, "9A", "01"), (D, "974", "04"), (E, "9D", "04"))),
        encoding="utf-8",
    )
    # any names: recognised by their columns
    (d / "bqss-valeurs.csv").write_text("\ufeff" + VAL_HEADER + "\n" + "\n".join(VALUES) + "\n", encoding="utf-8")
    (d / "bqss-meta.csv").write_text(META_HEADER + "\n" + "\n".join(META) + "\n", encoding="utf-8")
    return clean_folder(d, RULES)


def test_v2014_levels_a_to_e_with_their_dates(cleaned):
    cert = cleaned.tables["certification"]
    got = {(r.finess_geo, r.date_decision.strftime("%Y-%m-%d"), r.niveau) for r in cert.itertuples()}
    assert got == {
        (A, "2016-03-10", "A"), (D, "2016-05-05", "B"), (E, "2016-07-07", "C"),
        (B, "2015-01-20", "D"), (B, "2017-06-01", "E"),
        (A, "2024-11-15", "A"),  # 2021 referential: « Certifié avec mention »
    }
    assert set(cert["_ligne"]) == {5, 8, 10, 12, 14, 19}  # the latest edition of a repeated decision


def test_certification_history_drives_targeting(cleaned):
    from analysis.indicators.ciblage import compute_ciblage

    def targeted(year, region):
        c = compute_ciblage(cleaned.tables, RULES, year, region)
        return set(c.loc[c["risque"] == "management_qualite", "finess_geo"])

    assert targeted(2016, "01") == set()   # level D in force
    assert targeted(2018, "01") == {B}     # non-certification (E) since 2017-06-01
    rupture = compute_ciblage(cleaned.tables, RULES, 2023, "84")
    assert set(rupture.loc[rupture["risque"] == "rupture_parcours", "finess_geo"]) == {A}  # QLS 18.5 < 20


def test_qls_and_esatis_rows(cleaned):
    q = cleaned.tables["qls"].set_index("finess_geo")
    assert list(q.index) == [A, B]
    a = q.loc[A]
    assert (a["annee"], a["secteur"], a["score"], a["ic_bas"], a["ic_haut"], a["n_dossiers"]) == (2022, "MCO", 18.5, 12.0, 26.0, 80)
    assert pd.isna(q.loc[B, "ic_bas"]) and q.loc[B, "score"] == 55.0
    es = cleaned.tables["esatis"]
    assert es[["finess_geo", "annee", "secteur", "score"]].values.tolist() == [[A, 2023, "MCO 48 h", 74.5]]


def test_counts_reconcile_and_keys_are_listed(cleaned):
    files = {f.fichier: f for f in cleaned.files}
    v = files["bqss-valeurs.csv"]
    assert v.nature == "HAS BQSS : valeurs (éditions 2018–2025)"
    assert v.lignes_lues == len(VALUES) == 29
    # rows giving a value: 5 V2014 + 1 outside + 1 V2021 + 1 e-Satis + 2 QLS + 1 QLS outside = 11 (9 accepted);
    # completing rows: 6 dates + 3 QLS (bounds, records) inside, 2 outside; sans objet: lines 2, 16, 26 (keys
    # not used), 3 and 4 (earlier edition), 7 (missing value), 27 (HAD) = 7
    assert (v.acceptees, v.rejetees, v.hors_referentiel, v.sans_objet) == (9 + 9, 0, 2 + 2, 7)
    assert v.reconciles()
    m = files["bqss-meta.csv"]
    assert (m.lignes_lues, m.acceptees, m.sans_objet) == (13, 10, 3)
    text = "\n".join(cleaned.warnings)
    assert "certif_V2014_id_niveau (niveau)" in text and "certif_date (date)" in text
    assert "certification_ref_2021_date_decision (date)" in text
    assert "mco_qls_2022-qls_intervalle_bas (ic_bas, MCO)" in text
    assert "mco_qls_2022-qls_classe" in text  # listed as QLS key without a role
    assert "valeur manquante : Non concerné : 1" in text
    assert len(cleaned.rejects) == 0, cleaned.rejects


def test_only_needed_keys_are_read(tmp_path):
    p = tmp_path / "valeur.csv"
    p.write_text(VAL_HEADER + "\n" + "\n".join(VALUES) + "\n", encoding="utf-8")
    assert bqss.sniff_valeur(p)
    df, counts = bqss.read_values(p, {"certif_date"})
    assert counts["lignes"] == 29 and (counts["annee_min"], counts["annee_max"]) == ("2018", "2025")
    assert set(df["key"]) == {"certif_date"} and df["_ligne"].tolist() == [4, 6, 9, 11, 13, 15, 18]
    assert df["finess"].str.len().eq(9).all() and df["finess"].iloc[0] == A  # leading zero kept


def test_a_hand_made_qls_file_wins_over_bqss(tmp_path):
    d = tmp_path
    (d / "etablissements.csv").write_text(f"finess_geo;raison_sociale;departement;region;statut\n{A};X;01;84;public\n{B};Y;9A;01;public\n")
    (d / "qls.csv").write_text(f"finess_geo;annee;secteur;score\n{A};2022;MCO;35\n")
    (d / "valeur.csv").write_text(VAL_HEADER + "\n" + "\n".join(VALUES) + "\n", encoding="utf-8")
    (d / "metadata.csv").write_text(META_HEADER + "\n" + "\n".join(META) + "\n", encoding="utf-8")
    res = clean_folder(d, RULES)
    q = res.tables["qls"].set_index("finess_geo")
    assert q.loc[A, "score"] == 35 and q.loc[A, "_fichier"] == "qls.csv" and q.loc[B, "score"] == 55.0
    assert any("qls : 1 ligne(s) de la BQSS écartée(s)" in w for w in res.warnings)
