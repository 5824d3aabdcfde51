from __future__ import annotations

import numpy as np
import pytest

from finpulse.models.metrics import classification_report, confusion_matrix, format_report

LABELS = ("negative", "neutral", "positive")


def test_confusion_matrix_by_hand() -> None:
    y_true = [0, 0, 1, 1, 1, 2, 2, 2, 2, 0]
    y_pred = [0, 1, 1, 1, 0, 2, 2, 1, 2, 0]
    cm = confusion_matrix(y_true, y_pred, 3)
    assert cm.tolist() == [[2, 1, 0], [1, 2, 0], [0, 1, 3]]


def test_report_by_hand() -> None:
    # cm = [[2,1,0],[1,2,0],[0,1,3]]
    y_true = [0, 0, 1, 1, 1, 2, 2, 2, 2, 0]
    y_pred = [0, 1, 1, 1, 0, 2, 2, 1, 2, 0]
    r = classification_report(y_true, y_pred, LABELS)
    assert r["n"] == 10
    assert r["accuracy"] == pytest.approx(7 / 10)
    neg, neu, pos = (r["per_class"][k] for k in LABELS)
    # negative: tp 2, predicted 3, support 3
    assert neg["precision"] == pytest.approx(2 / 3)
    assert neg["recall"] == pytest.approx(2 / 3)
    assert neg["f1"] == pytest.approx(2 / 3)
    # neutral: tp 2, predicted 4, support 3 -> p .5, r 2/3, f1 = 2*.5*(2/3)/(.5+2/3) = 4/7
    assert neu["precision"] == pytest.approx(0.5)
    assert neu["recall"] == pytest.approx(2 / 3)
    assert neu["f1"] == pytest.approx(4 / 7)
    # positive: tp 3, predicted 3, support 4 -> p 1, r .75, f1 = 6/7
    assert pos["precision"] == pytest.approx(1.0)
    assert pos["recall"] == pytest.approx(0.75)
    assert pos["f1"] == pytest.approx(6 / 7)
    assert pos["support"] == 4
    assert r["macro_f1"] == pytest.approx((2 / 3 + 4 / 7 + 6 / 7) / 3)
    assert r["confusion_matrix"] == [[2, 1, 0], [1, 2, 0], [0, 1, 3]]
    assert "macro f1" in format_report(r, "t")


def test_class_never_predicted_has_zero_precision() -> None:
    r = classification_report([0, 1, 2], [0, 0, 0], LABELS)
    assert r["per_class"]["neutral"]["precision"] == 0.0
    assert r["per_class"]["neutral"]["f1"] == 0.0
    assert r["per_class"]["negative"]["precision"] == pytest.approx(1 / 3)
    assert r["accuracy"] == pytest.approx(1 / 3)


def test_matches_sklearn() -> None:
    from sklearn.metrics import f1_score, precision_recall_fscore_support

    rng = np.random.default_rng(0)
    y_true = rng.integers(0, 3, 500).tolist()
    y_pred = rng.integers(0, 3, 500).tolist()
    r = classification_report(y_true, y_pred, LABELS)
    p, rec, f, s = precision_recall_fscore_support(y_true, y_pred, labels=[0, 1, 2], zero_division=0)
    for i, label in enumerate(LABELS):
        assert r["per_class"][label]["precision"] == pytest.approx(p[i])
        assert r["per_class"][label]["recall"] == pytest.approx(rec[i])
        assert r["per_class"][label]["f1"] == pytest.approx(f[i])
    assert r["macro_f1"] == pytest.approx(f1_score(y_true, y_pred, average="macro"))


def test_bad_input_rejected() -> None:
    with pytest.raises(ValueError):
        confusion_matrix([0, 1], [0], 3)
    with pytest.raises(ValueError):
        confusion_matrix([0, 3], [0, 1], 3)
