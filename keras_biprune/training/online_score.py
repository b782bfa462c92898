"""Online filter scores: a Keras callback that scores every channel group while it trains."""

import dataclasses

import keras
import numpy as np

from keras_biprune import _keras_internals as internals
from keras_biprune._validate import check_int, check_number
from keras_biprune.errors import TrainingError
from keras_biprune.graph import trace
from keras_biprune.handlers import consumed_slices, reads_channels


@dataclasses.dataclass(frozen=True)
class _Consumer:
    """A layer reading a group's channels: which probed tensor, on which axis, how."""

    output: int
    axis: int
    index_map: np.ndarray
    record: object


class OnlineFilterScore(keras.callbacks.Callback):
    """Scores each filter of every prunable group while the model trains.

    Every ``update_every`` training steps the callback runs the model
    (inference mode) on a fixed probe batch and, for each prunable channel
    group g with channel positions c, measures at every layer k that mixes
    the group's channels (its *consumers*: the next convs or dense layers,
    through any pooling, flatten or batch norm between them), on the
    consumer's input tensor x:

    * own-layer profit ``o_kc``: the standard deviation of x's entries of
      channel c over the probe examples (and positions): what the filter
      carries; a dead or constant filter scores 0;
    * next-layer profit ``n_kc``: Σ over c's entries e of mean|x_e| ×
      ‖W_k[e]‖₁, the L1 norm of the consumer's kernel slice reading entry e:
      how much the next layer's output moves with the filter; a filter
      nothing reads scores 0.

    Each is divided by its mean over the group's channels (so 1 is an average
    filter), averaged over the group's consumers, and combined as a weighted
    geometric mean ``s_c = o_c^(1-λ) · n_c^λ`` (λ = ``next_layer_weight``),
    so a filter with either profit 0 scores 0. The score is an exponential
    moving average: ``S_c ← decay · S_c + (1 − decay) · s_c``, starting at
    the first ``s_c`` (a channel whose carried score is NaN, such as a
    filter just inserted, starts at its first ``s_c`` too). Consumers inside nested models are not probed; a group
    with none left is not scored.

    Args:
        probe: inputs the activations are measured on: an array, or a list
            of arrays for a model with several inputs (a few hundred samples).
        update_every: training steps (batches) between updates.
        decay: EMA decay in [0, 1).
        next_layer_weight: λ in [0, 1].

    Attributes:
        scores_: ``{group_id: EMA score array}`` (group mean ≈ 1).
        updates_: updates since the callback was (re)bound to a model.
        steps_: training steps seen in all.

    Example:

    ```python
    import keras_biprune as kb
    score = kb.training.OnlineFilterScore(x_train[:256], update_every=20)
    model.fit(x_train, y_train, epochs=2, callbacks=[score])
    weakest = {g: s.argmin() for g, s in score.scores_.items()}
    ```
    """

    def __init__(self, probe, update_every=50, decay=0.9, next_layer_weight=0.5):
        super().__init__()
        check_int("update_every", update_every, 1, TrainingError,
                  "It counts training steps: use e.g. update_every=50.")
        check_number("decay", decay, TrainingError, 0, 1, open_high=True, fix="Use e.g. 0.9.")
        check_number("next_layer_weight", next_layer_weight, TrainingError, 0, 1,
                     fix="Use e.g. 0.5.")
        self.probe = probe
        self.update_every = update_every
        self.decay = float(decay)
        self.next_layer_weight = float(next_layer_weight)
        self.scores_ = {}
        self.updates_ = 0
        self.steps_ = 0
        self._bound = None

    def set_model(self, model):
        super().set_model(model)
        if self._bound is not model:
            self.bind(model)

    def bind(self, model, graph=None, scores=None):
        """Prepares to score ``model`` (``graph`` = its trace), starting from ``scores``."""
        graph = trace(model) if graph is None else graph
        inputs, _, nodes = internals.graph_of(model)
        first_node = {}
        for node in nodes:
            first_node.setdefault(id(node.operation), node)
        tensors, index, self._consumers = [], {}, {}
        for group in graph.prunable_groups:
            consumers = []
            for member in group.members:
                record = graph.record(member.layer)
                node = first_node.get(id(record.op))
                if member.role != "input 0" or node is None or not reads_channels(record):
                    continue
                tensor = internals.node_input_tensors(node)[0]
                if id(tensor) not in index:
                    index[id(tensor)] = len(tensors)
                    tensors.append(tensor)
                consumers.append(_Consumer(index[id(tensor)], record.inputs[0].axis,
                                           member.index_map, record))
            if consumers:
                self._consumers[group.id] = (group.size, consumers)
        self._probe_model = keras.Model(inputs, tensors) if tensors else None
        self.scores_ = {g: np.asarray(s, dtype=np.float64) for g, s in (scores or {}).items()
                        if g in self._consumers and len(s) == self._consumers[g][0]}
        self.updates_ = 0
        self._bound = model
        return self

    def on_train_batch_end(self, batch, logs=None):
        self.steps_ += 1
        if self.steps_ % self.update_every == 0:
            self.update()

    def update(self):
        """Measures the current scores and folds them into the moving averages."""
        for group_id, now in self.measure().items():
            before = self.scores_.get(group_id)
            if before is None:
                self.scores_[group_id] = now
            else:   # NaN: a channel not measured yet (a new filter) starts at its first score
                self.scores_[group_id] = np.where(
                    np.isnan(before), now, self.decay * before + (1 - self.decay) * now)
        self.updates_ += 1

    def measure(self):
        """``{group_id: current score s}`` on the probe batch (no averaging)."""
        if self._probe_model is None:
            return {}
        outputs = self._probe_model.predict_on_batch(self.probe)
        if not isinstance(outputs, (list, tuple)):
            outputs = [outputs]
        outputs = [np.asarray(o, dtype=np.float64) for o in outputs]
        scores = {}
        for group_id, (size, consumers) in self._consumers.items():
            own, nxt = [], []
            for consumer in consumers:
                x = np.moveaxis(outputs[consumer.output], consumer.axis, -1)
                x = x.reshape(-1, x.shape[-1])
                m = consumer.index_map
                mine = m >= 0
                counts = np.maximum(np.bincount(m[mine], minlength=size), 1)
                spread = np.bincount(m[mine], x.std(axis=0)[mine], minlength=size) / counts
                reach = np.abs(x).mean(axis=0) * _entry_norms(consumer.record, x.shape[-1])
                own.append(_normalized(spread))
                nxt.append(_normalized(np.bincount(m[mine], reach[mine], minlength=size)))
            lam = self.next_layer_weight
            scores[group_id] = np.mean(own, axis=0) ** (1 - lam) * np.mean(nxt, axis=0) ** lam
        return scores


def _normalized(values):
    """``values`` over their mean; all ones when the mean is 0 (no information)."""
    mean = values.mean()
    return values / mean if mean > 0 else np.ones_like(values)


def _entry_norms(record, n_entries):
    """L1 norm of the consumer kernel's slice reading each of its input entries."""
    found = consumed_slices(record, record.op.get_weights())
    if not found:
        return np.ones(n_entries)
    array, axis = found[0]
    norms = np.abs(np.moveaxis(np.asarray(array), axis, -1)).reshape(-1, array.shape[axis]).sum(0)
    if len(norms) == n_entries:
        return norms
    if len(norms) % n_entries == 0:      # a separable conv's depth multiplier
        return norms.reshape(n_entries, -1).sum(axis=1)
    if n_entries % len(norms) == 0:      # a grouped conv: each block reads its rows
        return np.tile(norms, n_entries // len(norms))
    return np.ones(n_entries)
