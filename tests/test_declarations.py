"""Indicateurs déclarés dans le fichier de règles seulement (contrat de données v2, section 4).

Un indicateur « taux de vaccination antigrippale du personnel » est ajouté exactement comme dans le
contrat (source ``vaccination`` avec son contrôle, indicateur ratio ≥ 50 % sous ``prevention_ias``,
risque ``vaccination`` au seuil < 45) : sans aucune modification du code, il atteint le suivi, le
ciblage, les tendances, le rapport, les fiches et le classeur. Les attendus sont calculés à la main.
"""

from __future__ import annotations

import copy
import subprocess
import sys
from pathlib import Path

import pandas as pd
import pytest
import yaml
from openpyxl import load_workbook
from pypdf import PdfReader

from analysis.orchestration.pipeline import Params, build_report
from analysis.reading.readers import InputError
from analysis.rules.model import DEFAULT_RULES, load_rules

# Contrat, section 4, tel qu'écrit
SOURCE = yaml.safe_load("""
libelle: "Vaccination antigrippale du personnel"
fichier: vaccination
cle: [finess_geo, annee]
colonnes:
  finess_geo: {type: finess, requis: oui}
  annee:      {type: annee, requis: oui}
  vaccines:   {type: entier, requis: oui, min: 0}
  effectif:   {type: entier, requis: oui, min: 1}
controles:
  - {condition: "vaccines <= effectif", motif: "plus de personnels vaccinés que d'effectif"}
""")
INDICATEUR = yaml.safe_load("""
libelle: "Taux de vaccination antigrippale du personnel"
source: vaccination
calcul: ratio
numerateur: vaccines
denominateur: effectif
unite: "%"
cible: {operateur: ">=", valeur: 50}
""")
RISQUE = yaml.safe_load("""
libelle: "Couverture vaccinale insuffisante"
indicateur: taux_vaccination_grippe
regle: seuil
operateur: "<"
valeur: 45
""")

ETAB = """finess_geo;raison_sociale;departement;region;statut;specificite
140000001;CH de Caen fictif;14;28;public;
140000002;Clinique de Bayeux fictive;14;28;prive_lucratif;
140000003;SMR de Lisieux fictif;14;28;prive_non_lucratif;
270000001;MECSS d'Évreux fictive;27;28;prive_non_lucratif;mecss
760000001;CH de Rouen fictif;76;28;public;
"""
# 760000001 : 120 vaccinés pour 100 agents -> ligne rejetée par le contrôle déclaré
VACCINATION = """finess_geo;annee;vaccines;effectif
140000001;2023;50;100
140000001;2024;60;100
140000002;2024;40;100
140000003;2023;70;100
270000001;2024;30;100
760000001;2024;120;100
"""


def extended_rules(path: Path, change=None) -> Path:
    raw = yaml.safe_load(Path(DEFAULT_RULES).read_text(encoding="utf-8"))
    raw["sources"]["vaccination"] = copy.deepcopy(SOURCE)
    raw["engagements"]["prevention_ias"]["indicateurs"]["taux_vaccination_grippe"] = copy.deepcopy(INDICATEUR)
    raw["ciblage"]["vaccination"] = copy.deepcopy(RISQUE)
    if change:
        change(raw)
    path.write_text(yaml.safe_dump(raw, allow_unicode=True, sort_keys=False), encoding="utf-8")
    return path


