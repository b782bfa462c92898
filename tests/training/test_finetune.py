"""Fine-tuning: the user's setup copied, distillation, zero kernels held, interruption, BN."""

import keras
import numpy as np
import pytest
from zoo import tiny_classification

import keras_biprune as kb
from keras_biprune.training import TrainingError, finetune, recalibrate_batch_norm


def _model(name="net", bn=True):
    inputs = keras.Input((8, 8, 1))
    h = keras.layers.Conv2D(6, 3, padding="same", name="c1")(inputs)
    if bn:
        h = keras.layers.BatchNormalization(name="bn1")(h)
    h = keras.layers.ReLU()(h)
    h = keras.layers.Conv2D(8, 3, padding="same", name="c2")(h)
    h = keras.layers.GlobalAveragePooling2D()(h)
    return keras.Model(inputs, keras.layers.Dense(3, name="fc")(h), name=name)


@pytest.fixture(scope="module")
def data():
    return tiny_classification(96)


@pytest.fixture()
def original():
    keras.utils.set_random_seed(0)
    model = _model()
    model.compile(keras.optimizers.Adam(1e-2),
                  keras.losses.SparseCategoricalCrossentropy(from_logits=True),
                  metrics=["accuracy"])
    return model


def _slim(model, **plan_kwargs):
    graph = kb.trace(model)
    return kb.apply_plan(model, kb.PruningPlan({"c1": [0, 1, 2, 4]}, signature=graph.signature,
                                               **plan_kwargs))


def test_the_slim_model_gets_a_fresh_copy_of_the_original_setup(original, data):
    slim = _slim(original)
    history = finetune(slim, original, *data, epochs=2, batch_size=32, verbose=0)
    assert slim.optimizer is not original.optimizer
    assert type(slim.optimizer) is keras.optimizers.Adam
    assert float(slim.optimizer.learning_rate) == pytest.approx(1e-2)
    assert int(original.optimizer.iterations) == 0
    assert set(history.history) == {"loss", "accuracy"} and len(history.history["loss"]) == 2
    assert history.interrupted is False


def test_an_uncompiled_original_needs_compile_kwargs(data):
    model = _model()
    with pytest.raises(TrainingError, match="not compiled with a loss"):
        finetune(_slim(model), model, *data, epochs=1, verbose=0)
    history = finetune(_slim(model), model, *data, epochs=1, verbose=0,
                       compile_kwargs={"optimizer": "sgd", "loss": "sparse_categorical_crossentropy"})
    assert "loss" in history.history
    with pytest.raises(TrainingError, match="with a loss"):
        finetune(_slim(model), model, *data, compile_kwargs={"optimizer": "sgd"})


def test_callbacks_are_copied_not_mutated(original, data):
    class Count(keras.callbacks.Callback):
        epochs = 0

        def on_epoch_end(self, epoch, logs=None):
            self.epochs += 1

    mine = Count()
    finetune(_slim(original), original, *data, epochs=2, callbacks=[mine], verbose=0)
    assert mine.epochs == 0


def test_masked_kernel_entries_stay_exact_zeros(original, data):
    mask = np.ones((4, 8), dtype=bool)
    mask[0, :5] = False
    slim = _slim(original, kernels={"c2": np.pad(mask, ((0, 2), (0, 0)), constant_values=True)})
    kernel = slim.get_layer("c2").kernel
    before = keras.ops.convert_to_numpy(kernel)
    finetune(slim, original, *data, epochs=2, kernel_masks={"c2": mask}, verbose=0)
    after = keras.ops.convert_to_numpy(kernel)
    assert (after[..., ~mask] == 0).all()
    assert not np.allclose(after[..., mask], before[..., mask])
    assert kernel.constraint is None


@pytest.mark.backends
def test_distillation_pulls_the_student_toward_a_frozen_copy_of_the_teacher(data):
    x, y = data
    keras.utils.set_random_seed(1)
    teacher = _model("teacher", bn=False)
    teacher.compile(keras.optimizers.Adam(1e-2),
                    keras.losses.SparseCategoricalCrossentropy(from_logits=True))
    teacher.fit(x, y, epochs=5, verbose=0)
    teacher_weights = teacher.get_weights()
    student = _model("student", bn=False)

    def gap():
        p, q = (keras.ops.softmax(m.predict(x, verbose=0)) for m in (student, teacher))
        return float(keras.ops.mean(keras.ops.abs(p - q)))

    before = gap()
    finetune(student, teacher, x, y, epochs=5, teacher=teacher, alpha=0.0, temperature=1.0,
             verbose=0)
    assert gap() < before / 2
    for a, b in zip(teacher_weights, teacher.get_weights()):
        np.testing.assert_array_equal(a, b)
    with pytest.raises(TrainingError, match="alpha"):
        finetune(student, teacher, x, y, teacher=teacher, alpha=1.5)


