"""The pseudonymisation toolkit: keyed HMAC-SHA256 of source identifiers, run inside the agency boundary.

Every agency of a partnership uses the same key and the same normalisation, so the same child gets the
same pseudonym whichever agency publishes; without the key a pseudonym cannot be reversed or recomputed.

Normalisation: surrounding white space is removed, inner spaces and hyphens are removed, letters are
upper-cased ("943 476 5919" and "9434765919" give the same pseudonym). The same from a shell:

    printf '%s' 9434765919 | openssl dgst -sha256 -hmac "$SAFEGUARD_PSEUDONYM_KEY" -r | cut -c1-64
"""

from __future__ import annotations

import hashlib
import hmac
import re

from schemas.errors import ConfigError, PseudonymKeyMissing

_SEPARATORS = re.compile(r"[\s-]+")
MIN_KEY_BYTES = 16


def normalise(source_id: str) -> str:
    """The canonical form of a source identifier before it is hashed."""
    return _SEPARATORS.sub("", source_id.strip()).upper()


class Pseudonymiser:
    """Turns source identifiers into pseudonyms with one secret key. Construct once, call many times."""

    def __init__(self, key: bytes) -> None:
        if not key:
            raise PseudonymKeyMissing(
                "no pseudonymisation key: set SAFEGUARD_PSEUDONYM_KEY (the partnership's shared secret, "
                "at least 16 characters)"
            )
        if len(key) < MIN_KEY_BYTES:
            raise ConfigError(f"SAFEGUARD_PSEUDONYM_KEY is too short: use at least {MIN_KEY_BYTES} characters")
        self._key = key

    @classmethod
    def from_secret(cls, secret: str | None) -> Pseudonymiser:
        return cls((secret or "").encode("utf-8"))

    def __repr__(self) -> str:  # never show the key
        return "Pseudonymiser(key=***)"

    def pseudonym(self, source_id: str) -> str:
        """64 lowercase hex characters: HMAC-SHA256(key, normalise(source_id))."""
        canonical = normalise(source_id)
        if not canonical:
            raise ValueError("cannot pseudonymise an empty identifier")
        return hmac.new(self._key, canonical.encode("utf-8"), hashlib.sha256).hexdigest()
