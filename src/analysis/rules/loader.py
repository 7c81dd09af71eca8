"""Lecture du fichier de règles : voir :mod:`analysis.rules.model` (schéma validé)."""

from .model import DEFAULT_RULES, Rules, load_rules, parse_rules

__all__ = ["DEFAULT_RULES", "Rules", "load_rules", "parse_rules"]