def test_an_interrupted_run_keeps_the_best_epoch(original, data):
    seen = {}

    class Stop(keras.callbacks.Callback):
        def on_epoch_end(self, epoch, logs=None):
            seen[epoch] = (logs["loss"], [np.array(w) for w in self.model.get_weights()])
            if epoch == 2:
                raise KeyboardInterrupt

    slim = _slim(original)
    history = finetune(slim, original, *data, epochs=10, callbacks=[Stop()], verbose=0)
    assert history.interrupted is True
    # The copied callback raised after epoch 3; the best epoch's weights are back.
    best = min(seen, key=lambda e: seen[e][0])
    for a, b in zip(seen[best][1], slim.get_weights()):
        np.testing.assert_array_equal(a, b)


def test_recalibration_sets_moving_statistics_to_the_data_moments():
    inputs = keras.Input((3,))
    model = keras.Model(inputs, keras.layers.BatchNormalization(name="bn")(inputs))
    x = np.random.default_rng(0).normal(2.0, 3.0, size=(256, 3)).astype("float32")
    assert recalibrate_batch_norm(model, x, max_batches=4, batch_size=64) == 4
    bn = model.get_layer("bn")
    np.testing.assert_allclose(keras.ops.convert_to_numpy(bn.moving_mean), x.mean(axis=0), rtol=1e-4)
    per_batch_var = np.mean([x[i:i + 64].var(axis=0) for i in range(0, 256, 64)], axis=0)
    np.testing.assert_allclose(keras.ops.convert_to_numpy(bn.moving_variance), per_batch_var, rtol=1e-3)
    assert bn.momentum == 0.99


def test_finetuning_inside_a_distribution_strategy_scope(data):
    import tensorflow as tf

    strategy = tf.distribute.MirroredStrategy(["/cpu:0"])
    with strategy.scope():
        model = _model()
        model.compile("adam", keras.losses.SparseCategoricalCrossentropy(from_logits=True))
        slim = _slim(model)
        history = finetune(slim, model, *data, epochs=1, verbose=0)
    assert np.isfinite(history.history["loss"][0])


def test_the_cosine_schedule_decays_from_the_original_rate_to_zero_over_the_run(original, data):
    slim = _slim(original)
    finetune(slim, original, *data, epochs=2, batch_size=32, schedule="cosine", verbose=0)
    schedule = slim.optimizer._learning_rate
    assert isinstance(schedule, keras.optimizers.schedules.CosineDecay)
    assert schedule.initial_learning_rate == pytest.approx(1e-2)
    assert schedule.decay_steps == 6                   # 96 samples in batches of 32, twice
    assert int(slim.optimizer.iterations) == 6
    assert float(slim.optimizer.learning_rate) == pytest.approx(0.0, abs=1e-9)
    with pytest.raises(TrainingError, match="schedule must be"):
        finetune(slim, original, *data, schedule="linear")


def test_patience_stops_when_validation_accuracy_stalls_and_restores_the_best_epoch():
    from keras_biprune.training.finetune import _BestWeights

    student = _model()
    callback = _BestWeights(student, patience=2)
    callback.set_model(student)
    student.stop_training = False
    weights = {}
    for epoch, accuracy in enumerate([0.5, 0.7, 0.6, 0.65, 0.9]):
        student.get_layer("fc").bias.assign(np.full(3, float(epoch)))
        weights[epoch] = [np.array(w) for w in student.get_weights()]
        callback.on_epoch_end(epoch, {"val_accuracy": accuracy, "val_loss": 1.0, "loss": 9.0})
        if student.stop_training:
            break
    assert epoch == 3 and callback.best_epoch == 2    # two epochs without beating 0.7
    callback.restore()
    for a, b in zip(weights[1], student.get_weights()):
        np.testing.assert_array_equal(a, b)


def test_recovery_epochs_are_sized_to_the_data():
    assert kb.training.recovery_epochs(45) == 30          # scikit-learn digits: capped
    assert kb.training.recovery_epochs(100) == 20
    assert kb.training.recovery_epochs(1700) == 2         # 54,000 images in batches of 32


def test_a_categorical_cross_entropy_makes_a_classifier(original):
    assert kb.training.is_classifier(original)
    regressor = _model()
    regressor.compile("adam", "mse")
    assert not kb.training.is_classifier(regressor)
    assert kb.training.is_classifier(regressor, {"loss": "categorical_crossentropy"})


def test_a_scheduled_original_restarts_its_cosine_from_the_schedule_initial_rate(data):
    original = _model()
    original.compile(keras.optimizers.Adam(keras.optimizers.schedules.ExponentialDecay(
        3e-3, 10, 0.1)), keras.losses.SparseCategoricalCrossentropy(from_logits=True))
    config = original.get_compile_config()
    slim = _slim(original)
    finetune(slim, original, *data, epochs=1, batch_size=32, schedule="cosine", verbose=0)
    schedule = slim.optimizer._learning_rate
    assert isinstance(schedule, keras.optimizers.schedules.CosineDecay)
    assert schedule.initial_learning_rate == pytest.approx(3e-3) and schedule.decay_steps == 3
    assert original.get_compile_config() == config
