"""The candidate table's vector wire form: exact round trip, the older list form, and loud errors."""

from __future__ import annotations

import json

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st
from hypothesis.extra.numpy import arrays

from finpulse.contracts.exceptions import VectorFormatError
from finpulse.contracts.packing import pack_vector, unpack_vector


@given(arrays(np.float32, st.integers(0, 512), elements=st.floats(-1e6, 1e6, width=32)))
def test_round_trip_is_exact(vector: np.ndarray) -> None:
    packed = pack_vector(vector)
    assert json.loads(json.dumps({"v": packed}))["v"] == packed  # survives the table's JSON codec as one string
    assert np.array_equal(unpack_vector(packed), vector)


def test_packed_form_is_compact_and_the_list_form_still_reads() -> None:
    vector = np.random.default_rng(0).normal(size=384).astype(np.float32)
    packed = pack_vector(vector.astype(np.float64))  # any float input is stored as float32
    assert len(packed) == 2048 and len(packed) < len(json.dumps(np.round(vector, 5).tolist())) / 3
    assert np.array_equal(unpack_vector(packed), vector)
    assert np.allclose(unpack_vector([0.5, -0.25]), [0.5, -0.25])  # a value written before the packed form


def test_corrupt_values_are_named_errors() -> None:
    with pytest.raises(VectorFormatError, match="not base64"):
        unpack_vector("not base64!")
    with pytest.raises(VectorFormatError, match="5 bytes"):
        unpack_vector("AAAAAAA=")
