"""Tables des sources, des indicateurs et des risques, générées depuis le fichier de règles.

``python -m analysis doc`` réécrit ``docs/sources-et-indicateurs.md`` ; un test vérifie que le fichier
livré est celui que produisent les règles par défaut : la documentation ne peut pas s'en écarter.
"""

from __future__ import annotations

from .fmt import fmt_shortest, fmt_target

_TYPES = {
    "texte": "texte", "finess": "FINESS", "annee": "année", "entier": "entier", "decimal": "décimal",
    "pourcentage": "pourcentage (0–100)", "booleen": "oui/non", "date": "date", "code": "code",
    "departement": "département", "region": "région",
}


def _cell(text) -> str:
    return str(text).replace("|", "\\|").replace("\n", " ")


def _table(header: list[str], rows: list[list]) -> list[str]:
    out = ["| " + " | ".join(header) + " |", "|" + "|".join("---" for _ in header) + "|"]
    out += ["| " + " | ".join(_cell(c) for c in r) + " |" for r in rows]
    return out


def _column(c) -> str:
    parts = [_TYPES[c.type]]
    if c.valeurs:
        parts.append("valeurs : " + ", ".join(f"`{v}`" for v in c.valeurs))
    if c.valeurs_de:
        parts.append("valeurs : les engagements déclarés")
    if c.correspondance:
        parts.append("autres graphies : " + ", ".join(f"`{k}` → `{v}`" for k, v in c.correspondance.items()))
    if c.min is not None:
        parts.append(f"≥ {fmt_shortest(c.min)}")
    if c.max is not None:
        parts.append(f"≤ {fmt_shortest(c.max)}")
    return " ; ".join(parts)


def _target(ind) -> str:
    c = ind.cible
    return "sans cible" if c is None else fmt_target(c.operateur, c.valeur, ind.unite, c.dans).replace("\u00a0", " ")


def _calcul(ind) -> str:
    if ind.calcul == "ratio":
        text = f"ratio : 100 × Σ `{ind.numerateur}` / Σ `{ind.denominateur}`"
    elif ind.calcul == "valeur":
        text = f"valeur de `{ind.colonne}`"
        if ind.fenetre_annees > 1:
            text += f", dernière sur {ind.fenetre_annees} ans"
    elif ind.calcul == "niveau":
        text = f"niveau `{ind.colonne}` ({', '.join(ind.ordre or [])})"
        if ind.date:
            text += f", en vigueur au 31/12 (date `{ind.date}`)"
    else:
        text = f"{ind.calcul} de `{ind.colonne}`"
    if ind.par:
        text += f", un indicateur par `{ind.par}`"
    return text


def _rule(rules, r) -> str:
    ind = rules.indicator(r.indicateur)
    if r.regle == "seuil":
        text = f"`{r.indicateur}` {fmt_target(r.operateur, r.valeur, ind.unite)}".replace("\u00a0", " ")
    elif r.regle == "niveau":
        text = f"`{r.indicateur}` parmi {', '.join(r.niveaux or [])}"
    else:
        expo = f"`{r.exposition.source}.{r.exposition.colonne}`" if r.exposition else "—"
        text = (f"`{r.indicateur}` ≤ {fmt_shortest(r.seuil_non_declarant)} (non déclarant) ou P(X ≤ observé) < "
                f"{fmt_shortest(r.seuil_p)}, X ~ Poisson(exposition {expo} × taux régional)")
    if r.specificites_exclues:
        text += " ; exclus : " + ", ".join(r.specificites_exclues)
    return text


def render_docs(rules) -> str:
    lines = [
        "# Sources, indicateurs et risques du fichier de règles",
        "",
        f"Document généré depuis `config/{rules.name}` (version {rules.version}) par `python -m analysis doc` :",
        "ne pas le modifier à la main. Pour changer une règle, modifiez le fichier de règles puis relancez la",
        "commande (voir `docs/guide-analyste.md`).",
        "",
        "## Sources",
        "",
    ]
    for name, s in rules.sources.items():
        how = "fichiers officiels HAS seulement" if s.officielle else (
            f"fichier `{s.fichier or name}`" + (f" (ou {', '.join(f'`{a}`' for a in s.alias)})" if s.alias else ""))
        lines += [f"### `{name}` — {s.libelle}", "",
                  f"{how} ; clé : {', '.join(f'`{k}`' for k in s.cle)}"
                  + (" ; **obligatoire**" if s.obligatoire else "") + ".", ""]
        lines += _table(["colonne", "obligatoire", "type et valeurs admises", "alias"],
                        [[f"`{c}`", "oui" if col.requis else "", _column(col), ", ".join(col.alias)]
                         for c, col in s.colonnes.items()])
        if s.controles:
            lines += ["", "Contrôles : " + " ; ".join(
                (f"`{k.condition}`" if k.condition else "ensemble " + ", ".join(f"`{e}`" for e in k.ensemble or []))
                + f" (sinon : « {k.motif} »)" for k in s.controles) + "."]
        if s.absence:
            lines += ["", f"Sans ce fichier : {s.absence}."]
        lines.append("")
    lines += ["## Engagements et indicateurs de suivi", ""]
    for code, e in rules.engagements.items():
        excl = ", ".join(e.specificites_exclues) or "aucune"
        lines += [f"### `{code}` — {e.libelle}", "", f"Spécificités non concernées : {excl}.", ""]
        lines += _table(["indicateur", "libellé", "source", "calcul", "unité", "cible"],
                        [[f"`{c}`", i.libelle, f"`{i.source}`", _calcul(i), i.unite or "", _target(i)]
                         for c, i in e.indicateurs.items()])
        lines.append("")
    lines += ["## Risques du ciblage", ""]
    lines += _table(["risque", "libellé", "règle", "ciblé quand"],
                    [[f"`{c}`", r.libelle, f"`{r.regle}`", _rule(rules, r)] for c, r in rules.risques.items()])
    lines += ["", "## Signaux d'alerte", "", "Du plus grave au moins grave (ordre de la rubrique `alertes`).", ""]
    lines += _table(["gravité", "signal", "type", "porte sur"],
                    [[str(i), a.libelle, f"`{a.type}`", f"`{a.indicateur or a.risque or 'tous'}`"]
                     for i, a in enumerate(rules.model.alertes, start=1)])
    c = rules.controle_qls
    if c is not None:
        calc = ("moyenne des scores des dossiers (intervalle de Student)" if c.agregation == "moyenne"
                else "part des dossiers conformes (intervalle de Wilson)")
        lines += ["", f"## {c.libelle}", "",
                  f"Source `{c.source}` ; indicateur contrôlé `{c.indicateur}` ; score recalculé : {calc} "
                  f"(`agregation: {c.agregation}`), intervalle à {fmt_shortest(100 * c.niveau_confiance)} % ; "
                  f"non évaluable sous {c.dossiers_minimum} dossiers ; surcotation (résultat non validé) quand le "
                  f"score déclaré dépasse la borne haute de plus de {fmt_shortest(c.verdict.marge)} point(s) ; "
                  "critères indispensables comptés dans le score : "
                  f"{'oui' if c.indispensables_dans_score else 'non'}.", ""]
        lines += _table(["critère", "libellé", "type"],
                        [[f"`{k}`", v, "indispensable"] for k, v in c.criteres_indispensables.items()]
                        + [[f"`{k}`", v, "contenu"] for k, v in c.criteres.items()])
    lines.append("")
    return "\n".join(lines)
