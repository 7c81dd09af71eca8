"""Résultats d'une région, calculés une fois et conservés typés (``<rapport>/resultats/``).

- ciblage : :func:`run_ciblage` -> ``ciblage.csv`` + ``resultats/ciblage*.parquet``
  (année N, historique, entrées et sorties, taux régionaux) ;
- suivi : :func:`run_suivi` -> ``suivi_engagements.csv`` + ``resultats/suivi.parquet`` (année N) et
  ``resultats/suivi_precedent.parquet`` (année N−1 en veille, pour les signaux d'alerte) ;
- tendances : :func:`run_tendances` -> ``tendances.csv`` + ``resultats/tendances.parquet``,
  évolutions, entonnoirs, comparaisons ciblés / non ciblés, signaux d'alerte ;
- pour les fiches seulement : :func:`run_veille_fiches` -> ``resultats/suivi_veille.parquet`` (tous les
  établissements en veille, année N) et ``resultats/suivi_historique.parquet`` (les trois années
  précédentes), calculés après les étapes du rapport (:func:`compute_sheet_results`), pendant que le
  noyau exécute le notebook du rapport : aucun notebook ne les lit.

``make report`` calcule ces étapes une fois, une à une (:func:`ensure_results`), sur les tables que
lisent les notebooks, pendant que le noyau exécute le notebook de la qualité des données puis ceux
dont les étapes sont faites (02 après le ciblage, 03 après le suivi) ; les notebooks 02 à 05, les
fiches et le classeur relisent ces résultats (:func:`load_results`, jusqu'à l'étape qu'ils lisent)
et ne recalculent rien. Un notebook lancé seul calcule ce qui manque, avec le même code.
"""

from __future__ import annotations

import io
import json
from dataclasses import dataclass, field
from pathlib import Path

import pandas as pd

from ..cache import read_parquet_once, write_atomic
from . import ciblage as cib
from . import controle_qls as cq
from . import persist
from . import suivi as sv
from . import tendances as td

RESULTS_DIR = "resultats"
HISTORY_YEARS = 3


@dataclass
class Results:
    """Résultats persistés d'une région. Chargés jusqu'à une étape seulement
    (``load_results(…, upto="ciblage")``), ceux des étapes suivantes valent ``None``."""

    annee: int
    annees: list[int]
    ciblage: pd.DataFrame
    historique: pd.DataFrame
    mouvements: pd.DataFrame
    monitoring: bool | None = None  # étape « suivi »
    suivi: pd.DataFrame | None = None  # étape « suivi »
    tendances: pd.DataFrame | None = None  # étape « tendances » (comme les champs suivants, sauf taux et contrôle)
    taux: dict = field(default_factory=dict)  # risque -> {"taux": …, "n": …}
    evolutions: dict = field(default_factory=dict)  # indicateur -> DataFrame
    funnels: dict = field(default_factory=dict)  # clé -> td.FunnelData
    comparaisons: dict = field(default_factory=dict)  # risque -> DataFrame (attrs dans meta)
    alertes: pd.DataFrame | None = None
    controle_qls: pd.DataFrame | None = None  # None : aucun dossier réaudité fourni
    controle_criteres: pd.DataFrame | None = None
    # fiches seulement (``load_results(…, fiches=True)``, après :func:`ensure_sheet_results`)
    suivi_veille: pd.DataFrame | None = None
    suivi_historique: pd.DataFrame | None = None


def report_years(ctx) -> list[int]:
    return [y for y in td.available_years(ctx.tables, ctx.rules, ctx.region) if y <= ctx.annee] or [ctx.annee]


def _dir(ctx) -> Path:
    d = Path(ctx.out_dir) / RESULTS_DIR
    d.mkdir(parents=True, exist_ok=True)
    return d


def _save(ctx, name: str, df: pd.DataFrame) -> None:
    # écrit d'un coup : un notebook lancé dès qu'une étape est faite lit pendant que la suivante écrit
    buf = io.BytesIO()
    df.reset_index(drop=True).to_parquet(buf, index=False)
    write_atomic(_dir(ctx) / f"{name}.parquet", buf.getvalue())


