"""Runs a model op by op to read, and differentiate through, intermediate tensors.

A feature-extractor ``keras.Model(model.inputs, tensors)`` cannot reach the
tensors inside nested models, and the JAX backend cannot differentiate with
respect to a tensor that is not an input. So the model's graph is flattened
(nested models inlined) into a list of steps, and run step by step with the
model's own layers: any tensor can be tapped, and a *probe* (an input added
to a tensor, zero in value) makes its gradient a gradient with respect to an
input, which every backend computes the same way.
"""

import dataclasses
import inspect

import keras

from keras_biprune import _keras_internals as internals


@dataclasses.dataclass(frozen=True)
class _Step:
    op: object
    path: str
    node: object
    tensors: list
    ins: list
    outs: list
    inference: bool  # the op takes a ``training`` argument: pass False


class GraphProgram:
    """A functional or Sequential model flattened into steps over numbered tensors.

    Attributes:
        slots: ``{(path, role): tensor number}`` for the first call of every
            operation, with the paths and roles of `GroupMember`
            (``("block/conv", "input 0")``).
        producer: ``{tensor number: the step that computes it}``.
        input_tensors: the model's input ``KerasTensor``s, in `run` order.
    """

    def __init__(self, model):
        self.steps = []
        self.slots = {}
        self.producer = {}
        self._count = 0
        self.input_tensors, _, _ = internals.graph_of(model)
        self.inputs = self._new(len(self.input_tensors))
        self.outputs = self._flatten(model, "", self.inputs)

    def _new(self, n):
        numbers = list(range(self._count, self._count + n))
        self._count += n
        return numbers

    def _flatten(self, model, prefix, input_numbers):
        inputs, outputs, nodes = internals.graph_of(model)
        env = {id(t): n for t, n in zip(inputs, input_numbers)}
        for node in nodes:
            op = node.operation
            path = prefix + op.name
            tensors = internals.node_input_tensors(node)
            ins = [env[id(t)] for t in tensors]
            if internals.is_graph_model(op):
                outs = self._flatten(op, path + "/", ins)
            else:
                outs = self._new(len(node.outputs))
                inference = "training" in inspect.signature(op.call).parameters
                step = _Step(op, path, node, tensors, ins, outs, inference)
                self.producer.update((n, step) for n in outs)
                self.steps.append(step)
            for role, numbers in (("input", ins), ("output", outs)):
                for i, n in enumerate(numbers):
                    self.slots.setdefault((path, f"{role} {i}"), n)
            env.update((id(t), n) for t, n in zip(node.outputs, outs))
        return [env[id(t)] for t in outputs]

    def run(self, inputs, taps=(), probes=None, call=None):
        """Runs the model in inference mode.

        Args:
            inputs: one backend tensor per model input, in `graph_of` order.
            taps: tensor numbers whose values to return.
            probes: ``{tensor number: tensor}`` added to those tensors.
            call: ``call(step, args, kwargs)`` runs one step instead of
                ``step.op(*args, **kwargs)`` (the evaluator masks and
                recalibrates through it); ``None`` for the model's own ops.

        Returns:
            ``(outputs, {tap: value})``: the model's flat outputs and the taps.
        """
        probes = probes or {}
        keep = set(taps) | set(self.outputs)
        last_use = {n: i for i, step in enumerate(self.steps) for n in step.ins}
        values = dict(zip(self.inputs, inputs))
        for i, step in enumerate(self.steps):
            tensor_map = {id(t): values[n] for t, n in zip(step.tensors, step.ins)}
            args, kwargs = internals.node_arguments(step.node, tensor_map)
            if step.inference:
                kwargs.setdefault("training", False)
            result = step.op(*args, **kwargs) if call is None else call(step, args, kwargs)
            for n, value in zip(step.outs, keras.tree.flatten(result)):
                values[n] = value + probes[n] if n in probes else value
            for n in set(step.ins):
                if last_use[n] == i and n not in keep:
                    del values[n]
        return [values[n] for n in self.outputs], {n: values[n] for n in taps}
