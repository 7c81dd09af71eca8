"""Sections du rapport annuel : chaque fonction affiche (HTML et figures SVG) une partie du rapport.

Le notebook ``05_rapport_annuel`` n'appelle que ces fonctions ; toute la mise en forme est ici,
testable, et tous les chiffres viennent des fonctions de calcul (ciblage, suivi, tendances).
"""

from __future__ import annotations

import html
from dataclasses import dataclass, field

import pandas as pd

from ..indicators import ciblage as cib
from . import figures
from ..indicators import suivi as sv
from ..indicators import tendances as td
from ..orchestration.context import Context
from .fmt import MISSING, fmt_date, fmt_dec, fmt_num, fmt_pct, french_table

RISQUE_LABELS = {
    "infectieux": "Risque infectieux",
    "management_qualite": "Management de la qualité",
    "rupture_parcours": "Rupture de parcours",
}
STATUT_LABELS = {
    "atteint": "atteint",
    "non_atteint": "non atteint",
    "non_evaluable": "non évaluable",
    "non_concerne": "non concerné",
    "sans_cible": "sans cible",
}
SOURCE_LABELS = {
    "etablissements": "référentiel des établissements",
    "activite": "activité (séjours)",
    "certification": "certification HAS",
    "qls": "qualité de la lettre de liaison (QLS)",
    "esin": "signalements e-SIN",
    "formation": "formation du personnel",
    "audits": "audits des pratiques",
    "plan_epidemies": "plan local de maîtrise des épidémies",
    "engagements": "engagements CPOM signés",
    "plans_actions": "plans d'actions",
    "esatis": "expérience patient (e-Satis)",
}
SOURCE_CONSEQUENCES = {
    "activite": "le taux de signalement e-SIN et la règle « faiblement déclarant » ne peuvent pas être calculés ;"
    " seul le critère « non déclarant » s'applique",
    "certification": "le risque « management de la qualité » et l'engagement « certification » ne peuvent pas être évalués",
    "qls": "le risque « rupture de parcours » et l'engagement « lettre de liaison » ne peuvent pas être évalués",
    "esin": "le risque infectieux et l'engagement « signalement e-SIN » ne peuvent pas être évalués",
    "formation": "le taux de personnel formé (engagement « prévention des IAS ») n'est pas évaluable",
    "audits": "l'indicateur « audits sur les précautions » n'est pas évaluable",
    "plan_epidemies": "la conformité du plan local de maîtrise des épidémies n'est pas évaluable",
    "engagements": "mode veille : chaque établissement de la région est suivi sur chaque engagement",
}


def h(text: object) -> str:
    return html.escape(str(text))


def show_html(markup: str) -> None:
    from IPython.display import HTML, display

    display(HTML(markup))


@dataclass
class Results:
    ciblage: pd.DataFrame
    suivi: pd.DataFrame
    tendances: pd.DataFrame
    historique: pd.DataFrame
    mouvements: pd.DataFrame
    annees: list[int]
    monitoring: bool
    extra: dict = field(default_factory=dict)


def compute_results(ctx: Context) -> Results:
    t, r = ctx.tables, ctx.rules
    years = [y for y in td.available_years(t, ctx.region) if y <= ctx.annee] or [ctx.annee]
    hist = cib.ciblage_history(t, r, years, ctx.region)
    return Results(
        ciblage=cib.compute_ciblage(t, r, ctx.annee, ctx.region),
        suivi=sv.compute_suivi(t, r, ctx.annee, ctx.region),
        tendances=td.compute_tendances(t, r, ctx.region, years),
        historique=hist,
        mouvements=cib.ciblage_movements(hist, years),
        annees=years,
        monitoring=sv.is_monitoring_mode(t),
    )


# ------------------------------------------------------------------------------------------
# Summary


def _kpi(value: str, label: str) -> str:
    return f'<div class="kpi"><div class="kpi-valeur">{h(value)}</div><div class="kpi-libelle">{h(label)}</div></div>'


