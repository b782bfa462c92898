"""The handler interface: what the tracer and the surgeon ask of a layer.

A handler knows these things about one layer class:

* ``trace``: given the channel labels of the layer's inputs, the labels of its
  outputs (new channels for a producer such as ``Conv2D``, the input's channels
  for a per-channel layer such as ``BatchNormalization``), and which channels
  must be tied or frozen;
* ``prune_config``: the layer's config with its channel counts patched;
* ``prune_weights``: the layer's weights with the pruned channels taken out;
* ``macs_per_entry`` (optional): the multiply-accumulates each weight entry
  does, for the cost model;
* for the criteria (optional): ``kernel_columns`` and ``input_magnitudes``
  (weight criteria, lower-level seeding), ``scores_inputs`` and
  ``rearranges_only`` (where activation criteria read a group's channels);
* for lower-level plans (optional): ``masks_kernel``;
* for the evaluator's sliced engine (optional): ``sliced_kind``;
* for layers whose output depends on which channels exist, not only on
  their values (normalization across channels): ``masked_call``, the
  masked reference computation.

A layer may also prune positions that no tensor carries (the heads and head
widths of an attention layer): ``ctx.internal`` makes atoms for them, the
plan's masks of those atoms reach the handler in ``NodeIO.internal``, and
weight criteria score them through ``internal_columns``.

Every consumer asks the handler, never the layer class, so registering a
handler gives a custom layer each of these capabilities.

Channel labels are integer ids of single channels ("atoms"). The tracer unites
atoms that must be pruned together (an ``Add`` ties its inputs position by
position) and later groups them; a handler only ever says which atoms exist
and which are tied.
"""

import dataclasses
import math

import numpy as np


@dataclasses.dataclass(frozen=True)
class Channels:
    """Channel labels of one tensor.

    Attributes:
        labels: int array, one atom id per entry of the channel axis. An atom
            may repeat (a depthwise conv with ``depth_multiplier=2`` outputs
            each input channel twice; a flattened tensor repeats every channel
            once per spatial position).
        axis: the channel axis, counted from the end (``-1`` for
            ``channels_last``), so it survives broadcasting.
    """

    labels: np.ndarray
    axis: int = -1

    def __len__(self):
        return len(self.labels)


@dataclasses.dataclass(frozen=True)
class NodeIO:
    """Which channels of a layer's inputs and outputs are kept.

    Attributes:
        inputs: per input tensor, a bool keep-mask along its channel axis, or
            ``None`` when all its channels are kept (untracked tensor).
        outputs: the same for the output tensors.
        input_channels: the traced ``Channels`` (or ``None``) of each input.
        output_channels: the traced ``Channels`` (or ``None``) of each output.
        kernel: the plan's per-filter mask of this layer's kernel (bool, shape
            ``kernel.shape[-2:]`` of the original layer), or ``None``.
        internal: ``{key: bool keep-mask}`` of the atoms the layer made with
            ``ctx.internal(n, key)`` (positions no tensor carries, such as
            attention heads); a missing key keeps all.
    """

    inputs: tuple
    outputs: tuple
    input_channels: tuple
    output_channels: tuple
    kernel: np.ndarray | None = None
    internal: dict = dataclasses.field(default_factory=dict)


