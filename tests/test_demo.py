"""The README's demo runs end to end on offline data."""

import keras

from keras_biprune import demo
from keras_biprune.datasets import load_digits


def test_digits_split_is_reproducible_and_disjoint():
    (a, ya), (b, yb) = load_digits(seed=1)
    (a2, _), _ = load_digits(seed=1)
    assert a.shape[1:] == (8, 8, 1) and len(a) + len(b) == 1797
    assert (a == a2).all() and 0 <= a.min() and a.max() <= 1
    assert set(ya) == set(range(10)) and set(yb) <= set(range(10))


def test_demo_writes_a_loadable_slim_model(tmp_path, capsys):
    demo.main(["--epochs", "1", "--finetune-epochs", "1", "--out", str(tmp_path)])
    slim = keras.saving.load_model(tmp_path / "slim.keras")
    assert slim.count_params() < demo.build_model().count_params()
    assert (tmp_path / "plan.json").read_text().startswith('{"format"')
    line = next(l for l in capsys.readouterr().out.splitlines() if "slim vs masked" in l)
    assert float(line.rsplit("=", 1)[1]) < 1e-4