def synthese(ctx: Context, res: Results) -> None:
    etabs = ctx.etablissements
    n = len(etabs)
    c = res.ciblage
    per_risk = c.groupby("risque")["finess_geo"].nunique().to_dict() if len(c) else {}
    n_cibles = c["finess_geo"].nunique() if len(c) else 0
    s = res.suivi
    ev = s[s["statut"].isin(["atteint", "non_atteint"])]
    part = 100.0 * (ev["statut"] == "atteint").mean() if len(ev) else None
    trend = res.tendances
    def last(ind):
        x = trend[(trend["indicateur"] == ind) & trend["valeur_regionale"].notna() & (trend["annee"] <= ctx.annee)]
        return x.iloc[-1] if len(x) else None
    qls = [last(f"score_qls_{s_}") for s_ in ("mco", "ssr", "psy")]
    esin_rate = last("taux_signalement_esin")
    n_read = int(ctx.files["lignes_lues"].sum()) if len(ctx.files) else 0
    kpis = [
        _kpi(fmt_num(n), "établissements dans la région"),
        _kpi(fmt_num(n_cibles), f"établissements ciblés en {ctx.annee} (au moins un risque)"),
        _kpi(fmt_pct(part) if part is not None else MISSING, "des indicateurs évaluables d'engagement atteints"),
        _kpi(fmt_num(len(ctx.rejects)), f"ligne(s) rejetée(s) sur {fmt_num(n_read)} lues"),
    ]
    parts = [f'<div class="kpis">{"".join(kpis)}</div>']
    items = []
    for k, label in RISQUE_LABELS.items():
        items.append(f"<li><b>{h(label)}</b> : {fmt_num(per_risk.get(k, 0))} établissement(s) ciblé(s)</li>")
    qtxt = [
        f"{q['libelle'].replace('Score QLS ', '')} {fmt_pct(q['valeur_regionale'])} (campagne {int(q['annee'])})"
        for q in qls if q is not None
    ]
    if qtxt:
        items.append("<li>Score moyen de qualité de la lettre de liaison : " + h(" ; ".join(qtxt)) + ".</li>")
    if esin_rate is not None:
        items.append(
            f"<li>Taux régional de signalement e-SIN {int(esin_rate['annee'])} : "
            f"{h(fmt_dec(esin_rate['valeur_regionale'], 2))} pour 10 000 séjours.</li>"
        )
    mode = (
        "Aucun fichier d'engagements n'a été fourni : le suivi est présenté en <b>mode veille</b> "
        "(chaque établissement suivi sur chaque engagement)."
        if res.monitoring
        else f"{fmt_num(s['finess_geo'].nunique())} établissement(s) ont au moins un engagement suivi en {ctx.annee}."
    )
    items.append(f"<li>{mode}</li>")
    if ctx.absent_sources:
        items.append(
            "<li>Sources absentes : " + h(", ".join(SOURCE_LABELS.get(x, x) for x in ctx.absent_sources))
            + " (voir « Qualité des données »).</li>"
        )
    parts.append("<ul class=\"synthese\">" + "".join(items) + "</ul>")
    show_html("".join(parts))


# ------------------------------------------------------------------------------------------
# Targeting


def ciblage_intro(ctx: Context) -> None:
    r = ctx.rules["ciblage"]
    rp = r["rupture_parcours"]
    show_html(
        "<p>Un établissement est ciblé l'année N sur :</p><ul>"
        f"<li><b>le risque infectieux</b> s'il n'a fait aucun signalement e-SIN en N (non déclarant), ou si ses "
        f"signalements sont significativement inférieurs à ce qu'aurait donné le taux régional appliqué à ses séjours "
        f"(probabilité de Poisson P(X ≤ signalements) &lt; {h(fmt_dec(r['infectieux']['seuil_p_poisson'], 3))}) ;</li>"
        f"<li><b>le management de la qualité</b> si son niveau de certification en vigueur au 31 décembre N est "
        f"{h(' ou '.join(r['management_qualite']['niveaux_cibles']))} (non certifié) ;</li>"
        f"<li><b>la rupture de parcours</b> si un score QLS de sa dernière campagne ({ctx.annee - int(rp['fenetre_annees']) + 1}"
        f"–{ctx.annee}) est strictement inférieur à {h(fmt_pct(rp['seuil_score_qls'], 0))} (secteurs "
        f"{h(', '.join(rp['secteurs']))} ; non concernés : {h(', '.join(rp['specificites_exclues']))}).</li></ul>"
    )


