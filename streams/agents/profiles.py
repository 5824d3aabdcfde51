"""User profiles: the recent clicked article ids (bounded) and the user vector from the user tower.

A profile is stored in a Faust table as a plain dict (:meth:`Profile.dump`); :func:`update_profile` is
pure, so the agent and the tests share it.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from finpulse.export.runtime.ranking import CandidatePool, UserTower
from finpulse.export.runtime.vectors import rounded_rows

VECTOR_DECIMALS = 5


@dataclass
class Profile:
    user_id: str
    clicked: list[str] = field(default_factory=list)  # oldest first, at most profile_length
    vector: list[float] | None = None
    clicks: int = 0
    impressions: int = 0
    updated_at: float = 0.0  # the last click or impression (the profile expires when idle for long)
    partition: int | None = None  # the table partition the profile lives in (where its deletion must go)

    @classmethod
    def load(cls, user_id: str, value: dict[str, Any] | None) -> Profile:
        if value is None:
            return cls(user_id)
        partition = value.get("p")
        return cls(
            user_id, list(value.get("clicked", [])), value.get("vector"), int(value.get("clicks", 0)),
            int(value.get("impressions", 0)), float(value.get("updated_at", 0.0)),
            None if partition is None else int(partition),
        )

    def dump(self, partition: int | None = None) -> dict[str, Any]:
        """The table value; ``partition`` is the one the write goes to (default: the profile's own)."""
        return {
            "clicked": self.clicked, "vector": self.vector, "clicks": self.clicks,
            "impressions": self.impressions, "updated_at": self.updated_at,
            "p": self.partition if partition is None else partition,
        }

    def user_vector(self) -> np.ndarray | None:
        return None if self.vector is None else np.asarray(self.vector, np.float32)


def update_profile(
    profile: Profile,
    clicked: Sequence[str],
    impressions: int,
    pool: CandidatePool,
    tower: UserTower,
    length: int,
    now: float,
) -> Profile:
    """``profile`` after these clicks (in order) and impressions; the vector is re-encoded from the history.

    Clicked ids stay unique (a re-click moves the id to the most recent end). History articles no longer in
    the candidate pool keep their id (for exclusion) but cannot feed the vector; when none is left the old
    vector is kept.
    """
    history = [aid for aid in profile.clicked if aid not in set(clicked)]
    for aid in clicked:
        if aid in history:
            history.remove(aid)
        history.append(aid)
    history = history[-length:]
    vector = profile.vector
    if clicked:
        vectors, found = pool.vectors_of(history)
        if found.any():
            vector = rounded_rows(tower.encode(vectors, found)[None], VECTOR_DECIMALS)[0]
    return Profile(
        profile.user_id, history, vector, profile.clicks + len(clicked), profile.impressions + impressions,
        now if (clicked or impressions) else profile.updated_at, profile.partition,
    )
