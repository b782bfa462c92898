"""``take``: how a handler's `LayerHandler.prune_weights` treats one weight axis.

A handler never indexes a weight itself. For every axis of a weight that
follows channels it calls ``take(array, axis, keep, consumed=False)``, where
``keep`` is a bool mask over the axis (``None``: not a traced channel axis)
and ``consumed`` marks the axis where a layer mixes its input channels (a
conv or dense kernel's input rows). The caller's `Take` decides what that
means, so one ``prune_weights`` serves every reader of a plan:

* `Slice`: removes the entries where ``keep`` is False (`apply_plan`, the
  sliced evaluator); ``shape_only`` gives zero-copy stand-ins of the result
  (the cost model);
* `ZeroConsumed`: zeroes the consumed entries where ``keep`` is False and
  keeps every shape (`masked_model`);
* `Insert`: runs pruning backwards, ``keep`` marking the entries that exist
  (growth surgery): new entries are zeros on consumed axes, ``fill``
  elsewhere;
* `NoteConsumed`: changes nothing and lists the consumed axes.
"""

import numpy as np

from keras_biprune.errors import HandlerError


class Take:
    """The interface: ``take(array, axis, keep, consumed=False)`` returns an array."""

    def __call__(self, array, axis, keep, consumed=False):
        """``array`` treated along ``axis`` by ``keep`` (see the module docstring).

        Args:
            array: a weight (or an array shaped like one).
            axis: the axis of ``array`` that follows the channels.
            keep: a bool mask over that axis, or ``None`` (all kept).
            consumed: True on the axis where the layer reads its input channels.
        """
        raise NotImplementedError


class Slice(Take):
    """Removes the entries where ``keep`` is False.

    Args:
        shape_only: return a zero-copy stand-in (int8 zeros) of the sliced
            array's shape instead of the slice.
    """

    def __init__(self, shape_only=False):
        self.shape_only = shape_only

    def __call__(self, array, axis, keep, consumed=False):
        if keep is None:
            return array
        if self.shape_only:
            return _stand_in(array, axis, int(keep.sum()))
        return array if keep.all() else np.compress(keep, array, axis=axis)


class ZeroConsumed(Take):
    """Zeroes the entries where ``keep`` is False on consumed axes; shapes stay."""

    def __call__(self, array, axis, keep, consumed=False):
        if not consumed or keep is None or keep.all():
            return array
        view = [1] * array.ndim
        view[axis] = len(keep)
        return np.where(keep.reshape(view), array, np.zeros((), array.dtype))


class Insert(Take):
    """Inserts new entries where ``keep`` is False (``keep``: the entries that exist).

    New entries are 0 on consumed axes, so nothing reads a new channel, and
    ``fill`` on every other axis (growth passes NaN to put fresh values there
    later). The result is float64.

    Args:
        fill: the value of new entries on axes that are not consumed.
        shape_only: return a zero-copy stand-in of the grown shape instead.

    Raises:
        HandlerError: the axis does not have one entry per existing channel.
    """

    def __init__(self, fill=0.0, shape_only=False):
        self.fill = fill
        self.shape_only = shape_only

    def __call__(self, array, axis, keep, consumed=False):
        if keep is None:
            return array
        if self.shape_only:
            if array.shape[axis] != int(keep.sum()):
                raise HandlerError(f"a weight of shape {array.shape} does not follow the channels")
            return _stand_in(array, axis, len(keep))
        if keep.all():
            return array
        if array.shape[axis] != int(keep.sum()):
            raise HandlerError(
                f"Growth expected {int(keep.sum())} entries on axis {axis} of a weight of shape "
                f"{array.shape}. Received: a handler slicing another axis. Check the handler's "
                "prune_weights."
            )
        shape = list(array.shape)
        shape[axis] = len(keep)
        out = np.full(shape, 0.0 if consumed else self.fill, dtype=np.float64)
        index = [slice(None)] * array.ndim
        index[axis] = np.flatnonzero(keep)
        out[tuple(index)] = array
        return out


class NoteConsumed(Take):
    """Changes nothing; appends ``(array, axis)`` of every consumed axis to ``seen``."""

    def __init__(self):
        self.seen = []

    def __call__(self, array, axis, keep, consumed=False):
        if consumed:
            self.seen.append((array, axis))
        return array


def _stand_in(array, axis, size):
    shape = list(array.shape)
    shape[axis] = size
    return np.broadcast_to(np.int8(0), shape)