def ciblage_risque(ctx: Context, res: Results, risque: str) -> None:
    c = res.ciblage[res.ciblage["risque"] == risque]
    if c.empty:
        show_html(f"<p>Aucun établissement ciblé sur ce risque en {ctx.annee}.</p>")
        return
    show_html(
        f"<p>{fmt_num(len(c))} établissement(s) ciblé(s).</p>"
        + french_table(
            c[["departement", "finess_geo", "raison_sociale", "motif"]],
            labels={"departement": "Dép.", "finess_geo": "FINESS", "raison_sociale": "Établissement", "motif": "Motif"},
        )
    )


def ciblage_mouvements(ctx: Context, res: Results) -> None:
    m = res.mouvements
    hist = res.historique
    if hist.empty:
        show_html("<p>Aucun historique de ciblage.</p>")
        return
    counts = hist.groupby(["annee", "risque"])["finess_geo"].nunique().unstack(fill_value=0)
    counts = counts.reindex(columns=list(RISQUE_LABELS), fill_value=0).reset_index()
    long = counts.melt(id_vars="annee", var_name="risque", value_name="n")
    long["risque"] = long["risque"].map(RISQUE_LABELS)
    figures.show(
        figures.line_trend(long, "annee", "n", hue="risque", title="Établissements ciblés par risque et par année",
                           ylabel="établissements")
    )
    cur = m[m["annee"] == ctx.annee] if len(m) else m
    if len(cur):
        cur = cur.assign(risque=cur["risque"].map(RISQUE_LABELS))
        show_html(
            f"<p>Par rapport à {ctx.annee - 1} : {fmt_num((cur['mouvement'] == 'entrée').sum())} entrée(s) et "
            f"{fmt_num((cur['mouvement'] == 'sortie').sum())} sortie(s) du ciblage.</p>"
            + french_table(
                cur[["risque", "mouvement", "departement", "finess_geo", "raison_sociale"]],
                labels={"risque": "Risque", "mouvement": "Mouvement", "departement": "Dép.", "finess_geo": "FINESS",
                        "raison_sociale": "Établissement"},
            )
        )
    else:
        show_html(f"<p>Aucune entrée ni sortie du ciblage entre {ctx.annee - 1} et {ctx.annee}.</p>")


# ------------------------------------------------------------------------------------------
# Follow-up


def suivi_synthese(ctx: Context, res: Results) -> None:
    s = res.suivi
    if res.monitoring:
        show_html(
            "<p class=\"encadre\">Aucun fichier d'engagements n'a été fourni : <b>mode veille</b>. Chaque "
            "établissement de la région est suivi sur chaque engagement, comme s'il l'avait signé.</p>"
        )
    if s.empty:
        show_html(f"<p>Aucun engagement suivi en {ctx.annee}.</p>")
        return
    summ = sv.summarise_suivi(s)
    labels = s.drop_duplicates(["engagement", "indicateur"]).set_index(["engagement", "indicateur"])
    summ["libelle"] = [
        labels.loc[(e, i), "libelle_indicateur"] if (e, i) in labels.index else i
        for e, i in zip(summ["engagement"], summ["indicateur"])
    ]
    summ["eng"] = [ctx.rules["engagements"].get(e, {}).get("libelle", e) for e in summ["engagement"]]
    show_html(
        french_table(
            summ[["eng", "libelle", "n_suivis", "n_atteints", "n_non_atteints", "n_non_evaluables", "n_non_concernes",
                  "part_atteinte"]],
            formats={"part_atteinte": "pct"},
            labels={"eng": "Engagement", "libelle": "Indicateur", "n_suivis": "Suivis", "n_atteints": "Atteints",
                    "n_non_atteints": "Non atteints", "n_non_evaluables": "Non évaluables",
                    "n_non_concernes": "Non concernés", "part_atteinte": "Part atteinte*"},
            numeric={"n_suivis", "n_atteints", "n_non_atteints", "n_non_evaluables", "n_non_concernes"},
        )
        + "<p class=\"note\">* Part atteinte = atteints / (atteints + non atteints) : les indicateurs non "
        "évaluables (donnée absente), non concernés et sans cible n'entrent pas dans le calcul.</p>"
    )
    plot = summ[summ["part_atteinte"].notna()].copy()
    if len(plot):
        plot["indicateur_l"] = plot["libelle"].str.slice(0, 55)
        plot["part"] = plot["part_atteinte"].astype(float)
        figures.show(
            figures.bar_share(plot, "indicateur_l", "part", title=f"Part des indicateurs atteints en {ctx.annee}",
                              percent=True)
        )


