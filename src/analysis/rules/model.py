"""Modèle validé du fichier de règles (contrat de données v2, section 4).

Le fichier ``config/regles_cpom.yml`` déclare les **sources** (fichiers d'entrée et leurs colonnes),
les **engagements** et leurs **indicateurs** (une règle de calcul par ``calcul``) et les **risques** du
ciblage (une règle par ``regle``). Il est validé à la lecture par pydantic : toute erreur arrête le
travail avant qu'il commence, avec un message en français qui nomme le chemin de la clé fautive
(``engagements.prevention_ias.indicateurs.taux_vaccination_grippe.denominateur``).

Le reste du code ne lit jamais le YAML brut : il reçoit un objet :class:`Rules`.
"""

from __future__ import annotations

import hashlib
from pathlib import Path
from typing import Annotated, Any, Literal

import yaml
from pydantic import BaseModel, BeforeValidator, ConfigDict, Field, ValidationError, model_validator

from ..reading.readers import InputError, normalize_name

DEFAULT_RULES = Path(__file__).resolve().parents[3] / "config" / "regles_cpom.yml"

COLUMN_TYPES = (
    "texte", "finess", "annee", "entier", "decimal", "pourcentage", "booleen", "date", "code",
    "departement", "region",
)
CALCULS = ("ratio", "valeur", "compte", "niveau", "booleen")
REGLES = ("seuil", "niveau", "sous_declaration_poisson")
OPERATEURS = (">=", ">", "<=", "<", "==")
AGREGATS = ("rapport", "somme", "moyenne", "moyenne_ponderee", "part")
STATUTS = ("atteint", "non_atteint", "non_evaluable", "non_concerne", "sans_cible")

_TRUE = {"oui", "o", "vrai", "true", "1", "yes", "y"}
_FALSE = {"non", "n", "faux", "false", "0", "no"}


def _fr_bool(v: Any) -> Any:
    if isinstance(v, str):
        t = v.strip().lower()
        if t in _TRUE:
            return True
        if t in _FALSE:
            return False
    return v


FrBool = Annotated[bool, BeforeValidator(_fr_bool)]


def _as_list(v: Any) -> Any:
    if v is None:
        return []
    if isinstance(v, (str, int, float)):
        return [v]
    return v


StrList = Annotated[list[str], BeforeValidator(_as_list)]


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=False, populate_by_name=True)


# --------------------------------------------------------------------------------------------
# Sources


class Colonne(_Strict):
    type: Literal[COLUMN_TYPES]  # type: ignore[valid-type]
    requis: FrBool = False
    alias: StrList = []
    libelle: str | None = None
    min: float | None = None
    max: float | None = None
    valeurs: StrList | None = None
    valeurs_de: Literal["engagements"] | None = None
    correspondance: dict[str, str] = {}
    libelles: dict[str, str] = {}

    @model_validator(mode="after")
    def _check(self):
        if self.min is not None and self.max is not None and self.min > self.max:
            raise ValueError("min doit être inférieur ou égal à max")
        if (self.valeurs or self.correspondance or self.valeurs_de) and self.type != "code":
            raise ValueError("valeurs, valeurs_de et correspondance ne s'emploient qu'avec le type « code »")
        if self.valeurs and self.correspondance:
            bad = [v for v in self.correspondance.values() if v not in self.valeurs]
            if bad:
                raise ValueError(f"correspondance vers des valeurs non déclarées : {', '.join(map(str, bad))}")
        return self


class Controle(_Strict):
    condition: str | None = None
    ensemble: StrList | None = None
    motif: str

    @model_validator(mode="after")
    def _one(self):
        if (self.condition is None) == (self.ensemble is None):
            raise ValueError("un contrôle a soit « condition », soit « ensemble »")
        return self


class Source(_Strict):
    libelle: str
    fichier: str | None = None
    alias: StrList = []
    cle: StrList
    colonnes: dict[str, Colonne]
    controles: list[Controle] = []
    obligatoire: FrBool = False
    officielle: FrBool = False  # alimentée seulement par des fichiers officiels (e-Satis)
    absence: str | None = None  # conséquence de l'absence, dite dans le rapport

    @model_validator(mode="after")
    def _check(self):
        missing = [c for c in self.cle if c not in self.colonnes]
        if missing:
            raise ValueError(f"clé sur des colonnes non déclarées : {', '.join(missing)}")
        for i, c in enumerate(self.controles):
            cols = c.ensemble or parse_condition(c.condition or "")[::2]
            for col in cols:
                if isinstance(col, str) and col not in self.colonnes:
                    raise ValueError(f"controles[{i}] : colonne non déclarée « {col} »")
        return self

    @property
    def is_annual(self) -> bool:
        return "annee" in self.colonnes


