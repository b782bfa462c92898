"""Width steps: the channel counts a group may keep, in steps of ``round_to``."""

import math


def group_step(size, round_to):
    """The step of a width of ``size`` channels: ``round_to``, halved until it has 3 steps.

    A 16-wide group with ``round_to=8`` counts in 4s (4, 8, 12, 16), not only
    8 or 16, so the step never forces a narrow group far below its budget.
    """
    step = round_to
    while step > 1 and size < 3 * step:
        step //= 2
    return step


def stepped(n, step, floor, size):
    """``n`` rounded to the nearest multiple of ``step``, at least ``floor``, at most ``size``.

    A whole group (``n >= size``) stays whole.
    """
    if n >= size:
        return size
    n = step * max(1, round(n / step))
    if n < floor:
        n = step * math.ceil(floor / step)
    return min(size, n)
