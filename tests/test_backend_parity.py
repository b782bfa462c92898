"""The same models and plans give TensorFlow's results on every Keras backend.

`tests/data/backend_reference.json` holds figures computed on TensorFlow:
the slim model's outputs, cost, criterion scores, evaluator scores (each
backend's own engine) and an NSGA-II front. Every backend must reproduce them
to float tolerance. Rewrite them on TensorFlow with
`python tests/test_backend_parity.py` when a zoo model or a plan changes.
"""

import json
import pathlib

import keras
import numpy as np
import pytest
from equivalence import outputs
from zoo import ZOO, sample_input

import keras_biprune as kb
from keras_biprune import search

pytestmark = pytest.mark.backends

REFERENCE = pathlib.Path(__file__).parent / "data" / "backend_reference.json"
MODELS = ["plain_chain", "residual", "inception", "depthwise_separable", "squeeze_excitation",
          "flatten_dense", "nested", "conv1d"]
CRITERIA = {"l1": "l1", "fpgm": "fpgm", "bn_scale": "bn_scale", "apoz": "apoz",
            "taylor": kb.criteria.Taylor(loss=keras.losses.MeanSquaredError())}


def _data(model, n=24):
    x = sample_input(model, n=n, seed=1)
    y = np.random.default_rng(2).normal(size=(n,) + tuple(model.output_shape[1:]))
    return x, y.astype("float32")


def figures(name):
    """What the reference holds for one zoo model, computed on the current backend."""
    keras.backend.clear_session()   # layer names, and so plans, as in a fresh process
    model = ZOO[name]()
    graph = kb.trace(model)
    plans = [kb.PruningPlan.random(graph, 0.5, seed=s) for s in range(3)]
    x, y = _data(model)
    criteria = {
        name: {group: values.tolist() for group, values in kb.criteria.scores(
            graph, model, criterion, data=(x, y)).items()}
        for name, criterion in CRITERIA.items()
    }
    evaluator = kb.Evaluator(model, (x, y), metric="mse", batch_size=8, eval_size=16,
                             calibration_size=8)
    return {
        "plans": [p.get_config() for p in plans],
        "outputs": outputs(kb.apply_plan(model, plans[0]), x[:4])[0].tolist(),
        "macs": [kb.cost(graph, p).macs for p in plans],
        "criteria": criteria,
        "scores": evaluator.evaluate(plans).tolist(),
    }


def search_figures():
    """An NSGA-II front on the plain chain: its plans and scores."""
    keras.backend.clear_session()
    model = ZOO["plain_chain"]()
    evaluator = kb.Evaluator(model, _data(model, n=32), metric="mse", batch_size=8,
                             eval_size=24, calibration_size=8)
    result = search.NSGA2Search(evaluator, target=0.6, population_size=6, generations=2,
                                verbose=0, random_state=0).run()
    return {"plans": [s.plan.get_config() for s in result.front],
            "scores": [s.score for s in result.front]}


@pytest.fixture(scope="module")
def reference():
    return json.loads(REFERENCE.read_text())


@pytest.mark.parametrize("name", MODELS)
def test_surgery_cost_criteria_and_scores_match_tensorflow(name, reference):
    want, got = reference["models"][name], figures(name)
    assert got["plans"] == want["plans"]
    assert got["macs"] == want["macs"]
    np.testing.assert_allclose(got["outputs"], want["outputs"], rtol=1e-4, atol=1e-5)
    for criterion in CRITERIA:
        assert got["criteria"][criterion].keys() == want["criteria"][criterion].keys()
        for group, values in want["criteria"][criterion].items():
            np.testing.assert_allclose(got["criteria"][criterion][group], values,
                                       rtol=1e-3, atol=1e-6, err_msg=f"{criterion} {group}")
    np.testing.assert_allclose(got["scores"], want["scores"], rtol=1e-3)


def test_a_search_finds_tensorflows_front(reference):
    got, want = search_figures(), reference["search"]
    assert got["plans"] == want["plans"]
    np.testing.assert_allclose(got["scores"], want["scores"], rtol=1e-3)


if __name__ == "__main__":
    if keras.backend.backend() != "tensorflow":
        raise SystemExit(f"The reference is TensorFlow's. Received: KERAS_BACKEND="
                         f"{keras.backend.backend()!r}. Run with KERAS_BACKEND=tensorflow.")
    REFERENCE.parent.mkdir(exist_ok=True)
    REFERENCE.write_text(json.dumps(
        {"models": {name: figures(name) for name in MODELS}, "search": search_figures()}))