def _meta(ctx, update: dict | None = None) -> dict:
    p = _dir(ctx) / "meta.json"
    meta = json.loads(p.read_text(encoding="utf-8")) if p.is_file() else {}
    if update:
        meta.update(update)
        # écrit d'un coup : un notebook peut le lire pendant que l'étape suivante le complète
        write_atomic(p, (json.dumps(meta, ensure_ascii=False, indent=1, sort_keys=True) + "\n").encode("utf-8"))
    return meta


# Contrôle qualité du recueil QLS (issue 14), première étape (en tête de :func:`run_ciblage`) :
# :func:`run_controle` -> ``controle_qls.csv`` + ``resultats/controle_qls*.parquet`` quand des dossiers
# réaudités sont fournis ; le ciblage, le suivi, les tendances et les alertes voient les tables de
# :func:`stage_tables`, où les résultats non validés par ce contrôle sont masqués, une seule fois.


def run_controle(ctx) -> pd.DataFrame | None:
    """Contrôle qualité du recueil QLS de la région (dossiers réaudités jusqu'à l'année N) :
    ``controle_qls.csv`` et ``resultats/controle_qls*.parquet`` ; rien quand aucun dossier n'est fourni."""
    from ..publishing import outputs

    key = [ctx.rules.sha256, ctx.annee, ctx.region, *cq.controle_inputs(ctx.tables, ctx.rules, ctx.annee, ctx.region)] \
        if persist.active() else []
    res = persist.cached("controle", key, lambda: cq.compute_controle(ctx.tables, ctx.rules, ctx.annee, ctx.region))
    d = _dir(ctx)
    if res is None:
        for name in ("controle_qls", "controle_qls_criteres"):
            (d / f"{name}.parquet").unlink(missing_ok=True)
        _meta(ctx, {"controle_qls": False})
        return None
    ctrl, crit = res
    outputs.write_csv(ctrl[cq.CONTROLE_COLUMNS], Path(ctx.out_dir) / "controle_qls.csv")
    _save(ctx, "controle_qls", ctrl)
    _save(ctx, "controle_qls_criteres", crit)
    _meta(ctx, {"controle_qls": True})
    return ctrl


def stage_tables(ctx) -> dict:
    """Tables vues par le ciblage, le suivi, les tendances et les alertes : celles du contexte, les
    résultats en surcotation au contrôle qualité du recueil masqués (:func:`controle_qls.apply_controle`).
    Le contrôle est celui que :func:`run_controle` a conservé (calculé ici s'il manque)."""
    if ctx.rules.controle_qls is None:
        return ctx.tables
    cached = getattr(ctx, "_tables_des_etapes", None)
    if cached is not None and cached[0] is ctx.tables:
        return cached[1]  # mêmes tables masquées pour toutes les étapes d'un même contexte
    p = _dir(ctx) / "controle_qls.parquet"
    if "controle_qls" not in _meta(ctx):
        ctrl = run_controle(ctx)
    else:
        ctrl = pd.read_parquet(p) if p.is_file() else None
    out = cq.apply_controle(ctx.tables, ctx.rules, ctrl)
    ctx._tables_des_etapes = (ctx.tables, out)
    return out


def run_ciblage(ctx) -> pd.DataFrame:
    from ..publishing import outputs

    run_controle(ctx)  # première étape : le contrôle du recueil précède tout usage des scores
    t = stage_tables(ctx)
    years = report_years(ctx)
    hist = cib.ciblage_history(t, ctx.rules, years, ctx.region)
    cur = hist.loc[hist["annee"] == ctx.annee].drop(columns="annee").reset_index(drop=True)
    if ctx.annee not in years:
        cur = cib.compute_ciblage(t, ctx.rules, ctx.annee, ctx.region)
    mv = cib.ciblage_movements(hist, years)
    taux = {}
    for code, r in ctx.rules.risques.items():
        if r.regle == "sous_declaration_poisson":
            t_, n = cib.regional_rate(t, ctx.rules, ctx.annee, ctx.region, r)
            taux[code] = {"taux": t_, "n": n}
    outputs.write_csv(cur[cib.CIBLAGE_COLUMNS], Path(ctx.out_dir) / "ciblage.csv")
    _save(ctx, "ciblage", cur)
    _save(ctx, "ciblage_historique", hist)
    _save(ctx, "ciblage_mouvements", mv)
    _meta(ctx, {"annee": ctx.annee, "annees": years, "taux": taux})
    return cur


