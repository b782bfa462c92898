"""Default settings of BiLevelPruner and the searches, readable without Keras or TensorFlow.

The ``keras-biprune`` command shows and uses these in ``--help`` and checks
its arguments against them before it imports TensorFlow. They copy the
signatures of `keras_biprune.BiLevelPruner`,
`keras_biprune.search.BiLevelSearch` and `keras_biprune.search.NSGA2Search`;
``tests/test_cli.py`` checks that they still agree.
"""

PRUNER = {
    "method": "bilevel",
    "target_flops": 0.5,
    "target_latency": None,
    "runtime": "tflite",
    "latency_batch_size": 1,
    "max_accuracy_drop": 0.01,
    "channel_granularity": None,
    "round_to": 8,
    "criteria": "l1",
    "metric": "accuracy",
    "search_fraction": 0.1,
    "eval_size": 1024,
    "calibration_size": 256,
    "adaptive_bn": True,
    "racing": None,
    "search_kwargs": None,
    "n_select": 3,
    "finalists": None,
    "finalist_steps": 100,
    "steps": 1,
    "stage_steps": 300,
    "compile_kwargs": None,
    "temperature": 4.0,
    "alpha": 0.5,
    "schedule": "cosine",
    "patience": 3,
    "recalibrate_bn": True,
    "checkpoint_dir": None,
    "executor": None,
    "random_state": 0,
    "verbose": 1,
}
"""``BiLevelPruner.__init__`` defaults (all but ``model``)."""

SEARCH = {
    "bilevel": {"generations": 6, "population_size": 8, "max_evaluations": None},
    "nsga2": {"generations": 10, "population_size": 16, "max_evaluations": None},
}
"""Defaults of the search each ``method`` runs (``BiLevelSearch``, ``NSGA2Search``)."""

METHODS = ("bilevel", "nsga2")
GRANULARITIES = ("layer", "filter")
CRITERIA = ("apoz", "blend", "bn_scale", "fpgm", "hrank", "l1", "l2", "random", "taylor")
"""Criterion names ``criteria=`` takes (`keras_biprune.criteria.registry.TABLE`)."""

FINALISTS = 4
"""``BiLevelPruner(finalists=None)``: the search's best plans that race before a one-shot
recovery."""
DEMO_PRESETS = {   # (training steps, search settings); the pruner's default recovery
    "quick": (100, {"generations": 2, "population_size": 4, "islands": 2}),
    "default": (700, {"generations": 4, "population_size": 6, "islands": 2}),
    "strong": (2000, {"generations": 10, "population_size": 8, "islands": 3}),
}
"""``keras-biprune demo --preset``: training steps of the demo's model and the search's settings."""
DEMO_TARGET_LATENCY = 0.7
"""``keras-biprune demo``'s latency budget: share of the TensorFlow latency at its batch size."""
DEMO_DATA = ("auto", "digits", "fashion_mnist")
RUNTIMES = ("tf", "tflite")
"""Runtimes ``--runtime`` takes (`keras_biprune.evaluate.runtimes.RUNTIMES`)."""