def suivi_non_atteints(ctx: Context, res: Results) -> None:
    s = res.suivi
    na = s[s["statut"] == "non_atteint"]
    if na.empty:
        show_html("<p>Aucun indicateur non atteint.</p>")
        return
    na = na.assign(eng=[ctx.rules["engagements"].get(e, {}).get("libelle", e) for e in na["engagement"]])
    show_html(
        f"<p>{fmt_num(len(na))} indicateur(s) non atteint(s), pour {fmt_num(na['finess_geo'].nunique())} établissement(s).</p>"
        + french_table(
            na[["finess_geo", "raison_sociale", "libelle_indicateur", "valeur", "cible"]],
            formats={"valeur": _fr_value},
            labels={"finess_geo": "FINESS", "raison_sociale": "Établissement", "libelle_indicateur": "Indicateur",
                    "valeur": "Valeur", "cible": "Cible"},
        )
    )


def _fr_value(v) -> str:
    if v is None or (isinstance(v, float) and pd.isna(v)) or v is pd.NA or v == "":
        return MISSING
    text = str(v)
    try:
        x = float(text)
    except ValueError:
        return text
    return fmt_dec(x, 0 if x.is_integer() else 1)


def plans_actions(ctx: Context, res: Results) -> None:
    pa = ctx.tables.get("plans_actions")
    if pa is None:
        show_html("<p>Aucun fichier de plans d'actions n'a été fourni.</p>")
        return
    pa = pa[pa["finess_geo"].isin(ctx.etablissements["finess_geo"])]
    if pa.empty:
        show_html("<p>Aucune action enregistrée pour la région.</p>")
        return
    tab = pd.crosstab(pa["engagement"], pa["statut"]).reindex(
        columns=["a_faire", "en_cours", "realise", "abandonne"], fill_value=0
    )
    tab["total"] = tab.sum(axis=1)
    tab["part_realisee"] = 100.0 * tab["realise"] / tab["total"]
    tab = tab.reset_index()
    tab["engagement"] = [ctx.rules["engagements"].get(e, {}).get("libelle", e) for e in tab["engagement"]]
    late = pa[(pa["statut"].isin(["a_faire", "en_cours"])) & (pa["echeance"] < pd.Timestamp(f"{ctx.annee}-12-31"))]
    show_html(
        french_table(
            tab,
            formats={"part_realisee": "pct0"},
            labels={"engagement": "Engagement", "a_faire": "À faire", "en_cours": "En cours", "realise": "Réalisées",
                    "abandonne": "Abandonnées", "total": "Total", "part_realisee": "Part réalisée"},
            numeric={"a_faire", "en_cours", "realise", "abandonne", "total"},
        )
        + f"<p>{fmt_num(len(late))} action(s) non réalisée(s) dont l'échéance est dépassée au 31/12/{ctx.annee}.</p>"
    )


# ------------------------------------------------------------------------------------------
# Trends


def _trend_rows(res: Results, indicators: list[str]) -> pd.DataFrame:
    t = res.tendances
    t = t[t["indicateur"].isin(indicators) & t["valeur_regionale"].notna()].copy()
    t["valeur"] = t["valeur_regionale"].astype(float)
    t["annee"] = t["annee"].astype(int)
    return t


