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
from keras_biprune.training.finetune import (
    Distiller,
    compile_config,
    finetune,
    is_classifier,
    recovery_epochs,
)
from keras_biprune.training.online_score import OnlineFilterScore

__all__ = ["Distiller", "OnlineFilterScore", "TrainingError", "compile_config", "finetune",
           "is_classifier", "recalibrate_batch_norm", "recovery_epochs"]
