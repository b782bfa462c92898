"""Fine-tuning a pruned model the way the user trained the original one."""

import copy
import logging
import math
import numbers

import keras
import numpy as np

from keras_biprune._backend import distribution_scope
from keras_biprune._data import fit_inputs
from keras_biprune.errors import TrainingError

logger = logging.getLogger(__name__)


def finetune(model, original, x=None, y=None, *, compile_kwargs=None, callbacks=None,
             teacher=None, temperature=4.0, alpha=0.5, kernel_masks=None, shuffle_seed=None,
             schedule=None, patience=None, **fit_kwargs):
    """Fine-tunes a pruned model with the original model's training setup.

    The pruned model is compiled (and stays compiled) with a fresh copy of
    the original's optimizer, loss and metrics (``original.get_compile_config()``), or with
    ``compile_kwargs``. Callbacks are deep-copied, so the user's objects keep
    their state. With a ``teacher``, the loss is ``alpha`` × the original
    loss + (1 − ``alpha``) × T² × the KL divergence between the teacher's
    and the model's softened outputs (temperature T; outputs that are
    probabilities are turned into log-probabilities first).

    ``kernel_masks`` (``{layer_name: bool (in, filters) mask}``) are held as
    exact zeros: after every optimizer step the masked kernel entries are
    set back to 0. If the run is interrupted (``KeyboardInterrupt``), the
    weights of the best epoch so far (by validation accuracy, else
    ``val_loss``, else ``loss``) are restored and the history up to then is
    returned.

    Training runs on the devices of a distribution: on TensorFlow under the
    ``tf.distribute`` strategy whose scope is open, else the one ``model``
    was built under (the teacher's frozen copy and the optimizer are created
    under it too); on JAX under the ``keras.distribution`` that is set, with
    NumPy arrays cut by fewer samples than the devices so that every batch
    splits evenly among them.

    With ``schedule="cosine"`` the learning rate starts at the original
    optimizer's and decays to zero along a cosine over the whole run (its
    steps are counted from the data; an optimizer whose learning rate is
    already a schedule keeps it). With ``patience``, training stops once the
    validation accuracy (else ``val_loss``) has not improved for that many
    epochs, and the weights of the best epoch are restored at the end.

    Args:
        model: the pruned model; trained in place.
        original: the model it was pruned from, compiled (its setup is copied).
        x: training data, as ``model.fit`` takes it. NumPy arrays are fed
            through a ``tf.data`` pipeline with autotuning off (TensorFlow
            backend), which avoids a long stall after each epoch.
        y: training targets, as ``model.fit`` takes them.
        compile_kwargs: ``model.compile`` arguments that replace the
            original's setup.
        callbacks: Keras callbacks (deep-copied).
        teacher: a model to distill from (usually ``original``), or None.
        temperature: the distillation temperature T.
        alpha: the weight of the original loss.
        kernel_masks: see above.
        shuffle_seed: seed of the shuffle of NumPy training data.
        schedule: ``"cosine"`` or None (the optimizer's own learning rate).
        patience: epochs without improvement before stopping (needs
            ``validation_data``), or None to run every epoch.
        **fit_kwargs: passed to ``model.fit`` (``epochs``, ``batch_size``,
            ``validation_data``, …).

    Returns:
        The Keras ``History``; ``history.interrupted`` is True when the run
        was interrupted.

    Example:

    ```python
    slim = kb.apply_plan(model, plan)
    history = kb.training.finetune(slim, model, x_train, y_train, epochs=3,
                                   validation_data=(x_val, y_val), teacher=model)
    ```
    """
    if not 0 <= alpha <= 1 or temperature <= 0:
        raise TrainingError(
            f"Distillation needs 0 <= alpha <= 1 and temperature > 0. Received: alpha={alpha!r}, "
            f"temperature={temperature!r}. Use e.g. alpha=0.5, temperature=4."
        )
    if schedule not in (None, "cosine"):
        raise TrainingError(f"schedule must be 'cosine' or None. Received: schedule={schedule!r}.")
    config = compile_config(original, compile_kwargs)
    x, fit_kwargs = fit_inputs(x, y, fit_kwargs, shuffle_seed)
    if schedule == "cosine":
        config = _with_cosine_decay(config, _steps(x, fit_kwargs))
    with distribution_scope(model):           # the teacher's copy, optimizer and fit
        trained = model if teacher is None else Distiller(model, teacher, temperature, alpha)
        for target in {id(model): model, id(trained): trained}.values():
            compile_fresh(target, config, compile_kwargs)
        best = _BestWeights(model, patience if fit_kwargs.get("validation_data") is not None
                            else None)
        callbacks = [best, *copy.deepcopy(list(callbacks or []))]
        restore = _hold_zeros(model, kernel_masks or {})
        try:
            history = trained.fit(x, callbacks=callbacks, **fit_kwargs)
            history.interrupted = False
            if patience is not None:
                best.restore()
        except KeyboardInterrupt:
            logger.warning("Fine-tuning interrupted: keeping the best weights so far (epoch %s).",
                           best.best_epoch)
            best.restore()
            history = trained.history
            history.interrupted = True
        finally:
            restore()
        return history