def tendance_qls(ctx: Context, res: Results) -> None:
    t = _trend_rows(res, ["score_qls_mco", "score_qls_ssr", "score_qls_psy"])
    if t.empty:
        show_html("<p>Aucune donnée QLS.</p>")
        return
    t["secteur"] = t["indicateur"].str.replace("score_qls_", "", regex=False).str.upper()
    cible = float(ctx.rules["engagements"]["lettre_liaison"]["indicateurs"]["score_qls"]["cible"])
    figures.show(
        figures.line_trend(t, "annee", "valeur", hue="secteur", title="Score QLS régional moyen par campagne",
                           ylabel="score (%)", target=cible, percent=True, target_label="Cible (%)")
    )
    tab = t[["libelle", "annee", "n_etablissements", "valeur_regionale", "valeur_mediane", "part_cible_atteinte",
             "evolution_annuelle"]]
    show_html(
        french_table(
            tab,
            formats={"annee": "text", "valeur_regionale": "pct", "valeur_mediane": "pct", "part_cible_atteinte": "pct",
                     "evolution_annuelle": lambda v: MISSING if pd.isna(v) else fmt_dec(v, 1) + " pt"},
            labels={"libelle": "Indicateur", "annee": "Campagne", "n_etablissements": "Établissements",
                    "valeur_regionale": "Score moyen", "valeur_mediane": "Médiane", "part_cible_atteinte": "≥ cible",
                    "evolution_annuelle": "Évolution"},
        )
    )


def tendance_generique(ctx: Context, res: Results, indicators: list[str], title: str, ylabel: str,
                       percent: bool = False, target: float | None = None) -> None:
    t = _trend_rows(res, indicators)
    if t.empty:
        show_html(f"<p>Aucune donnée pour : {h(title.lower())}.</p>")
        return
    figures.show(figures.line_trend(t, "annee", "valeur", hue="libelle", title=title, ylabel=ylabel, percent=percent,
                                    target=target))


def funnel_esin(ctx: Context, res: Results) -> None:
    fd = td.funnel_data_esin(ctx.tables, ctx.rules, ctx.region, ctx.annee)
    if fd.points is None or fd.points.empty:
        show_html("<p>Graphique en entonnoir e-SIN indisponible (activité ou signalements absents).</p>")
        return
    figures.show(
        figures.funnel_plot(fd.points, fd.limites, f"Signalements e-SIN {ctx.annee} pour 10 000 séjours",
                            x="sejours", y="taux", reference=fd.reference, xlabel="séjours (échelle log)",
                            ylabel="signalements pour 10 000 séjours", logx=True)
    )
    pos = fd.points["position_funnel"].value_counts()
    show_html(
        "<p>Chaque point est un établissement ; les courbes sont les limites à 95 % et 99,8 % autour du taux "
        f"régional ({h(fmt_dec(fd.reference, 2))} pour 10 000 séjours), d'autant plus larges que l'activité est faible. "
        "Répartition : " + h(" ; ".join(f"{k} : {fmt_num(v)}" for k, v in pos.items())) + ".</p>"
    )


def funnel_qls(ctx: Context, res: Results) -> None:
    fd = td.funnel_data_qls(ctx.tables, ctx.rules, ctx.region, ctx.annee)
    if fd.points is None or fd.points.empty:
        show_html("<p>Graphique en entonnoir QLS indisponible (pas de nombre de dossiers).</p>")
        return
    for secteur in sorted(fd.points["secteur"].dropna().unique()):
        pts = fd.points[fd.points["secteur"] == secteur]
        lim = fd.limites[fd.limites["secteur"] == secteur] if "secteur" in fd.limites.columns else fd.limites
        ref = fd.reference.get(secteur) if isinstance(fd.reference, dict) else fd.reference
        figures.show(
            figures.funnel_plot(pts, lim, f"Score QLS {secteur} (dernière campagne) selon le nombre de dossiers",
                                x="n_dossiers", y="score", reference=ref, xlabel="dossiers évalués",
                                ylabel="score (%)", percent=True)
        )


def qls_evolutions(ctx: Context, res: Results) -> None:
    ev = td.qls_evolution(ctx.tables, ctx.rules, ctx.region, ctx.annee)
    ev = ev[ev["evolution"].notna()]
    if ev.empty:
        show_html("<p>Pas de campagne QLS précédente pour mesurer une évolution.</p>")
        return
    tab = pd.crosstab(ev["secteur"], ev["evolution"]).reset_index()
    show_html(
        "<p>Évolution de chaque établissement entre ses deux dernières campagnes, selon la règle du dispositif "
        "IFAQ : amélioration (ou dégradation) seulement si les intervalles de confiance à 95 % des deux "
        "campagnes ne se chevauchent pas ; stable sinon.</p>"
        + french_table(tab, labels={"secteur": "Secteur"})
    )
    pos = pd.crosstab(ev["secteur"], ev["position_cible"]).reset_index()
    show_html(
        "<p>Position de l'intervalle de confiance du dernier score par rapport à la référence nationale de 80 % :</p>"
        + french_table(pos, labels={"secteur": "Secteur"})
    )