def parse_condition(text: str) -> list:
    """``"vaccines <= effectif"`` -> ``["vaccines", "<=", "effectif"]`` ; un nombre reste un nombre."""
    parts = str(text).split()
    if len(parts) != 3 or parts[1] not in OPERATEURS + ("!=",):
        raise ValueError(
            f"condition « {text} » illisible : attendu « colonne opérateur colonne_ou_nombre », "
            f"opérateur parmi {', '.join(OPERATEURS)}"
        )
    out: list = [parts[0], parts[1]]
    try:
        out.append(float(parts[2].replace(",", ".")))
    except ValueError:
        out.append(parts[2])
    return out


# --------------------------------------------------------------------------------------------
# Cibles


class Cible(_Strict):
    operateur: Literal[OPERATEURS] | None = None  # type: ignore[valid-type]
    valeur: float | bool | str | None = None
    dans: StrList | None = None

    @model_validator(mode="before")
    @classmethod
    def _plain(cls, v: Any):
        if isinstance(v, bool):
            return {"operateur": "==", "valeur": v}
        if isinstance(v, (int, float)):
            return {"operateur": ">=", "valeur": float(v)}
        if isinstance(v, list):
            return {"dans": v}
        if isinstance(v, str):
            b = _fr_bool(v)
            if isinstance(b, bool):
                return {"operateur": "==", "valeur": b}
            raise ValueError(f"cible « {v} » illisible : attendu un nombre, {{operateur, valeur}} ou {{dans: [...]}}")
        return v

    @model_validator(mode="after")
    def _check(self):
        if self.dans is None and self.operateur is None:
            raise ValueError("une cible a soit « operateur » et « valeur », soit « dans »")
        if self.operateur is not None and self.valeur is None:
            raise ValueError("« valeur » manquante pour l'opérateur")
        if self.operateur is not None and isinstance(self.valeur, str):
            raise ValueError("la valeur d'une cible à opérateur doit être un nombre ou un booléen")
        return self


# --------------------------------------------------------------------------------------------
# Indicateurs, engagements


class Indicateur(_Strict):
    libelle: str
    source: str
    calcul: Literal[CALCULS]  # type: ignore[valid-type]
    colonne: str | None = None
    numerateur: str | None = None
    denominateur: str | None = None
    par: str | None = None
    par_referentiel: dict[str, str] = {}  # valeur de `par` -> colonne booléenne du référentiel (activité détenue)
    ic_bas: str | None = None
    ic_haut: str | None = None
    effectif: str | None = None
    fenetre_annees: int = Field(1, ge=1, le=10)
    ordre: StrList | None = None
    date: str | None = None
    unite: str = ""
    decimales: int | None = Field(None, ge=0, le=6)
    cible: Cible | None = None
    specificites_exclues: StrList = []
    agregat: Literal[AGREGATS] | None = None  # type: ignore[valid-type]
    tendance: FrBool = True

    @model_validator(mode="after")
    def _check(self):
        need = {"ratio": ("numerateur", "denominateur"), "valeur": ("colonne",), "compte": ("colonne",),
                "niveau": ("colonne",), "booleen": ("colonne",)}[self.calcul]
        for k in need:
            if getattr(self, k) is None:
                raise ValueError(f"clé « {k} » obligatoire pour le calcul « {self.calcul} »")
        if self.calcul == "niveau" and not self.ordre:
            raise ValueError("clé « ordre » obligatoire pour le calcul « niveau » (par exemple [A, B, C, D, E])")
        if self.cible is not None and self.cible.dans is not None and self.calcul != "niveau":
            raise ValueError("une cible « dans » ne s'emploie qu'avec le calcul « niveau »")
        return self

    @property
    def columns(self) -> dict[str, str]:
        """Clés qui désignent une colonne de la source : {clé: colonne}."""
        keys = ("colonne", "numerateur", "denominateur", "par", "ic_bas", "ic_haut", "effectif", "date")
        return {k: getattr(self, k) for k in keys if getattr(self, k) is not None}

    @property
    def default_agregat(self) -> str:
        if self.agregat:
            return self.agregat
        return {"ratio": "rapport", "valeur": "moyenne_ponderee" if self.effectif else "moyenne",
                "compte": "somme", "niveau": "part", "booleen": "part"}[self.calcul]