def compile_fresh(model, config, compile_kwargs):
    """Compiles ``model`` with fresh objects from ``config`` (from `compile_config`).

    The original's config is deserialized anew; an optimizer instance in
    ``compile_kwargs`` is copied, so every compile (each fine-tuned candidate,
    each architecture change) starts from its own unbuilt optimizer.
    """
    if compile_kwargs is None:
        model.compile_from_config(config)
        return
    config = dict(config)
    optimizer = config.get("optimizer")
    if isinstance(optimizer, keras.optimizers.Optimizer):
        config["optimizer"] = type(optimizer).from_config(optimizer.get_config())
    model.compile(**config)


def compile_config(original, compile_kwargs=None):
    """The compile setup to copy: ``compile_kwargs`` or the original's compile config.

    Raises:
        TrainingError: no ``compile_kwargs`` and the original is not compiled
            with a loss, or ``compile_kwargs`` without a loss.

    Example:

    ```python
    config = kb.training.compile_config(model)         # model.get_compile_config()
    slim.compile_from_config(config)                   # a fresh optimizer, same loss
    ```
    """
    if compile_kwargs is not None:
        if not isinstance(compile_kwargs, dict) or "loss" not in compile_kwargs:
            raise TrainingError(
                "compile_kwargs must be a dict of model.compile arguments with a loss. Received: "
                f"compile_kwargs={compile_kwargs!r}. Example: compile_kwargs={{'optimizer': "
                "'adam', 'loss': 'sparse_categorical_crossentropy', 'metrics': ['accuracy']}."
            )
        return dict(compile_kwargs)
    config = original.get_compile_config() if getattr(original, "compiled", False) else None
    if not config or config.get("loss") is None:
        raise TrainingError(
            f"Fine-tuning copies the original model's optimizer, loss and metrics, but model "
            f"{original.name!r} is not compiled with a loss. Received: an uncompiled model. "
            "Compile it (model.compile(optimizer, loss, metrics)) or pass compile_kwargs."
        )
    return config


class Distiller(keras.Model):
    """Trains ``student`` on its loss plus the KL divergence to a frozen ``teacher``.

    Calling it calls the student, so compiled metrics measure the student.
    The teacher is a frozen copy: the user's model is not touched.

    Example:

    ```python
    distiller = kb.training.Distiller(slim, model, temperature=4.0, alpha=0.5)
    distiller.compile(optimizer="adam", loss="sparse_categorical_crossentropy")
    distiller.fit(x_train, y_train, epochs=2)          # trains slim
    ```
    """

    def __init__(self, student, teacher, temperature, alpha):
        super().__init__(name=f"{student.name}_distiller")
        self.student = student
        self.teacher = keras.models.clone_model(teacher)
        self.teacher.set_weights(teacher.get_weights())
        self.teacher.trainable = False
        self.temperature = float(temperature)
        self.alpha = float(alpha)

    def call(self, inputs, training=False):
        return self.student(inputs, training=training)

    def compute_loss(self, x=None, y=None, y_pred=None, sample_weight=None, training=True):
        hard = super().compute_loss(x, y, y_pred, sample_weight, training)
        soft_teacher = _log_probabilities(self.teacher(x, training=False)) / self.temperature
        soft_student = _log_probabilities(y_pred) / self.temperature
        p_teacher = keras.ops.softmax(soft_teacher, axis=-1)
        kl = keras.ops.sum(p_teacher * (keras.ops.log_softmax(soft_teacher, axis=-1)
                                        - keras.ops.log_softmax(soft_student, axis=-1)), axis=-1)
        return self.alpha * hard + (1 - self.alpha) * self.temperature**2 * keras.ops.mean(kl)


def _log_probabilities(outputs):
    """Logits as they are; probabilities (rows in [0, 1] summing to 1) as their log."""
    outputs = keras.ops.convert_to_tensor(outputs)
    is_probability = keras.ops.logical_and(
        keras.ops.all(outputs >= 0),
        keras.ops.all(keras.ops.abs(keras.ops.sum(outputs, axis=-1) - 1) < 1e-3))
    return keras.ops.where(is_probability, keras.ops.log(keras.ops.maximum(outputs, 1e-7)),
                           outputs)


class _BestWeights(keras.callbacks.Callback):
    """Remembers the weights of the best epoch; with ``patience``, stops when they stop improving.

    The best epoch has the highest validation accuracy when one is logged,
    else the lowest ``val_loss``, else the lowest ``loss``.
    """

    def __init__(self, student, patience=None):
        super().__init__()
        self.student = student
        self.patience = patience
        self.best, self.best_epoch, self.weights = -np.inf, None, None

    def on_epoch_end(self, epoch, logs=None):
        value = _progress_value(logs or {})
        if value is None:
            return
        if value > self.best:
            self.best, self.best_epoch = value, epoch + 1
            self.weights = self.student.get_weights()
        elif self.patience is not None and epoch + 1 - self.best_epoch >= self.patience:
            self.model.stop_training = True

    def restore(self):
        if self.weights is not None:
            self.student.set_weights(self.weights)


