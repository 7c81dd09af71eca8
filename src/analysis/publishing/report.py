"""Sections du rapport annuel : chaque fonction affiche (HTML et figures SVG) une partie du rapport.

Les notebooks n'appellent que ces fonctions. Tous les chiffres viennent des résultats déjà calculés
par les notebooks 02 à 04 (:class:`analysis.indicators.results.Results`) : rien n'est recalculé ici.
Les libellés viennent du fichier de règles (un seul vocabulaire), les nombres du formateur unique
(:mod:`analysis.publishing.fmt`) et la prose des gabarits ``templates/rapport/textes/``. Les
risques, engagements et indicateurs déclarés apparaissent tous, sans code propre à chacun.
"""

from __future__ import annotations

import html
from functools import lru_cache

import pandas as pd

from . import figures
from .fmt import MISSING, fmt_dec, fmt_num, fmt_pct, fmt_quantity, fmt_shortest, fmt_target, french_table, is_missing
from .render import TEMPLATES_DIR


def h(text: object) -> str:
    return html.escape(str(text))


def show_html(markup: str) -> None:
    from IPython.display import HTML, display

    display(HTML(markup))


def heading(level: int, text: str) -> None:
    """Titre de section généré (risques, engagements déclarés) : repris par le sommaire."""
    show_html(f"<h{int(level)}>{h(text)}</h{int(level)}>")


@lru_cache(maxsize=1)
def _env():
    from jinja2 import Environment, FileSystemLoader, select_autoescape

    env = Environment(loader=FileSystemLoader(str(TEMPLATES_DIR / "rapport" / "textes")),
                      autoescape=select_autoescape(["j2", "html"]), trim_blocks=False, lstrip_blocks=False)
    env.filters["shortest"] = fmt_shortest
    env.filters["op_text"] = lambda op: {">=": "supérieur ou égal à", ">": "supérieur à", "<=": "inférieur ou égal à",
                                         "<": "strictement inférieur à", "==": "égal à"}.get(op, op)
    return env


def text(name: str, **kw) -> str:
    """Prose du rapport : gabarit ``textes/<name>.html.j2`` (échappé)."""
    env = _env()
    rules = kw.get("rules")
    if rules is not None:
        env.filters["source_label"] = lambda s: rules.label("source", s)
        env.filters["specificite_label"] = lambda s: rules.value_label("etablissements", "specificite", s)
    return env.get_template(f"{name}.html.j2").render(**kw)


def _fig(builder, *args, alt: str, caption: str, **kwargs) -> None:
    """Figure ``builder(*args, **kwargs)`` (une fonction de :mod:`analysis.publishing.figures`)
    affichée avec son texte alternatif et sa légende ; reprise du cache des figures quand ses
    données n'ont pas changé (:func:`analysis.publishing.figures.draw`)."""
    figures.show(figures.draw(builder, *args, **kwargs), alt=alt, caption=caption)


# ------------------------------------------------------------------------------------------
# Textes alternatifs des figures (ce que la figure montre et son message, tiré des données)


def _series_alt(df: pd.DataFrame, x: str, y: str, hue: str | None, fmtv) -> str:
    parts = []
    groups = [(None, df)] if hue is None else list(df.groupby(hue, sort=True))
    for key, g in groups:
        g = g.dropna(subset=[y]).sort_values(x)
        if g.empty:
            continue
        first, last = g.iloc[0], g.iloc[-1]
        name = "" if key is None else f"{key} : "
        if len(g) == 1:
            parts.append(f"{name}{fmtv(last[y])} en {int(last[x])}")
        else:
            parts.append(f"{name}{fmtv(first[y])} en {int(first[x])}, {fmtv(last[y])} en {int(last[x])}")
    return " ; ".join(parts)


def trend_alt(title: str, df: pd.DataFrame, x: str, y: str, hue: str | None, fmtv) -> str:
    years = pd.to_numeric(df[x]).dropna().astype(int)
    span = f"de {years.min()} à {years.max()}" if len(years) else ""
    return f"Graphique en courbes : {title.lower()}, {span}. " + _series_alt(df, x, y, hue, fmtv) + "."


# ------------------------------------------------------------------------------------------
# Synthèse


def _kpi(value: str, label: str) -> str:
    return f'<div class="kpi"><div class="kpi-valeur">{h(value)}</div><div class="kpi-libelle">{h(label)}</div></div>'


def _latest(res, code: str, annee: int):
    t = res.tendances
    x = t[(t["indicateur"] == code) & t["valeur_regionale"].notna() & (t["annee"] <= annee)]
    return x.iloc[-1] if len(x) else None


def trend_value(v, unite: str) -> str:
    if is_missing(v):
        return MISSING
    return fmt_quantity(float(v), unite if unite in ("%",) else "", decimals=1 if unite == "%" else
                        (0 if float(v).is_integer() else 2))


