"""Criteria that run the model on data: APoZ, Taylor and HRank.

Where activations are read: a group's channels are scored where a layer with
weights reads them (the input of the next conv, dense, depthwise or separable
layer), which in a Conv-BN-ReLU network is after the activation. When that
layer reads them through pooling, flattening or a reshape (``GAP → Dense``,
``Flatten → Dense``), the tensor before those layers is read instead, so the
feature maps keep their spatial axes. Every distinct such tensor of a group is
one member; `combine` merges them.
"""

import keras
import numpy as np

from keras_biprune import _keras_internals as internals
from keras_biprune._data import batches
from keras_biprune._validate import check_int
from keras_biprune.criteria._gradients import gradient_function
from keras_biprune.criteria.base import Criterion, combine, position_scores
from keras_biprune.criteria.registry import register
from keras_biprune.errors import CriterionError
from keras_biprune.graph.program import GraphProgram
from keras_biprune.handlers import lookup


def activation_taps(group, records, program):
    """The tensors where ``group``'s channels are scored.

    Returns:
        ``{tensor number: (index_map, channel axis)}`` (see the module docstring).
    """
    members = {(m.layer, m.role): m for m in group.members}
    taps = {}
    for member in group.members:
        if not member.role.startswith("input"):
            continue
        if not lookup(records[member.layer].op).scores_inputs:
            continue
        path, role = member.layer, member.role
        number = program.slots[(path, role)]
        step = program.producer.get(number)
        while (
            step is not None
            and lookup(step.op).rearranges_only
            and (step.path, "input 0") in members
        ):
            path, role = step.path, "input 0"
            number = step.ins[0]
            step = program.producer.get(number)
        index = int(role.split()[1])
        taps[number] = (members[(path, role)].index_map, records[path].inputs[index].axis)
    return taps


class ActivationCriterion(Criterion):
    """Base of criteria that average a per-sample, per-channel statistic over data.

    Subclasses implement `per_sample` (and may override `finish`). Those that
    set ``uses_gradients = True`` implement `losses` and receive the gradient
    of the loss (summed over samples and outputs) at each activation.

    Args:
        max_batches: how many batches of the data to use.
        batch_size: the batch size when the data are arrays.

    Example:

    ```python
    import numpy as np
    import keras_biprune as kb

    class MeanAbs(kb.criteria.ActivationCriterion):     # mean |activation| per channel
        name = "mean_abs"
        def per_sample(self, activation, gradient):     # (batch, *spatial, channels)
            flat = activation.reshape(len(activation), -1, activation.shape[-1])
            return np.abs(flat).mean(axis=1)            # (batch, channels)

    graph = kb.trace(model)
    plan = kb.criteria.select(graph, model, 0.5, MeanAbs(max_batches=1), data=x_val)
    ```
    """

    requires_data = True
    uses_gradients = False

    def __init__(self, max_batches=4, batch_size=32):
        for key, value in (("max_batches", max_batches), ("batch_size", batch_size)):
            check_int(key, value, 1, CriterionError)
        self.max_batches = max_batches
        self.batch_size = batch_size

    def get_config(self):
        return {"max_batches": self.max_batches, "batch_size": self.batch_size}

    def per_sample(self, activation, gradient):
        """A ``(batch, channels)`` statistic of a channels-last activation batch.

        Args:
            activation: array ``(batch, *spatial, channels)``.
            gradient: d loss / d activation, same shape, or None.
        """
        raise NotImplementedError

    def losses(self, model, n_outputs):
        """One loss function per model output, for criteria with ``uses_gradients``."""
        raise NotImplementedError

    def finish(self, mean):
        """The entry scores from the statistic's mean over samples (higher = more important)."""
        return mean

    def score_groups(self, graph, groups, model, data=None):
        records = {record.path: record for record in graph.records}
        program = GraphProgram(model)
        group_taps = {group.id: activation_taps(group, records, program) for group in groups}
        for group in groups:
            if not group_taps[group.id]:
                raise CriterionError(
                    f"{type(self).__name__} found no layer with weights reading the channels "
                    f"of group {group.id!r}. Received: a group whose channels only reach "
                    f"{sorted({m.layer for m in group.members})}. Score it with a weight "
                    "criterion ('l1') or 'random'."
                )
        axes = {n: axis for taps in group_taps.values() for n, (_, axis) in taps.items()}
        means = self._means(program, model, data, axes)
        return {
            group.id: combine(group.size, [
                position_scores(index_map, self.finish(means[n]))
                for n, (index_map, _) in group_taps[group.id].items()
            ])
            for group in groups
        }

    def _means(self, program, model, data, axes):
        """``{tensor number: per-entry mean of per_sample over the data}``."""
        numbers = sorted(axes)
        inputs = internals.graph_of(model)[0]
        gradients = self._gradients(program, model, numbers) if self.uses_gradients else None
        sums = {n: 0.0 for n in numbers}
        count = 0
        for xs, y in batches(data, model, f"{self.name!r} criterion", self.max_batches, self.batch_size,
                             need_y=self.uses_gradients):
            xs = [np.asarray(x, dtype=t.dtype) for x, t in zip(xs, inputs)]
            _, taps = program.run([keras.ops.convert_to_tensor(x) for x in xs], numbers)
            activations = [keras.ops.convert_to_numpy(taps[n]) for n in numbers]
            grads = [None] * len(numbers)
            if gradients is not None:
                probes = [np.zeros_like(a) for a in activations]
                grads = gradients(xs + _targets(y, program, model, self), probes)
            for n, a, g in zip(numbers, activations, grads):
                a, g = (None if v is None else np.moveaxis(v, axes[n], -1) for v in (a, g))
                sums[n] = sums[n] + self.per_sample(a, g).sum(axis=0)
            count += len(xs[0])
        return {n: sums[n] / count for n in numbers}

    def _gradients(self, program, model, numbers):
        """``g(inputs + targets, probes)``: d loss / d each tapped tensor."""
        losses = self.losses(model, len(program.outputs))
        n_inputs = len(program.inputs)

        def total_loss(args, probes):
            outputs, _ = program.run(args[:n_inputs], probes=dict(zip(numbers, probes)))
            return sum(
                keras.ops.sum(loss(target, output))
                for loss, target, output in zip(losses, args[n_inputs:], outputs)
            )

        return gradient_function(total_loss)


