import json

import numpy as np

from finpulse.export.runtime.vectors import EMBEDDING_DECIMALS, rounded_rows


def test_rounded_rows_write_only_the_kept_decimals() -> None:
    rng = np.random.default_rng(0)
    matrix = rng.normal(size=(3, 384)).astype(np.float32)
    matrix /= np.linalg.norm(matrix, axis=1, keepdims=True)
    rows = rounded_rows(matrix)
    assert len(rows) == 3 and all(len(r) == 384 for r in rows)
    for number in rows[0]:
        text = repr(number)
        assert len(text.split(".")[1].split("e")[0]) <= EMBEDDING_DECIMALS or "e" in text
        assert number == round(number, EMBEDDING_DECIMALS)
    assert np.allclose(np.asarray(rows, np.float32), matrix, atol=0.6 * 10**-EMBEDDING_DECIMALS)
    # The float32 way this replaced wrote 17 significant digits per number: more than twice the bytes.
    assert len(json.dumps(np.round(matrix, EMBEDDING_DECIMALS).tolist())) > 2 * len(json.dumps(rows))


def test_rounded_rows_takes_its_decimals() -> None:
    assert rounded_rows(np.array([[0.123456, -0.98765]], np.float32), 2) == [[0.12, -0.99]]
