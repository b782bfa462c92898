"""RayExecutor: an evaluator's populations scored on a pool of Ray actors."""

import collections
import contextlib
import importlib
import logging
import math

import numpy as np

from keras_biprune._validate import check_int, is_int
from keras_biprune.distributed._replica import Replica, model_bytes, out_of_memory, probe
from keras_biprune.errors import EvaluationError, MissingDependencyError

logger = logging.getLogger(__name__)

_Chunk = collections.namedtuple("_Chunk", "indices attempts")


def _import_ray():
    try:
        return importlib.import_module("ray")
    except ImportError as error:
        raise MissingDependencyError(
            "RayExecutor needs Ray. Received: no module named 'ray'. Install the extra: "
            "pip install 'keras-biprune[ray]'."
        ) from error


class RayExecutor:
    """Scores an evaluator's populations on a pool of Ray actors.

    Each actor holds one replica of the model (sent once as a ``.keras``
    file) and of the evaluator's drawn evaluation and calibration subsets
    (put once in Ray's object store), and rebuilds the evaluator with the
    same settings. Every population is cut into chunks, in multiples of
    the engine's candidates per pass, which idle actors take in turn; the
    scores come back in order. A search on Ray therefore returns exactly
    the plans and scores of the same search in one process.

    Faults: an actor that dies while scoring is replaced and its chunk runs
    again (at most ``max_retries`` times); when no actor can be started any
    more the executor raises `keras_biprune.errors.EvaluationError`, and a
    search's ``checkpoint_dir`` keeps the generations already done. A chunk
    that runs out of memory is split and its plans run one by one; a plan
    that still runs out of memory alone gets the worst score (``-inf``, or
    ``inf`` when lower is better), is logged with its plan, and the search
    goes on. ``faults`` lists what happened.

    The executor connects to Ray when an evaluator first uses it:
    to the one ``ray.init`` already connected this process to, or else to
    the cluster at ``address`` or a new local one; `close` ends its actors
    and undoes a connection it made (shutting down a local cluster it
    started).

    Args:
        num_actors: actors in the pool. Default: one per GPU of the cluster
            (``num_gpus`` each) when it has GPUs, else one per ``num_cpus``
            CPUs.
        address: the Ray cluster to connect to (``"auto"``,
            ``"ray://host:10001"``, …), or None for the current or a new
            local one.
        num_cpus: CPUs Ray reserves for each actor.
        num_gpus: GPUs Ray reserves for each actor (Ray then shows each
            actor only its own). Default: 1 when the cluster has GPUs,
            else 0.
        max_retries: times a chunk is run again after its actor died.
        start_timeout: seconds actors may take to start and load the model
            (an autoscaling cluster adding a node counts); past them the
            executor raises (when starting) or gives up the actor (when
            replacing one).

    Attributes:
        actors: the live actors' handles (after the first evaluator).
        faults: one dict per fault survived: ``kind`` (``"actor died"`` or
            ``"out of memory"``), ``plans`` (how many were being scored)
            and ``error``.

    Example:

    ```python
    import keras_biprune as kb
    with kb.distributed.RayExecutor(num_actors=2) as executor:
        evaluator = kb.Evaluator(model, (x_val, y_val), executor=executor)
        result = kb.search.BiLevelSearch(evaluator, target=0.5,
                                         max_accuracy_drop=None).run()
    ```
    """

    def __init__(self, num_actors=None, *, address=None, num_cpus=1, num_gpus=None,
                 max_retries=3, start_timeout=300):
        self._ray = _import_ray()
        if num_actors is not None:
            check_int("num_actors", num_actors, 1, EvaluationError, "Or pass None for one "
                      "actor per GPU (or per num_cpus CPUs).")
        if not (is_int(num_cpus) or isinstance(num_cpus, float)) or num_cpus <= 0:
            raise EvaluationError(f"num_cpus must be a positive number. Received: "
                                  f"num_cpus={num_cpus!r}.")
        if num_gpus is not None and (not (is_int(num_gpus) or isinstance(num_gpus, float))
                                     or num_gpus < 0):
            raise EvaluationError(f"num_gpus must be a number >= 0, or None. Received: "
                                  f"num_gpus={num_gpus!r}.")
        check_int("max_retries", max_retries, 0, EvaluationError)
        check_int("start_timeout", start_timeout, 1, EvaluationError,
                  expected="a positive int of seconds")
        self.num_actors = num_actors
        self.address = address
        self.num_cpus = num_cpus
        self.num_gpus = num_gpus
        self.max_retries = max_retries
        self.start_timeout = start_timeout
        self.actors = []
        self.faults = []
        self._started_ray = False
        self._evaluator = None
        self._state = None
        self._group_size = 1

    def get_config(self):
        """The executor's settings (see the class arguments)."""
        return {"num_actors": self.num_actors, "address": self.address,
                "num_cpus": self.num_cpus, "num_gpus": self.num_gpus,
                "max_retries": self.max_retries, "start_timeout": self.start_timeout}

    @classmethod
    def from_config(cls, config):
        """An executor with the settings of `get_config`."""
        return cls(**config)

    def __enter__(self):
        return self

    def __exit__(self, *exc_info):
        self.close()

    # ------------------------------------------------------------- the pool
    def start(self, evaluator):
        """Sends ``evaluator``'s model and subsets to the actors (starting them if needed).

        Raises:
            EvaluationError: the model or data cannot be sent, or the actors
                cannot rebuild the evaluator from them.
        """
        ray = self._ray
        if not ray.is_initialized():
            ray.init(address=self.address, include_dashboard=False)
            self._started_ray, self.actors = True, []
        try:
            sent = model_bytes(evaluator.model)
        except Exception as error:
            raise EvaluationError(
                f"The model {evaluator.model.name!r} cannot be sent to the Ray actors: saving it "
                f"as a .keras file failed ({type(error).__name__}: {error}). Received: a model "
                "Keras cannot save. Register custom layers and functions with "
                "keras.saving.register_keras_serializable."
            ) from error
        try:
            self._state = ray.put({"model": sent, "evaluator": evaluator.executor_state()})
        except Exception as error:
            raise EvaluationError(
                "The evaluator's settings or data cannot be sent to the Ray actors: "
                f"{type(error).__name__}: {error}. Received: metric="
                f"{evaluator.executor_state()['settings']['metric']!r}. Use a metric name, a "
                "keras.metrics.Metric or a module-level function, and NumPy data."
            ) from error
        self._evaluator = None
        if not self.actors:
            self.actors = [self._new_actor() for _ in range(self._pool_size())]
        answers = self._load(self.actors)
        expected = probe(evaluator.model, evaluator.x_eval)
        for answer in answers:
            scale = 1.0 + float(np.max(np.abs(expected)))
            if answer["probe"].shape != expected.shape or not np.allclose(
                    answer["probe"], expected, rtol=1e-2, atol=1e-3 * scale):
                raise EvaluationError(
                    f"The model {evaluator.model.name!r} rebuilt on the Ray actors from its "
                    ".keras file computes other outputs than yours. Received: a model whose "
                    "layers do not round-trip through their config (a Lambda, a custom layer "
                    "without get_config). Make it load back as it is, or use executor=None."
                )
        self._group_size = answers[0]["group_size"]
        self._evaluator = evaluator
        logger.info("RayExecutor: %d actor(s), engine %r.", len(self.actors), answers[0]["engine"])

    def close(self):
        """Ends the actors; shuts Ray down if this executor started it."""
        ray = self._ray
        if ray.is_initialized():
            for actor in self.actors:
                ray.kill(actor)
        self.actors, self._evaluator, self._state = [], None, None
        if self._started_ray and ray.is_initialized():
            ray.shutdown()
        self._started_ray = False

    def _gpus_per_actor(self):
        if self.num_gpus is not None:
            return self.num_gpus
        return 1 if self._ray.cluster_resources().get("GPU", 0) >= 1 else 0

    def _pool_size(self):
        if self.num_actors is not None:
            return self.num_actors
        resources = self._ray.cluster_resources()
        gpus = self._gpus_per_actor()
        if gpus:
            return max(1, int(resources.get("GPU", 0) // gpus))
        return max(1, int(resources.get("CPU", 1) // self.num_cpus))

    def _new_actor(self):
        return self._ray.remote(num_cpus=self.num_cpus, num_gpus=self._gpus_per_actor())(
            Replica).remote()

    def _load(self, actors):
        ray = self._ray
        try:
            return ray.get([actor.load.remote(self._state) for actor in actors],
                           timeout=self.start_timeout)
        except ray.exceptions.GetTimeoutError as error:
            raise EvaluationError(
                f"{len(actors)} Ray actor(s) did not start and load the model within "
                f"start_timeout={self.start_timeout} s. Received: a cluster with "
                f"{ray.cluster_resources()} for actors of num_cpus={self.num_cpus}, num_gpus="
                f"{self._gpus_per_actor()} each. Ask for fewer actors or resources, or raise "
                "start_timeout."
            ) from error
        except ray.exceptions.RayTaskError as error:
            cause = error.cause if error.cause is not None else error
            raise EvaluationError(
                "The Ray actors cannot rebuild the evaluator from what was sent: "
                f"{type(cause).__name__}: {cause}. Received: a model or settings the actors' "
                "Python cannot load. Install keras-biprune (and the modules of your custom "
                "layers, registered with keras.saving.register_keras_serializable) on every "
                "node of the cluster."
            ) from error

    def _replace(self, actor):
        """A new, loaded actor for a dead one, or None when none can be started."""
        self.actors.remove(actor)
        fresh = None
        try:
            fresh = self._new_actor()
            self._load([fresh])
        except (self._ray.exceptions.RayError, EvaluationError, ConnectionError,
                RuntimeError) as error:
            # the cluster is gone, or has no room for an actor any more
            logger.warning("RayExecutor cannot start an actor: %s", error)
            if fresh is not None:
                with contextlib.suppress(self._ray.exceptions.RayError, ConnectionError,
                                         RuntimeError):
                    self._ray.kill(fresh)
            return None
        self.actors.append(fresh)
        return fresh

    # ------------------------------------------------------------- scoring
    def score(self, evaluator, plans):
        """The scores of ``plans`` (checked for ``evaluator``'s model), in order.

        Raises:
            EvaluationError: Ray is gone, or no actor can run any more, or
                a chunk's actor died more than ``max_retries`` times.
        """
        ray = self._ray
        if self._evaluator is not None and not ray.is_initialized():
            raise EvaluationError(
                "The Ray cluster of this RayExecutor is gone (Ray was shut down in this "
                "process). Received: a call to score after it. A search's checkpoint_dir keeps "
                "the generations done: rerun with the same settings to resume."
            )
        if evaluator is not self._evaluator:
            self.start(evaluator)
        configs = [plan.get_config() for plan in plans]
        scores = np.full(len(plans), np.nan)
        pending = collections.deque(_Chunk(chunk, 0) for chunk in self._chunks(len(plans)))
        idle, running = list(self.actors), {}
        while pending or running:
            while pending and idle:
                actor, chunk = idle.pop(0), pending.popleft()
                running[self._submit(actor, [configs[i] for i in chunk.indices])] = (actor,
                                                                                     chunk)
            if not running:
                raise self._lost_cluster()
            [done], _ = ray.wait(list(running), num_returns=1)
            actor, chunk = running.pop(done)
            try:
                answer = ray.get(done)
                idle.append(actor)
            except ray.exceptions.RayTaskError as error:
                raise error.as_instanceof_cause() from None
            except ray.exceptions.RayError as error:
                fresh = self._replace(actor)
                if fresh is not None:
                    idle.append(fresh)
                if not out_of_memory(error):
                    self._note("actor died", chunk, error)
                    if chunk.attempts >= self.max_retries:
                        raise EvaluationError(
                            f"A chunk of {len(chunk.indices)} plan(s) lost its Ray actor "
                            f"{chunk.attempts + 1} times. Received: max_retries="
                            f"{self.max_retries}; the last error: {error}"
                        ) from error
                    pending.appendleft(_Chunk(chunk.indices, chunk.attempts + 1))
                    continue
                answer = {"out_of_memory": f"{type(error).__name__}: {error}"}
            if "scores" in answer:
                scores[chunk.indices] = answer["scores"]
                continue
            self._note("out of memory", chunk, answer["out_of_memory"])
            if len(chunk.indices) > 1:             # run its plans one by one
                pending.extendleft(_Chunk([i], chunk.attempts) for i in chunk.indices[::-1])
            else:
                scores[chunk.indices] = self._worst(evaluator)
                logger.warning("A Ray actor ran out of memory scoring the plan %s; it gets "
                               "the worst score, %s.", plans[chunk.indices[0]].to_json(),
                               self._worst(evaluator))
        return scores

    def _submit(self, actor, configs):
        return actor.score.remote(configs)

    def _chunks(self, count):
        """Consecutive index lists, in multiples of the engine's group size, about two an actor."""
        step = self._group_size * max(1, math.ceil(count / (2 * len(self.actors)
                                                            * self._group_size)))
        return [list(range(start, min(start + step, count))) for start in range(0, count, step)]

    def _note(self, kind, chunk, error):
        self.faults.append({"kind": kind, "plans": len(chunk.indices), "error": str(error)})
        logger.warning("RayExecutor: %s while scoring %d plan(s): %s", kind,
                       len(chunk.indices), error)

    @staticmethod
    def _worst(evaluator):
        return -np.inf if evaluator.greater_is_better else np.inf

    def _lost_cluster(self):
        return EvaluationError(
            "Every Ray actor of this RayExecutor died and no new one can be started: the "
            f"cluster at {self.address or 'this process'!r} is gone or out of resources. "
            "Received: no live actor. A search's checkpoint_dir keeps the generations done: "
            "rerun with the same settings once the cluster is back to resume."
        )
