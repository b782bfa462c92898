import os

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import pytest


@pytest.fixture(autouse=True, scope="session")
def _latency_tables_out_of_the_users_cache(tmp_path_factory):
    """Latency tables timed by the tests (on a machine busy with them) are not cached where
    a user's searches would reuse them."""
    os.environ["KERAS_BIPRUNE_LATENCY_CACHE"] = str(tmp_path_factory.mktemp("latency"))


def pytest_collection_modifyitems(config, items):
    """Tests marked slow run only with RUN_SLOW=1 or when `-m slow` selects them; tests of
    TensorFlow-only features (marked `tensorflow`, or run with engine='sliced') only on
    the TensorFlow backend."""
    from backends import ON_TENSORFLOW

    if not ON_TENSORFLOW:
        tensorflow_only = pytest.mark.skip(reason="a TensorFlow-only feature: the sliced "
                                                  "engine, a TensorFlow runtime")
        for item in items:
            params = getattr(getattr(item, "callspec", None), "params", {})
            if "tensorflow" in item.keywords or params.get("engine") == "sliced":
                item.add_marker(tensorflow_only)
    if os.environ.get("RUN_SLOW") == "1" or "slow" in (config.getoption("-m") or ""):
        return
    skip = pytest.mark.skip(reason="slow: run with RUN_SLOW=1 (make test-slow)")
    for item in items:
        if "slow" in item.keywords:
            item.add_marker(skip)
