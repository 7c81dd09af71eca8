"""Banc de mesure : comparaison aux cibles et mise en forme, sur des mesures fictives (rien n'est chronométré)."""

from __future__ import annotations

import json

from tools import bench

GIB = 1024 ** 3


def _mesures(**over) -> dict:
    m = {
        "plancher": {"median_s": 2.0, "executions_s": [2.1, 2.0, 1.9], "en_processus_median_s": 1.0},
        "rapport_froid": {"median_s": 45.0, "executions_s": [44.0, 45.0, 47.0], "fiches": 298,
                          "parties_s": {"lecture": 1.5, "notebooks": 6.5, "pdf": 5.8, "fiches": 25.0}},
        "relance": {"median_s": 0.4, "executions_s": [0.4, 0.4, 0.5], "rien_refait": True},
        "relance_correction": {"median_s": 15.0, "executions_s": [15.0], "fiches_rendues": 1,
                               "fiches_reprises": 297},
        "fiches": {"echantillon": 10, "naif_par_fiche_s": 3.0, "projet_par_fiche_s": 0.12,
                   "projet_rendu_par_fiche_s": 0.115, "ratio": 25.0, "ratio_moteur": 6.0,
                   "weasyprint_par_fiche_s": 0.09, "typst_par_fiche_s": 0.015, "echantillon_moteurs": 40,
                   "rapport_complet_par_fiche_s": 0.08, "ratio_rapport_complet": 37.5},
        "national": {"duree_s": 700.0, "pic_memoire_octets": int(1.5 * GIB), "pic_pss_octets": int(1.2 * GIB),
                     "regions": 18, "etablissements": 3000, "fiches": 3000},
    }
    m.update(over)
    return m


def _row(rows, start):
    return next(r for r in rows if r["mesure"].startswith(start))


def test_targets_met_and_missed_with_margin():
    rows = bench.evaluate(_mesures())
    froid = _row(rows, "Rapport de la région")
    assert froid["cible"] == 12.0  # 6 × plancher
    assert froid["atteinte"] is False
    assert froid["ecart"] == -33.0 and round(froid["ecart_pct"]) == -275
    assert froid["texte"].startswith("manque 33,0 s (275 %)")
    corr = _row(rows, "Relance après correction")
    assert corr["cible"] == 18.0 and corr["atteinte"] is True  # 15 s ≤ 40 % de 45 s
    moteur = _row(rows, "Fiche : WeasyPrint")
    assert moteur["cible"] == 5.0 and moteur["atteinte"] is True and moteur["ecart"] == 1.0
    relance = _row(rows, "Relance")
    assert relance["atteinte"] is True and relance["texte"].startswith("marge 1,60 s")
    ratio = _row(rows, "Fiche : coût naïf")
    assert ratio["atteinte"] is True and ratio["cible"] == 20.0 and ratio["ecart"] == 5.0
    assert _row(rows, "National : tous")["atteinte"] is False  # 700 s ≥ 600 s
    assert _row(rows, "National : pic")["atteinte"] is True


def test_national_rerun_after_one_row_rebuilds_one_region():
    nat = {"duree_s": 160.0, "pic_memoire_octets": GIB, "regions": 18,
           "relance_correction": {"duree_s": 20.0, "regions_refaites": 1, "regions_reprises": 17}}
    rows = bench.evaluate(_mesures(national=nat))
    assert _row(rows, "National : relance après correction d'une ligne d'esin, régions")["atteinte"] is True
    duree = _row(rows, "National : relance après correction d'une ligne d'esin, durée")
    assert duree["cible"] == 64.0 and duree["atteinte"] is True  # 40 % de 160 s
    nat["relance_correction"]["regions_refaites"] = 18
    assert _row(bench.evaluate(_mesures(national=nat)), "National : relance après")["atteinte"] is False
    text = bench.format_report({"machine": {}, "mesures": _mesures(national=nat), "cibles": rows})
    assert "18 région(s) refaite(s), 17 reprise(s)" in text


def test_boundaries_are_strict_for_times_and_inclusive_for_ratio():
    rows = bench.evaluate(_mesures(relance={"median_s": 2.0}, fiches={"ratio": 20.0}))
    assert _row(rows, "Relance")["atteinte"] is False   # « < 2 s »
    assert _row(rows, "Fiche : coût naïf")["atteinte"] is True      # « ≥ 20 × »


