"""What the suite can run on the current Keras backend (KERAS_BACKEND)."""

import keras

ON_TENSORFLOW = keras.backend.backend() == "tensorflow"
# The sliced engine is TensorFlow's; every backend has the batched one.
ENGINES = ("batched", "sliced") if ON_TENSORFLOW else ("batched",)
