"""Règles de lecture du contrat de données (section 1), sur de petits fichiers écrits à la main."""

from __future__ import annotations

from pathlib import Path

import pandas as pd
import pytest

from analysis.reading.cleaning import clean_folder, source_from_filename
from analysis.reading.readers import InputError, normalize_name, read_any
from analysis.rules.loader import load_rules

RULES = load_rules()

ETAB = (
    "finess_geo;raison_sociale;departement;region;statut;specificite\n"
    "010000016;CH de Test;01;84;public;\n"
    "010000024;Clinique B;1;84;prive_lucratif;hemodialyse\n"
    "690000011;CHU Lyon fictif;69;84;public;\n"
)


def write(folder: Path, name: str, text: str, encoding: str = "utf-8") -> Path:
    p = folder / name
    p.write_bytes(text.encode(encoding))
    return p


@pytest.fixture
def folder(tmp_path: Path) -> Path:
    write(tmp_path, "etablissements.csv", ETAB)
    return tmp_path


def test_normalize_header():
    assert normalize_name("FINESS géo") == "finess_geo"
    assert normalize_name("Raison sociale") == "raison_sociale"
    assert normalize_name(" Date-de.décision ") == "date_de_decision"
    assert normalize_name("\ufeffFINESS") == "finess"


def test_windows_1252_semicolon_with_accented_header(tmp_path: Path):
    write(
        tmp_path,
        "etablissements.csv",
        "FINESS géo;Raison sociale;Département;Région;Statut\n010000016;Hôpital Sainte-Hélène;01;84;Public\n",
        encoding="cp1252",
    )
    table = read_any(tmp_path / "etablissements.csv")
    assert table.encoding == "windows-1252"
    assert table.separator == ";"
    assert list(table.data.columns[:3]) == ["finess_geo", "raison_sociale", "departement"]
    res = clean_folder(tmp_path, RULES)
    etab = res.tables["etablissements"]
    assert etab.loc[0, "raison_sociale"] == "Hôpital Sainte-Hélène"
    assert etab.loc[0, "statut"] == "public"
    assert etab.loc[0, "region"] == "84"


def test_utf8_bom_and_comma_separator(tmp_path: Path):
    write(tmp_path, "etablissements.csv", "\ufeff" + ETAB.replace(";", ","))
    res = clean_folder(tmp_path, RULES)
    assert res.files[0].encodage == "utf-8-sig"
    assert res.files[0].separateur == ","
    assert len(res.tables["etablissements"]) == 3


def test_eight_digit_finess_is_padded_and_counted(folder: Path):
    write(folder, "esin.csv", "finess_geo;annee;signalements;responsable_connecte\n10000016;2024;3;oui\n")
    res = clean_folder(folder, RULES)
    esin = res.tables["esin"]
    assert esin.loc[0, "finess_geo"] == "010000016"
    rep = {f.fichier: f for f in res.files}["esin.csv"]
    assert (rep.lignes_lues, rep.acceptees, rep.rejetees, rep.reparees) == (1, 1, 0, 1)
    assert any("réparée" in w for w in res.warnings)


def test_departement_repaired(folder: Path):
    res = clean_folder(folder, RULES)
    etab = res.tables["etablissements"].set_index("finess_geo")
    assert etab.loc["010000024", "departement"] == "01"
    assert {f.fichier: f for f in res.files}["etablissements.csv"].reparees == 1


def test_decimal_comma_and_dot_are_equal(folder: Path):
    write(
        folder,
        "qls.csv",
        "finess_geo;annee;secteur;score\n010000016;2024;MCO;19,9\n010000024;2024;SMR;19.9\n",
    )
    qls = clean_folder(folder, RULES).tables["qls"]
    assert qls["score"].tolist() == [19.9, 19.9]
    assert qls["secteur"].tolist() == ["MCO", "SSR"]  # SMR is the new name of SSR


def test_french_and_iso_dates(folder: Path):
    write(
        folder,
        "certification.csv",
        "finess_geo;date_decision;niveau\n010000016;31/12/2024;B\n010000024;2023-06-15;Certifié avec mention\n"
        "690000011;15/06/2023;non_certifie\n",
    )
    cert = clean_folder(folder, RULES).tables["certification"].set_index("finess_geo")
    assert cert.loc["010000016", "date_decision"] == pd.Timestamp("2024-12-31")
    assert cert.loc["010000024", "date_decision"] == pd.Timestamp("2023-06-15")
    assert cert.loc["010000024", "niveau"] == "A"
    assert cert.loc["690000011", "niveau"] == "E"


