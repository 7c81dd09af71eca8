"""Fichiers officiels HAS reconnus tels que téléchargés (certification 2021, e-Satis).

(Implémentation complète : voir l'issue « Official HAS files ».)
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import pandas as pd

from .readers import RawTable


@dataclass
class OfficialFile:
    path: Path
    kind: str
    nature: str
    source: str
    table: RawTable | None = None
    encoding: str = ""
    separator: str = ""
    sheet: str = ""
    unused_rows: int = 0
    notes: list[str] = field(default_factory=list)


def detect(path: Path) -> OfficialFile | None:
    return None


def to_sources(officials: list[OfficialFile], rules: dict):
    return []


def extra_read_rows(fname: str, officials: list[OfficialFile]) -> int:
    return sum(o.unused_rows for o in officials if o.path.name == fname)


def merge_with_hand_made(src: str, parts: list[pd.DataFrame]) -> tuple[pd.DataFrame, list[str]]:
    return pd.concat(parts, ignore_index=True), []