def cibles_vs_autres(ctx: Context, res: Results) -> None:
    years = res.annees
    rp = ctx.rules["ciblage"]["rupture_parcours"]
    base = ctx.annee - 2
    if base not in years:
        show_html("<p>Historique insuffisant pour comparer établissements ciblés et non ciblés.</p>")
        return
    df = td.targeted_vs_others(ctx.tables, ctx.rules, ctx.region, base, ctx.annee, risque="rupture_parcours")
    show_html(
        f"<p>Établissements ciblés en {base} sur la rupture de parcours (score QLS &lt; {h(fmt_pct(rp['seuil_score_qls'], 0))}) "
        f"comparés aux autres, entre la campagne retenue en {base} et la suivante (jusqu'à {ctx.annee}) :</p>"
        + french_table(
            df[["groupe", "n", "valeur_initiale_moyenne", "valeur_finale_moyenne", "evolution_moyenne"]],
            formats={"valeur_initiale_moyenne": "pct", "valeur_finale_moyenne": "pct",
                     "evolution_moyenne": lambda v: MISSING if pd.isna(v) else fmt_dec(v, 1) + " pt"},
            labels={"groupe": "Groupe", "n": "Secteurs", "valeur_initiale_moyenne": "Score initial",
                    "valeur_finale_moyenne": "Score suivant", "evolution_moyenne": "Évolution moyenne"},
        )
        + f'<p class="encadre"><b>Prudence.</b> {h(td.regression_to_mean_note())}</p>'
    )


def experience_patient(ctx: Context, res: Results) -> None:
    es = ctx.tables.get("esatis")
    if es is None:
        show_html("<p>Aucun fichier e-Satis de la HAS n'a été déposé : indicateur non présenté.</p>")
        return
    es = es[es["finess_geo"].isin(ctx.etablissements["finess_geo"])]
    if es.empty:
        show_html("<p>Aucun établissement de la région dans les fichiers e-Satis déposés.</p>")
        return
    g = es.groupby(["secteur", "annee"])
    tab = pd.DataFrame({
        "n": g["finess_geo"].nunique(),
        "score_median": g["score"].median(),
        "avec_score": g["score"].count(),
    }).reset_index()
    cls = pd.crosstab([es["secteur"], es["annee"]], es["classement"]).reset_index()
    show_html(
        "<p>Indicateur optionnel, sans cible ni ciblage : score global de satisfaction ajusté (HAS e-Satis) "
        "et classe publiée (A à D ; DI : moins de 30 réponses exploitables ; NR : aucune réponse ; NV : non validé).</p>"
        + french_table(tab, formats={"annee": "text", "score_median": "dec1"},
                       labels={"secteur": "Secteur", "annee": "Campagne", "n": "Établissements",
                               "score_median": "Score médian", "avec_score": "Avec score"})
        + french_table(cls, formats={"annee": "text"}, labels={"secteur": "Secteur", "annee": "Campagne"})
    )


# ------------------------------------------------------------------------------------------
# Data quality


def qualite_fichiers(ctx: Context) -> None:
    f = ctx.files.copy()
    if f.empty:
        show_html("<p>Aucun fichier lu.</p>")
        return
    f["encodage"] = f["encodage"].replace({"xlsx": "classeur XLSX"})
    show_html(
        french_table(
            f[["fichier", "nature", "encodage", "lignes_lues", "acceptees", "rejetees", "doublons_fusionnes",
               "hors_referentiel", "sans_objet", "reparees"]],
            labels={"fichier": "Fichier", "nature": "Nature", "encodage": "Format", "lignes_lues": "Lues",
                    "acceptees": "Acceptées", "rejetees": "Rejetées", "doublons_fusionnes": "Doublons",
                    "hors_referentiel": "Hors réf.", "sans_objet": "Sans décision", "reparees": "Réparées"},
            numeric={"lignes_lues", "acceptees", "rejetees", "doublons_fusionnes", "hors_referentiel", "sans_objet",
                     "reparees"},
        )
        + "<p class=\"note\">Lues = acceptées + rejetées + doublons exacts fusionnés + hors référentiel (fichiers "
        "nationaux : établissements d'autres régions ou absents du référentiel) + sans décision (démarches de "
        "certification sans décision). Réparées : FINESS à 8 chiffres complétés du zéro initial, codes département "
        "ou région complétés (lignes acceptées).</p>"
    )


