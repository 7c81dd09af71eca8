"""Petit jeu d'entrée écrit à la main (deux régions, six établissements), partagé par les tests de bout
en bout : le rapport construit une fois sur ce jeu (fixture ``built`` de ``conftest.py``) sert à tous."""

from __future__ import annotations

from pathlib import Path

from analysis.orchestration.pipeline import Params

EVIL_NAME = "<script>alert(1)</script> Clinique & Cie"
FORMULA_NAME = "=HYPERLINK(\"http://x\")"

ETAB = f"""finess_geo;raison_sociale;departement;region;statut;mco;ssr;psy;specificite;lits
140000001;CH de Caen fictif;14;28;public;oui;oui;non;;900
140000002;{EVIL_NAME};14;28;prive_lucratif;oui;non;non;;80
140000003;{FORMULA_NAME};14;28;prive_non_lucratif;non;oui;non;;60
270000001;Centre de dialyse fictif;27;28;prive_non_lucratif;non;non;non;hemodialyse;0
760000001;CH de Rouen fictif;76;28;public;oui;oui;oui;;1200
690000001;CH de Lyon fictif (autre région);69;84;public;oui;non;non;;500
"""
ACTIVITE = """finess_geo;annee;sejours
140000001;2023;40000
140000001;2024;41000
140000002;2023;8000
140000002;2024;8200
140000003;2023;1500
140000003;2024;1600
270000001;2024;20000
760000001;2023;90000
760000001;2024;91000
690000001;2024;30000
"""
ESIN = """finess_geo;annee;signalements;responsable_connecte
140000001;2023;10;oui
140000001;2024;12;oui
140000002;2023;2;oui
140000002;2024;0;non
140000003;2024;0;oui
270000001;2024;3;oui
760000001;2023;30;oui
760000001;2024;3;oui
690000001;2024;0;non
"""
QLS = """finess_geo;annee;secteur;score;n_dossiers
140000001;2022;MCO;70;60
140000001;2024;MCO;85,5;60
140000001;2024;SSR;19,95;40
140000002;2022;MCO;50;40
140000002;2024;MCO;20;40
140000003;2024;SSR;90;30
760000001;2024;MCO;75;80
760000001;2024;PSY;60;50
690000001;2024;MCO;10;50
"""
CERT = """finess_geo;date_decision;niveau
140000001;15/03/2019;B
140000001;31/12/2024;non_certifie
140000002;01/01/2025;E
140000003;2022-06-01;Certifié avec mention
760000001;2023-05-10;C
"""
FORMATION = """finess_geo;annee;categorie_personnel;effectif;formes
140000001;2024;medical;100;90
140000001;2024;paramedical;300;250
760000001;2024;medical;200;199
"""
AUDITS = """finess_geo;annee;audits_total;audits_precautions
140000001;2024;4;1
760000001;2024;2;0
"""
PLAN = """finess_geo;annee;criteres_remplis;criteres_total
140000001;2024;20;20
760000001;2024;15;20
"""
ENG = """finess_geo;engagement;date_signature;annee_debut;annee_fin;cible
140000001;lettre_liaison;2023-01-15;2023;2027;
140000001;prevention_ias;2023-01-15;2023;2027;
140000002;certification;2021-01-01;2021;2023;
760000001;signalement_esin;2024-02-01;2024;2028;
"""
PLANS = """finess_geo;engagement;action;pilote;echeance;statut
140000001;lettre_liaison;Audit des lettres de liaison;=SUM(A1:A2);2024-06-30;en_cours
"""


def _dossiers() -> str:
    """Dossiers QLS réaudités (contrôle qualité du recueil) : 140000001 MCO 2024, 30 dossiers tous
    conformes (score recalculé 100 : concordant avec 85,5) ; 760000001 MCO 2024, 30 dossiers dont la
    lettre n'est pas datée du jour de la sortie (score 0 : surcotation de 75, résultat non validé) ;
    140000003 SSR 2024, 5 dossiers (moins que le minimum : non évaluable)."""
    head = "finess_geo;annee;secteur;dossier;lettre_retrouvee;datee_jour_sortie;" + ";".join(
        f"critere_{k:02d}" for k in range(1, 11)) + ";controleur;date_controle"
    lines = [head]
    for finess, secteur, n, datee in (("140000001", "MCO", 30, "oui"), ("760000001", "MCO", 30, "non"),
                                      ("140000003", "SSR", 5, "oui")):
        for i in range(1, n + 1):
            lines.append(f"{finess};2024;{secteur};D{i:03d};oui;{datee};" + ";".join(["oui"] * 10)
                         + ";Dr Martin;2025-03-15")
    return "\n".join(lines) + "\n"


DOSSIERS = _dossiers()


def write_fixture(folder: Path) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    for name, text in {
        "etablissements.csv": ETAB, "activite.csv": ACTIVITE, "esin.csv": ESIN, "qls.csv": QLS,
        "certification.csv": CERT, "formation.csv": FORMATION, "audits.csv": AUDITS,
        "plan_epidemies.csv": PLAN, "engagements.csv": ENG, "plans_actions.csv": PLANS,
        "qls_dossiers.csv": DOSSIERS,
    }.items():
        (folder / name).write_text(text, encoding="utf-8")
    return folder


def params(tmp: Path, data: Path, out: Path, **kw) -> Params:
    """Paramètres d'un rapport sur ce jeu ; ``jobs=2`` comme ``make report`` (résultats calculés
    pendant le notebook 01, rapport composé pendant les notebooks 02 à 04)."""
    return Params(data_dir=data, out_dir=out, region=kw.pop("region", "28"), processed_dir=tmp / "processed",
                  quiet=True, jobs=kw.pop("jobs", 2), **kw)