class Engagement(_Strict):
    libelle: str
    specificites_exclues: StrList = []
    indicateur_principal: str | None = None
    indicateurs: dict[str, Indicateur]

    @model_validator(mode="after")
    def _check(self):
        if not self.indicateurs:
            raise ValueError("un engagement déclare au moins un indicateur")
        if self.indicateur_principal and self.indicateur_principal not in self.indicateurs:
            raise ValueError(f"indicateur_principal « {self.indicateur_principal} » non déclaré")
        return self

    @property
    def main_indicator(self) -> str:
        return self.indicateur_principal or next(iter(self.indicateurs))


# --------------------------------------------------------------------------------------------
# Risques


class Exposition(_Strict):
    source: str
    colonne: str
    libelle: str | list[str] = ["séjour", "séjours"]
    pour: int = Field(10_000, ge=1)  # taux exprimé pour `pour` unités d'exposition


class Risque(_Strict):
    libelle: str
    indicateur: str
    regle: Literal[REGLES]  # type: ignore[valid-type]
    operateur: Literal[OPERATEURS] | None = None  # type: ignore[valid-type]
    valeur: float | None = None
    niveaux: StrList | None = None
    specificites_exclues: StrList = []
    exposition: Exposition | None = None
    seuil_non_declarant: float = Field(0, ge=0)
    seuil_p: float = Field(0.025, gt=0, lt=1)
    libelle_compte: str | list[str] | None = None  # ce que l'on compte, au singulier et au pluriel
    description: str | None = None

    @model_validator(mode="after")
    def _check(self):
        if self.regle == "seuil" and (self.operateur is None or self.valeur is None):
            raise ValueError("la règle « seuil » demande « operateur » et « valeur »")
        if self.regle == "niveau" and not self.niveaux:
            raise ValueError("la règle « niveau » demande « niveaux » (par exemple [E])")
        return self


# --------------------------------------------------------------------------------------------
# Racine


ALERTES = ("entree_ciblage", "niveau_en_baisse", "nouveau_non_declarant", "sous_declaration", "degradation_ifaq",
           "nouveau_non_atteint")


class Alerte(_Strict):
    type: Literal[ALERTES]  # type: ignore[valid-type]
    libelle: str
    indicateur: str | None = None
    risque: str | None = None


# --------------------------------------------------------------------------------------------
# Fichiers officiels : extrait FINESS et BQSS (sélection des clés par expressions régulières)


def _regex_map(v: Any) -> Any:
    import re

    if isinstance(v, dict):
        for k, pattern in v.items():
            try:
                re.compile(str(pattern))
            except re.error as exc:
                raise ValueError(f"expression régulière invalide pour « {k} » : {pattern!r} ({exc})") from None
    return v


Selection = Annotated[dict[str, str], BeforeValidator(_regex_map)]


class ReferentielFiness(_Strict):
    categories_retenues: dict[str, str | None]
    statut: dict[Literal["codesph", "codemft"], dict[str, str]] = {}


class BqssCertificationV2014(_Strict):
    niveau: Selection
    date: Selection
    niveaux: dict[int, str]


class BqssCertificationV2021(_Strict):
    decision: Selection
    date: Selection


class BqssEsatis(_Strict):
    secteur: str
    selection: Selection


class BqssQls(_Strict):
    selection: Selection
    roles: dict[Literal["score", "ic_bas", "ic_haut", "n_dossiers"], Selection]


class Bqss(_Strict):
    certification_v2014: BqssCertificationV2014 | None = None
    certification_v2021: BqssCertificationV2021 | None = None
    esatis: list[BqssEsatis] = []
    qls: BqssQls | None = None


class Statistiques(_Strict):
    niveau_confiance: float = Field(0.95, gt=0, lt=1)
    reference_position: float | None = None
    limites_funnel: list[Annotated[float, Field(gt=0, lt=1)]] = [0.95, 0.998]
    evolution: Literal["non_chevauchement_ic"] = "non_chevauchement_ic"


class Esatis(_Strict):
    classes_non_numeriques: StrList = ["DI", "NR", "NV"]


AGREGATIONS_QLS = ("moyenne", "dossiers_conformes")
VERDICTS = ("concordant", "surcotation", "non_evaluable")


class ValeursCritere(_Strict):
    """Codes d'un critère de contenu : conforme, non conforme, non applicable."""
    conforme: str = "oui"
    non_conforme: str = "non"
    non_applicable: str = "NA"


