"""Mesures de performance : ``python -m analysis bench [--quick]`` (``make bench``).

Mesure sur la machine courante, en médianes de plusieurs exécutions (moins avec ``--quick``) :

1. **plancher** : Papermill exécute un notebook vide (une cellule ``parameters``) puis nbconvert
   le rend en HTML, en lignes de commande (``python -m papermill`` puis ``python -m nbconvert``),
   à froid comme le rapport ; la même chose dans un processus déjà chaud est notée pour information ;
2. **rapport de la région de démonstration à froid** : ``python -m analysis report --data data/raw
   --out <tmp> --processed <tmp>/processed --jobs 2 --force`` (aucune sortie ni table nettoyée
   préalable), et ses parties (``durees_s`` du ``manifest.json`` produit) ;
3. la **même commande relancée sans changement** (ne doit rien refaire), puis relancée **après la
   correction d'une ligne d'``esin.csv``** (les fiches inchangées sont reprises du cache) : chaque
   rapport à froid est suivi de sa relance après correction, pour que la charge de la machine
   partagée, qui change d'une minute à l'autre, pèse autant sur les deux ;
4. la **méthode naïve par établissement** (un notebook Papermill plus son PDF, nbconvert HTML →
   WeasyPrint, par établissement) sur 10 établissements, contre le coût d'une fiche du projet
   (:func:`analysis.fiches.render_fiches` sur les mêmes 10 établissements, plus la part de
   :func:`analysis.fiches_data.build_fiches` ; et le coût par fiche du rapport complet) ; et, par
   fiche, le moteur d'avant (HTML + WeasyPrint, non balisé), WeasyPrint balisé PDF/UA-1 et Typst
   PDF/UA-1 (retenu), sur 40 fiches de la démonstration ;
6. la **lecture de la BQSS de la HAS** (``valeur.csv`` + ``metadata.csv``) sur une paire synthétique de
   la taille réelle (3,8 millions de lignes, 10 871 FINESS, 959 clés, :mod:`tools.bqss_synth`) avec un
   référentiel de ces FINESS : ``clean_folder`` dans un processus neuf, durée et pic mémoire (RSS) ;
5. un **jeu national synthétique** (générateur de démonstration, 18 régions, 2015–2024) : tous les
   rapports régionaux avec toutes les fiches (``--region toutes --jobs 2``), durée et pic mémoire
   (somme des RSS de l'arbre de processus, échantillonnée toutes les 0,2 s avec psutil).

Affiche un tableau (mesure, valeur, cible, atteinte, écart) et écrit ``<out>/bench.json``.
"""

from __future__ import annotations

import datetime as _dt
import json
import os
import platform
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from analysis.orchestration.pipeline import PROJECT_DIR, ensure_kernel

GIB = 1024 ** 3
#: cibles des issues 6 et 12 (sur une machine à 2 cœurs)
CIBLES = {
    "facteur_plancher": 6.0,       # rapport complet ≤ 6 × plancher (issue 12)
    "relance_s": 2.0,              # relance sans changement < 2 s
    "relance_correction": 0.40,    # relance après correction d'une ligne d'esin ≤ 40 % du froid
    "ratio_moteur": 5.0,           # fiche Typst ≥ 5 × moins chère que la fiche WeasyPrint d'avant
    "ratio_fiches": 20.0,          # fiche du projet ≥ 20 × moins chère que la méthode naïve
    "national_s": 600.0,           # national < 10 min
    "national_octets": 2 * GIB,    # pic mémoire < 2 Gio
    "bqss_s": 20.0,                # issue 10 : lecture de la BQSS ≤ 20 s
    "bqss_octets": 1.5 * GIB,      # et ≤ 1,5 Gio
}
ECHANTILLON_FICHES = 10
ECHANTILLON_MOTEURS = 40
SAMPLE_PERIOD_S = 0.2
#: libellés des parties (``durees_s`` du manifeste)
PARTIES = {
    "lecture": "lecture et validation des entrées",
    "fiches_donnees": "contenu des fiches (build_fiches)",
    "notebooks": "5 notebooks (un noyau)",
    "resultats_attente": "attente des résultats (calculés pendant les notebooks 01 à 03)",
    "pdf": "rapport HTML + PDF",
    "xlsx": "classeur XLSX",
    "fiches": "fiches PDF (de leur préparation à leur relevé, après le rapport : en arrière-plan)",
    "fiches_attente": "fiches PDF restant à attendre après le rapport",
}


# --------------------------------------------------------------------------- mise en forme


def _fr(x: float, decimals: int = 1) -> str:
    text = f"{x:,.{decimals}f}".replace(",", "\u202f").replace(".", ",")
    return text.replace("\u202f", "\u00a0")


def fmt_duree(seconds: float) -> str:
    """Durée lisible : « 0,85 s », « 12,3 s », « 8 min 05 s »."""
    if seconds is None:
        return "—"
    if seconds < 10:
        return f"{_fr(seconds, 2)} s"
    if seconds < 120:
        return f"{_fr(seconds, 1)} s"
    m, s = divmod(int(round(seconds)), 60)
    return f"{m} min {s:02d} s"


def fmt_octets(n: float) -> str:
    if n is None:
        return "—"
    if n >= GIB:
        return f"{_fr(n / GIB, 2)} Gio"
    return f"{_fr(n / 1024 ** 2, 0)} Mio"


def fmt_ratio(x: float) -> str:
    return "—" if x is None else f"{_fr(x, 1)}\u00a0×"