def _veille_tables(t: dict) -> dict:
    """Tables du suivi « en veille » : tous les établissements, qu'ils aient signé ou non."""
    return {k: v for k, v in t.items() if k != "engagements"}


def _suivi_year(t: dict, ctx, annee: int) -> pd.DataFrame | None:
    """Suivi en veille de l'année ``annee`` (colonne ``annee`` ajoutée), ``None`` s'il est vide."""
    h = sv.compute_suivi(_veille_tables(t), ctx.rules, annee, ctx.region)
    return h.assign(annee=annee) if len(h) else None


def _history_frame(parts: list, like: pd.DataFrame) -> pd.DataFrame:
    hist = pd.concat(parts, ignore_index=True) if parts else like.iloc[0:0].assign(annee=pd.Series(dtype="Int64"))
    hist["annee"] = hist["annee"].astype("Int64")
    return hist


def _precedent(ctx, t: dict, like: pd.DataFrame) -> pd.DataFrame:
    """Suivi en veille de l'année N−1 : celui de l'étape du suivi, ou calculé ici s'il manque (dossier
    de résultats commencé par une version antérieure du code)."""
    p = _dir(ctx) / "suivi_precedent.parquet"
    if p.is_file():
        return pd.read_parquet(p)
    prev = _suivi_year(t, ctx, ctx.annee - 1)
    return _history_frame([prev] if prev is not None else [], like)


def run_suivi(ctx) -> pd.DataFrame:
    from ..publishing import outputs

    t = stage_tables(ctx)
    s = sv.compute_suivi(t, ctx.rules, ctx.annee, ctx.region)
    outputs.write_csv(s[sv.SUIVI_COLUMNS], Path(ctx.out_dir) / "suivi_engagements.csv")
    # année N−1 en veille : ce que lisent les signaux d'alerte (« nouveau non atteint ») ; les autres
    # années de l'historique ne servent qu'aux fiches (run_veille_fiches)
    prev = _suivi_year(t, ctx, ctx.annee - 1)
    _save(ctx, "suivi", s)
    _save(ctx, "suivi_precedent", _history_frame([prev] if prev is not None else [], s))
    _meta(ctx, {"mode_veille": sv.is_monitoring_mode(t)})
    return s


def run_veille_fiches(ctx) -> None:
    """Suivi pour les fiches : tous les établissements en veille (année N), afin que l'historique
    existe même avant la signature d'un engagement, et les ``HISTORY_YEARS`` années précédentes
    (la dernière reprise de ``suivi_precedent``). Écrits sans toucher à ``meta.json``, que lisent les
    notebooks pendant ce temps ; ``suivi_historique.parquet``, écrit en dernier et d'un coup, dit que
    l'étape est faite."""
    d = _dir(ctx)
    t = stage_tables(ctx)
    s = pd.read_parquet(d / "suivi.parquet")
    s_veille = sv.compute_suivi(_veille_tables(t), ctx.rules, ctx.annee, ctx.region) if "engagements" in t else s
    parts = [h for y in range(ctx.annee - HISTORY_YEARS, ctx.annee - 1) if (h := _suivi_year(t, ctx, y)) is not None]
    prev = _precedent(ctx, t, s)
    if len(prev):
        parts.append(prev)
    _save(ctx, "suivi_veille", s_veille)
    _save(ctx, "suivi_historique", _history_frame(parts, s))


