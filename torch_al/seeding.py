"""Seeds derived from several values, so every random choice of a run has its own stream and
reruns draw the same."""

import hashlib


def derived_seed(*parts: int | str) -> int:
    """A 63-bit seed from several values (seed, epoch, round, ...): no two tuples share a stream,
    unlike ``seed + epoch``, where (0, 1) and (1, 0) would."""
    digest = hashlib.sha256(",".join(map(str, parts)).encode()).digest()
    return int.from_bytes(digest[:8], "little") & (2**63 - 1)