def qualite_sources(ctx: Context) -> None:
    items = []
    for s in ctx.absent_sources:
        items.append(f"<li><b>{h(SOURCE_LABELS.get(s, s))}</b> ({h(s)}) : {h(SOURCE_CONSEQUENCES.get(s, 'non évalué'))}.</li>")
    if items:
        show_html("<p>Sources absentes du dossier d'entrée et conséquences :</p><ul>" + "".join(items) + "</ul>")
    else:
        show_html("<p>Toutes les sources prévues par le contrat de données ont été fournies.</p>")
    if ctx.warnings:
        show_html("<p>Avertissements de lecture :</p><ul>" + "".join(f"<li>{h(w)}</li>" for w in ctx.warnings) + "</ul>")


def qualite_rejets(ctx: Context, max_rows: int = 60) -> None:
    r = ctx.rejects
    if r.empty:
        show_html("<p>Aucune ligne rejetée.</p>")
        return
    by = r.groupby(["fichier", "motif"]).size().reset_index(name="n")
    more = (
        f"<p>Les {fmt_num(max_rows)} premiers rejets sont listés ; la liste complète est dans <code>rejets.csv</code> et "
        "dans la feuille « rejets » du classeur.</p>" if len(r) > max_rows else ""
    )
    show_html(
        f"<p>{fmt_num(len(r))} rejet(s). Chaque ligne rejetée est écartée des calculs ; corrigez le fichier source "
        "puis relancez le rapport.</p>"
        + french_table(r.head(max_rows), formats={"ligne": "text"},
                       labels={"fichier": "Fichier", "ligne": "Ligne", "colonne": "Colonne", "valeur": "Valeur",
                               "motif": "Motif"})
        + more
        + ("<p>Synthèse par motif :</p>" + french_table(by, labels={"fichier": "Fichier", "motif": "Motif", "n": "Lignes"})
           if len(r) > 10 else "")
    )


# ------------------------------------------------------------------------------------------
# Method


def methode_regles(ctx: Context) -> None:
    r = ctx.rules
    c = r["ciblage"]
    e = r["engagements"]
    rows = [
        ("Ciblage", "Risque infectieux — non déclarant", f"signalements e-SIN = {c['infectieux']['signalements_non_declarant']}"),
        ("Ciblage", "Risque infectieux — faiblement déclarant",
         f"P(X ≤ s), X ~ Poisson(séjours × taux régional) < {fmt_dec(c['infectieux']['seuil_p_poisson'], 3)}"),
        ("Ciblage", "Management de la qualité", "niveau en vigueur au 31/12/N : " + ", ".join(c["management_qualite"]["niveaux_cibles"])),
        ("Ciblage", "Rupture de parcours",
         f"score QLS < {fmt_pct(c['rupture_parcours']['seuil_score_qls'], 0)}, dernière campagne sur "
         f"{c['rupture_parcours']['fenetre_annees']} ans ; exclus : {', '.join(c['rupture_parcours']['specificites_exclues'])}"),
        ("Engagement", e["certification"]["libelle"], "niveau " + " ou ".join(e["certification"]["indicateurs"]["niveau_certification"]["cible"])),
        ("Engagement", e["lettre_liaison"]["libelle"],
         f"score ≥ {fmt_pct(e['lettre_liaison']['indicateurs']['score_qls']['cible'], 0)} par secteur ; exclus : "
         + ", ".join(e["lettre_liaison"]["specificites_exclues"])),
        ("Engagement", e["signalement_esin"]["libelle"], "responsable du signalement connecté ; nombre de signalements sans cible"),
        ("Engagement", e["prevention_ias"]["libelle"],
         f"formés ≥ {fmt_pct(e['prevention_ias']['indicateurs']['taux_formes']['cible'], 0)} par catégorie ; "
         f"≥ {e['prevention_ias']['indicateurs']['audits_precautions']['cible']} audit sur les précautions ; plan "
         f"conforme à {fmt_pct(e['prevention_ias']['indicateurs']['conformite_plan_epidemies']['cible'], 0)} ; exclus : "
         + ", ".join(e["prevention_ias"]["specificites_exclues"])),
    ]
    df = pd.DataFrame(rows, columns=["Rubrique", "Règle", "Valeur"])
    show_html(
        french_table(df)
        + f"<p>Fichier de règles : <code>{h(str(r['_chemin']).replace(chr(92), '/').rsplit('/', 1)[-1])}</code>, version {h(r.get('version', MISSING))}, "
        f"empreinte SHA-256 <code>{h(r['_sha256'])}</code>. Toute modification d'un seuil change cette empreinte, "
        "reportée dans <code>manifest.json</code>.</p>"
    )