def test_missing_measure_is_reported_not_guessed():
    rows = bench.evaluate(_mesures(national={}, plancher={}))
    assert _row(rows, "National : tous")["atteinte"] is None
    assert _row(rows, "Rapport de la région")["atteinte"] is None  # pas de plancher, pas de cible
    assert all(r["texte"] == "non mesuré" for r in rows if r["atteinte"] is None)


def test_bqss_targets_and_lines():
    m = _mesures(bqss={"median_s": 6.2, "executions_s": [6.2], "lecture_s": 5.1, "pic_memoire_octets": int(0.6 * GIB),
                       "lignes": 3_798_334, "finess": 10_871, "cles": 959, "octets": 195_000_000})
    rows = bench.evaluate(m)
    assert _row(rows, "BQSS (3,8 M lignes)")["atteinte"] is True and _row(rows, "BQSS (3,8 M lignes)")["cible"] == 20.0
    assert _row(rows, "BQSS : pic")["atteinte"] is True
    slow = bench.evaluate(_mesures(bqss={"median_s": 25.0, "pic_memoire_octets": int(2 * GIB)}))
    assert _row(slow, "BQSS (3,8 M lignes)")["atteinte"] is False and _row(slow, "BQSS : pic")["atteinte"] is False
    text = bench.format_report({"machine": {}, "mesures": m, "cibles": rows})
    assert "BQSS synthétique : 3,80 M lignes, 10871 FINESS, 959 clés" in text and "6,20 s" in text


def test_french_formatting():
    assert bench.fmt_duree(0.853) == "0,85 s"
    assert bench.fmt_duree(12.34) == "12,3 s"
    assert bench.fmt_duree(485) == "8 min 05 s"
    assert bench.fmt_octets(1.5 * GIB) == "1,50 Gio"
    assert bench.fmt_octets(300 * 1024 ** 2) == "300 Mio"
    assert bench.fmt_ratio(25) == "25,0\u00a0×"


def test_report_table_and_json():
    result = {
        "machine": {"cpu": "CPU d'essai", "coeurs": 2, "memoire_octets": 8 * GIB, "python": "3.11.7",
                    "charge_depart": "0,50, 0,40, 0,30"},
        "mesures": _mesures(),
    }
    result["cibles"] = bench.evaluate(result["mesures"])
    text = bench.format_report(result)
    assert "CPU d'essai, 2 cœurs, 8,00 Gio" in text
    assert "Plancher" in text and "2,00 s" in text
    lines = [ln for ln in text.splitlines() if ln.startswith("Rapport de la région de démonstration, à froid")]
    assert lines and "NON" in lines[0] and "45,0 s" in lines[0] and "12,0 s" in lines[0]
    assert any(ln.startswith("Relance sans changement") and " oui " in ln for ln in text.splitlines())
    json.dumps(result, ensure_ascii=False)  # bench.json : sérialisable tel quel


def test_machine_info_has_the_fields_of_bench_json():
    info = bench.machine_info()
    assert {"cpu", "coeurs", "memoire_octets", "python"} <= set(info)
    assert info["coeurs"] >= 1


def test_cpu_time_counts_the_processes_the_command_waited_for():
    # la commande attend un processus qui calcule environ 0,4 s : son temps processeur est compté
    spin = "import time\nt = time.process_time()\nwhile time.process_time() - t < 0.4: pass"
    cmd = [bench.sys.executable, "-c",
           f"import subprocess, sys; subprocess.run([sys.executable, '-c', {spin!r}], check=True)"]
    r = bench._run(cmd)
    assert r["cpu_s"] >= 0.4
    assert r["cpu_s"] <= r["duree_s"] * (bench.os.cpu_count() or 1) + 0.05


def test_shortest_possible_rerun_is_its_cpu_time_over_the_cores():
    m = _mesures(relance_correction={"median_s": 7.0, "executions_s": [7.0], "cpu_median_s": 12.0,
                                     "fiches_rendues": 1, "fiches_reprises": 297})
    result = {"machine": {"coeurs": 2}, "mesures": m, "cibles": bench.evaluate(m)}
    lines = bench.format_report(result).splitlines()
    line = next(ln for ln in lines if ln.lstrip().startswith("durée la plus courte possible"))
    assert "sur 2 cœur(s)" in line and "6,00 s" in line  # 12 s de processeur / 2 cœurs