def synthese(ctx, res) -> None:
    rules = ctx.rules
    n = len(ctx.etablissements)
    c = res.ciblage
    per_risk = c.groupby("risque")["finess_geo"].nunique().to_dict() if len(c) else {}
    n_cibles = c["finess_geo"].nunique() if len(c) else 0
    s = res.suivi
    ev = s[s["statut"].isin(["atteint", "non_atteint"])]
    part = 100.0 * (ev["statut"] == "atteint").mean() if len(ev) else None
    n_read = int(ctx.files["lignes_lues"].sum()) if len(ctx.files) else 0
    kpis = [
        _kpi(fmt_num(n), "établissements dans la région"),
        _kpi(fmt_num(n_cibles), f"établissements ciblés en {ctx.annee} (au moins un risque)"),
        _kpi(fmt_pct(part) if part is not None else MISSING, "des indicateurs évaluables d'engagement atteints"),
        _kpi(fmt_num(len(ctx.rejects)), f"ligne(s) rejetée(s) sur {fmt_num(n_read)} lues"),
    ]
    items = [f"<li><b>{h(r.libelle)}</b> : {fmt_num(per_risk.get(k, 0))} établissement(s) ciblé(s)</li>"
             for k, r in rules.risques.items()]
    mode = (
        "Aucun fichier d'engagements n'a été fourni : le suivi est présenté en <b>mode veille</b> "
        "(chaque établissement suivi sur chaque engagement)."
        if res.monitoring
        else f"{fmt_num(s['finess_geo'].nunique())} établissement(s) ont au moins un engagement suivi en {ctx.annee}."
    )
    items.append(f"<li>{mode}</li>")
    if ctx.absent_sources:
        items.append("<li>Sources absentes : " + h(", ".join(rules.label("source", x) for x in ctx.absent_sources))
                     + " (voir « Qualité des données »).</li>")
    show_html(f'<div class="kpis">{"".join(kpis)}</div><ul class="synthese">{"".join(items)}</ul>')
    # Valeurs régionales de l'année (ou de la dernière donnée) de chaque indicateur déclaré
    rows = []
    for e, code, ind in rules.indicators():
        t = res.tendances
        codes = sorted(set(t.loc[(t["indicateur"] == code) | t["indicateur"].str.startswith(code + "_"), "indicateur"]))
        for full in codes:
            last = _latest(res, full, ctx.annee)
            if last is None:
                continue
            rows.append({"libelle": last["libelle"], "annee": int(last["annee"]),
                         "valeur": trend_value(last["valeur_regionale"], last["unite"]),
                         "evolution": MISSING if is_missing(last["evolution_annuelle"]) else
                         fmt_dec(last["evolution_annuelle"], 1) + (" pt" if last["unite"] == "%" else ""),
                         "ref": MISSING if is_missing(last["annee_reference"]) else str(int(last["annee_reference"]))})
    if rows:
        show_html("<p>Valeurs régionales des indicateurs (dernière année disponible) :</p>" + french_table(
            pd.DataFrame(rows), formats={"annee": "text", "valeur": "text", "evolution": "text", "ref": "text"},
            labels={"libelle": "Indicateur", "annee": "Année", "valeur": "Valeur régionale",
                    "evolution": "Évolution", "ref": "par rapport à"},
            numeric={"valeur", "evolution"}))


# ------------------------------------------------------------------------------------------
# Signaux d'alerte


def signaux_alerte(ctx, res) -> None:
    """Ce qui s'est dégradé en N : une ligne par signal, la preuve en une ligne, par gravité."""
    a = res.alertes
    if a is None or a.empty:
        show_html(f"<p>Aucun signal d'alerte en {ctx.annee} : aucun établissement ne s'est dégradé selon les "
                  "règles d'alerte du fichier de règles.</p>")
        return
    counts = a.groupby(["gravite", "signal"], sort=True)["finess_geo"].nunique().reset_index()
    items = "".join(f"<li><b>{h(s)}</b> : {fmt_num(n)} établissement(s)</li>" for s, n in zip(counts["signal"],
                                                                                          counts["finess_geo"]))
    show_html(
        f"<p>{fmt_num(a['finess_geo'].nunique())} établissement(s) dont la situation s'est dégradée en {ctx.annee} "
        f"par rapport à {ctx.annee - 1}, du signal le plus grave au moins grave :</p><ul>{items}</ul>"
        + french_table(a[["signal", "departement", "finess_geo", "raison_sociale", "objet", "preuve"]],
                       labels={"signal": "Signal", "departement": "Dép.", "finess_geo": "FINESS",
                               "raison_sociale": "Établissement", "objet": "Objet", "preuve": "Preuve"},
                       classes="tableau etablissements alertes")
    )


# ------------------------------------------------------------------------------------------
# Ciblage


def ciblage_intro(ctx) -> None:
    show_html(text("ciblage_regles", rules=ctx.rules, risques=ctx.rules.risques, annee=ctx.annee))


def ciblage_risques(ctx, ciblage: pd.DataFrame, level: int = 2) -> None:
    """Une section par risque déclaré (titre, effectif, tableau des établissements ciblés)."""
    for code, r in ctx.rules.risques.items():
        heading(level, r.libelle)
        ciblage_risque(ctx, ciblage, code)


def ciblage_risque(ctx, ciblage: pd.DataFrame, risque: str) -> None:
    c = ciblage[ciblage["risque"] == risque]
    if c.empty:
        show_html(f"<p>Aucun établissement ciblé sur ce risque en {ctx.annee}.</p>")
        return
    show_html(
        f"<p>{fmt_num(len(c))} établissement(s) ciblé(s).</p>"
        + french_table(
            c[["departement", "finess_geo", "raison_sociale", "motif"]],
            labels={"departement": "Dép.", "finess_geo": "FINESS", "raison_sociale": "Établissement", "motif": "Motif"},
            classes="tableau etablissements",
        )
    )