class VerdictQls(_Strict):
    """Règle du verdict : ``borne_haute`` = surcotation quand le score déclaré dépasse la borne haute
    de l'intervalle du score recalculé de plus de ``marge`` points."""
    regle: Literal["borne_haute"] = "borne_haute"
    marge: float = Field(0.0, ge=0, le=100)


class ControleQls(_Strict):
    """Contrôle qualité du recueil QLS : score recalculé à partir des dossiers réaudités."""
    libelle: str = "Contrôle qualité du recueil QLS"
    source: str                      # dossiers réaudités (une ligne par dossier)
    indicateur: str                  # indicateur contrôlé (calcul « valeur », par secteur)
    criteres_indispensables: dict[str, str]   # colonne booléenne -> libellé
    criteres: dict[str, str]                  # colonne oui/non/NA -> libellé
    valeurs: ValeursCritere = ValeursCritere()
    indispensables_dans_score: FrBool = True
    agregation: Literal[AGREGATIONS_QLS] = "moyenne"  # type: ignore[valid-type]
    dossiers_minimum: int = Field(30, ge=2)
    niveau_confiance: float = Field(0.95, gt=0, lt=1)
    verdict: VerdictQls = VerdictQls()
    source_regle: str | None = None  # d'où vient la règle (cité dans la section de méthode)

    @model_validator(mode="after")
    def _check(self):
        if not self.criteres_indispensables:
            raise ValueError("au moins un critère indispensable est attendu")
        if not self.criteres:
            raise ValueError("au moins un critère de contenu est attendu")
        both = set(self.criteres_indispensables) & set(self.criteres)
        if both:
            raise ValueError(f"critères déclarés deux fois : {', '.join(sorted(both))}")
        return self


class Historique(_Strict):
    version: str
    date: str
    changement: str


