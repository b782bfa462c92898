"""The batched engine's tensor operations: a population stacked on the batch axis.

``P`` candidates go through one forward pass with the batch tiled ``P`` times
(candidate ``p`` owns rows ``p * B`` to ``(p + 1) * B``); these operations give
each candidate its own channel masks, kernel masks and batch-norm statistics.
"""

import keras


def tile(x, population):
    """``x`` repeated once per candidate along the batch axis."""
    x = keras.ops.convert_to_tensor(x)
    shape = tuple(x.shape)
    return keras.ops.reshape(keras.ops.broadcast_to(x[None], (population,) + shape),
                             (population * shape[0],) + shape[1:])


def _by_candidate(x, population):
    return keras.ops.reshape(x, (population, -1) + tuple(x.shape[1:]))


def mask_channels(x, mask, axis, population):
    """Zeroes each candidate's pruned channels of ``x`` (candidates stacked on the batch)."""
    grouped = _by_candidate(x, population)
    view = [population] + [1] * (len(grouped.shape) - 1)
    view[axis] = mask.shape[-1]
    masked = grouped * keras.ops.cast(keras.ops.reshape(mask, view), x.dtype)
    return keras.ops.reshape(masked, tuple(x.shape))


def per_candidate_kernels(step, args, kwargs, kernel_mask, population):
    """Runs the layer once per candidate with its kernel masked (same shapes, no retrace)."""
    layer = step.op
    grouped = _by_candidate(args[0], population)
    outputs = []
    for p in range(population):
        kernel = layer.kernel * keras.ops.cast(kernel_mask[p], layer.kernel.dtype)
        with keras.StatelessScope(state_mapping=[(layer.kernel, kernel)]):
            outputs.append(layer(grouped[p], *args[1:], **kwargs))
    return keras.ops.concatenate(outputs, axis=0)


def batch_norm(layer, x, population, stats):
    """Batch norm with each candidate's own statistics (computed here when ``stats`` is None)."""
    grouped = _by_candidate(x, population)
    rank = len(grouped.shape)
    axis = layer.axis % len(x.shape) + 1
    if stats is None:
        reduce = [a for a in range(1, rank) if a != axis]
        mean, variance = keras.ops.moments(grouped, reduce, keepdims=True)
    else:
        mean, variance = stats
    view = [1] * rank
    view[axis] = grouped.shape[axis]
    y = (grouped - mean) * keras.ops.rsqrt(variance + layer.epsilon)
    if layer.scale:
        y = y * keras.ops.reshape(keras.ops.cast(layer.gamma, x.dtype), view)
    if layer.center:
        y = y + keras.ops.reshape(keras.ops.cast(layer.beta, x.dtype), view)
    return keras.ops.reshape(y, tuple(x.shape)), (mean, variance)