def test_booleans_any_case(folder: Path):
    write(
        folder,
        "esin.csv",
        "finess_geo;annee;signalements;responsable_connecte\n"
        "010000016;2024;1;Oui\n010000024;2024;0;NON\n690000011;2024;4;Vrai\n"
        "010000016;2023;1;o\n010000024;2023;0;0\n690000011;2023;2;TRUE\n",
    )
    esin = clean_folder(folder, RULES).tables["esin"].sort_values(["annee", "finess_geo"])
    assert esin["responsable_connecte"].tolist() == [True, False, True, True, False, True]


def test_invalid_boolean_is_rejected_with_file_line_column(folder: Path):
    write(folder, "esin.csv", "finess_geo;annee;signalements;responsable_connecte\n010000016;2024;1;peut-être\n")
    res = clean_folder(folder, RULES)
    assert "esin" in res.tables and len(res.tables["esin"]) == 0
    r = res.rejects.iloc[0]
    assert (r["fichier"], r["ligne"], r["colonne"], r["valeur"]) == ("esin.csv", 2, "responsable_connecte", "peut-être")
    assert "booléen attendu" in r["motif"]


def test_exact_duplicate_collapsed_not_rejected(folder: Path):
    write(
        folder,
        "activite.csv",
        "finess_geo;annee;sejours\n010000016;2024;1500\n010000016;2024;1500\n010000024;2024;800\n",
    )
    res = clean_folder(folder, RULES)
    assert len(res.tables["activite"]) == 2
    assert len(res.rejects) == 0
    rep = {f.fichier: f for f in res.files}["activite.csv"]
    assert (rep.lignes_lues, rep.acceptees, rep.doublons_fusionnes, rep.rejetees) == (3, 2, 1, 0)
    assert rep.reconciles()
    assert any("double exact" in w for w in res.warnings)


def test_conflicting_duplicate_both_rejected_naming_each_other(folder: Path):
    write(
        folder,
        "activite.csv",
        "finess_geo;annee;sejours\n010000016;2024;1500\n010000024;2024;800\n010000016;2024;1600\n",
    )
    res = clean_folder(folder, RULES)
    assert res.tables["activite"]["finess_geo"].tolist() == ["010000024"]
    rej = res.rejects.set_index("ligne")
    assert set(rej.index) == {2, 4}
    assert "ligne 4" in rej.loc[2, "motif"] and "ligne 2" in rej.loc[4, "motif"]
    rep = {f.fichier: f for f in res.files}["activite.csv"]
    assert (rep.lignes_lues, rep.acceptees, rep.rejetees) == (3, 1, 2)


def test_unknown_finess_rejected(folder: Path):
    write(folder, "activite.csv", "finess_geo;annee;sejours\n750000001;2024;1500\n")
    res = clean_folder(folder, RULES)
    r = res.rejects.iloc[0]
    assert r["motif"] == "établissement inconnu du référentiel"
    assert (r["ligne"], r["colonne"], r["valeur"]) == (2, "finess_geo", "750000001")


def test_formes_greater_than_effectif_rejected(folder: Path):
    write(
        folder,
        "formation.csv",
        "finess_geo;annee;categorie_personnel;effectif;formes\n010000016;2024;medical;10;12\n"
        "010000016;2024;Paramédical;20;18\n",
    )
    res = clean_folder(folder, RULES)
    assert res.tables["formation"]["categorie_personnel"].tolist() == ["paramedical"]
    r = res.rejects.iloc[0]
    assert (r["ligne"], r["colonne"], r["valeur"]) == (2, "formes", "12")
    assert "supérieur à l'effectif" in r["motif"]