@pytest.fixture(scope="module")
def build(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("vaccination")
    data = tmp / "raw"
    data.mkdir()
    (data / "etablissements.csv").write_text(ETAB, encoding="utf-8")
    (data / "vaccination.csv").write_text(VACCINATION, encoding="utf-8")
    rules = extended_rules(tmp / "regles_vaccination.yml")
    [final] = build_report(Params(data_dir=data, out_dir=tmp / "out", region="28", rules=rules,
                                  processed_dir=tmp / "processed", quiet=True))
    return final


def test_statuses_hand_computed(build):
    s = pd.read_csv(build / "suivi_engagements.csv", sep=";", encoding="utf-8-sig", dtype=str, keep_default_na=False)
    v = s[s["indicateur"] == "taux_vaccination_grippe"].set_index("finess_geo")
    assert v["engagement"].unique().tolist() == ["prevention_ias"]
    assert v.loc["140000001", ["valeur", "statut"]].tolist() == ["60", "atteint"]        # 60/100 >= 50
    assert v.loc["140000002", ["valeur", "statut"]].tolist() == ["40", "non_atteint"]    # 40/100
    assert v.loc["140000003", "statut"] == "non_evaluable"                               # rien en 2024
    assert v.loc["760000001", "statut"] == "non_evaluable"                               # ligne rejetée
    assert v.loc["270000001", "statut"] == "non_concerne"                                # MECSS exclue
    assert v.loc["140000001", "cible"] == "≥\u00a050\u00a0%"


def test_reject_names_file_line_column(build):
    r = pd.read_csv(build / "rejets.csv", sep=";", encoding="utf-8-sig", dtype=str)
    assert r.to_dict("records") == [{"fichier": "vaccination.csv", "ligne": "7", "colonne": "vaccines",
                                     "valeur": "120", "motif": "plus de personnels vaccinés que d'effectif"}]


def test_targeting_rows(build):
    c = pd.read_csv(build / "ciblage.csv", sep=";", encoding="utf-8-sig", dtype=str)
    v = c[c["risque"] == "vaccination"].set_index("finess_geo")
    assert set(v.index) == {"140000002", "270000001"}  # 40 % et 30 % < 45 %
    assert v.loc["140000002", "motif"] == "Taux de vaccination antigrippale du personnel 2024 : 40,0\u00a0% <\u00a045\u00a0%"
    assert v.loc["140000002", "valeur"] == "40"


def test_trend_row_per_year(build):
    t = pd.read_csv(build / "tendances.csv", sep=";", encoding="utf-8-sig")
    v = t[t["indicateur"] == "taux_vaccination_grippe"].set_index("annee")
    assert sorted(v.index) == [2023, 2024]
    assert v.loc[2023, "valeur_regionale"] == pytest.approx(60.0)          # (50 + 70) / 200
    assert v.loc[2024, "valeur_regionale"] == pytest.approx(130 / 3)       # (60 + 40 + 30) / 300
    assert v.loc[2024, "evolution_annuelle"] == pytest.approx(130 / 3 - 60)
    assert v.loc[2024, "libelle"] == "Taux de vaccination antigrippale du personnel"
    cib = t[t["indicateur"] == "cibles_vaccination"].set_index("annee")
    assert cib.loc[2024, "valeur_regionale"] == 2


def test_report_and_sheets_show_it_with_its_label(build):
    html = (build / "rapport_annuel.html").read_text(encoding="utf-8")
    assert "Couverture vaccinale insuffisante" in html          # section de ciblage du risque déclaré
    assert "Taux de vaccination antigrippale du personnel" in html  # suivi et tendances
    text = " ".join(" ".join(p.extract_text() for p in PdfReader(build / "fiches" / "140000002.pdf").pages).split())
    compact = text.replace(" ", "")  # pypdf coupe parfois les mots composés par Typst (« T aux »)
    assert "Tauxdevaccinationantigrippaledupersonnel" in compact
    assert "Couverturevaccinaleinsuffisante" in compact
    assert "40,0" in text


def test_workbook_numbers_are_numbers(build):
    ws = load_workbook(build / "cpom_28_2024.xlsx")["suivi_engagements"]
    header = [c.value for c in ws[1]]
    rows = [dict(zip(header, [c for c in r])) for r in ws.iter_rows(min_row=2)]
    vac = {r["finess_geo"].value: r["valeur"] for r in rows if r["indicateur"].value == "taux_vaccination_grippe"}
    assert vac["140000001"].value == 60 and vac["140000001"].data_type == "n"
    assert vac["140000001"].number_format == "0.0"


def test_undeclared_column_stops_with_key_path(tmp_path):
    bad = extended_rules(tmp_path / "regles.yml", lambda raw: raw["engagements"]["prevention_ias"]["indicateurs"]
                         ["taux_vaccination_grippe"].update(denominateur="agents"))
    with pytest.raises(InputError) as exc:
        load_rules(bad)
    assert "engagements.prevention_ias.indicateurs.taux_vaccination_grippe.denominateur" in str(exc.value)
    (tmp_path / "raw").mkdir()
    (tmp_path / "raw" / "etablissements.csv").write_text(ETAB, encoding="utf-8")
    proc = subprocess.run([sys.executable, "-m", "analysis", "report", "--data", str(tmp_path / "raw"),
                           "--out", str(tmp_path / "out"), "--rules", str(bad), "--quiet"],
                          capture_output=True, text=True)
    assert proc.returncode == 2
    assert "engagements.prevention_ias.indicateurs.taux_vaccination_grippe.denominateur" in proc.stderr
    assert "agents" in proc.stderr and "Traceback" not in proc.stderr
    assert not (tmp_path / "out").exists()


@pytest.mark.parametrize("change, path", [
    (lambda r: r["ciblage"]["infectieux"].update(seuil_p=2.5), "ciblage.infectieux.seuil_p"),
    (lambda r: r["ciblage"]["rupture_parcours"].update(valeur="vingt"), "ciblage.rupture_parcours.valeur"),
    (lambda r: r["ciblage"]["rupture_parcours"].pop("valeur"), "ciblage.rupture_parcours"),
    (lambda r: r["engagements"]["lettre_liaison"]["indicateurs"]["score_qls"].update(calcul="moyenne"),
     "engagements.lettre_liaison.indicateurs.score_qls.calcul"),
    (lambda r: r["ciblage"]["vaccination"].update(regle="quantile"), "ciblage.vaccination.regle"),
    (lambda r: r["ciblage"]["vaccination"].update(indicateur="taux_grippe"), "ciblage.vaccination.indicateur"),
    (lambda r: r["engagements"]["prevention_ias"]["indicateurs"]["taux_vaccination_grippe"].update(source="vacc"),
     "engagements.prevention_ias.indicateurs.taux_vaccination_grippe.source"),
    (lambda r: r["sources"]["vaccination"]["controles"][0].update(condition="vaccines <= agents"),
     "sources.vaccination"),
    (lambda r: r["referentiel_finess"]["statut"]["codesph"].update({"1": "publique"}),
     "referentiel_finess.statut.codesph.1"),
    (lambda r: r["bqss"]["qls"]["selection"].update(acronyme="^qls($"), "bqss.qls.selection"),
    (lambda r: r["bqss"]["certification_v2014"]["niveaux"].update({5: "Z"}), "bqss.certification_v2014.niveaux.5"),
    (lambda r: r["alertes"].append({"type": "degradation_ifaq", "indicateur": "signalements", "libelle": "x"}),
     "alertes[6].indicateur"),
])
def test_rules_errors_name_the_key_path(tmp_path, change, path):
    bad = extended_rules(tmp_path / "regles.yml", change)
    with pytest.raises(InputError) as exc:
        load_rules(bad)
    assert path in str(exc.value)


def test_invalid_yaml_names_line(tmp_path):
    p = tmp_path / "regles.yml"
    p.write_text("version: '1'\nsources: [\n", encoding="utf-8")
    with pytest.raises(InputError, match="ligne"):
        load_rules(p)


def test_default_rules_file_passes():
    r = load_rules()
    assert list(r.risques) == ["infectieux", "management_qualite", "rupture_parcours"]
    assert list(r.engagements) == ["certification", "lettre_liaison", "signalement_esin", "prevention_ias"]