@register
class APoZ(ActivationCriterion):
    """Average percentage of zeros (Hu et al., 2016), as ``1 - APoZ``.

    The share of a channel's activations that are not positive (exactly its
    zeros after a ReLU), over samples and spatial positions. Channels that
    are mostly zero score lowest.

    Args:
        max_batches: how many batches of the data to use.
        batch_size: the batch size when the data are arrays.

    Example:

    ```python
    apoz = kb.criteria.APoZ(max_batches=2)
    scores = apoz(graph, graph.prunable_groups[0], model, data=(x_val, y_val))
    ```
    """

    name = "apoz"

    def per_sample(self, activation, gradient):
        return (activation <= 0).reshape(len(activation), -1, activation.shape[-1]).mean(axis=1)

    def finish(self, mean):
        return 1.0 - mean


@register
class HRank(ActivationCriterion):
    """Average rank of each channel's feature maps (Lin et al., 2020).

    A feature map of shape (H, W) is a matrix; its rank, averaged over
    samples, measures how much information the channel carries. A 1-D map
    counts as a column; a 3-D one as (D, H·W). Constant maps have rank at most
    1 and score lowest.

    Args:
        max_batches: how many batches of the data to use.
        batch_size: the batch size when the data are arrays.

    Example:

    ```python
    hrank = kb.criteria.HRank(max_batches=1)
    scores = hrank(graph, graph.prunable_groups[0], model, data=x_val)
    ```
    """

    name = "hrank"

    def per_sample(self, activation, gradient):
        maps = np.moveaxis(activation, -1, 1)  # (batch, channels, *spatial)
        spatial = maps.shape[2:]
        rows = spatial[0] if spatial else 1
        maps = maps.reshape(maps.shape[:2] + (rows, -1))
        return np.linalg.matrix_rank(maps.astype("float64"))


@register
class Taylor(ActivationCriterion):
    """First-order Taylor expansion of the loss (Molchanov et al., 2017).

    How much the loss would change if a channel's activation were zero:
    ``|mean over spatial positions of activation × d loss / d activation|``
    per sample, averaged over samples. A channel the loss does not depend on
    scores zero. The loss is summed over samples (and over outputs).

    Args:
        loss: a loss name, function or ``keras.losses.Loss`` applied to every
            output (or a list with one per output); None uses the loss the
            model was compiled with.
        max_batches: how many batches of the data to use.
        batch_size: the batch size when the data are arrays.

    Example:

    ```python
    taylor = kb.criteria.Taylor(
        loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True))
    scores = taylor(graph, graph.prunable_groups[0], model, data=(x_val, y_val))
    ```
    """

    name = "taylor"
    uses_gradients = True

    def __init__(self, loss=None, max_batches=4, batch_size=32):
        super().__init__(max_batches, batch_size)
        self.loss = loss

    def get_config(self):
        loss = self.loss
        if isinstance(loss, (list, tuple)):
            loss = [_serialize_loss(item) for item in loss]
        else:
            loss = _serialize_loss(loss)
        return {"loss": loss, **super().get_config()}

    def per_sample(self, activation, gradient):
        product = (activation * gradient).reshape(len(activation), -1, activation.shape[-1])
        return np.abs(product.mean(axis=1))

    def losses(self, model, n_outputs):
        loss = self.loss if self.loss is not None else getattr(model, "loss", None)
        if loss is None:
            raise CriterionError(
                f"Taylor needs a loss. Received: loss=None and model {model.name!r} is not "
                "compiled with one. Pass Taylor(loss=...) (e.g. "
                "keras.losses.SparseCategoricalCrossentropy(from_logits=True)) or compile "
                "the model."
            )
        losses = list(loss) if isinstance(loss, (list, tuple)) else [loss] * n_outputs
        if len(losses) != n_outputs:
            raise CriterionError(
                f"Taylor needs one loss per model output. Received: {len(losses)} losses for "
                f"{n_outputs} outputs. Pass one loss (used for all) or one per output."
            )
        return [keras.losses.get(item) for item in losses]


def _targets(y, program, model, criterion):
    targets = keras.tree.flatten(y)
    if len(targets) != len(program.outputs):
        raise CriterionError(
            f"{type(criterion).__name__} needs one target per output of model {model.name!r} "
            f"({len(program.outputs)}). Received: y with {len(targets)} array(s)."
        )
    return targets


def _serialize_loss(loss):
    if loss is None or isinstance(loss, (str, dict)):
        return loss
    return keras.losses.serialize(loss)