def run_tendances(ctx) -> pd.DataFrame:
    from ..publishing import outputs

    d = _dir(ctx)
    meta = _meta(ctx)
    t = stage_tables(ctx)
    years = meta.get("annees") or report_years(ctx)
    hist = pd.read_parquet(d / "ciblage_historique.parquet") if (d / "ciblage_historique.parquet").is_file() else None
    mv = pd.read_parquet(d / "ciblage_mouvements.parquet") if (d / "ciblage_mouvements.parquet").is_file() else None
    tend = td.compute_tendances(t, ctx.rules, ctx.region, years, history=hist, movements=mv)
    outputs.write_csv(tend, Path(ctx.out_dir) / "tendances.csv")
    _save(ctx, "tendances", tend)
    funnels, evol, comps = {}, {}, {}
    for code in td.interval_indicators(ctx.rules):
        ev = td.evolutions(t, ctx.rules, ctx.region, ctx.annee, code)
        _save(ctx, f"evolutions_{code}", ev)
        evol[code] = True
        if ctx.rules.indicator(code).unite == "%" and ctx.rules.indicator(code).effectif:
            fd = td.funnel_data_valeur(t, ctx.rules, ctx.region, ctx.annee, code)
            _save(ctx, f"entonnoir_{code}_points", fd.points)
            _save(ctx, f"entonnoir_{code}_limites", fd.limites)
            funnels[code] = {"reference": fd.reference, "type": "valeur", "indicateur": code}
    for code, r in ctx.rules.risques.items():
        if r.regle == "sous_declaration_poisson":
            fd = td.funnel_data_poisson(t, ctx.rules, ctx.region, ctx.annee, code)
            _save(ctx, f"entonnoir_{code}_points", fd.points)
            _save(ctx, f"entonnoir_{code}_limites", fd.limites)
            funnels[code] = {"reference": fd.reference, "type": "poisson", "risque": code}
    base = ctx.annee - 2
    if base in years and hist is not None:
        for code in td.comparable_risks(ctx.rules):
            cb = hist.loc[hist["annee"] == base]
            df = td.targeted_vs_others(t, ctx.rules, ctx.region, base, ctx.annee, code, ciblage_base=cb)
            _save(ctx, f"comparaison_{code}", df)
            comps[code] = {"annee_ciblage": base, "annee_suivi": ctx.annee}
    from .alertes import compute_alertes

    evols = {c: pd.read_parquet(d / f"evolutions_{c}.parquet") for c in evol}
    suivi = pd.read_parquet(d / "suivi.parquet") if (d / "suivi.parquet").is_file() else sv.compute_suivi(
        t, ctx.rules, ctx.annee, ctx.region)
    shist = _precedent(ctx, t, suivi)
    hist_all = hist if hist is not None else cib.ciblage_history(t, ctx.rules, years, ctx.region)
    alerts = compute_alertes(t, ctx.rules, ctx.annee, ctx.region, hist_all, suivi, shist, evols, years)
    _save(ctx, "alertes", alerts)
    outputs.write_csv(alerts, Path(ctx.out_dir) / "alertes.csv")
    _meta(ctx, {"entonnoirs": funnels, "evolutions": sorted(evol), "comparaisons": comps})
    return tend


