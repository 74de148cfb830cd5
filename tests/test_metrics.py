"""WA, UA, macro-F1 and the confusion matrix on hand-computed cases."""

from __future__ import annotations

import pytest

from emo_toolkit.train.metrics import classification_metrics, mean_std


def test_metrics_by_hand():
    # true: 4 a, 2 b; predicted: a a a b | b a
    m = classification_metrics([0, 0, 0, 0, 1, 1], [0, 0, 0, 1, 1, 0], ["a", "b", "c"])
    assert m["wa"] == pytest.approx(4 / 6)
    assert m["ua"] == pytest.approx((3 / 4 + 1 / 2) / 2)  # c never occurs: not averaged
    assert m["confusion"] == [[3, 1, 0], [1, 1, 0], [0, 0, 0]]
    pa, ra = 3 / 4, 3 / 4
    pb, rb = 1 / 2, 1 / 2
    assert m["macro_f1"] == pytest.approx((2 * pa * ra / (pa + ra) + 2 * pb * rb / (pb + rb)) / 2)
    assert m["per_class"]["c"] == {"precision": 0.0, "recall": 0.0, "f1": 0.0, "support": 0}


def test_majority_guess_has_chance_ua():
    m = classification_metrics([0] * 8 + [1, 2], [0] * 10, ["x", "y", "z"])
    assert m["wa"] == pytest.approx(0.8) and m["ua"] == pytest.approx(1 / 3)


def test_mean_std_and_errors():
    assert mean_std([0.5, 0.7]) == pytest.approx({"mean": 0.6, "std": 0.1414213562})
    assert mean_std([0.5]) == {"mean": 0.5, "std": 0.0}
    with pytest.raises(ValueError):
        classification_metrics([0], [], ["a"])