def evaluate(mesures: dict) -> list[dict]:
    """Compare les mesures aux cibles ; une ligne par cible (``atteinte`` vaut ``None`` si la
    mesure manque). ``ecart`` : marge (cible atteinte) ou dépassement, en valeur et en %."""
    rows: list[dict] = []

    def add(nom, valeur, cible, plus_petit_mieux, fmt, texte_cible, inclusive=False):
        if valeur is None or cible is None:
            rows.append({"mesure": nom, "valeur": valeur, "cible": cible, "atteinte": None,
                         "ecart": None, "ecart_pct": None, "texte": "non mesuré",
                         "valeur_txt": "—", "cible_txt": texte_cible})
            return
        ok = (valeur <= cible if inclusive else valeur < cible) if plus_petit_mieux else valeur >= cible
        diff = (cible - valeur) if plus_petit_mieux else (valeur - cible)  # > 0 : marge
        pct = 100.0 * diff / cible if cible else None
        if ok:
            texte = f"marge {fmt(abs(diff))} ({_fr(abs(pct), 0)} %)"
        else:
            texte = f"manque {fmt(abs(diff))} ({_fr(abs(pct), 0)} %)"
        rows.append({"mesure": nom, "valeur": valeur, "cible": cible, "atteinte": ok,
                     "ecart": diff, "ecart_pct": pct, "texte": texte,
                     "valeur_txt": fmt(valeur), "cible_txt": texte_cible})

    plancher = (mesures.get("plancher") or {}).get("median_s")
    froid = (mesures.get("rapport_froid") or {}).get("median_s")
    cible_froid = CIBLES["facteur_plancher"] * plancher if plancher else None
    add("Rapport de la région de démonstration, à froid", froid, cible_froid, True, fmt_duree,
        f"≤ {_fr(CIBLES['facteur_plancher'], 0)} × plancher = {fmt_duree(cible_froid) if cible_froid else '—'}")
    relance = (mesures.get("relance") or {}).get("median_s")
    add("Relance sans changement", relance, CIBLES["relance_s"], True, fmt_duree,
        f"< {fmt_duree(CIBLES['relance_s'])}")
    corr = (mesures.get("relance_correction") or {}).get("median_s")
    cible_corr = CIBLES["relance_correction"] * froid if froid else None
    add("Relance après correction d'une ligne d'esin", corr, cible_corr, True, fmt_duree,
        f"≤ {_fr(100 * CIBLES['relance_correction'], 0)} % du froid = "
        f"{fmt_duree(cible_corr) if cible_corr else '—'}")
    moteur = (mesures.get("fiches") or {}).get("ratio_moteur")
    add("Fiche : WeasyPrint d'avant / Typst (par fiche)", moteur, CIBLES["ratio_moteur"], False, fmt_ratio,
        f"≥ {fmt_ratio(CIBLES['ratio_moteur'])}")
    ratio = (mesures.get("fiches") or {}).get("ratio")
    add("Fiche : coût naïf / coût du projet", ratio, CIBLES["ratio_fiches"], False, fmt_ratio,
        f"≥ {fmt_ratio(CIBLES['ratio_fiches'])}")
    nat = mesures.get("national") or {}
    add("National : tous les rapports et fiches, durée", nat.get("duree_s"), CIBLES["national_s"], True,
        fmt_duree, f"< {fmt_duree(CIBLES['national_s'])}")
    add("National : pic mémoire", nat.get("pic_memoire_octets"), CIBLES["national_octets"], True,
        fmt_octets, f"< {fmt_octets(CIBLES['national_octets'])}")
    nrc = nat.get("relance_correction") or {}
    add("National : relance après correction d'une ligne d'esin, régions refaites", nrc.get("regions_refaites"),
        1, True, lambda x: _fr(x, 0), "≤ 1 (la région de la ligne)", inclusive=True)
    add("National : relance après correction d'une ligne d'esin, durée", nrc.get("duree_s"),
        CIBLES["relance_correction"] * nat["duree_s"] if nat.get("duree_s") else None, True, fmt_duree,
        f"≤ {_fr(100 * CIBLES['relance_correction'], 0)} % du national à froid")
    bq = mesures.get("bqss") or {}
    add("BQSS (3,8 M lignes) : lecture, durée", bq.get("median_s"), CIBLES["bqss_s"], True, fmt_duree,
        f"≤ {fmt_duree(CIBLES['bqss_s'])}")
    add("BQSS : pic mémoire", bq.get("pic_memoire_octets"), CIBLES["bqss_octets"], True, fmt_octets,
        f"≤ {fmt_octets(CIBLES['bqss_octets'])}")
    return rows


def _table(lines: list[list[str]]) -> str:
    widths = [max(len(r[i]) for r in lines) for i in range(len(lines[0]))]
    out = []
    for k, r in enumerate(lines):
        out.append("  ".join(c.ljust(w) for c, w in zip(r, widths)).rstrip())
        if k == 0:
            out.append("  ".join("-" * w for w in widths))
    return "\n".join(out)