def load_results(out_dir: str | Path, fiches: bool = False, upto: str | None = None) -> Results:
    """Résultats persistés de ``out_dir`` : toutes les étapes, ou celles jusqu'à ``upto`` (nom d'une
    étape de :data:`STAGES`) ; ``fiches`` : avec le suivi en veille et l'historique, que seules les
    fiches lisent (:func:`ensure_sheet_results` d'abord)."""
    d = Path(out_dir) / RESULTS_DIR
    meta = json.loads((d / "meta.json").read_text(encoding="utf-8"))
    names = _stage_names(upto)

    def rd(name: str) -> pd.DataFrame:
        # les notebooks d'un rapport, dans un même noyau, relisent les mêmes résultats : lus une fois
        return read_parquet_once(d / f"{name}.parquet")

    res = Results(
        annee=int(meta["annee"]),
        annees=[int(y) for y in meta["annees"]],
        ciblage=rd("ciblage"),
        historique=rd("ciblage_historique"),
        mouvements=rd("ciblage_mouvements"),
        taux=meta.get("taux", {}),
        controle_qls=rd("controle_qls") if (d / "controle_qls.parquet").is_file() else None,
        controle_criteres=rd("controle_qls_criteres") if (d / "controle_qls_criteres.parquet").is_file() else None,
    )
    if "suivi" in names:
        res.monitoring = bool(meta.get("mode_veille", False))
        res.suivi = rd("suivi")
    if "tendances" in names:
        for key, m in meta.get("entonnoirs", {}).items():
            res.funnels[key] = td.FunnelData(rd(f"entonnoir_{key}_points"), rd(f"entonnoir_{key}_limites"),
                                             m["reference"])
        for key, m in meta.get("comparaisons", {}).items():
            df = rd(f"comparaison_{key}")
            df.attrs.update(m, note=td.regression_to_mean_note(), risque=key)
            res.comparaisons[key] = df
        res.tendances = rd("tendances")
        res.evolutions = {c: rd(f"evolutions_{c}") for c in meta.get("evolutions", [])}
        res.alertes = rd("alertes") if (d / "alertes.parquet").is_file() else None
    if fiches:
        res.suivi_veille = rd("suivi_veille")
        res.suivi_historique = rd("suivi_historique")
    return res


#: étapes, dans l'ordre (chacune relit ce que les précédentes ont écrit) : (nom, clé de ``meta.json``
#: qui dit qu'elle est faite, fonction). ``make report`` les calcule une à une, et lance chaque notebook
#: dès que les étapes qu'il lit sont faites (ciblage : 02 ; suivi : 03 ; tendances : 04 et 05).
STAGES = (("ciblage", "annees", run_ciblage), ("suivi", "mode_veille", run_suivi),
          ("tendances", "entonnoirs", run_tendances))


def _stage_names(upto: str | None) -> list[str]:
    names = [name for name, _, _ in STAGES]
    if upto is None:
        return names
    if upto not in names:
        raise ValueError(f"étape inconnue : {upto!r} (étapes : {', '.join(names)})")
    return names[:names.index(upto) + 1]


def compute_missing(ctx, upto: str | None = None) -> None:
    """Calcule les étapes qui manquent dans ``<out_dir>/resultats`` (aucune si elles sont faites),
    toutes ou jusqu'à ``upto``, sans les relire."""
    d = Path(ctx.out_dir) / RESULTS_DIR
    done = json.loads((d / "meta.json").read_text(encoding="utf-8")) if (d / "meta.json").is_file() else {}
    wanted = _stage_names(upto)
    for name, key, stage in STAGES:
        if name in wanted and key not in done:
            stage(ctx)


def ensure_results(ctx, upto: str | None = None) -> Results:
    """Calcule les étapes qui manquent (:func:`compute_missing`), puis relit leurs résultats :
    ``make report`` les calcule ainsi une fois, avant les notebooks ; un notebook lancé seul calcule
    ce qui manque."""
    compute_missing(ctx, upto)
    return load_results(ctx.out_dir, upto=upto)


def compute_sheet_results(ctx) -> None:
    """Les étapes qui manquent (:func:`compute_missing`), puis l'étape des fiches
    (:func:`run_veille_fiches`) si elle manque, sans les relire."""
    compute_missing(ctx)
    if not (Path(ctx.out_dir) / RESULTS_DIR / "suivi_historique.parquet").is_file():
        run_veille_fiches(ctx)


def ensure_sheet_results(ctx) -> Results:
    """Comme :func:`ensure_results`, puis l'étape des fiches (:func:`run_veille_fiches`) si elle
    manque ; renvoie les résultats avec ce que lisent les fiches."""
    compute_sheet_results(ctx)
    return load_results(ctx.out_dir, fiches=True)


def compute_region(tables: dict, rules, annee: int, region: str, out_dir: str | Path) -> Results:
    """Les étapes sur des tables déjà chargées (banc et tests), avec le même code que les rapports."""
    from types import SimpleNamespace

    ctx = SimpleNamespace(tables=tables, rules=rules, annee=int(annee), region=str(region), out_dir=Path(out_dir))
    return ensure_sheet_results(ctx)