class LayerHandler:
    """Base class of layer handlers. Subclass it to support a custom layer.

    The default implementation treats a layer as opaque: every channel it
    touches is frozen (never pruned) and its config and weights are copied.

    Example:

    ```python
    import keras
    import keras_biprune as kb

    class Scale(keras.layers.Layer):          # a per-channel learned scale
        def build(self, shape):
            self.w = self.add_weight(shape=(shape[-1],), initializer="ones")
        def call(self, x):
            return x * self.w

    class ScaleHandler(kb.LayerHandler):
        def trace(self, layer, inputs, ctx):
            return [inputs[0]]                 # output channels = input channels
        def prune_weights(self, layer, weights, io, take):
            return [take(weights[0], -1, io.inputs[0])]

    kb.register_handler(Scale, ScaleHandler())
    ```

    Attributes:
        scores_inputs: True for a layer that reads its input channels through
            a kernel (conv, dense, depthwise, separable): activation criteria
            score a group's channels where such a layer reads them.
        rearranges_only: True for a layer that only pools, pads or moves the
            entries of each channel (pooling, flatten, reshape): activation
            criteria read the tensor before it, which keeps its spatial axes.
        masks_kernel: True when plans may zero single (input channel, filter)
            entries of the layer's ``kernel``, whose last two axes are
            (inputs, filters) (`keras_biprune.PruningPlan` ``kernels``).
    """

    scores_inputs = False
    rearranges_only = False
    masks_kernel = False
    channel_statistics = False

    def trace(self, layer, inputs, ctx):
        """Returns the ``Channels`` (or ``None``) of each output tensor.

        Args:
            layer: the layer (or ``keras.ops`` operation) being traced.
            inputs: ``Channels`` or ``None`` for each input tensor of this call.
            ctx: the tracer's context: ``ctx.new``, ``ctx.tie``, ``ctx.freeze``,
                ``ctx.input_shapes``, ``ctx.output_shapes``, ``ctx.node``.
        """
        return ctx.opaque(inputs, f"{type(layer).__name__} has no channel handler")

    def rebuild_config(self, layer, config):
        """The config to re-create the layer from, before channels are patched.

        The default is ``config`` (``layer.get_config()``); a handler fixes a
        config that does not round-trip through ``from_config`` here.
        """
        return config

    def prune_config(self, layer, config, io):
        """Returns ``config`` with channel counts patched for the kept channels."""
        return config

    def grow_config(self, layer, config, io):
        """Returns ``config`` with channel counts patched for a wider layer.

        For growth surgery (`keras_biprune.surgery.grow_model`) the masks of
        ``io`` run over the *grown* channel axes: True where a channel is one
        of the original's, False where it is new. ``prune_weights`` is called
        with the same masks and a ``take`` that inserts the new entries. The
        default patches the config as `prune_config` would for a layer keeping
        every channel of the grown axes. Raise `keras_biprune.errors.HandlerError`
        when a layer cannot be grown: its group is then not grown.
        """
        def every(masks):
            return tuple(None if m is None else np.ones(len(m), bool) for m in masks)

        return self.prune_config(layer, config, dataclasses.replace(
            io, inputs=every(io.inputs), outputs=every(io.outputs)))

    def prune_weights(self, layer, weights, io, take):
        """Returns the layer's weights with pruned channels taken out.

        Args:
            layer: the original layer.
            weights: the layer's weights, in ``layer.weights`` order.
            io: a ``NodeIO`` with the keep-masks of the layer's first call.
            take: ``take(array, axis, keep, consumed=False)`` removes (or, for
                the masked reference model, zeroes) the entries of ``array``
                along ``axis`` where ``keep`` is False. Pass ``consumed=True``
                on the input-channel axis of a layer that mixes channels (a
                conv or dense kernel): that is where the masked reference
                model zeroes pruned channels. Always slice weights with
                ``take``; it also serves for analytic parameter counts and
                growth (the kinds of take are in `keras_biprune.handlers.take`).
        """
        return list(weights)

    def macs_per_entry(self, layer, input_shapes, output_shapes):
        """How many multiply-accumulates each weight entry does in one call.

        The cost model (`keras_biprune.cost`) multiplies this by the number of
        entries each weight keeps after pruning. Use `positions` for the
        number of places a kernel is applied at.

        Args:
            layer: the layer.
            input_shapes: the shapes of this call's input tensors (batch first).
            output_shapes: the shapes of its output tensors.

        Returns:
            One count per weight, in ``layer.weights`` order (missing trailing
            ones count 0): an int, or ``None`` where it depends on an unknown
            dimension; ``()`` for a layer that does no multiply-accumulates
            (batch norm). The default, None, means the handler cannot count
            the layer: `keras_biprune.cost` counts its parameters, not its
            MACs, and warns.
        """

    def kernel_columns(self, layer):
        """The layer's output-channel weights as ``(weights per channel, channels)``.

        Column ``j`` holds every kernel weight that makes entry ``j`` of the
        layer's output channel axis (a conv filter, a dense unit's column).
        Weight criteria (L1, L2, FPGM) score these. The default, None, means
        the layer has no such kernel (biases are not scored).
        """

    def internal_columns(self, layer, key):
        """Weights per position of the atoms made with ``ctx.internal(n, key)``.

        Returns ``(weights per position, positions)`` (an attention head's
        query, key and value columns), scored by the weight criteria like
        `kernel_columns`. The default, None, means there are none.
        """

    def masked_call(self, layer, x, keep):
        """The masked reference of a layer whose output depends on which channels exist.

        `keras_biprune.surgery.masked_model` and the evaluator's batched
        engine zero pruned channels where a conv or dense layer reads them;
        a layer that computes statistics across channels (layer, group or RMS
        normalization) would still see the pruned ones. Such a handler
        implements this method: the layer's output on ``x`` as if only the
        channels where ``keep`` is 1 existed (what the slim layer computes on
        the kept channels; the pruned channels' outputs are never read).
        Called only when `channel_statistics` is True.

        Args:
            layer: the layer (with the full, unsliced weights).
            x: its input tensor, possibly with extra leading axes (the
                evaluator stacks candidates in front of the batch).
            keep: a float tensor of 0 and 1 that broadcasts against ``x``,
                with the channel entries on ``x``'s channel axis.
        """
        raise NotImplementedError(f"{type(self).__name__} sets channel_statistics "
                                  "and must implement masked_call")

    def input_magnitudes(self, layer):
        """``|weights|`` linking each input channel to each filter: ``(inputs, filters)``.

        Seeds the lower-level search for layers that take input masks. The
        default, None, means the layer has no such kernel.
        """

    def sliced_kind(self, layer):
        """How the evaluator's sliced engine runs the layer with sliced weights.

        Returns:
            ``"call"`` for a weightless layer that works at any channel count
            (called as it is); ``"conv"``, ``"depthwise"``, ``"dense"`` or
            ``"bn"`` for a layer the engine computes itself from its sliced
            weights (kernel, then an optional bias, then the layer's
            ``activation``; batch norm over the last axis); None (the
            default) when the engine cannot run it: the model is then scored
            by the batched masked engine.
        """


def positions(shape, axis):
    """Entries per example of a tensor of ``shape`` along all but its ``axis``.

    The number of places a conv kernel is applied at (``H·W`` of its output
    for ``(None, H, W, C)`` and ``axis=-1``); ``None`` when a dimension is unknown.
    """
    dims = [d for i, d in enumerate(shape) if 0 < i != len(shape) + axis]
    return None if None in dims else math.prod(dims)


def channel_axis(data_format, rank):
    """The negative channel axis of a rank-``rank`` tensor in ``data_format``."""
    return -1 if data_format != "channels_first" else 1 - rank


def normalize_axis(axis, rank):
    """``axis`` (int, possibly positive and counting the batch) as a negative axis."""
    axis = int(axis)
    return axis - rank if axis >= 0 else axis