def format_report(result: dict) -> str:
    """Texte affiché par ``make bench`` : machine, mesures détaillées, puis tableau des cibles."""
    m = result.get("mesures", {})
    mach = result.get("machine", {})
    parts = [
        f"Machine : {mach.get('cpu', '?')}, {mach.get('coeurs', '?')} cœurs, "
        f"{fmt_octets(mach.get('memoire_octets')) if mach.get('memoire_octets') else '?'} de mémoire, "
        f"Python {mach.get('python', '?')} ; charge moyenne au départ {mach.get('charge_depart', '?')}",
        "",
    ]
    detail = [["Mesure", "Valeur (médiane)", "Exécutions"]]

    def runs(d):
        r = d.get("executions_s") or []
        return " / ".join(fmt_duree(x) for x in r) if r else ""

    p = m.get("plancher")
    if p:
        detail.append(["Plancher : notebook vide, Papermill + nbconvert HTML (commandes)",
                       fmt_duree(p["median_s"]), runs(p)])
        if p.get("en_processus_median_s") is not None:
            detail.append(["  le même dans un processus déjà chaud (pour information)",
                           fmt_duree(p["en_processus_median_s"]), ""])
    f = m.get("rapport_froid")
    if f:
        detail.append([f"Rapport région de démonstration à froid ({f.get('fiches', '?')} fiches, --jobs 2)",
                       fmt_duree(f["median_s"]), runs(f)])
        if f.get("cpu_median_s") is not None:
            detail.append(["  temps processeur (tous ses processus : utilisateur + système)",
                           fmt_duree(f["cpu_median_s"]), ""])
        for k, v in (f.get("parties_s") or {}).items():
            detail.append([f"  {PARTIES.get(k, k)}", fmt_duree(v), ""])
    r = m.get("relance")
    if r:
        detail.append(["Relance sans changement" + ("" if r.get("rien_refait", True) else " (A REFAIT LE TRAVAIL)"),
                       fmt_duree(r["median_s"]), runs(r)])
    c = m.get("relance_correction")
    if c:
        detail.append([f"Relance après correction d'une ligne d'esin ({c.get('fiches_rendues', '?')} fiche(s) "
                       f"rendue(s), {c.get('fiches_reprises', '?')} reprise(s))", fmt_duree(c["median_s"]), runs(c)])
        if c.get("rapports_au_froid"):
            detail.append(["  chacune rapportée au rapport à froid mesuré juste avant",
                           " ; ".join(f"{_fr(100 * x, 1)} %" for x in c["rapports_au_froid"]), ""])
        if c.get("cpu_median_s") is not None:
            coeurs = (result.get("machine") or {}).get("coeurs") or 1
            detail.append(["  temps processeur (tous ses processus : utilisateur + système)",
                           fmt_duree(c["cpu_median_s"]), ""])
            # aucune répartition du travail ne descend sous ce temps sur cette machine
            detail.append([f"  durée la plus courte possible de ce travail sur {coeurs} cœur(s) (processeur / cœurs)",
                           fmt_duree(c["cpu_median_s"] / coeurs), ""])
        chrono = c.get("chronologie_s") or {}
        if chrono:
            # ce qui attend quoi : les notebooks partent quand les étapes qu'ils lisent sont faites
            detail.append(["  chronologie de la dernière (s depuis le lancement ; manifeste, chronologie_s)",
                           "", " · ".join(f"{k} {_fr(v, 2)}" for k, v in chrono.items())])
    fi = m.get("fiches")
    if fi and fi.get("weasyprint_par_fiche_s") is not None:
        detail.append([f"Fiche WeasyPrint d'avant (non balisée, {fi.get('echantillon_moteurs', '?')} fiches, "
                       "1 processus), par fiche", fmt_duree(fi["weasyprint_par_fiche_s"]), ""])
        if fi.get("weasyprint_ua_par_fiche_s") is not None:
            detail.append(["  WeasyPrint réglé, balisé PDF/UA-1 (pdf_variant), par fiche",
                           fmt_duree(fi["weasyprint_ua_par_fiche_s"]), ""])
        detail.append(["Fiche Typst PDF/UA-1 (moteur retenu), par fiche", fmt_duree(fi["typst_par_fiche_s"]), ""])
        detail.append(["WeasyPrint d'avant / Typst", fmt_ratio(fi.get("ratio_moteur")), ""])
    if fi:
        n = fi.get("echantillon", ECHANTILLON_FICHES)
        detail.append([f"Méthode naïve : Papermill + PDF par établissement ({n} établissements), par fiche",
                       fmt_duree(fi["naif_par_fiche_s"]), ""])
        detail.append(["Projet : par fiche (données + rendu, même échantillon, 1 processus)",
                       fmt_duree(fi["projet_par_fiche_s"]), ""])
        detail.append(["  dont rendu seul (render_fiches)", fmt_duree(fi["projet_rendu_par_fiche_s"]), ""])
        if fi.get("rapport_complet_par_fiche_s") is not None:
            detail.append(["Projet : par fiche dans le rapport complet (durée des fiches / nombre, --jobs 2)",
                           fmt_duree(fi["rapport_complet_par_fiche_s"]), ""])
        detail.append(["Rapport naïf / projet", fmt_ratio(fi["ratio"]), ""])
        if fi.get("ratio_rapport_complet") is not None:
            detail.append(["Rapport naïf / projet (rapport complet)", fmt_ratio(fi["ratio_rapport_complet"]), ""])
    nat = m.get("national")
    if nat:
        detail.append([f"National : {nat.get('regions', '?')} régions, {nat.get('etablissements', '?')} établissements, "
                       f"{nat.get('fiches', '?')} fiches (--jobs 2)", fmt_duree(nat["duree_s"]), ""])
        detail.append(["  pic mémoire (somme des RSS de l'arbre de processus)",
                       fmt_octets(nat["pic_memoire_octets"]), ""])
        if nat.get("pic_pss_octets"):
            detail.append(["  pic mémoire PSS (pages partagées comptées une fois, pour information)",
                           fmt_octets(nat["pic_pss_octets"]), ""])
        for k, v in (nat.get("parties_s") or {}).items():
            suffix = " (une fois pour toutes les régions)" if k == "lecture" else " (cumul des régions)"
            detail.append([f"  {PARTIES.get(k, k)}{suffix}", fmt_duree(v), ""])
        nrc = nat.get("relance_correction")
        if nrc:
            detail.append([f"National : relance après correction d'une ligne d'esin ({nrc['regions_refaites']} région(s) "
                           f"refaite(s), {nrc['regions_reprises']} reprise(s) telle(s) quelle(s))",
                           fmt_duree(nrc["duree_s"]), ""])
    bq = m.get("bqss")
    if bq:
        detail.append([f"BQSS synthétique : {_fr(bq.get('lignes', 0) / 1e6, 2)} M lignes, {bq.get('finess', '?')} FINESS, "
                       f"{bq.get('cles', '?')} clés ({fmt_octets(bq.get('octets'))}), clean_folder à froid",
                       fmt_duree(bq["median_s"]), runs(bq)])
        if bq.get("lecture_s") is not None:
            detail.append(["  dont lecture et validation (sans le démarrage de Python)", fmt_duree(bq["lecture_s"]), ""])
        detail.append(["  pic mémoire (RSS)", fmt_octets(bq["pic_memoire_octets"]), ""])
    parts.append(_table(detail))
    parts.append("")
    cibles = [["Mesure", "Mesuré", "Cible", "Atteinte", "Écart"]]
    for row in result.get("cibles", []):
        ok = {True: "oui", False: "NON", None: "—"}[row["atteinte"]]
        cibles.append([row["mesure"], row["valeur_txt"], row["cible_txt"], ok, row["texte"]])
    parts.append(_table(cibles))
    return "\n".join(parts)


