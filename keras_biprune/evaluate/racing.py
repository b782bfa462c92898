"""Racing: score every candidate on a few images, the rest only on those still in contention."""

import math

import numpy as np

from keras_biprune._validate import check_bool, check_int, check_number
from keras_biprune.errors import EvaluationError


class Racing:
    """How an `Evaluator` races the candidates of one ``evaluate`` call.

    Successive halving over the evaluation images: every candidate is scored
    on the first ``first`` evaluation images (the subset is drawn at random,
    so these are a random sample of it); then, stage after stage, only the
    best ``keep`` share of the candidates still in the race (by their score
    so far, at least one) is scored on more images, ``growth`` times as many
    as they have seen, until the survivors have seen the whole evaluation
    subset. Stages end on whole batches of the evaluator's ``batch_size``.

    Each candidate's batch-norm calibration (adaptive BN) and sliced weights
    (or masks) are computed once, when it enters the race, and kept while it
    races. Survivors are the best ``keep`` share of the candidates still in
    the race, ties broken by their order in the call.

    With adaptive batch norm the race starts with a free *screen*: the pass
    that calibrates a candidate normalizes the calibration samples with the
    very statistics it estimates, so its outputs are the calibrated
    candidate's predictions on them. Only the best ``keep`` share of the
    candidates by that score go on to the evaluation images. Without adaptive
    batch norm (or batch norm layers), and for a single candidate, there is
    no calibration pass and no screen.

    The scores returned:

    - a candidate that finishes the race has its exact score (the score
      without racing);
    - a candidate eliminated early has its score on the images it saw (the
      calibration samples, when the screen eliminated it), clipped to just
      below the lowest score of every candidate that raced longer: no
      candidate ever outscores one that outlasted it, so the best candidate
      of a call is always a finisher;
    - a candidate whose score so far is the worst (outputs or metric not
      finite) leaves the race at once with the worst score, as without
      racing.

    Raced scores depend on the other candidates of the call (a search that
    caches scores keeps them as they were). A single candidate (as for
    ``Evaluator.baseline``) skips to the whole subset: its score is exact.

    Args:
        first: evaluation images every candidate is scored on (rounded up
            to whole batches).
        keep: the share of the candidates in the race kept at each stage,
            in (0, 1); at least one is kept (``ceil(keep * n)``).
        growth: how many times more images the survivors have seen after
            each stage, > 1.
        screen: whether to screen the candidates on the calibration samples
            first (see above).

    Example:

    ```python
    import keras_biprune as kb
    evaluator = kb.Evaluator(model, (x_val, y_val), racing=kb.evaluate.Racing(256, 0.5))
    scores = evaluator.evaluate(plans)
    print(evaluator.last_race["images_scored"], evaluator.last_race["images_exact"])
    ```
    """

    def __init__(self, first=256, keep=0.5, growth=2.0, screen=True):
        fix = "Use e.g. Racing(first=256, keep=0.5, growth=2.0)."
        check_int("first", first, 1, EvaluationError, fix, expected="a positive int of images")
        check_number("keep", keep, EvaluationError, 0, 1, open_low=True, open_high=True, fix=fix,
                     expected="a share of the candidates in (0, 1)")
        check_number("growth", growth, EvaluationError, 1, open_low=True, fix=fix)
        check_bool("screen", screen, EvaluationError, fix)
        self.first = int(first)
        self.keep = float(keep)
        self.growth = float(growth)
        self.screen = screen

    @classmethod
    def coerce(cls, racing):
        """``None`` (no racing) or a `Racing` from what ``Evaluator(racing=...)`` takes."""
        if racing is None or racing is False:
            return None
        if racing is True:
            return cls()
        if isinstance(racing, cls):
            return racing
        try:
            if isinstance(racing, dict):
                return cls.from_config(racing)
            if isinstance(racing, (tuple, list)) and 2 <= len(racing) <= 3:
                return cls(*racing)
        except EvaluationError as error:
            message = error.args[0].replace("Received: ", f"Received: racing={racing!r}, ", 1)
            raise EvaluationError(message) from None
        except TypeError:
            pass
        raise EvaluationError(
            "racing must be None or False (exact scores), True (Racing()), a "
            "keras_biprune.evaluate.Racing, a tuple (first, keep[, growth]) or a dict of "
            f"those. Received: racing={racing!r}. Use e.g. racing=(256, 0.5)."
        )

    def stages(self, n_images, batch_size):
        """The batches seen after each stage (cumulative; the last is all of them)."""
        n_batches = math.ceil(n_images / batch_size)
        seen = min(n_batches, math.ceil(self.first / batch_size))
        stages = [seen]
        while seen < n_batches:
            seen = min(n_batches, math.ceil(seen * self.growth))
            stages.append(seen)
        return stages

    def survivors(self, n):
        """How many of ``n`` candidates stay in the race after a stage."""
        return max(1, math.ceil(self.keep * n - 1e-9))

    def get_config(self):
        return {"first": self.first, "keep": self.keep, "growth": self.growth,
                "screen": self.screen}

    @classmethod
    def from_config(cls, config):
        return cls(**config)

    def __repr__(self):
        return (f"Racing(first={self.first}, keep={self.keep}, growth={self.growth}, "
                f"screen={self.screen})")

    def __eq__(self, other):
        return isinstance(other, Racing) and self.get_config() == other.get_config()


def settle(oriented, stopped, final_stage, finite):
    """Final oriented scores (higher is better) after a race.

    A candidate that stopped before ``final_stage`` keeps its partial score,
    clipped to strictly below the lowest finite score of every candidate that
    raced longer: racing never puts an eliminated candidate above one that
    outlasted it. ``finite`` marks the scores that are not the worst.
    """
    scores = np.array(oriented, dtype="float64")
    bound = np.inf
    for stage in range(final_stage, -1, -1):
        here = np.flatnonzero(stopped == stage)
        if stage < final_stage:
            scores[here] = np.minimum(scores[here], np.nextafter(bound, -np.inf))
        values = scores[here][finite[here]]
        if len(values):
            bound = min(bound, values.min())
    return scores