def ciblage_mouvements(ctx, res) -> None:
    rules = ctx.rules
    m, hist = res.mouvements, res.historique
    if hist.empty:
        show_html("<p>Aucun historique de ciblage.</p>")
        return
    counts = hist.groupby(["annee", "risque"])["finess_geo"].nunique().unstack(fill_value=0)
    counts = counts.reindex(columns=list(rules.risques), fill_value=0)
    counts = counts.reindex(res.annees, fill_value=0).rename_axis("annee").reset_index()
    long = counts.melt(id_vars="annee", var_name="risque", value_name="n")
    long["risque"] = long["risque"].map(lambda r: rules.label("risque", r))
    title = "Établissements ciblés par risque et par année"
    _fig(figures.line_trend, long, "annee", "n", hue="risque", title=title, ylabel="établissements",
         alt=trend_alt(title, long, "annee", "n", "risque", fmt_num), caption=title)
    cur = m[m["annee"] == ctx.annee] if len(m) else m
    if len(cur):
        cur = cur.assign(risque=cur["risque"].map(lambda r: rules.label("risque", r)))
        show_html(
            f"<p>Par rapport à {ctx.annee - 1} : {fmt_num((cur['mouvement'] == 'entrée').sum())} entrée(s) et "
            f"{fmt_num((cur['mouvement'] == 'sortie').sum())} sortie(s) du ciblage.</p>"
            + french_table(
                cur[["risque", "mouvement", "departement", "finess_geo", "raison_sociale"]],
                labels={"risque": "Risque", "mouvement": "Mouvement", "departement": "Dép.", "finess_geo": "FINESS",
                        "raison_sociale": "Établissement"},
                classes="tableau etablissements",
            )
        )
    else:
        show_html(f"<p>Aucune entrée ni sortie du ciblage entre {ctx.annee - 1} et {ctx.annee}.</p>")


# ------------------------------------------------------------------------------------------
# Suivi


def suivi_synthese(ctx, res) -> None:
    from ..indicators.suivi import summarise_suivi

    s = res.suivi
    show_html(text("suivi_intro", monitoring=res.monitoring))
    if s.empty:
        show_html(f"<p>Aucun engagement suivi en {ctx.annee}.</p>")
        return
    summ = summarise_suivi(s)
    summ["eng"] = [ctx.rules.label("engagement", e) for e in summ["engagement"]]
    show_html(
        french_table(
            summ[["eng", "libelle_indicateur", "n_suivis", "n_atteints", "n_non_atteints", "n_non_evaluables",
                  "n_non_concernes", "part_atteinte"]],
            formats={"part_atteinte": "pct"},
            labels={"eng": "Engagement", "libelle_indicateur": "Indicateur", "n_suivis": "Suivis",
                    "n_atteints": "Atteints", "n_non_atteints": "Non atteints", "n_non_evaluables": "Non évaluables",
                    "n_non_concernes": "Non concernés", "part_atteinte": "Part atteinte*"},
            numeric={"n_suivis", "n_atteints", "n_non_atteints", "n_non_evaluables", "n_non_concernes"},
        )
        + text("part_atteinte")
    )
    plot = summ[summ["part_atteinte"].notna()].copy()
    if len(plot):
        plot["indicateur_l"] = plot["libelle_indicateur"].str.slice(0, 55)
        plot["part"] = plot["part_atteinte"].astype(float)
        title = f"Part des indicateurs atteints en {ctx.annee}"
        best = plot.sort_values("part").iloc[0]
        alt = (f"Diagramme en barres : part des établissements atteignant la cible, par indicateur, en {ctx.annee}. "
               + " ; ".join(f"{a} : {fmt_pct(b)}" for a, b in zip(plot["indicateur_l"], plot["part"]))
               + f". La plus basse : {best['indicateur_l']} ({fmt_pct(best['part'])}).")
        _fig(figures.bar_share, plot, "indicateur_l", "part", title=title, percent=True, alt=alt, caption=title)


def suivi_non_atteints(ctx, res) -> None:
    """Une ligne par établissement, avec ses indicateurs non atteints (valeur et cible)."""
    s = res.suivi
    na = s[s["statut"] == "non_atteint"]
    if na.empty:
        show_html("<p>Aucun indicateur non atteint.</p>")
        return
    na = na.assign(item=[f"{lab} : {v} (cible {c})" for lab, v, c in
                         zip(na["libelle_indicateur"], na["valeur_texte"], na["cible"])])
    g = na.groupby(["finess_geo", "raison_sociale"], sort=True)
    tab = g["item"].agg(" ; ".join).reset_index()
    tab["n"] = g.size().to_numpy()
    show_html(
        f"<p>{fmt_num(len(na))} indicateur(s) non atteint(s), pour {fmt_num(len(tab))} établissement(s).</p>"
        + french_table(tab[["finess_geo", "raison_sociale", "n", "item"]],
                       labels={"finess_geo": "FINESS", "raison_sociale": "Établissement", "n": "Nombre",
                               "item": "Indicateurs non atteints (valeur, cible)"},
                       classes="tableau etablissements")
    )


def _region_table(ctx, name: str, absent: str, empty: str) -> pd.DataFrame | None:
    """Lignes de la région d'une source facultative ; ``None`` (et la phrase qui le dit) sinon."""
    df = ctx.tables.get(name)
    if df is None:
        show_html(f"<p>{h(absent)}</p>")
        return None
    df = df[df["finess_geo"].isin(ctx.etablissements["finess_geo"])]
    if df.empty:
        show_html(f"<p>{h(empty)}</p>")
        return None
    return df