class RulesModel(_Strict):
    version: str
    historique: list[Historique] = []
    libelles: dict[str, dict[str, str]] = {}
    sources: dict[str, Source]
    engagements: dict[str, Engagement] = {}
    ciblage: dict[str, Risque] = {}
    alertes: list[Alerte] = []
    statistiques: Statistiques = Statistiques()
    esatis: Esatis = Esatis()
    referentiel_finess: ReferentielFiness | None = None  # extrait FINESS (analysis.reading.finess)
    bqss: Bqss | None = None  # sélection des clés de la BQSS (analysis.reading.bqss)
    controle_qls: ControleQls | None = None  # contrôle qualité du recueil QLS (analysis.indicators.controle_qls)

    @model_validator(mode="after")
    def _cross(self):
        errors: list[tuple[str, str]] = []
        if "etablissements" not in self.sources:
            errors.append(("sources.etablissements", "source obligatoire (référentiel des établissements)"))
        etab = self.sources.get("etablissements")
        spec = set((etab.colonnes.get("specificite").valeurs or []) if etab and "specificite" in etab.colonnes else [])
        for sname, s in self.sources.items():
            for cname, c in s.colonnes.items():
                if c.valeurs_de == "engagements":
                    c.valeurs = list(self.engagements)
        for ecode, e in self.engagements.items():
            for sp in e.specificites_exclues:
                if spec and sp not in spec:
                    errors.append((f"engagements.{ecode}.specificites_exclues", f"spécificité inconnue « {sp} »"))
            for icode, ind in e.indicateurs.items():
                path = f"engagements.{ecode}.indicateurs.{icode}"
                src = self.sources.get(ind.source)
                if src is None:
                    errors.append((f"{path}.source", f"source non déclarée « {ind.source} » (sources déclarées : "
                                                    f"{', '.join(self.sources)})"))
                    continue
                for key, col in ind.columns.items():
                    if col not in src.colonnes:
                        errors.append((f"{path}.{key}", f"colonne « {col} » absente de la source « {ind.source} » "
                                                        f"(colonnes : {', '.join(src.colonnes)})"))
                if not src.is_annual and not ind.date:
                    errors.append((f"{path}.date", f"la source « {ind.source} » n'a pas de colonne annee : "
                                                   "indiquez la colonne de date (« date: »)"))
                for ref in ind.par_referentiel.values():
                    if etab and ref not in etab.colonnes:
                        errors.append((f"{path}.par_referentiel", f"colonne « {ref} » absente du référentiel"))
                for sp in ind.specificites_exclues:
                    if spec and sp not in spec:
                        errors.append((f"{path}.specificites_exclues", f"spécificité inconnue « {sp} »"))
        statuts = set((etab.colonnes["statut"].valeurs or []) if etab and "statut" in etab.colonnes else [])
        if self.referentiel_finess is not None and statuts:
            for nomenclature, table in self.referentiel_finess.statut.items():
                for code, value in table.items():
                    if value not in statuts:
                        errors.append((f"referentiel_finess.statut.{nomenclature}.{code}",
                                       f"statut inconnu « {value} » (attendu : {', '.join(sorted(statuts))})"))
        levels = set()
        cert = self.sources.get("certification")
        if cert is not None and "niveau" in cert.colonnes:
            levels = set(cert.colonnes["niveau"].valeurs or [])
        if self.bqss is not None and self.bqss.certification_v2014 is not None and levels:
            for k, v in self.bqss.certification_v2014.niveaux.items():
                if v not in levels:
                    errors.append((f"bqss.certification_v2014.niveaux.{k}",
                                   f"niveau inconnu « {v} » (attendu : {', '.join(sorted(levels))})"))
        codes = self.indicator_codes()
        for rcode, r in self.ciblage.items():
            path = f"ciblage.{rcode}"
            ind = codes.get(r.indicateur)
            if ind is None:
                errors.append((f"{path}.indicateur", f"indicateur non déclaré « {r.indicateur} » (indicateurs : "
                                                     f"{', '.join(codes)})"))
                continue
            if r.regle == "niveau" and ind.calcul != "niveau":
                errors.append((f"{path}.regle", "la règle « niveau » demande un indicateur de calcul « niveau »"))
            if r.regle == "niveau" and ind.ordre:
                bad = [n for n in r.niveaux or [] if n not in ind.ordre]
                if bad:
                    errors.append((f"{path}.niveaux", f"niveaux inconnus : {', '.join(bad)} (ordre : {', '.join(ind.ordre)})"))
            if r.regle == "sous_declaration_poisson":
                if ind.calcul != "compte":
                    errors.append((f"{path}.regle", "la règle « sous_declaration_poisson » demande un indicateur "
                                                    "de calcul « compte »"))
                if r.exposition is not None:
                    src = self.sources.get(r.exposition.source)
                    if src is None:
                        errors.append((f"{path}.exposition.source", f"source non déclarée « {r.exposition.source} »"))
                    elif r.exposition.colonne not in src.colonnes:
                        errors.append((f"{path}.exposition.colonne",
                                       f"colonne « {r.exposition.colonne} » absente de la source « {r.exposition.source} »"))
            if r.regle == "seuil" and ind.calcul == "niveau":
                errors.append((f"{path}.regle", "un indicateur de calcul « niveau » se cible avec la règle « niveau »"))
            for sp in r.specificites_exclues:
                if spec and sp not in spec:
                    errors.append((f"{path}.specificites_exclues", f"spécificité inconnue « {sp} »"))
        for i, a in enumerate(self.alertes):
            path = f"alertes[{i}]"
            if a.type in ("niveau_en_baisse", "degradation_ifaq"):
                ind = codes.get(a.indicateur or "")
                if ind is None:
                    errors.append((f"{path}.indicateur", f"indicateur déclaré attendu (trouvé « {a.indicateur} »)"))
                elif a.type == "niveau_en_baisse" and ind.calcul != "niveau":
                    errors.append((f"{path}.indicateur", "un indicateur de calcul « niveau » est attendu"))
                elif a.type == "degradation_ifaq" and not (ind.calcul == "valeur" and (ind.effectif or ind.ic_bas)):
                    errors.append((f"{path}.indicateur", "un indicateur « valeur » avec intervalle (effectif ou bornes) est attendu"))
            if a.type in ("nouveau_non_declarant", "sous_declaration"):
                r = self.ciblage.get(a.risque or "")
                if r is None or r.regle != "sous_declaration_poisson":
                    errors.append((f"{path}.risque", f"risque de règle « sous_declaration_poisson » attendu (trouvé « {a.risque} »)"))
        if self.controle_qls is not None:
            errors += _check_controle_qls(self.controle_qls, self.sources, codes)
        seen: dict[str, str] = {}
        for ecode, e in self.engagements.items():
            for icode in e.indicateurs:
                if icode in seen:
                    errors.append((f"engagements.{ecode}.indicateurs.{icode}",
                                   f"code d'indicateur déjà déclaré dans l'engagement « {seen[icode]} »"))
                seen[icode] = ecode
        if errors:
            raise RulesCrossError(errors)
        return self

    def indicator_codes(self) -> dict[str, Indicateur]:
        return {c: i for e in self.engagements.values() for c, i in e.indicateurs.items()}


