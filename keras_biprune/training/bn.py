"""Re-estimating batch-norm statistics of a (pruned or fine-tuned) model."""

import keras

from keras_biprune._data import batches


def recalibrate_batch_norm(model, data, max_batches=32, batch_size=128):
    """Replaces every BatchNormalization's moving statistics by their average over data.

    Pruning shifts the statistics of the layers after a pruned one, and a
    short fine-tune with the usual momentum (0.99) leaves them stale. This
    runs the model in training mode over up to ``max_batches`` batches with
    the momentum of batch ``k`` set to ``k / (k + 1)``, so the moving mean
    and variance become the averages of the per-batch moments, then puts the
    momenta back. Only the moving statistics change: no weight is trained.

    Args:
        model: a Keras model; changed in place.
        data: inputs or ``(x, y)``, as arrays (cut into ``batch_size``
            batches) or a dataset of batches.
        max_batches: the most batches to average over.
        batch_size: batch size for arrays.

    Returns:
        The number of batches used.

    Example:

    ```python
    slim = kb.apply_plan(model, plan)
    kb.training.recalibrate_batch_norm(slim, x_train[:4096])
    ```
    """
    layers = [layer for layer in _layers(model)
              if isinstance(layer, keras.layers.BatchNormalization)]
    if not layers:
        return 0
    momenta = [layer.momentum for layer in layers]
    count = 0
    try:
        for count, (xs, _) in enumerate(batches(data, model, "batch-norm recalibration",
                                                max_batches, batch_size)):
            for layer in layers:
                layer.momentum = count / (count + 1)
            model(xs if len(xs) > 1 else xs[0], training=True)
    finally:
        for layer, momentum in zip(layers, momenta):
            layer.momentum = momentum
    return count + 1


def _layers(model):
    for layer in model.layers:
        yield layer
        if hasattr(layer, "layers"):
            yield from _layers(layer)