def test_out_of_range_and_non_numeric_values(folder: Path):
    write(
        folder,
        "qls.csv",
        "finess_geo;annee;secteur;score;n_dossiers;ic_bas;ic_haut\n"
        "010000016;2024;MCO;104;50;;\n010000024;2024;MCO;abc;50;;\n690000011;2024;MCO;50;50;60;70\n",
    )
    res = clean_folder(folder, RULES)
    motifs = res.rejects.set_index("ligne")["motif"].to_dict()
    assert "hors bornes" in motifs[2]
    assert motifs[3] == "nombre attendu"
    assert "incohérent" in motifs[4]
    assert len(res.tables["qls"]) == 0


def test_missing_required_column_is_a_clear_error(folder: Path):
    write(folder, "esin.csv", "finess_geo;annee;signalements\n010000016;2024;1\n")
    with pytest.raises(InputError) as err:
        clean_folder(folder, RULES)
    msg = str(err.value)
    assert "esin.csv" in msg and "responsable_connecte" in msg and "Colonnes attendues" in msg


def test_missing_etablissements_is_a_clear_error(tmp_path: Path):
    write(tmp_path, "esin.csv", "finess_geo;annee;signalements;responsable_connecte\n010000016;2024;1;oui\n")
    with pytest.raises(InputError, match="etablissements"):
        clean_folder(tmp_path, RULES)


def test_binary_file_is_a_clear_error(folder: Path):
    (folder / "activite.csv").write_bytes(b"PK\x03\x04\x00\x00binary\x00\x01")
    with pytest.raises(InputError, match="binaire"):
        clean_folder(folder, RULES)


def test_broken_xlsx_is_a_clear_error(folder: Path):
    (folder / "activite.xlsx").write_bytes(b"not a zip at all")
    with pytest.raises(InputError, match="XLSX"):
        clean_folder(folder, RULES)


def test_xlsx_read_like_csv(tmp_path: Path):
    from openpyxl import Workbook

    wb = Workbook()
    ws = wb.active
    ws.append(["FINESS géo", "Raison sociale", "departement", "region", "statut", "lits"])
    ws.append([10000016, "CH de Test", 1, 84, "public", 120])  # numbers as Excel stores them
    ws.append(["690000011", "CHU", "69", "84", "public", None])
    wb.save(tmp_path / "etablissements.xlsx")
    res = clean_folder(tmp_path, RULES)
    etab = res.tables["etablissements"]
    assert etab["finess_geo"].tolist() == ["010000016", "690000011"]
    assert etab["departement"].tolist() == ["01", "69"]
    assert etab["lits"].tolist()[0] == 120
    assert res.files[0].reparees == 1


def test_every_row_accounted_for(folder: Path):
    write(
        folder,
        "audits.csv",
        "finess_geo;annee;audits_total;audits_precautions\n"
        "010000016;2024;3;1\n010000016;2024;3;1\n010000024;2024;2;5\n999;2024;1;1\n"
        "690000011;2024;4;2\n690000011;2024;4;3\n\n",
    )
    res = clean_folder(folder, RULES)
    rep = {f.fichier: f for f in res.files}["audits.csv"]
    assert rep.lignes_lues == 6
    assert (rep.acceptees, rep.doublons_fusionnes, rep.rejetees) == (1, 1, 4)
    assert rep.reconciles()
    assert rep.lignes_vides == 1


def test_source_recognised_by_name_variants():
    assert source_from_filename(Path("Etablissements.xlsx"), RULES.source_specs) == "etablissements"
    assert source_from_filename(Path("qls_2024.csv"), RULES.source_specs) == "qls"
    assert source_from_filename(Path("plans_actions.csv"), RULES.source_specs) == "plans_actions"
    assert source_from_filename(Path("plan_epidemies.csv"), RULES.source_specs) == "plan_epidemies"
    assert source_from_filename(Path("export_activite.csv"), RULES.source_specs) == "activite"
    assert source_from_filename(Path("divers.csv"), RULES.source_specs) is None


def test_unrecognised_file_is_reported_not_silently_dropped(folder: Path):
    write(folder, "notes.csv", "a;b\n1;2\n")
    res = clean_folder(folder, RULES)
    assert res.ignored_files == ["notes.csv"]
    assert any("notes.csv" in w for w in res.warnings)


def test_absent_sources_listed(folder: Path):
    res = clean_folder(folder, RULES)
    assert "qls" in res.absent_sources and "esin" in res.absent_sources