def plans_actions(ctx, res) -> None:
    rules = ctx.rules
    pa = _region_table(ctx, "plans_actions", "Aucun fichier de plans d'actions n'a été fourni.",
                       "Aucune action enregistrée pour la région.")
    if pa is None:
        return
    states = list(rules.sources["plans_actions"].colonnes["statut"].valeurs or [])
    tab = pd.crosstab(pa["engagement"], pa["statut"]).reindex(columns=states, fill_value=0)
    tab["total"] = tab.sum(axis=1)
    tab["part_realisee"] = 100.0 * tab.get("realise", 0) / tab["total"]
    tab = tab.reset_index()
    tab["engagement"] = [rules.label("engagement", e) for e in tab["engagement"]]
    late = pa[(pa["statut"].isin(["a_faire", "en_cours"])) & (pa["echeance"] < pd.Timestamp(f"{ctx.annee}-12-31"))]
    labels = {s: rules.value_label("plans_actions", "statut", s) for s in states}
    labels.update(engagement="Engagement", total="Total", part_realisee="Part réalisée")
    show_html(
        french_table(tab, formats={"part_realisee": "pct0"}, labels=labels, numeric=set(states) | {"total"})
        + f"<p>{fmt_num(len(late))} action(s) non réalisée(s) dont l'échéance est dépassée au 31/12/{ctx.annee}.</p>"
    )


# ------------------------------------------------------------------------------------------
# Tendances


def _trend_rows(res, codes: list[str]) -> pd.DataFrame:
    t = res.tendances
    t = t[t["indicateur"].isin(codes) & t["valeur_regionale"].notna()].copy()
    t["valeur"] = t["valeur_regionale"].astype(float)
    t["annee"] = t["annee"].astype(int)
    return t


def _codes_of(res, code: str) -> list[str]:
    t = res.tendances["indicateur"]
    return sorted(set(t[(t == code) | t.str.startswith(code + "_")]))


def tendances_engagements(ctx, res, level: int = 2) -> None:
    """Pour chaque engagement déclaré : courbes des valeurs régionales de ses indicateurs (une figure
    par unité), tableau, entonnoirs et évolutions des indicateurs à intervalle."""
    rules = ctx.rules
    for ecode, eng in rules.engagements.items():
        codes = [c for code in eng.indicateurs for c in _codes_of(res, code)]
        t = _trend_rows(res, codes)
        heading(level, eng.libelle)
        if t.empty:
            show_html(f"<p>Aucune donnée pour : {h(eng.libelle.lower())}.</p>")
            continue
        for unite, g in t.groupby("unite", sort=True):
            pct = unite == "%"
            target = None
            inds = {rules.base_indicator(c)[0] for c in g["indicateur"]}
            if len(inds) == 1:
                ind = rules.indicator(next(iter(inds)))
                if ind.cible is not None and ind.cible.operateur and not isinstance(ind.cible.valeur, bool) \
                        and ind.default_agregat != "part":
                    target = float(ind.cible.valeur)
            title = f"{eng.libelle} : valeurs régionales" + (" (%)" if pct else f" ({unite})")
            fv = (lambda v: fmt_pct(v)) if pct else (lambda v: fmt_dec(v, 1))
            _fig(figures.line_trend, g, "annee", "valeur", hue="libelle", title=title, ylabel=unite, target=target,
                                    percent=pct, alt=trend_alt(title, g, "annee", "valeur", "libelle", fv),
                 caption=title)
        tab = t[["libelle", "annee", "n_etablissements", "valeur_regionale", "valeur_mediane", "part_cible_atteinte",
                 "evolution_annuelle", "unite"]].copy()
        tab = tab[tab["annee"] >= ctx.annee - 2]
        tab["valeur_regionale"] = [trend_value(v, u) for v, u in zip(tab["valeur_regionale"], tab["unite"])]
        tab["valeur_mediane"] = [trend_value(v, u) for v, u in zip(tab["valeur_mediane"], tab["unite"])]
        show_html(french_table(
            tab.drop(columns="unite"),
            formats={"annee": "text", "valeur_regionale": "text", "valeur_mediane": "text", "part_cible_atteinte": "pct",
                     "evolution_annuelle": lambda v: MISSING if is_missing(v) else fmt_dec(v, 1)},
            labels={"libelle": "Indicateur", "annee": "Année", "n_etablissements": "Établissements",
                    "valeur_regionale": "Valeur régionale", "valeur_mediane": "Médiane", "part_cible_atteinte": "≥ cible",
                    "evolution_annuelle": "Évolution"},
            numeric={"valeur_regionale", "valeur_mediane"}))
        for code in eng.indicateurs:
            if code in res.funnels:
                funnel_valeur(ctx, res, code)
            if code in res.evolutions:
                evolutions(ctx, res, code)


def _funnel_repartition(points: pd.DataFrame) -> str:
    pos = points["position_funnel"].value_counts()
    return " ; ".join(f"{k} : {fmt_num(v)}" for k, v in pos.items())


def _limits_text(ctx) -> str:
    return " et ".join(fmt_shortest(100 * x) + "\u00a0%" for x in ctx.rules.statistiques.limites_funnel)


