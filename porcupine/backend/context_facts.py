"""What a CryptoContext was built with that OpenFHE has no getter for: read from its
serialization, remembered per context.

Part of every emitted kernel module: :mod:`porcupine.backend.openfhe_emit` copies everything
below the ``context facts`` marker after the runtime (:mod:`porcupine.backend.runtime`),
whose context checks use it; the imports above the marker are there for ruff and mypy.
"""

from __future__ import annotations

import json

import openfhe

# --- context facts: copied into every emitted module ---

# OpenFHE's SecurityLevel names by value, the value its serialization stores.
_LEVELS: dict[int, str] = {
    int(level): name for name, level in openfhe.SecurityLevel.__members__.items()
}
_ADVANCED_SHE_BIT = 16  # openfhe.ADVANCEDSHE in the serialized "enabled" feature mask


def classic_bits(level: str) -> int:
    """The classic security of a SecurityLevel name, in bits: none for HEStd_NotSet, and a
    quantum level's classic security is at least its number."""
    return 0 if level == "HEStd_NotSet" else int(level.split("_")[1])


def _find(tree: object, key: str) -> object:
    """The first value stored under ``key`` anywhere in a JSON tree."""
    stack = [tree]
    while stack:
        node = stack.pop()
        if isinstance(node, dict):
            if key in node:
                return node[key]
            stack.extend(node.values())
        elif isinstance(node, list):
            stack.extend(node)
    raise KeyError(key)


def _serialized(cc: openfhe.CryptoContext) -> object:
    """``cc``'s settings as OpenFHE serializes them (about a millisecond; no keys)."""
    return json.loads(openfhe.Serialize(cc, openfhe.JSON))


# Facts about contexts that never change, by context object: OpenFHE contexts of equal
# parameters compare and hash equal whatever their features, so no functools cache here.
# Each entry keeps its context alive, so its id is not reused while it is cached.
_KNOWN: dict[tuple[int, str], tuple[openfhe.CryptoContext, object]] = {}


def _remember(cc: openfhe.CryptoContext, what: str, value: object) -> None:
    if len(_KNOWN) >= 16:
        del _KNOWN[next(iter(_KNOWN))]
    _KNOWN[id(cc), what] = (cc, value)


def _known(cc: openfhe.CryptoContext, what: str) -> object:
    entry = _KNOWN.get((id(cc), what))
    return entry[1] if entry is not None and entry[0] is cc else None


def fixed_settings(cc: openfhe.CryptoContext) -> tuple[str, str]:
    """The SecurityLevel and MultiplicationTechnique names ``cc`` was built with.

    OpenFHE has no getter for them; its serialization stores them as ``slv`` and ``muls``.
    Remembered per context: they never change.
    """
    known = _known(cc, "settings")
    if isinstance(known, tuple):
        return known
    tree = _serialized(cc)
    techniques = {int(v): k for k, v in openfhe.MultiplicationTechnique.__members__.items()}
    level = _LEVELS[int(str(_find(tree, "slv")))]
    settings = level, techniques.get(int(str(_find(tree, "muls"))), "unknown")
    _remember(cc, "settings", settings)
    return settings
