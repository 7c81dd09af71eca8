"""Suivi reproductible du volet qualité des CPOM (ARS) : lecture, ciblage, suivi, tendances, rapport."""

__version__ = "0.1.0"