def _check_controle_qls(c: ControleQls, sources: dict[str, Source], codes: dict[str, Indicateur]) -> list:
    """Cohérence de la rubrique ``controle_qls`` avec les sources et l'indicateur contrôlé."""
    errors: list[tuple[str, str]] = []
    path = "controle_qls"
    src = sources.get(c.source)
    if src is None:
        return [(f"{path}.source", f"source non déclarée « {c.source} » (sources déclarées : {', '.join(sources)})")]
    ind = codes.get(c.indicateur)
    if ind is None:
        return [(f"{path}.indicateur", f"indicateur non déclaré « {c.indicateur} » (indicateurs : {', '.join(codes)})")]
    if ind.calcul != "valeur":
        errors.append((f"{path}.indicateur", "un indicateur de calcul « valeur » (score déclaré) est attendu"))
    keys = ["finess_geo", "annee"] + ([ind.par] if ind.par else [])
    for k in keys:
        if k not in src.colonnes:
            errors.append((f"{path}.source", f"colonne « {k} » absente de la source « {c.source} » (clé du score "
                                             f"contrôlé : {', '.join(keys)})"))
    for col in c.criteres_indispensables:
        if col not in src.colonnes:
            errors.append((f"{path}.criteres_indispensables.{col}", f"colonne absente de la source « {c.source} »"))
        elif src.colonnes[col].type != "booleen":
            errors.append((f"{path}.criteres_indispensables.{col}", "colonne de type « booleen » attendue"))
    codes_critere = [c.valeurs.conforme, c.valeurs.non_conforme, c.valeurs.non_applicable]
    for col in c.criteres:
        if col not in src.colonnes:
            errors.append((f"{path}.criteres.{col}", f"colonne absente de la source « {c.source} »"))
            continue
        decl = src.colonnes[col]
        if decl.type != "code" or sorted(decl.valeurs or []) != sorted(codes_critere):
            errors.append((f"{path}.criteres.{col}", f"colonne de type « code » aux valeurs "
                                                     f"{', '.join(codes_critere)} attendue"))
    return errors


class RulesCrossError(ValueError):
    def __init__(self, errors: list[tuple[str, str]]):
        self.errors = errors
        super().__init__("; ".join(f"{p} : {m}" for p, m in errors))


# --------------------------------------------------------------------------------------------
# Objet passé au reste du code


