"""Schéma des sources d'entrée (contrat de données, section 1).

Chaque source est décrite par ses colonnes (nom normalisé, type, obligatoire ou non, alias) et sa clé.
Les tables nettoyées (``data/processed/<source>.parquet``) ont exactement ces colonnes, dans cet ordre,
avec les types pandas suivants :

- ``finess`` / ``text`` / ``departement`` / ``region`` / ``enum`` : ``string`` (``pd.NA`` si vide)
- ``int`` : ``Int64``          - ``float`` : ``Float64``
- ``bool`` : ``boolean``       - ``date`` : ``datetime64[ns]`` (``NaT`` si vide)

Plus, pour toutes les sources : ``_fichier`` (nom du fichier lu) et ``_ligne`` (numéro de ligne dans le
fichier, en-tête = ligne 1), pour la traçabilité.
"""

from __future__ import annotations

from dataclasses import dataclass, field


@dataclass(frozen=True)
class Column:
    name: str
    kind: str  # finess, text, int, float, bool, date, departement, region, enum
    required: bool = False
    aliases: tuple[str, ...] = ()
    choices: tuple[str, ...] = ()  # for enum (normalised lower-case unless stated)
    min_value: float | None = None
    max_value: float | None = None


@dataclass(frozen=True)
class Source:
    name: str
    columns: tuple[Column, ...]
    key: tuple[str, ...]
    required_file: bool = False
    description: str = ""
    extra: dict = field(default_factory=dict)

    @property
    def required_columns(self) -> list[str]:
        return [c.name for c in self.columns if c.required]

    @property
    def column_names(self) -> list[str]:
        return [c.name for c in self.columns]

    def column(self, name: str) -> Column:
        for c in self.columns:
            if c.name == name:
                return c
        raise KeyError(name)


C = Column

SPECIFICITES = (
    "had_pediatrique",
    "hemodialyse",
    "pouponniere",
    "hdj",
    "pedopsychiatrie",
    "mecss",
    "post_cure_alcoolique",
)
STATUTS = ("public", "prive_non_lucratif", "prive_lucratif")
ENGAGEMENTS = ("certification", "lettre_liaison", "signalement_esin", "prevention_ias")
STATUTS_ACTION = ("a_faire", "en_cours", "realise", "abandonne")

