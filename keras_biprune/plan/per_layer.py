"""What a plan asks of one layer: its kept channels, its kernel mask, which masks it takes."""

import numpy as np

from keras_biprune.handlers import NodeIO, lookup, reads_channels
from keras_biprune.handlers.take import Slice

_SLICE = Slice()


def node_io(record, atom_keep, plan):
    """The `NodeIO` of a layer's record: what its handler keeps under ``plan``.

    Args:
        record: the layer's call record (``ChannelGraph.record(path)``).
        atom_keep: ``graph.atom_keep(plan.keep)``.
        plan: the `PruningPlan`; its ``inputs`` mask narrows the first input,
            its ``kernels`` mask becomes ``NodeIO.kernel``.
    """
    def masks(channel_list):
        return tuple(None if c is None else atom_keep[c.labels] for c in channel_list)

    inputs = masks(record.inputs)
    read = plan.inputs.get(record.path)
    if read is not None:
        inputs = (inputs[0] & np.isin(np.arange(len(inputs[0])), read),) + inputs[1:]
    return NodeIO(
        inputs,
        masks(record.outputs),
        tuple(record.inputs),
        tuple(record.outputs),
        plan.kernels.get(record.path),
        {key: atom_keep[c.labels] for key, c in record.internal.items()},
    )


def kernel_mask(io):
    """The plan's (input channel, filter) mask of a kernel, sliced like the kernel."""
    return _SLICE(_SLICE(io.kernel, 0, io.inputs[0]), 1, io.outputs[0])


def takes_input_mask(record):
    """True for a channel-mixing layer (conv, dense; not grouped) whose first input is traced."""
    return getattr(record.op, "groups", 1) == 1 and reads_channels(record)


def takes_kernel_mask(record):
    """True for a layer that takes input masks and whose handler allows kernel masks
    (`LayerHandler.masks_kernel`: conv and dense layers)."""
    return lookup(record.op).masks_kernel and takes_input_mask(record)
