"""Schéma des sources d'entrée, tiré des déclarations ``sources`` du fichier de règles.

Chaque source déclarée devient un :class:`Source` (colonnes typées, clé, contrôles) que la lecture
(:mod:`analysis.reading.cleaning`) applique à chaque fichier. Les tables nettoyées
(``data/processed/<source>.parquet``) ont exactement ces colonnes, dans cet ordre, avec les types
pandas suivants :

- ``finess`` / ``text`` / ``code`` / ``departement`` / ``region`` : ``string`` (``pd.NA`` si vide)
- ``int`` : ``Int64``          - ``float`` : ``Float64``
- ``bool`` : ``boolean``       - ``date`` : ``datetime64[ns]`` (``NaT`` si vide)

Plus, pour toutes les sources : ``_fichier`` (nom du fichier lu) et ``_ligne`` (numéro de ligne dans le
fichier, en-tête = ligne 1), pour la traçabilité.
"""

from __future__ import annotations

from dataclasses import dataclass, field

# Type du fichier de règles -> (type interne, bornes par défaut)
_KINDS = {
    "texte": ("text", None, None),
    "finess": ("finess", None, None),
    "annee": ("int", 1990, 2100),
    "entier": ("int", None, None),
    "decimal": ("float", None, None),
    "pourcentage": ("float", 0, 100),
    "booleen": ("bool", None, None),
    "date": ("date", None, None),
    "code": ("code", None, None),
    "departement": ("departement", None, None),
    "region": ("region", None, None),
}


@dataclass(frozen=True)
class Column:
    name: str
    kind: str  # finess, text, int, float, bool, date, departement, region, code
    required: bool = False
    aliases: tuple[str, ...] = ()
    values: tuple[str, ...] = ()  # code: accepted values (canonical spelling)
    mapping: tuple[tuple[str, str], ...] = ()  # code: other spellings -> value
    min_value: float | None = None
    max_value: float | None = None


@dataclass(frozen=True)
class Check:
    motif: str
    condition: tuple | None = None  # (left, op, right) ; right is a column name or a number
    together: tuple[str, ...] = ()


@dataclass(frozen=True)
class Source:
    name: str
    columns: tuple[Column, ...]
    key: tuple[str, ...]
    required_file: bool = False
    description: str = ""
    file_names: tuple[str, ...] = ()
    checks: tuple[Check, ...] = ()
    official_only: bool = False
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


def build_sources(rules) -> dict[str, Source]:
    """Sources du fichier de règles (objet :class:`analysis.rules.model.Rules`)."""
    from .model import parse_condition

    out: dict[str, Source] = {}
    for name, s in rules.sources.items():
        cols = []
        for cname, c in s.colonnes.items():
            kind, lo, hi = _KINDS[c.type]
            cols.append(
                Column(
                    name=cname,
                    kind=kind,
                    required=c.requis,
                    aliases=tuple(c.alias),
                    values=tuple(c.valeurs or ()),
                    mapping=tuple(c.correspondance.items()),
                    min_value=c.min if c.min is not None else lo,
                    max_value=c.max if c.max is not None else hi,
                )
            )
        checks = tuple(
            Check(motif=k.motif, condition=tuple(parse_condition(k.condition)) if k.condition else None,
                  together=tuple(k.ensemble or ()))
            for k in s.controles
        )
        stems = tuple(dict.fromkeys([s.fichier or name, *s.alias]))
        out[name] = Source(
            name=name,
            columns=tuple(cols),
            key=tuple(s.cle),
            required_file=s.obligatoire,
            description=s.libelle,
            file_names=() if s.officielle else stems,
            checks=checks,
            official_only=s.officielle,
        )
    return out