class Rules:
    """Règles validées, avec leur provenance (nom, version, empreinte) et les libellés."""

    def __init__(self, model: RulesModel, *, name: str, sha256: str, path: Path | None = None, text: str = ""):
        self.model = model
        self.name = name
        self.sha256 = sha256
        self.path = path
        self.text = text

    # -- accès
    def get(self, section: str, default=None):
        """Rubrique de configuration des fichiers officiels (``referentiel_finess``, ``bqss``), en dictionnaire."""
        if section not in ("referentiel_finess", "bqss"):
            raise KeyError(f"rubrique non exposée en dictionnaire : {section}")
        value = getattr(self.model, section)
        return default if value is None else value.model_dump(exclude_none=True)

    @property
    def source_specs(self):
        """Sources sous la forme appliquée par la lecture (:class:`analysis.rules.schema.Source`)."""
        if getattr(self, "_specs", None) is None:
            from .schema import build_sources

            self._specs = build_sources(self)
        return self._specs

    @property
    def version(self) -> str:
        return self.model.version

    @property
    def sources(self) -> dict[str, Source]:
        return self.model.sources

    @property
    def engagements(self) -> dict[str, Engagement]:
        return self.model.engagements

    @property
    def risques(self) -> dict[str, Risque]:
        return self.model.ciblage

    @property
    def statistiques(self) -> Statistiques:
        return self.model.statistiques

    @property
    def controle_qls(self) -> ControleQls | None:
        return self.model.controle_qls

    def indicators(self) -> list[tuple[str, str, Indicateur]]:
        """``[(engagement, code, indicateur)]`` dans l'ordre du fichier."""
        return [(e, c, i) for e, eng in self.engagements.items() for c, i in eng.indicateurs.items()]

    def indicator(self, code: str) -> Indicateur:
        return self.model.indicator_codes()[code]

    def engagement_of(self, code: str) -> str:
        for e, c, _ in self.indicators():
            if c == code:
                return e
        raise KeyError(code)

    # -- libellés (un seul vocabulaire, tiré du fichier de règles)
    def label(self, kind: str, code: Any) -> str:
        """Libellé d'un code : ``kind`` ∈ risque, engagement, indicateur, source, statut, ou une
        rubrique de ``libelles`` (statut_action, mouvement…)."""
        code = "" if code is None else str(code)
        if kind == "risque" and code in self.risques:
            return self.risques[code].libelle
        if kind == "engagement" and code in self.engagements:
            return self.engagements[code].libelle
        if kind == "source" and code in self.sources:
            return self.sources[code].libelle
        if kind == "indicateur":
            return self.indicator_label(code)
        return self.model.libelles.get(kind, {}).get(code, code.replace("_", " "))

    def value_label(self, source: str, column: str, value: Any) -> str:
        col = self.sources[source].colonnes.get(column) if source in self.sources else None
        text = "" if value is None else str(value)
        if col is not None and text in col.libelles:
            return col.libelles[text]
        return text

    def indicator_label(self, code: str) -> str:
        """Libellé d'un code d'indicateur, y compris ``<code>_<valeur>`` des indicateurs ``par``."""
        codes = self.model.indicator_codes()
        if code in codes:
            return codes[code].libelle
        for base, ind in codes.items():
            if ind.par and code.startswith(base + "_"):
                suffix = code[len(base) + 1:]
                return f"{ind.libelle} ({self.par_value_label(ind, suffix)})"
        return code

    def par_value_label(self, ind: Indicateur, code_suffix: str) -> str:
        col = self.sources[ind.source].colonnes[ind.par]
        for v in list(col.libelles) + list(col.valeurs or []):
            if indicator_suffix(v) == code_suffix:
                return col.libelles.get(v, v)
        return code_suffix.replace("_", " ")

    def base_indicator(self, code: str) -> tuple[str, str | None]:
        """``score_qls_mco`` -> (``score_qls``, ``mco``) ; un code déclaré -> (code, None)."""
        codes = self.model.indicator_codes()
        if code in codes:
            return code, None
        for base, ind in codes.items():
            if ind.par and code.startswith(base + "_"):
                return base, code[len(base) + 1:]
        return code, None

    def thresholds(self, code: str) -> list[float]:
        """Seuils numériques auxquels la valeur d'un indicateur est comparée : sa cible et les seuils
        des risques qui le ciblent (pour l'écrire partout avec les mêmes décimales)."""
        base, _ = self.base_indicator(code)
        codes = self.model.indicator_codes()
        out: list[float] = []
        ind = codes.get(base)
        if ind is not None and ind.cible is not None and ind.cible.operateur and not isinstance(ind.cible.valeur, bool):
            out.append(float(ind.cible.valeur))
        for r in self.risques.values():
            if r.indicateur == base and r.regle == "seuil" and r.valeur is not None:
                out.append(float(r.valeur))
        return out

    def unit(self, code: str) -> str:
        base, _ = self.base_indicator(code)
        codes = self.model.indicator_codes()
        return codes[base].unite if base in codes else ""


def indicator_suffix(value: Any) -> str:
    """Suffixe de code d'un indicateur ``par`` : ``MCO`` -> ``mco``, ``paramédical`` -> ``paramedical``."""
    return normalize_name(value)


# --------------------------------------------------------------------------------------------
# Lecture et messages


_PYDANTIC_FR = {
    "missing": "clé obligatoire manquante",
    "extra_forbidden": "clé inconnue",
    "literal_error": "valeur non admise",
    "float_parsing": "nombre attendu",
    "float_type": "nombre attendu",
    "int_parsing": "nombre entier attendu",
    "int_type": "nombre entier attendu",
    "int_from_float": "nombre entier attendu",
    "bool_parsing": "booléen attendu (oui/non)",
    "bool_type": "booléen attendu (oui/non)",
    "string_type": "texte attendu",
    "dict_type": "rubrique (dictionnaire) attendue",
    "model_type": "rubrique (dictionnaire) attendue",
    "list_type": "liste attendue",
    "greater_than": "valeur trop petite",
    "greater_than_equal": "valeur trop petite",
    "less_than": "valeur trop grande",
    "less_than_equal": "valeur trop grande",
}