_ACCURACIES = ("val_accuracy", "val_sparse_categorical_accuracy", "val_categorical_accuracy",
               "val_acc")


def _progress_value(logs):
    """Higher is better: validation accuracy, else minus ``val_loss``, else minus ``loss``."""
    for name in _ACCURACIES:
        if name in logs:
            return float(logs[name])
    for name in ("val_loss", "loss"):
        if name in logs:
            return -float(logs[name])
    return None


def steps_per_epoch(x, fit_kwargs):
    """Optimizer steps an epoch of ``x`` takes, or None when the data does not say.

    ``steps_per_epoch`` in ``fit_kwargs`` first; NumPy arrays by their
    ``batch_size`` (32 by default); datasets by their cardinality; other
    sequences (``keras.utils.PyDataset``) by their length.
    """
    if fit_kwargs.get("steps_per_epoch"):
        return fit_kwargs["steps_per_epoch"]
    if isinstance(x, np.ndarray):
        return math.ceil(len(x) / (fit_kwargs.get("batch_size") or 32))
    if hasattr(x, "cardinality"):
        return int(x.cardinality()) if int(x.cardinality()) > 0 else None
    return len(x) if hasattr(x, "__len__") else None


def _steps(x, fit_kwargs):
    """Optimizer steps of the whole run, or None when the data does not say."""
    per_epoch = steps_per_epoch(x, fit_kwargs)
    return None if per_epoch is None else per_epoch * fit_kwargs.get("epochs", 1)


def _with_cosine_decay(config, steps):
    """``config`` whose optimizer's learning rate decays along a cosine over ``steps``.

    The decay starts at the optimizer's learning rate, or at the initial rate
    of its schedule (a schedule that decayed over the original training ends
    near zero, too low to recover with).
    """
    optimizer = keras.optimizers.get(copy.deepcopy(config.get("optimizer") or "rmsprop"))
    rate = getattr(optimizer, "_learning_rate", None)
    rate = getattr(rate, "initial_learning_rate", rate)
    if steps is None or not isinstance(rate, numbers.Real | keras.Variable):
        logger.info("The learning rate stays as the optimizer has it (the steps of the run "
                    "are unknown, or its schedule has no initial rate).")
        return config
    settings = optimizer.get_config()
    start = float(keras.ops.convert_to_numpy(rate))      # a distributed variable has no float()
    settings["learning_rate"] = keras.optimizers.schedules.CosineDecay(start, steps)
    return {**config,
            "optimizer": keras.optimizers.serialize(type(optimizer).from_config(settings))}


def is_classifier(original, compile_kwargs=None):
    """True when the loss of the fine-tuning setup is a categorical cross-entropy.

    Distillation (the KL divergence of softened class distributions) suits
    such models, so `keras_biprune.BiLevelPruner` distills them by default.

    Example:

    ```python
    model.compile("adam", "sparse_categorical_crossentropy")
    kb.training.is_classifier(model)                     # True
    ```
    """
    loss = compile_config(original, compile_kwargs).get("loss")
    if isinstance(loss, dict):
        loss = loss.get("class_name", "") + str(loss.get("config", {}).get("name", ""))
    name = str(getattr(loss, "name", None) or getattr(loss, "__name__", None) or loss).lower()
    return "categorical" in name and "crossentropy" in name


# Fine-tuning without ``epochs`` runs about this many optimizer steps (see `recovery_epochs`).
RECOVERY_STEPS = 2000


def recovery_epochs(steps_per_epoch, low=2, high=30):
    """Epochs of about `RECOVERY_STEPS` optimizer steps, at least ``low``, at most ``high``.

    Example:

    ```python
    kb.training.recovery_epochs(steps_per_epoch=45)      # 30: a small data set
    kb.training.recovery_epochs(steps_per_epoch=1700)    # 2: 54,000 images in batches of 32
    ```
    """
    return int(min(high, max(low, math.ceil(RECOVERY_STEPS / max(1, steps_per_epoch)))))


def _hold_zeros(model, kernel_masks):
    """Sets kernel constraints that re-zero masked entries; returns a function undoing it."""
    saved = []
    for name, mask in kernel_masks.items():
        kernel = model.get_layer(name).kernel
        keep = np.broadcast_to(np.asarray(mask, dtype=kernel.dtype), kernel.shape).copy()
        saved.append((kernel, kernel.constraint))
        kernel.assign(kernel * keep)
        kernel.constraint = _MaskConstraint(keep)

    def restore():
        for kernel, constraint in saved:
            kernel.constraint = constraint

    return restore


class _MaskConstraint(keras.constraints.Constraint):
    def __init__(self, keep):
        self.keep = keep

    def __call__(self, w):
        return w * keras.ops.convert_to_tensor(self.keep, dtype=w.dtype)