def funnel_valeur(ctx, res, code: str) -> None:
    rules = ctx.rules
    ind = rules.indicator(code)
    fd = res.funnels.get(code)
    if fd is None or fd.points.empty:
        show_html(f"<p>Graphique en entonnoir indisponible pour « {h(ind.libelle)} » (pas d'effectif).</p>")
        return
    for val in fd.points["par_valeur"].drop_duplicates():
        pts = fd.points[fd.points["par_valeur"] == val] if ind.par else fd.points
        lim = fd.limites[fd.limites["par_valeur"] == val]
        ref = fd.reference.get(val if ind.par else code)
        lab = rules.value_label(ind.source, ind.par, val) if ind.par else ""
        title = f"{ind.libelle} {lab} (dernière valeur) selon l'effectif".replace("  ", " ")
        alt = (f"Graphique en entonnoir : {ind.libelle} {lab} de {fmt_num(len(pts))} établissements selon leur "
               f"effectif, autour de la valeur régionale {fmt_pct(ref)}. " + _funnel_repartition(pts) + ".")
        _fig(figures.funnel_plot, pts, lim, title, x="n", y="valeur_num", reference=ref, xlabel="effectif",
                                 ylabel=f"{ind.libelle} (%)", percent=True, alt=alt, caption=title)


def evolutions(ctx, res, code: str) -> None:
    rules = ctx.rules
    ind = rules.indicator(code)
    ev = res.evolutions.get(code)
    ev = ev[ev["evolution"].notna()] if ev is not None else None
    if ev is None or ev.empty:
        show_html(f"<p>Pas de valeur précédente pour mesurer l'évolution de « {h(ind.libelle)} ».</p>")
        return
    key = "par_valeur" if ind.par else "indicateur"
    lab = rules.sources[ind.source].colonnes[ind.par].libelle or ind.par.capitalize() if ind.par else "Indicateur"
    tab = pd.crosstab(ev[key], ev["evolution"]).reset_index()
    show_html(text("evolutions", libelle=ind.libelle) + french_table(tab, labels={key: lab}))
    if ev["position_cible"].notna().any():
        ref = rules.statistiques.reference_position
        pos = pd.crosstab(ev[key], ev["position_cible"]).reset_index()
        show_html(f"<p>Position de l'intervalle de confiance de la dernière valeur par rapport à la référence "
                  f"({h(fmt_shortest(ref))}{' %' if ind.unite == '%' else ''}) :</p>" + french_table(pos, labels={key: lab}))


def tendances_risques(ctx, res, level: int = 2) -> None:
    """Risques de sous-déclaration : taux régional, part de non-déclarants et entonnoir."""
    rules = ctx.rules
    for code, r in rules.risques.items():
        if r.regle != "sous_declaration_poisson":
            continue
        heading(level, f"{r.libelle} : déclaration")
        t = _trend_rows(res, [f"taux_regional_{code}"])
        if len(t):
            title = t["libelle"].iloc[0]
            _fig(figures.line_trend, t, "annee", "valeur", title=title, ylabel=t["unite"].iloc[0],
                 alt=trend_alt(title, t, "annee", "valeur", None, lambda v: fmt_dec(v, 2)), caption=title)
        p = _trend_rows(res, [f"part_non_declarants_{code}"])
        if len(p):
            title = p["libelle"].iloc[0]
            _fig(figures.line_trend, p, "annee", "valeur", title=title, ylabel="% des établissements", percent=True,
                 alt=trend_alt(title, p, "annee", "valeur", None, fmt_pct), caption=title)
        fd = res.funnels.get(code)
        if fd is None or fd.points.empty:
            show_html("<p>Graphique en entonnoir indisponible (exposition ou comptes absents).</p>")
            continue
        pour = r.exposition.pour if r.exposition else 1
        expo = r.exposition.libelle if r.exposition else "unités"
        expo = expo[-1] if isinstance(expo, list) else expo
        ind = rules.indicator(r.indicateur)
        title = f"{ind.libelle} {ctx.annee} pour {fmt_num(pour)} {expo}"
        alt = (f"Graphique en entonnoir : taux de {fmt_num(len(fd.points))} établissements selon leur activité "
               f"({expo}, échelle logarithmique), autour du taux régional {fmt_dec(fd.reference, 2)}. "
               + _funnel_repartition(fd.points) + ".")
        _fig(figures.funnel_plot, fd.points, fd.limites, title, x="exposition", y="taux", reference=fd.reference,
                                 xlabel=f"{expo} (échelle log)", ylabel=f"pour {fmt_num(pour)} {expo}", logx=True,
             alt=alt, caption=title)
        show_html(text("entonnoir", limites=_limits_text(ctx), reference=f"{fmt_dec(fd.reference, 2)} pour "
                       f"{fmt_num(pour)} {expo}", repartition=_funnel_repartition(fd.points)))


def cibles_vs_autres(ctx, res) -> None:
    rules = ctx.rules
    if not res.comparaisons:
        show_html("<p>Historique insuffisant pour comparer établissements ciblés et non ciblés.</p>")
        return
    for code, df in res.comparaisons.items():
        r = rules.risques[code]
        unit = df["unite"].iloc[0] if len(df) else ""
        fv = (lambda v: MISSING if is_missing(v) else fmt_pct(v)) if unit == "%" else \
            (lambda v: MISSING if is_missing(v) else fmt_dec(v, 2))
        show_html(
            text("comparaison", base=df.attrs["annee_ciblage"], risque=r.libelle, annee=df.attrs["annee_suivi"])
            + french_table(
                df[["groupe", "n", "valeur_initiale_moyenne", "valeur_finale_moyenne", "evolution_moyenne"]],
                formats={"valeur_initiale_moyenne": fv, "valeur_finale_moyenne": fv,
                         "evolution_moyenne": lambda v: MISSING if is_missing(v) else fmt_dec(v, 1)},
                labels={"groupe": "Groupe", "n": "Unités", "valeur_initiale_moyenne": "Valeur initiale",
                        "valeur_finale_moyenne": "Valeur suivante", "evolution_moyenne": "Évolution moyenne"},
            )
        )
    show_html(text("prudence"))