def _loc_path(loc: tuple) -> str:
    out = []
    for part in loc:
        if isinstance(part, int):
            out.append(f"[{part}]")
        elif part in ("function-after[_check()]", "function-before[_plain()]") or str(part).startswith(
            ("function-", "constrained-", "literal[", "union[", "lax-", "json-", "float", "bool", "str", "int")
        ):
            continue
        else:
            out.append(("." if out else "") + str(part))
    return "".join(out)


def _translate(err: dict) -> tuple[str, str]:
    path = _loc_path(tuple(err.get("loc", ())))
    t = err.get("type", "")
    msg = _PYDANTIC_FR.get(t)
    ctx = err.get("ctx") or {}
    if t == "literal_error":
        msg = f"valeur non admise « {err.get('input')} » (attendu : {str(ctx.get('expected', '')).replace(' or ', ' ou ')})"
    elif t in ("greater_than", "greater_than_equal"):
        msg = f"valeur {err.get('input')} trop petite (attendu {'>' if t == 'greater_than' else '≥'} {ctx.get('gt', ctx.get('ge'))})"
    elif t in ("less_than", "less_than_equal"):
        msg = f"valeur {err.get('input')} trop grande (attendu {'<' if t == 'less_than' else '≤'} {ctx.get('lt', ctx.get('le'))})"
    elif t in ("float_parsing", "float_type", "int_parsing", "int_type", "bool_parsing", "bool_type"):
        msg = f"{msg}, trouvé « {err.get('input')} »"
    elif t == "value_error":
        e = ctx.get("error")
        msg = str(e) if e is not None else err.get("msg", "")
        if isinstance(e, RulesCrossError):
            return path, msg
    if msg is None:
        msg = err.get("msg", "valeur invalide")
    return path, msg


def format_errors(name: str, exc: ValidationError) -> str:
    lines = []
    for err in exc.errors():
        ctx = err.get("ctx") or {}
        e = ctx.get("error")
        if isinstance(e, RulesCrossError):
            lines.extend(f"  - {p} : {m}" for p, m in e.errors)
            continue
        path, msg = _translate(err)
        lines.append(f"  - {path or '(racine)'} : {msg}")
    # pydantic may report one error per union branch: keep each line once
    uniq = list(dict.fromkeys(lines))
    return f"Le fichier de règles « {name} » est invalide :\n" + "\n".join(uniq)


#: analyseur YAML de libyaml (C) quand PyYAML en est pourvu, dix fois plus rapide que l'analyseur
#: Python (le fichier de règles est lu par chaque notebook) ; mêmes valeurs (mêmes constructeurs sûrs)
_YAML_LOADER = getattr(yaml, "CSafeLoader", yaml.SafeLoader)


def _load_yaml(text: str):
    try:
        return yaml.load(text, Loader=_YAML_LOADER)  # noqa: S506 - chargeur sûr (SafeLoader ou CSafeLoader)
    except yaml.YAMLError as fast:
        # l'erreur (ligne, colonne, texte) de l'analyseur Python : la même quelle que soit la
        # construction de PyYAML
        try:
            yaml.safe_load(text)
        except yaml.YAMLError as slow:
            raise slow from None
        raise fast


def parse_rules(text: str, name: str = "regles.yml", path: Path | None = None) -> Rules:
    try:
        raw = _load_yaml(text)
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f" (ligne {mark.line + 1}, colonne {mark.column + 1})" if mark is not None else ""
        raise InputError(f"Le fichier de règles « {name} » n'est pas un YAML valide{where} : "
                         f"{getattr(exc, 'problem', exc)}") from None
    if not isinstance(raw, dict):
        raise InputError(f"Le fichier de règles « {name} » doit contenir des rubriques YAML (clé: valeur).")
    try:
        model = RulesModel.model_validate(raw)
    except ValidationError as exc:
        raise InputError(format_errors(name, exc)) from None
    sha = hashlib.sha256(text.encode("utf-8")).hexdigest()
    return Rules(model, name=name, sha256=sha, path=path, text=text)


def load_rules(path: str | Path | None = None) -> Rules:
    """Lit et valide le fichier de règles (une seule lecture : l'empreinte est celle des octets validés)."""
    if isinstance(path, Rules):
        return path
    p = Path(path) if path else DEFAULT_RULES
    if not p.is_file():
        raise InputError(f"Fichier de règles introuvable : « {p} ».")
    try:
        data = p.read_bytes()
        text = data.decode("utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise InputError(f"Le fichier de règles « {p.name} » est illisible : {exc}") from None
    rules = parse_rules(text, p.name, p)
    rules.sha256 = hashlib.sha256(data).hexdigest()
    return rules
