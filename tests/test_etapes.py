"""Résultats calculés étape par étape (ciblage, suivi, tendances) : ``make report`` lance chaque
notebook dès que les étapes qu'il lit sont faites ; il ne doit donc lire que celles-là."""

from __future__ import annotations

import json
import re
from types import SimpleNamespace

import pytest
from tables import table

from analysis.indicators import results as R
from analysis.orchestration import pipeline
from analysis.rules.loader import load_rules


def _tables() -> dict:
    etabs = [dict(finess_geo=f, raison_sociale=f"Établissement {f}", departement="14", region="28",
                  statut="public", mco=True, ssr=False, psy=False, lits=100) for f in ("140000011", "140000029")]
    esin = [dict(finess_geo=f, annee=y, signalements=n, responsable_connecte=True)
            for f, n in (("140000011", 12), ("140000029", 0)) for y in (2023, 2024)]
    activite = [dict(finess_geo=f, annee=y, sejours=10000) for f in ("140000011", "140000029") for y in (2023, 2024)]
    engagements = [dict(finess_geo="140000011", engagement="signalement_esin", date_signature="2023-01-15",
                        annee_debut=2023, annee_fin=2027)]
    return {"etablissements": table("etablissements", etabs), "esin": table("esin", esin),
            "activite": table("activite", activite), "engagements": table("engagements", engagements)}


def test_stages_up_to_one_compute_and_load_only_those(tmp_path):
    ctx = SimpleNamespace(tables=_tables(), rules=load_rules(), annee=2024, region="28", out_dir=tmp_path)
    res = R.ensure_results(ctx, "ciblage")
    d = tmp_path / R.RESULTS_DIR
    assert not (d / "suivi.parquet").exists() and not (d / "tendances.parquet").exists()
    assert "mode_veille" not in json.loads((d / "meta.json").read_text(encoding="utf-8"))
    assert (res.suivi, res.tendances, res.monitoring) == (None, None, None)
    # 140000029 : 0 signalement pour 10 000 séjours → non déclarant (risque infectieux)
    assert set(res.ciblage.loc[res.ciblage["risque"] == "infectieux", "finess_geo"]) == {"140000029"}
    res = R.ensure_results(ctx, "suivi")
    assert res.suivi is not None and res.tendances is None and not (d / "tendances.parquet").exists()
    assert list(res.suivi["finess_geo"].unique()) == ["140000011"]  # le seul engagement signé
    full = R.ensure_results(ctx)
    assert full.tendances is not None and full.alertes is not None
    # les étapes déjà faites ne sont pas refaites : mêmes octets relus
    again = R.load_results(tmp_path, upto="ciblage")
    assert again.ciblage.equals(full.ciblage)


def test_each_notebook_reads_only_the_stages_it_waits_for():
    """Chaque notebook demande ``ctx.results(<étape>)`` jusqu'à l'étape que le pipeline attend avant de le
    lancer (NOTEBOOK_STAGE) ; le rapport et 04, qui attendent la dernière étape, peuvent tout lire."""
    last = R.STAGES[-1][0]
    for nb in pipeline.NOTEBOOKS:
        cells = json.loads((pipeline.NOTEBOOKS_DIR / nb).read_text(encoding="utf-8"))["cells"]
        code = "\n".join("".join(c["source"]) for c in cells if c["cell_type"] == "code")
        asked = re.findall(r"ctx\.results\(([^)]*)\)", code)
        need = pipeline.NOTEBOOK_STAGE[nb]
        if need is None:
            assert asked == [] and "load_results" not in code, nb
        elif need == last:
            assert asked and all(a in ("", f'"{need}"') for a in asked), (nb, asked)
        else:
            assert asked == [f'"{need}"'], (nb, asked)
    # l'ordre d'exécution respecte l'ordre des étapes
    order = [s for s, _, _ in R.STAGES]
    stages = [pipeline.NOTEBOOK_STAGE[nb] for nb in pipeline.EXECUTION_ORDER if pipeline.NOTEBOOK_STAGE[nb]]
    assert [order.index(s) for s in stages] == sorted(order.index(s) for s in stages)