def methode_statistiques(ctx: Context) -> None:
    st = ctx.rules["statistiques"]
    show_html(
        "<ul>"
        f"<li><b>Intervalles des scores QLS</b> : bornes publiées quand elles sont fournies ; sinon intervalle de Wilson à "
        f"{h(fmt_pct(100 * st['niveau_confiance'], 0))} calculé à partir du nombre de dossiers (statsmodels).</li>"
        f"<li><b>Position par rapport à la référence</b> ({h(fmt_pct(st['cible_reference_qls'], 0))}) : au-dessus si "
        "l'intervalle est entièrement au-dessus, en dessous s'il est entièrement en dessous, « non différent » sinon — "
        "comme les tableaux de bord publics (HAS QualiScope, CMS Care Compare).</li>"
        "<li><b>Évolution entre deux campagnes</b> : règle de non-chevauchement des intervalles du dispositif IFAQ "
        "(amélioration si la borne basse actuelle dépasse la borne haute précédente, dégradation dans le cas inverse, "
        "stable sinon) ; l'écart en points est donné en plus.</li>"
        "<li><b>Faible déclaration e-SIN</b> : test exact de Poisson unilatéral (SciPy) du nombre de signalements "
        "contre l'attendu au taux régional (Σ signalements / Σ séjours des établissements de la région ayant les deux "
        "données).</li>"
        f"<li><b>Graphiques en entonnoir</b> (Spiegelhalter, Statistics in Medicine, 2005) : limites exactes binomiales "
        f"(QLS) ou de Poisson (e-SIN) à {h(' et '.join(fmt_pct(100 * x, 1) for x in st['limites_funnel']))} autour de la "
        "valeur régionale.</li>"
        "</ul>"
    )


def methode_limites(ctx: Context, res: Results) -> None:
    show_html(
        "<ul>"
        f"<li>{h(td.regression_to_mean_note())}</li>"
        "<li>Une donnée absente rend l'indicateur « non évaluable », jamais « non atteint ».</li>"
        "<li>Les petits établissements ont des intervalles larges : un écart à la cible n'y est souvent pas "
        "significatif ; les graphiques en entonnoir le montrent.</li>"
        "<li>Les campagnes QLS sont bisannuelles : l'évolution annuelle d'un score compare deux campagnes.</li>"
        + ("<li>Mode veille : sans fichier d'engagements, le suivi porte sur tous les établissements, qu'ils aient "
           "signé ou non.</li>" if res.monitoring else "")
        + "</ul>"
    )


def methode_tracabilite(ctx: Context) -> None:
    f = ctx.files
    if len(f):
        show_html(
            "<p>Fichiers d'entrée (empreinte SHA-256, 16 premiers caractères) :</p>"
            + french_table(
                f.assign(sha=f["sha256"].str.slice(0, 16))[["fichier", "sha", "lignes_lues"]],
                labels={"fichier": "Fichier", "sha": "SHA-256", "lignes_lues": "Lignes lues"},
                numeric={"lignes_lues"},
            )
            + "<p>Le manifeste <code>manifest.json</code> livré avec le rapport donne les empreintes complètes, les "
            "paramètres, les versions des logiciels et du code. Les notebooks exécutés sont dans <code>notebooks/</code>.</p>"
        )