def experience_patient(ctx, res) -> None:
    es = _region_table(ctx, "esatis", "Aucun fichier e-Satis de la HAS n'a été déposé : indicateur non présenté.",
                       "Aucun établissement de la région dans les fichiers e-Satis déposés.")
    if es is None:
        return
    g = es.groupby(["secteur", "annee"])
    tab = pd.DataFrame({"n": g["finess_geo"].nunique(), "score_median": g["score"].median(),
                        "avec_score": g["score"].count()}).reset_index()
    cls = pd.crosstab([es["secteur"], es["annee"]], es["classement"]).reset_index()
    show_html(
        text("esatis")
        + french_table(tab, formats={"annee": "text", "score_median": "dec1"},
                       labels={"secteur": "Secteur", "annee": "Campagne", "n": "Établissements",
                               "score_median": "Score médian", "avec_score": "Avec score"})
        + french_table(cls, formats={"annee": "text"}, labels={"secteur": "Secteur", "annee": "Campagne"})
    )


# ------------------------------------------------------------------------------------------
# Contrôle qualité du recueil QLS


def _verdict_label(rules, v) -> str:
    return rules.label("verdict_controle", v)


def _controle_rows(ctx, c: pd.DataFrame) -> pd.DataFrame:
    rules = ctx.rules
    ind = rules.indicator(rules.controle_qls.indicateur)
    par = ind.par
    out = c.copy()
    out["secteur_l"] = [rules.value_label(ind.source, par, v) if par else "" for v in out["secteur"]]
    out["intervalle"] = [MISSING if is_missing(a) or is_missing(b) else f"{fmt_dec(a, 1)} – {fmt_dec(b, 1)}"
                         for a, b in zip(out["ic_bas"], out["ic_haut"])]
    out["verdict_l"] = [_verdict_label(rules, v) for v in out["verdict"]]
    return out


def _nv_below_threshold(ctx, c: pd.DataFrame) -> list[str]:
    """Résultats non validés dont le score recalculé remplirait un risque « seuil » de l'indicateur
    contrôlé (à examiner : le résultat non validé ne cible pas l'établissement)."""
    rules = ctx.rules
    code = rules.controle_qls.indicateur
    out = []
    for r in rules.risques.values():
        if r.indicateur != code or r.regle != "seuil":
            continue
        ops = {"<": lambda a, b: a < b, "<=": lambda a, b: a <= b, ">": lambda a, b: a > b,
               ">=": lambda a, b: a >= b, "==": lambda a, b: a == b}
        for x in c[c["verdict"] == "surcotation"].itertuples():
            if not is_missing(x.score_recalcule) and ops[r.operateur](float(x.score_recalcule), float(r.valeur)):
                out.append(f"{x.raison_sociale} ({x.finess_geo}, {x.secteur} {x.annee}) : score recalculé "
                           f"{fmt_pct(x.score_recalcule)} {fmt_target(r.operateur, r.valeur, '%')} (risque « "
                           f"{r.libelle.lower()} »)")
    return out


