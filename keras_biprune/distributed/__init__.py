"""Scoring populations elsewhere: executors for `keras_biprune.Evaluator`.

An executor takes over `Evaluator.evaluate`: the evaluator sends it its
model and drawn subsets once, then every population to score. `RayExecutor`
maps them over a pool of Ray actors (``pip install 'keras-biprune[ray]'``),
one replica of the model each, with the same scores as in one process.

Example:

```python
import keras_biprune as kb
executor = kb.distributed.RayExecutor(num_actors=4)
pruner = kb.BiLevelPruner(model, target_flops=0.5, executor=executor)
pruner.fit(x_train, y_train, validation_data=(x_val, y_val))
executor.close()
```
"""

from keras_biprune.distributed.ray_executor import RayExecutor

__all__ = ["RayExecutor"]
