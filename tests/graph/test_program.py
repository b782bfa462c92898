"""GraphProgram: a model flattened into steps runs like the model."""

import keras
import numpy as np
import pytest
from zoo import ZOO, sample_input

from keras_biprune.graph.program import GraphProgram


@pytest.mark.parametrize("name", ["nested", "multi_io", "shared_layer"])
def test_the_flattened_program_computes_the_models_outputs(name):
    model = ZOO[name]()
    x = sample_input(model, n=2)
    inputs = [keras.ops.convert_to_tensor(a) for a in keras.tree.flatten(x)]
    outputs, _ = GraphProgram(model).run(inputs)
    for got, want in zip(outputs, keras.tree.flatten(model(x, training=False))):
        np.testing.assert_allclose(keras.ops.convert_to_numpy(got),
                                   keras.ops.convert_to_numpy(want), atol=1e-5)