def controle_recueil(ctx, res) -> None:
    """Contrôle qualité du recueil QLS : qui a été contrôlé, verdicts, figure déclaré / recalculé,
    critères les plus souvent non remplis (résultats de :func:`analysis.indicators.results.run_controle`)."""
    rules = ctx.rules
    cfg = rules.controle_qls
    c = res.controle_qls
    if cfg is None or c is None:
        show_html("<p>Aucun contrôle qualité du recueil QLS n'a été transmis (pas de fichier de dossiers "
                  "réaudités) : les scores QLS déclarés sont utilisés tels quels.</p>")
        return
    if c.empty:
        show_html(f"<p>Aucun établissement de la région n'a de dossier QLS réaudité jusqu'en {ctx.annee} : les "
                  "scores QLS déclarés sont utilisés tels quels.</p>")
        return
    counts = c["verdict"].value_counts()
    verdicts = ", ".join(f"{fmt_num(int(counts.get(v, 0)))} {_verdict_label(rules, v).lower()}"
                         for v in ("concordant", "surcotation", "non_evaluable"))
    risques = " », « ".join(r.libelle.lower() for r in rules.risques.values() if r.indicateur == cfg.indicateur)
    show_html(text("controle_qls", annee=ctx.annee, n_etab=fmt_num(c["finess_geo"].nunique()),
                   n_dossiers=fmt_num(int(c["n_dossiers"].sum())), verdicts=verdicts,
                   n_nv=int(counts.get("surcotation", 0)), risques=risques or "—"))
    heading(2, "Établissements contrôlés")
    t = _controle_rows(ctx, c)
    t["resultat"] = [f"{a} {int(b)}".strip() for a, b in zip(t["secteur_l"], t["annee"])]
    show_html(french_table(
        t[["finess_geo", "raison_sociale", "resultat", "n_dossiers", "score_declare", "score_recalcule", "intervalle",
           "verdict_l"]],
        formats={"score_declare": "pct1", "score_recalcule": "pct1", "intervalle": "text"},
        labels={"finess_geo": "FINESS", "raison_sociale": "Établissement", "resultat": "Secteur, campagne",
                "n_dossiers": "Dossiers", "score_declare": "Score déclaré", "score_recalcule": "Score recalculé",
                "intervalle": f"Intervalle à {fmt_shortest(100 * cfg.niveau_confiance)} %", "verdict_l": "Verdict"},
        numeric={"n_dossiers", "score_declare", "score_recalcule", "intervalle"},
        classes="tableau etablissements"))
    nv = t[t["verdict"] != "concordant"]
    if len(nv):
        show_html("<p>Résultats non validés ou non évaluables :</p><ul>" + "".join(
            f"<li><b>{h(r.raison_sociale)}</b> ({h(r.finess_geo)}, {h(r.resultat)}) : "
            + (h(r.motif) if r.verdict == "surcotation" else f"{h(_verdict_label(rules, r.verdict).lower())}, "
               f"{h(r.motif)}") + ".</li>" for r in nv.itertuples()) + "</ul>")
    below = _nv_below_threshold(ctx, c)
    if below:
        show_html("<p class=\"encadre\">Résultats non validés dont le score recalculé est sous le seuil de ciblage "
                  "(non ciblés faute de résultat validé ; à examiner avec l'établissement) :</p><ul>"
                  + "".join(f"<li>{h(x)}</li>" for x in below) + "</ul>")
    plot = t[t["score_recalcule"].notna()].copy()
    if len(plot):
        import textwrap

        heading(2, "Score déclaré et score recalculé")
        plot["etiquette"] = ["\n".join(textwrap.wrap(f"{a} ({b})", 34, max_lines=2, placeholder="…"))
                             for a, b in zip(plot["raison_sociale"], plot["resultat"])]
        plot["hors"] = plot["verdict"] == "surcotation"
        title = "Score QLS déclaré et score recalculé"
        caption = f"Score QLS déclaré et score recalculé à partir des dossiers réaudités (campagnes jusqu'en {ctx.annee})"
        alt = (f"Graphique en points : pour {fmt_num(len(plot))} résultat(s) contrôlé(s), score recalculé à partir "
               "des dossiers réaudités avec son intervalle, et score déclaré. "
               + " ; ".join(f"{a} ({b}) : déclaré {fmt_pct(d)}, recalculé {fmt_pct(r)} ({_verdict_label(rules, v).lower()})"
                            for a, b, d, r, v in zip(plot["raison_sociale"], plot["resultat"], plot["score_declare"],
                                                     plot["score_recalcule"], plot["verdict"]))
               + ".")
        _fig(figures.interval_comparison, plot, "etiquette", "score_recalcule", "ic_bas", "ic_haut", "score_declare",
                                         title, flag="hors", value_label="Score recalculé (intervalle)",
                                         other_label="Score déclaré", flag_label="Score déclaré en surcotation",
                                         xlabel="score QLS (%)", height=min(9.0, 0.42 * len(plot) + 1.4),
             alt=alt, caption=caption)
    crit = res.controle_criteres
    if crit is not None and len(crit):
        heading(2, "Critères les plus souvent non remplis")
        top = crit[crit["n_applicables"] > 0].copy()
        top["type"] = ["indispensable" if x else "contenu" for x in top["indispensable"]]
        show_html(f"<p>Sur les {fmt_num(int(c['n_dossiers'].sum()))} dossiers réaudités de la région, part des "
                  "dossiers où le critère s'applique et n'est pas rempli, du plus souvent manqué au moins "
                  "souvent :</p>" + french_table(
                      top[["libelle", "type", "n_applicables", "n_non_conformes", "part_non_conformes"]],
                      formats={"part_non_conformes": "pct"},
                      labels={"libelle": "Critère", "type": "Type", "n_applicables": "Dossiers concernés",
                              "n_non_conformes": "Non remplis", "part_non_conformes": "Part non remplie"},
                      numeric={"n_applicables", "n_non_conformes"}))


def methode_controle_qls(ctx) -> None:
    cfg = ctx.rules.controle_qls
    if cfg is None:
        show_html("<p>Aucun contrôle qualité du recueil n'est déclaré dans le fichier de règles.</p>")
        return
    show_html(text("methode_controle_qls", source=ctx.rules.label("source", cfg.source),
                   indispensables=" ; ".join(f"« {v} »" for v in cfg.criteres_indispensables.values()),
                   n_criteres=len(cfg.criteres), conforme=cfg.valeurs.conforme,
                   non_conforme=cfg.valeurs.non_conforme, non_applicable=cfg.valeurs.non_applicable,
                   source_regle=cfg.source_regle or "fichier de règles",
                   indispensables_dans_score=cfg.indispensables_dans_score, agregation=cfg.agregation,
                   autre="dossiers_conformes" if cfg.agregation == "moyenne" else "moyenne",
                   confiance=fmt_shortest(100 * cfg.niveau_confiance) + "\u00a0%", minimum=cfg.dossiers_minimum,
                   marge=fmt_shortest(cfg.verdict.marge) if cfg.verdict.marge else None))


# ------------------------------------------------------------------------------------------
# Qualité des données (présentation commune au notebook 01 et au rapport)


def qualite_fichiers(ctx) -> None:
    f = ctx.files.copy()
    if f.empty:
        show_html("<p>Aucun fichier lu.</p>")
        return
    f["encodage"] = f["encodage"].replace({"xlsx": "classeur XLSX"})
    f["source"] = [ctx.rules.label("source", s) for s in f["source"]]
    other = ctx.other_region_rows
    f["autres_regions"] = [other.get(str(x), 0) for x in f["fichier"]]
    cols = ["lignes_lues", "acceptees", "autres_regions", "rejetees", "doublons_fusionnes", "hors_referentiel",
            "sans_objet", "reparees"]
    show_html(
        french_table(
            f[["fichier", "source", "nature", "encodage"] + cols],
            labels={"fichier": "Fichier", "source": "Source", "nature": "Nature", "encodage": "Format",
                    "lignes_lues": "Lues", "acceptees": "Acceptées", "autres_regions": "dont autres régions",
                    "rejetees": "Rejetées",
                    "doublons_fusionnes": "Doublons", "hors_referentiel": "Hors réf.", "sans_objet": "Sans objet",
                    "reparees": "Réparées"},
            numeric=set(cols),
            classes="tableau compact",
        )
        + text("qualite_fichiers")
    )