# --------------------------------------------------------------------------- machine


def machine_info() -> dict:
    cpu = platform.processor() or platform.machine()
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.lower().startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    mem = None
    try:
        for line in Path("/proc/meminfo").read_text().splitlines():
            if line.startswith("MemTotal:"):
                mem = int(line.split()[1]) * 1024
                break
    except OSError:
        pass
    try:
        load = ", ".join(_fr(x, 2) for x in os.getloadavg())
    except OSError:
        load = None
    try:
        cores = len(os.sched_getaffinity(0))  # cœurs permis à ce processus (cgroups, affinité)
    except (AttributeError, OSError):
        cores = os.cpu_count()
    return {
        "cpu": cpu,
        "coeurs": cores,
        "memoire_octets": mem,
        "python": platform.python_version(),
        "systeme": f"{platform.system()} {platform.release()}",
        "charge_depart": load,
    }


# --------------------------------------------------------------------------- outils


def _say(msg: str) -> None:
    print(f"[bench] {msg}", file=sys.stderr, flush=True)


def _run(cmd: list[str], *, cwd: Path = PROJECT_DIR, monitor: bool = False) -> dict:
    """Lance ``cmd`` ; renvoie durée, temps processeur (``cpu_s`` : utilisateur + système de la
    commande et des processus qu'elle a attendus : noyau, processus des fiches) et, avec ``monitor``,
    le pic de la somme des RSS (et PSS) de l'arbre de processus, échantillonné toutes les 0,2 s."""
    import resource

    env = dict(os.environ)
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    t0 = time.perf_counter()
    proc = subprocess.Popen(cmd, cwd=str(cwd), env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
    peak_rss = peak_pss = 0
    if monitor:
        import psutil

        root = psutil.Process(proc.pid)
        while proc.poll() is None:
            rss = pss = 0
            try:
                procs = [root] + root.children(recursive=True)
            except psutil.Error:
                procs = []
            for q in procs:
                try:
                    rss += q.memory_info().rss
                    try:
                        pss += q.memory_full_info().pss
                    except (psutil.Error, AttributeError):
                        pass
                except psutil.Error:
                    pass
            peak_rss, peak_pss = max(peak_rss, rss), max(peak_pss, pss)
            time.sleep(SAMPLE_PERIOD_S)
    out, _ = proc.communicate()
    elapsed = time.perf_counter() - t0
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    cpu = (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)
    text = out.decode("utf-8", "replace")
    if proc.returncode != 0:
        raise RuntimeError(f"Échec de {' '.join(cmd)} (code {proc.returncode}) :\n{text[-3000:]}")
    return {"duree_s": elapsed, "cpu_s": cpu, "sortie": text, "pic_rss": peak_rss, "pic_pss": peak_pss}


def _median(xs: list[float]) -> float:
    return float(statistics.median(xs))


def _report_cmd(data: Path, out: Path, processed: Path, *extra: str) -> list[str]:
    return [sys.executable, "-m", "analysis", "report", "--data", str(data), "--out", str(out),
            "--processed", str(processed), "--jobs", "2", *extra]


def _manifests(out: Path) -> list[dict]:
    return [json.loads(p.read_text(encoding="utf-8")) for p in sorted(out.glob("*/*/manifest.json"))]


# --------------------------------------------------------------------------- 1. plancher


def _empty_notebook(path: Path, kernel: str) -> None:
    import nbformat
    from nbformat.v4 import new_code_cell, new_notebook

    nb = new_notebook(cells=[
        new_code_cell("# Paramètres\nx = 1", metadata={"tags": ["parameters"]}),
    ])
    nb.metadata["kernelspec"] = {"name": kernel, "display_name": kernel, "language": "python"}
    nbformat.write(nb, str(path))


def bench_plancher(work: Path, reps: int) -> dict:
    kernel = ensure_kernel()
    src = work / "vide.ipynb"
    _empty_notebook(src, kernel)
    runs, pm_runs, nbc_runs = [], [], []
    for i in range(reps):
        out = work / f"vide_execute_{i}.ipynb"
        a = _run([sys.executable, "-m", "papermill", "-k", kernel, "-p", "x", "2", "--no-progress-bar",
                  str(src), str(out)], cwd=work)
        b = _run([sys.executable, "-m", "nbconvert", "--to", "html", str(out)], cwd=work)
        pm_runs.append(a["duree_s"])
        nbc_runs.append(b["duree_s"])
        runs.append(a["duree_s"] + b["duree_s"])
        _say(f"plancher {i + 1}/{reps} : {fmt_duree(runs[-1])}")
    # pour information : le même travail dans ce processus, imports déjà faits
    import nbformat
    import papermill as pm
    from nbconvert import HTMLExporter

    warm = []
    for i in range(reps + 1):
        t0 = time.perf_counter()
        out = work / "vide_chaud.ipynb"
        pm.execute_notebook(str(src), str(out), parameters={"x": 2}, kernel_name=kernel, progress_bar=False)
        HTMLExporter().from_notebook_node(nbformat.read(str(out), as_version=4))
        if i:  # la première sert à charger les modules
            warm.append(time.perf_counter() - t0)
    return {
        "median_s": _median(runs),
        "executions_s": runs,
        "papermill_median_s": _median(pm_runs),
        "nbconvert_median_s": _median(nbc_runs),
        "en_processus_median_s": _median(warm),
        "methode": "python -m papermill puis python -m nbconvert --to html (processus neufs)",
    }


# --------------------------------------------------------------------------- 2 et 3. rapport démo


def bench_rapport(work: Path, reps: int, reps_relance: int, reps_correction: int) -> tuple[dict, dict, dict]:
    """Rapport à froid, relance sans changement, relance après correction d'une ligne d'``esin.csv``.

    Chaque rapport à froid est suivi aussitôt de sa ou ses relances après correction, dans son dossier
    (froid, correction, froid, correction…) : la machine étant partagée, sa charge change d'une minute
    à l'autre, et des rapports à froid tous mesurés avant toutes les corrections fausseraient leur
    rapport dans un sens ou dans l'autre. La relance sans changement suit le dernier rapport à froid,
    avant sa correction."""
    runs, cpus, parts, last_out, n_fiches = [], [], [], None, None
    per_cold = [reps_correction // reps + (1 if i < reps_correction % reps else 0) for i in range(reps)]
    corr: dict = {"runs": [], "cpus": [], "pairs": [], "man": None}  # relances après correction
    relance: dict = {}
    for i in range(reps):
        d = work / f"demo_{i}"
        shutil.rmtree(d, ignore_errors=True)
        d.mkdir(parents=True)
        # copie des données de démonstration : la relance après correction en modifie une ligne
        data = d / "raw"
        shutil.copytree(PROJECT_DIR / "data" / "raw", data)
        r = _run(_report_cmd(data, d / "reports", d / "processed", "--force"))
        runs.append(r["duree_s"])
        cpus.append(r["cpu_s"])
        man = _manifests(d / "reports")
        if len(man) != 1:
            raise RuntimeError(f"Le rapport de démonstration devait produire un dossier ({len(man)} trouvés).")
        parts.append(man[0].get("durees_s", {}))
        n_fiches = man[0].get("fiches")
        if last_out is not None:
            shutil.rmtree(last_out, ignore_errors=True)
        last_out = d
        _say(f"rapport à froid {i + 1}/{reps} : {fmt_duree(runs[-1])} {parts[-1]}")
        if i == reps - 1:
            relance = bench_relance(d, reps_relance)
        for _ in range(per_cold[i]):
            duree, cpu, corr["man"] = _correct_and_rerun(d, len(corr["runs"]), reps_correction)
            corr["runs"].append(duree)
            corr["cpus"].append(cpu)
            corr["pairs"].append(duree / runs[-1])
    keys = list(dict.fromkeys(k for p in parts for k in p))
    froid = {
        "median_s": _median(runs),
        "executions_s": runs,
        "cpu_median_s": _median(cpus),
        "parties_s": {k: _median([p.get(k, 0.0) for p in parts]) for k in keys},
        "fiches": n_fiches,
        "commande": " ".join(_report_cmd(Path("data/raw"), Path("<tmp>"), Path("<tmp>/processed"), "--force")),
    }
    man = corr["man"] or {}
    rendu = man.get("fiches_rendu") or {}
    correction = {"median_s": _median(corr["runs"]), "executions_s": corr["runs"],
                  "cpu_median_s": _median(corr["cpus"]),
                  # chaque relance rapportée au rapport à froid qui la précède (pour information)
                  "rapports_au_froid": [round(x, 4) for x in corr["pairs"]],
                  "fiches_rendues": rendu.get("rendues"), "fiches_reprises": rendu.get("reprises"),
                  "parties_s": man.get("durees_s", {}), "chronologie_s": man.get("chronologie_s", {})}
    return froid, relance, correction


def bench_relance(d: Path, reps: int) -> dict:
    """La commande du rapport à froid de ``d`` relancée sans changement : elle ne doit rien refaire."""
    manifest = next(d.glob("reports/*/*/manifest.json"))
    stamp = manifest.stat().st_mtime_ns
    rel, redone = [], False
    for i in range(reps):
        r = _run(_report_cmd(d / "raw", d / "reports", d / "processed"))
        rel.append(r["duree_s"])
        redone = redone or manifest.stat().st_mtime_ns != stamp or "Rien à refaire" not in r["sortie"]
        _say(f"relance {i + 1}/{reps} : {fmt_duree(rel[-1])}")
    return {"median_s": _median(rel), "executions_s": rel, "rien_refait": not redone}


def _correct_one_row(path: Path, k: int) -> None:
    """Corrige une ligne de ``esin.csv`` : le nombre de signalements de la ``k``-ième ligne de
    données augmente de 1 (même format, même nombre de lignes)."""
    raw = path.read_bytes()
    text = raw.decode("utf-8-sig")
    lines = text.split("\n")
    header = lines[0].rstrip("\r").split(";")
    col = header.index("signalements")
    row = lines[1 + k].rstrip("\r").split(";")
    row[col] = str(int(row[col]) + 1)
    end = "\r" if lines[1 + k].endswith("\r") else ""
    lines[1 + k] = ";".join(row) + end
    path.write_bytes((b"\xef\xbb\xbf" if raw.startswith(b"\xef\xbb\xbf") else b"") + "\n".join(lines).encode("utf-8"))


def _correct_and_rerun(d: Path, i: int, reps: int) -> tuple[float, float, dict]:
    """Relance après correction d'une ligne d'``esin.csv`` (la ``i``-ième ; sans ``--force``, dans le
    dossier ``d`` du rapport à froid qui précède : tables nettoyées et fiches déjà rendues
    réutilisables) ; renvoie sa durée, son temps processeur et son manifeste."""
    _correct_one_row(d / "raw" / "esin.csv", 7 + 13 * i)
    r = _run(_report_cmd(d / "raw", d / "reports", d / "processed"))
    [man] = _manifests(d / "reports")
    _say(f"relance après correction {i + 1}/{reps} : {fmt_duree(r['duree_s'])} {man.get('fiches_rendu')}")
    return r["duree_s"], r["cpu_s"], man


# --------------------------------------------------------------------------- 4. fiches


NAIVE_NOTEBOOK_CELLS = [
    ("markdown", "# Fiche établissement (méthode naïve)", {}),
    ("code", 'finess = "000000000"\nregion = "28"\nannee = 2024\nprocessed_dir = ""\nrules = ""',
     {"tags": ["parameters"]}),
    ("code",
     "from pathlib import Path\n"
     "import pandas as pd\n"
     "from IPython.display import HTML, display\n"
     "from analysis.reading.cleaning import read_processed\n"
     "from analysis.rules.loader import load_rules\n"
     "from analysis.indicators import ciblage, suivi\n"
     "tables = read_processed(Path(processed_dir))\n"
     "regles = load_rules(rules or None)\n"
     "etab = tables['etablissements']\n"
     "etab = etab[etab['finess_geo'] == finess]",
     {}),
    ("code", "display(HTML('<h1>' + str(etab['raison_sociale'].iloc[0]) + '</h1>'))\n"
             "display(HTML(etab.T.to_html(header=False)))", {}),
    ("markdown", "## Ciblage", {}),
    ("code", "c = ciblage.compute_ciblage(tables, regles, annee, region)\n"
             "display(HTML(c[c['finess_geo'] == finess].to_html(index=False)))", {}),
    ("markdown", "## Suivi des engagements", {}),
    ("code", "s = suivi.compute_suivi(tables, regles, annee, region)\n"
             "display(HTML(s[s['finess_geo'] == finess].to_html(index=False)))", {}),
    ("markdown", "## Historique des indicateurs (trois années précédentes)", {}),
    ("code", "veille = {k: v for k, v in tables.items() if k != 'engagements'}\n"
             "h = pd.concat([suivi.compute_suivi(veille, regles, y, region).assign(annee=y)\n"
             "               for y in range(annee - 3, annee)])\n"
             "h = h[h['finess_geo'] == finess]\n"
             "display(HTML(h.pivot_table(index='indicateur', columns='annee', values='valeur',\n"
             "                           aggfunc='first').to_html()))", {}),
]


def _naive_notebook(path: Path, kernel: str) -> None:
    import nbformat
    from nbformat.v4 import new_code_cell, new_markdown_cell, new_notebook

    cells = []
    for kind, src, meta in NAIVE_NOTEBOOK_CELLS:
        cells.append(new_code_cell(src, metadata=meta) if kind == "code" else new_markdown_cell(src))
    nb = new_notebook(cells=cells)
    nb.metadata["kernelspec"] = {"name": kernel, "display_name": kernel, "language": "python"}
    nbformat.write(nb, str(path))


def bench_fiches(work: Path, reps: int, froid: dict | None) -> dict:
    import nbformat
    import papermill as pm
    from nbconvert import HTMLExporter
    from weasyprint import HTML

    from analysis.orchestration.pipeline import Params, Progress, prepare
    from analysis.publishing import fiches, fiches_data
    from analysis.reading.regions import region_label

    # tables nettoyées de la démonstration (même préparation que le rapport)
    d = work / "fiches"
    d.mkdir(parents=True, exist_ok=True)
    params = Params(data_dir=PROJECT_DIR / "data" / "raw", out_dir=d / "reports", processed_dir=d / "processed",
                    quiet=True)
    prep = prepare(params, Progress(quiet=True))
    tables = prep.result.tables
    rules, annee = prep.rules, prep.annee
    region = sorted(tables["etablissements"]["region"].dropna().unique().tolist())[0]
    label = region_label(region)

    from analysis.indicators.results import compute_region

    res = compute_region(tables, rules, annee, region, d / "resultats")  # ce que calculent les notebooks
    build_runs, data = [], None
    for _ in range(reps):
        t0 = time.perf_counter()
        data = fiches_data.build_fiches(tables, rules, annee, region, res)
        build_runs.append(time.perf_counter() - t0)
    build_per_sheet = _median(build_runs) / len(data)
    step = max(1, len(data) // ECHANTILLON_FICHES)
    sample = data[::step][:ECHANTILLON_FICHES]
    n = len(sample)

    # projet : rendu des 10 fiches dans un processus (gabarit, CSS et polices préparés une fois :
    # la première exécution, qui les prépare, est mesurée à part)
    t0 = time.perf_counter()
    fiches.render_fiches(sample[:1], d / "projet_init", region_label=label, annee=annee, fictif=prep.fictif)
    init_s = time.perf_counter() - t0
    render_runs = []
    for i in range(reps):
        t0 = time.perf_counter()
        fiches.render_fiches(sample, d / f"projet_{i}", region_label=label, annee=annee, fictif=prep.fictif)
        render_runs.append((time.perf_counter() - t0) / n)
        _say(f"fiches du projet {i + 1}/{reps} : {fmt_duree(render_runs[-1])} par fiche")
    render_per_sheet = _median(render_runs)
    projet = build_per_sheet + render_per_sheet

    # moteurs : la fiche WeasyPrint d'avant (non balisée), WeasyPrint balisé PDF/UA-1, Typst
    # PDF/UA-1 (retenu), mêmes fiches, un processus, sans cache ; première fiche de chaque
    # moteur (préparation du processus) non comptée
    engines_sample = data[::max(1, len(data) // ECHANTILLON_MOTEURS)][:ECHANTILLON_MOTEURS]
    per_engine: dict[str, float] = {}
    for engine in ("weasyprint", "weasyprint-ua", "typst"):
        fiches.render_fiches(engines_sample[:1], d / f"moteur_init_{engine}", region_label=label, annee=annee,
                             fictif=prep.fictif, engine=engine)
        ts = []
        for i in range(reps):
            t0 = time.perf_counter()
            fiches.render_fiches(engines_sample, d / f"moteur_{engine}_{i}", region_label=label, annee=annee,
                                 fictif=prep.fictif, engine=engine)
            ts.append((time.perf_counter() - t0) / len(engines_sample))
        per_engine[engine] = _median(ts)
        _say(f"moteur {engine} : {fmt_duree(per_engine[engine])} par fiche")

    # méthode naïve : un notebook Papermill + nbconvert HTML + WeasyPrint par établissement
    kernel = ensure_kernel()
    nb_src = d / "fiche_naive.ipynb"
    _naive_notebook(nb_src, kernel)
    exporter = HTMLExporter(exclude_input=True)
    naive_runs = []
    for i in range(reps):
        t0 = time.perf_counter()
        for f in sample:
            finess = str(f["finess_geo"])
            out_nb = d / f"naif_{finess}.ipynb"
            pm.execute_notebook(
                str(nb_src), str(out_nb), kernel_name=kernel, progress_bar=False, cwd=str(d),
                parameters={"finess": finess, "region": region, "annee": int(annee),
                            "processed_dir": str(prep.processed.resolve()),
                            "rules": str((prep.processed / "regles" / rules.name).resolve())},
            )
            body, _ = exporter.from_notebook_node(nbformat.read(str(out_nb), as_version=4))
            HTML(string=body, base_url=str(d)).write_pdf(str(d / f"naif_{finess}.pdf"))
        naive_runs.append((time.perf_counter() - t0) / n)
        _say(f"méthode naïve {i + 1}/{reps} : {fmt_duree(naive_runs[-1])} par fiche")
    naive = _median(naive_runs)

    res = {
        "echantillon": n,
        "region": region,
        "naif_par_fiche_s": naive,
        "naif_executions_s": naive_runs,
        "projet_par_fiche_s": projet,
        "projet_rendu_par_fiche_s": render_per_sheet,
        "projet_donnees_par_fiche_s": build_per_sheet,
        "projet_preparation_processus_s": init_s,
        "ratio": naive / projet if projet else None,
        "echantillon_moteurs": len(engines_sample),
        "weasyprint_par_fiche_s": per_engine["weasyprint"],
        "weasyprint_ua_par_fiche_s": per_engine["weasyprint-ua"],
        "typst_par_fiche_s": per_engine["typst"],
        "ratio_moteur": per_engine["weasyprint"] / per_engine["typst"] if per_engine["typst"] else None,
        "rapport_complet_par_fiche_s": None,
        "ratio_rapport_complet": None,
    }
    if froid and froid.get("fiches"):
        per = froid["parties_s"].get("fiches", 0.0) / froid["fiches"]
        res["rapport_complet_par_fiche_s"] = per
        res["ratio_rapport_complet"] = naive / per if per else None
    return res


# --------------------------------------------------------------------------- 5. national


def bench_national(work: Path) -> dict:
    from tools.demo import generate_demo

    raw = work / "national" / "raw"
    counts = generate_demo(raw, seed=2024, national=True, first_year=2015, last_year=2024)
    out = work / "national" / "reports"
    _say("national : rapports de toutes les régions (plusieurs minutes)…")
    r = _run(_report_cmd(raw, out, work / "national" / "processed", "--region", "toutes", "--force", "--quiet"),
             monitor=True)
    man = _manifests(out)
    keys = list(dict.fromkeys(k for m in man for k in m.get("durees_s", {})))
    res = {
        "duree_s": r["duree_s"],
        "pic_memoire_octets": r["pic_rss"],
        "pic_pss_octets": r["pic_pss"] or None,
        "methode_memoire": "somme des RSS de tous les processus de l'arbre (psutil, toutes les 0,2 s) ; "
                           "les pages partagées après fork sont comptées plusieurs fois : c'est un majorant. "
                           "PSS : pages partagées réparties entre processus.",
        "regions": len(man),
        "etablissements": counts.get("etablissements.csv"),
        "fiches": sum(int(m.get("fiches") or 0) for m in man),
        # la lecture, commune, figure dans chaque manifeste : comptée une fois
        "parties_s": {k: round((max if k == "lecture" else sum)(m.get("durees_s", {}).get(k, 0.0) for m in man), 2)
                      for k in keys},
    }
    _say(f"national : {fmt_duree(res['duree_s'])}, pic {fmt_octets(res['pic_memoire_octets'])}")
    # relance après la correction d'une valeur d'une ligne d'esin (un établissement, une région) :
    # seule la région de cette ligne doit être refaite, les autres sont reprises telles quelles
    _correct_one_row(raw / "esin.csv", 7)
    r2 = _run(_report_cmd(raw, out, work / "national" / "processed", "--region", "toutes", "--quiet"))
    man2 = _manifests(out)
    reprises = sum(1 for m in man2 if m.get("reprise"))
    res["relance_correction"] = {"duree_s": r2["duree_s"], "regions_refaites": len(man2) - reprises,
                                 "regions_reprises": reprises}
    _say(f"national, relance après correction d'une ligne : {fmt_duree(r2['duree_s'])}, "
         f"{len(man2) - reprises} région(s) refaite(s), {reprises} reprise(s)")
    return res


# --------------------------------------------------------------------------- 6. BQSS


_BQSS_CODE = (
    "import json, time\n"
    "t = time.perf_counter()\n"
    "from analysis.reading.cleaning import clean_folder\n"
    "from analysis.rules.loader import load_rules\n"
    "r = clean_folder({data!r}, load_rules())\n"
    "print(json.dumps({{'lecture_s': time.perf_counter() - t, "
    "'lignes': {{k: len(v) for k, v in r.tables.items()}}}}))\n"
)


def bench_bqss(work: Path, reps: int) -> dict:
    from tools.bqss_synth import write_bqss

    data = work / "bqss"
    _say("BQSS : écriture de la paire synthétique (3,8 millions de lignes)…")
    info = write_bqss(data)
    runs, inner, peaks, tables = [], [], [], {}
    for _ in range(reps):
        r = _run([sys.executable, "-c", _BQSS_CODE.format(data=str(data))], monitor=True)
        out = json.loads(r["sortie"].strip().splitlines()[-1])
        runs.append(r["duree_s"])
        inner.append(out["lecture_s"])
        peaks.append(r["pic_rss"])
        tables = out["lignes"]
    res = {"median_s": _median(runs), "executions_s": runs, "lecture_s": _median(inner),
           "pic_memoire_octets": max(peaks), "tables": tables, **info}
    _say(f"BQSS : {fmt_duree(res['median_s'])}, pic {fmt_octets(res['pic_memoire_octets'])}")
    return res


# --------------------------------------------------------------------------- entrée


def run_bench(out: Path, quick: bool = False, only_bqss: bool = False) -> dict:
    """Lance toutes les mesures (ou la seule lecture de la BQSS), affiche le tableau et écrit
    ``<out>/bench.json``."""
    out = Path(out)
    # le plancher (deux commandes de 1 à 2 s) est répété 5 fois même en --quick : sa médiane fixe la
    # cible du rapport à froid, et un seul à-coup de la machine la fausserait
    reps = {"plancher": 5, "rapport_froid": 1, "relance": 3, "correction": 1, "fiches": 1, "bqss": 1} if quick else \
           {"plancher": 5, "rapport_froid": 3, "relance": 5, "correction": 3, "fiches": 3, "bqss": 3}
    result: dict = {
        "date": _dt.datetime.now().astimezone().isoformat(timespec="seconds"),
        "rapide": bool(quick),
        "machine": machine_info(),
        "repetitions": {**reps, "national": 1},
        "mesures": {},
    }
    m = result["mesures"]
    with tempfile.TemporaryDirectory(prefix="cpom-bench-") as tmp:
        work = Path(tmp)
        _say(f"travail dans {work} ; répétitions {reps}")
        if not only_bqss:
            m["plancher"] = bench_plancher(work, reps["plancher"])
            m["rapport_froid"], m["relance"], m["relance_correction"] = bench_rapport(
                work, reps["rapport_froid"], reps["relance"], reps["correction"])
            m["fiches"] = bench_fiches(work, reps["fiches"], m["rapport_froid"])
            m["national"] = bench_national(work)
        m["bqss"] = bench_bqss(work, reps["bqss"])
    result["cibles"] = evaluate(m)
    text = format_report(result)
    print(text, flush=True)
    out.mkdir(parents=True, exist_ok=True)
    target = out / ("bench_bqss.json" if only_bqss else "bench.json")
    target.write_text(json.dumps(result, ensure_ascii=False, indent=2) + "\n", encoding="utf-8")
    print(f"\nMesures écrites dans {target}", flush=True)
    return result
