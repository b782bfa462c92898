"""Training pruned models: fine-tuning with the user's setup, and distillation.

Example:

```python
import keras_biprune as kb
slim = kb.apply_plan(model, plan)
history = kb.training.finetune(slim, model, x_train, y_train, epochs=3, teacher=model)
```
"""

from keras_biprune.errors import TrainingError
from keras_biprune.training.bn import recalibrate_batch_norm
from keras_biprune.training.carry import load_optimizer_state as load_optimizer_state
from keras_biprune.training.carry import map_optimizer_state as map_optimizer_state
from keras_biprune.training.carry import optimizer_state as optimizer_state
from keras_biprune.training.finetune import (
    Distiller,
    compile_config,
    finetune,
    is_classifier,
    recovery_epochs,
)
from keras_biprune.training.finetune import compile_fresh as compile_fresh
from keras_biprune.training.finetune import steps_per_epoch as steps_per_epoch
from keras_biprune.training.online_score import OnlineFilterScore

__all__ = ["Distiller", "OnlineFilterScore", "TrainingError", "compile_config", "finetune",
           "is_classifier", "recalibrate_batch_norm", "recovery_epochs"]
# Also exported, for the estimators and not public API (the `x as x` imports): compiling a
# rebuilt model afresh, carrying an optimizer's state through surgery, the steps of an epoch.
