"""Synthetic people and their pseudonyms, made with the real toolkit so every id is a valid 64-hex pseudonym.

The key is a fixed demo key, public on purpose: the people are invented, and a fixed key makes runs
reproducible. It must never be used for real identifiers (a partnership's key is a secret in the settings).
"""

from __future__ import annotations

import random
import uuid
from collections import Counter
from typing import Literal

from producers.pseudonymise import Pseudonymiser

DEMO_PSEUDONYM_KEY = b"DEMO KEY for synthetic data only - never pseudonymise real identifiers with it"
"""The public key the generator pseudonymises its invented source ids with."""

Kind = Literal["CHILD", "HH", "ADULT"]


class Identities:
    """Numbers new synthetic people and households and turns them into pseudonyms (cached: one HMAC each)."""

    def __init__(self, la_code: str) -> None:
        self._hasher = Pseudonymiser(DEMO_PSEUDONYM_KEY)
        self._prefix = f"SIM-{la_code}"
        self._issued: Counter[Kind] = Counter()
        self._cache: dict[tuple[Kind, int], str] = {}

    def new(self, kind: Kind) -> int:
        """The number of a person or household never used before in this scenario."""
        self._issued[kind] += 1
        return self._issued[kind]

    def source_id(self, kind: Kind, number: int) -> str:
        """The invented source-system id, e.g. SIM-383-CHILD-000123 (the scenario's la_code keeps areas apart)."""
        return f"{self._prefix}-{kind}-{number:06d}"

    def pseudonym(self, kind: Kind, number: int) -> str:
        key = (kind, number)
        found = self._cache.get(key)
        if found is None:
            found = self._cache[key] = self._hasher.pseudonym(self.source_id(kind, number))
        return found


def event_uuid(rng: random.Random) -> str:
    """A version-4 UUID drawn from a seeded generator: unique in practice, identical on every run."""
    return str(uuid.UUID(int=rng.getrandbits(128), version=4))