def qualite_sources(ctx) -> None:
    rules = ctx.rules
    items = []
    for s in ctx.absent_sources:
        src = rules.sources.get(s)
        what = (src.absence if src is not None and src.absence else
                "les indicateurs qui en dépendent ne sont pas évaluables")
        items.append(f"<li><b>{h(rules.label('source', s))}</b> ({h(s)}) : {h(what)}.</li>")
    if items:
        show_html("<p>Sources absentes du dossier d'entrée et conséquences :</p><ul>" + "".join(items) + "</ul>")
    else:
        show_html("<p>Toutes les sources déclarées dans le fichier de règles ont été fournies.</p>")
    if ctx.warnings:
        show_html("<p>Avertissements de lecture :</p><ul>" + "".join(f"<li>{h(w)}</li>" for w in ctx.warnings) + "</ul>")


def qualite_rejets(ctx, max_rows: int = 60) -> None:
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
# Méthode


def rule_rows(rules) -> pd.DataFrame:
    """Tableau des règles appliquées, tiré des déclarations (risques puis indicateurs)."""
    rows = []
    for code, r in rules.risques.items():
        ind = rules.indicator(r.indicateur)
        if r.regle == "sous_declaration_poisson":
            what = (f"non déclarant : {ind.libelle.lower()} ≤ {fmt_shortest(r.seuil_non_declarant)} ; faiblement "
                    f"déclarant : P(X ≤ observé), X ~ Poisson(exposition × taux régional) < {fmt_shortest(r.seuil_p)}")
        elif r.regle == "niveau":
            what = f"{ind.libelle.lower()} : {' ou '.join(r.niveaux or [])}"
        else:
            what = f"{ind.libelle.lower()} {fmt_target(r.operateur, r.valeur, ind.unite)}"
            if ind.fenetre_annees > 1:
                what += f", dernière valeur sur {ind.fenetre_annees} ans"
        if r.specificites_exclues:
            what += " ; exclus : " + ", ".join(rules.value_label("etablissements", "specificite", s)
                                                for s in r.specificites_exclues)
        rows.append(("Ciblage", r.libelle, what))
    for ecode, code, ind in rules.indicators():
        eng = rules.engagements[ecode]
        c = ind.cible
        target = "sans cible" if c is None else fmt_target(c.operateur, c.valeur, ind.unite, c.dans)
        what = f"{ind.libelle} ({ind.calcul}"
        what += f", par {ind.par.replace('_', ' ')}" if ind.par else ""
        what += f", source {rules.label('source', ind.source).lower()}) : cible {target}"
        excl = list(eng.specificites_exclues) + list(ind.specificites_exclues)
        if excl:
            what += " ; exclus : " + ", ".join(rules.value_label("etablissements", "specificite", s) for s in excl)
        rows.append(("Engagement", eng.libelle, what))
    c = rules.controle_qls
    if c is not None:
        calc = "moyenne des scores des dossiers" if c.agregation == "moyenne" else "part des dossiers conformes"
        what = (f"score recalculé ({calc}, intervalle à {fmt_shortest(100 * c.niveau_confiance)} %) ; surcotation "
                f"(non validé) quand le score déclaré dépasse la borne haute"
                + (f" de plus de {fmt_shortest(c.verdict.marge)} point(s)" if c.verdict.marge else "")
                + f" ; non évaluable sous {c.dossiers_minimum} dossiers")
        rows.append(("Contrôle du recueil", c.libelle, what))
    return pd.DataFrame(rows, columns=["Rubrique", "Règle", "Valeur"])


def methode_regles(ctx) -> None:
    r = ctx.rules
    show_html(french_table(rule_rows(r))
              + text("tracabilite", nom=r.name, version=r.version, sha=r.sha256))


def methode_statistiques(ctx) -> None:
    st = ctx.rules.statistiques
    ref = st.reference_position
    show_html(text("methode_statistiques", confiance=fmt_shortest(100 * st.niveau_confiance) + "\u00a0%",
                   reference=None if ref is None else fmt_shortest(ref) + "\u00a0%", limites=_limits_text(ctx)))


def methode_limites(ctx, res) -> None:
    natures = [str(n) for n in ctx.files.get("nature", [])] if len(ctx.files) else []
    show_html(text("methode_limites", monitoring=res.monitoring,
                   finess=any("FINESS" in n for n in natures)))


def methode_tracabilite(ctx) -> None:
    f = ctx.files
    table = ""
    if len(f):
        cols = [c for c in ("fichier", "nature", "date_extraction", "lignes_lues")
                if c in f.columns and (c != "date_extraction" or f[c].fillna("").astype(str).str.strip().ne("").any())]
        table = french_table(
            f[cols], labels={"fichier": "Fichier", "nature": "Nature", "date_extraction": "Extraction",
                             "lignes_lues": "Lignes lues"},
            numeric={"lignes_lues"}, classes="tableau compact")
    show_html(text("empreinte_region", empreinte=ctx.data_fingerprint) + table)