SOURCES: dict[str, Source] = {
    s.name: s
    for s in [
        Source(
            "etablissements",
            (
                C("finess_geo", "finess", True, aliases=("finess", "finess_eg", "finess_et")),
                C("finess_ej", "finess"),
                C("raison_sociale", "text", True, aliases=("rs", "nom", "rs_eg", "raison_sociale_geo")),
                C("departement", "departement", True, aliases=("dep", "dept", "code_departement")),
                C("region", "region", True, aliases=("code_region", "reg")),
                C("statut", "enum", True, choices=STATUTS),
                C("categorie", "text"),
                C("mco", "bool"),
                C("ssr", "bool", aliases=("smr",)),
                C("psy", "bool"),
                C("had", "bool"),
                C("specificite", "enum", choices=SPECIFICITES),
                C("lits", "int", min_value=0),
            ),
            key=("finess_geo",),
            required_file=True,
            description="Référentiel des établissements",
        ),
        Source(
            "activite",
            (
                C("finess_geo", "finess", True, aliases=("finess",)),
                C("annee", "int", True, aliases=("annee_activite",), min_value=1990, max_value=2100),
                C("sejours", "int", True, aliases=("nb_sejours",), min_value=0),
            ),
            key=("finess_geo", "annee"),
            description="Activité (séjours), dénominateur du taux de signalement e-SIN",
        ),
        Source(
            "certification",
            (
                C("finess_geo", "finess", True, aliases=("finess",)),
                C("date_decision", "date", True, aliases=("date_de_decision",)),
                C("niveau", "text", True, aliases=("decision", "niveau_certification")),
            ),
            key=("finess_geo", "date_decision"),
            description="Décisions de certification HAS",
        ),
        Source(
            "qls",
            (
                C("finess_geo", "finess", True, aliases=("finess",)),
                C("annee", "int", True, aliases=("campagne",), min_value=1990, max_value=2100),
                C("secteur", "text", True),
                C("score", "float", True, min_value=0, max_value=100),
                C("n_dossiers", "int", min_value=0),
                C("ic_bas", "float", min_value=0, max_value=100),
                C("ic_haut", "float", min_value=0, max_value=100),
            ),
            key=("finess_geo", "annee", "secteur"),
            description="Qualité de la lettre de liaison à la sortie (IQSS QLS)",
        ),
        Source(
            "esin",
            (
                C("finess_geo", "finess", True, aliases=("finess",)),
                C("annee", "int", True, min_value=1990, max_value=2100),
                C("signalements", "int", True, aliases=("nb_signalements",), min_value=0),
                C("responsable_connecte", "bool", True),
            ),
            key=("finess_geo", "annee"),
            description="Signalements externes e-SIN",
        ),
        Source(
            "formation",
            (
                C("finess_geo", "finess", True, aliases=("finess",)),
                C("annee", "int", True, min_value=1990, max_value=2100),
                C("categorie_personnel", "text", True, aliases=("categorie",)),
                C("effectif", "int", True, min_value=1),
                C("formes", "int", True, min_value=0),
            ),
            key=("finess_geo", "annee", "categorie_personnel"),
            description="Formation du personnel à la prévention des IAS",
        ),
        Source(
            "audits",
            (
                C("finess_geo", "finess", True, aliases=("finess",)),
                C("annee", "int", True, min_value=1990, max_value=2100),
                C("audits_total", "int", True, min_value=0),
                C("audits_precautions", "int", True, min_value=0),
            ),
            key=("finess_geo", "annee"),
            description="Audits des pratiques professionnelles",
        ),
        Source(
            "plan_epidemies",
            (
                C("finess_geo", "finess", True, aliases=("finess",)),
                C("annee", "int", True, min_value=1990, max_value=2100),
                C("criteres_remplis", "int", True, min_value=0),
                C("criteres_total", "int", True, min_value=1),
            ),
            key=("finess_geo", "annee"),
            description="Grille d'autoévaluation du plan local de maîtrise des épidémies",
        ),
        Source(
            "engagements",
            (
                C("finess_geo", "finess", True, aliases=("finess",)),
                C("engagement", "enum", True, choices=ENGAGEMENTS),
                C("date_signature", "date", True),
                C("annee_debut", "int", True, min_value=1990, max_value=2100),
                C("annee_fin", "int", True, min_value=1990, max_value=2100),
                C("cible", "text"),
            ),
            key=("finess_geo", "engagement"),
            description="Engagements signés dans les CPOM",
        ),
        Source(
            "plans_actions",
            (
                C("finess_geo", "finess", True, aliases=("finess",)),
                C("engagement", "enum", True, choices=ENGAGEMENTS),
                C("action", "text", True),
                C("pilote", "text"),
                C("echeance", "date"),
                C("statut", "enum", True, choices=STATUTS_ACTION),
            ),
            key=("finess_geo", "engagement", "action"),
            description="Plans d'actions associés aux engagements",
        ),
        # Produced from the HAS e-Satis official files (never read from a hand-made file).
        Source(
            "esatis",
            (
                C("finess_geo", "finess", True),
                C("annee", "int", True),
                C("secteur", "text", True),
                C("indicateur", "text", True),
                C("score", "float"),
                C("classement", "text"),
                C("evolution", "text"),
            ),
            key=("finess_geo", "annee", "secteur", "indicateur"),
            description="Expérience patient (HAS e-Satis), indicateur optionnel sans cible",
        ),
    ]
}

# Sources an analyst can provide as hand-made files (esatis comes only from official HAS files).
INPUT_SOURCES = [n for n in SOURCES if n != "esatis"]