def test_kernel_warm_up_does_not_import_scipy():
    """Le noyau relit des résultats déjà calculés : les modules qu'il importe d'avance (et les
    notebooks, qui n'appellent aucun calcul statistique quand les résultats sont faits) n'importent
    ni SciPy ni statsmodels, importés au premier calcul (0,5 s de moins au démarrage du noyau)."""
    import subprocess
    import sys

    code = ("\n".join(line for line in pipeline.NotebookKernel.WARM_UP if "freeze" not in line)
            + "\nimport sys\nprint(sorted({m.split('.')[0] for m in sys.modules} & {'scipy', 'statsmodels'}))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"


def _nb_params(built, out_dir) -> dict:
    """Paramètres des notebooks du rapport partagé, résultats écrits dans ``out_dir``."""
    from pathlib import Path

    tmp, data, _, _ = built
    processed = max((p.parent for p in (tmp / "processed").glob("*/lecture.json")), key=lambda p: p.stat().st_mtime)
    [rules] = (processed / "regles").glob("*.yml")
    return {"annee": 2024, "region": "28", "data_dir": str(data), "processed_dir": str(processed),
            "out_dir": str(Path(out_dir)), "rules": str(rules), "fictif": False}


def test_stages_run_in_one_other_process_and_stop_at_the_first_failure(built, tmp_path, monkeypatch):
    """``make report`` (``--jobs 2``) calcule les étapes dans un processus à part (le processus
    principal garde son interpréteur pour le client des notebooks, les fiches et le rendu) : dans
    l'ordre, dans un seul processus, avec les mêmes octets que le rapport partagé. Une étape en
    échec : les suivantes reçoivent son erreur (sous un type qui traverse les processus) sans être
    calculées ; les résultats des fiches, demandés ensuite (les notebooks ont alors calculé les
    étapes), le sont quand même. Abandon (sortie en échec) : les étapes déjà transmises au processus
    rendent aussitôt une erreur, sans calcul."""
    import os
    import time
    from pathlib import Path

    log = tmp_path / "appels.txt"
    real = pipeline._compute_results

    def recording(ctx, upto=None):
        with open(log, "a", encoding="utf-8") as fh:
            fh.write(f"{os.getpid()} {upto}\n")
        if upto == "suivi" and "echec" in str(ctx.out_dir):
            raise ValueError("étape en échec simulée")
        if "lente" in str(ctx.out_dir):
            time.sleep(0.5)
        real(ctx, upto)

    def calls():
        return [line.split() for line in log.read_text(encoding="utf-8").splitlines()]

    monkeypatch.setattr(pipeline, "_compute_results", recording)  # avant le fork du processus
    stages = pipeline.StageWorker.create()
    try:
        ok = _nb_params(built, tmp_path / "ok")
        done = [stages.submit(pipeline._stage_in_worker, ok, n).result(timeout=120)
                for n in ("ciblage", "suivi", "tendances")]
        assert done == [None] * 3
        assert [u for _, u in calls()] == ["ciblage", "suivi", "tendances"]
        assert len({p for p, _ in calls()}) == 1 and calls()[0][0] != str(os.getpid())
        final = built[3] / R.RESULTS_DIR
        for name in ("ciblage", "suivi", "tendances", "alertes"):
            assert (Path(ok["out_dir"]) / R.RESULTS_DIR / f"{name}.parquet").read_bytes() == \
                (final / f"{name}.parquet").read_bytes(), name

        log.unlink()
        bad = _nb_params(built, tmp_path / "echec")
        jobs = [stages.submit(pipeline._stage_in_worker, bad, n) for n in ("ciblage", "suivi", "tendances")]
        assert jobs[0].result(timeout=120) is None
        for job in jobs[1:]:
            with pytest.raises(pipeline.StageFailed, match="ValueError : étape en échec simulée"):
                job.result(timeout=120)
        assert [u for _, u in calls()] == ["ciblage", "suivi"]
        stages.submit(pipeline._sheet_results_in_worker, bad).result(timeout=120)
        res = R.load_results(bad["out_dir"], fiches=True)
        assert len(res.suivi_historique) and res.tendances is not None

        log.unlink()
        slow = _nb_params(built, tmp_path / "lente")
        jobs = [stages.submit(pipeline._stage_in_worker, slow, n) for n in ("ciblage", "suivi", "tendances")]
        while not log.is_file():  # la première étape a commencé
            time.sleep(0.05)
        stages.abandon(jobs)
        assert jobs[0].result() is None  # celle en cours finit (elle écrit dans le dossier)
        for job in jobs[1:]:
            assert job.cancelled() or isinstance(job.exception(), pipeline.StageAbandoned)
        assert [u for _, u in calls()] == ["ciblage"]
    finally:
        stages.shutdown()
