"""Handlers of keras-hub layers that keep weights of their own.

keras-hub blocks made only of Keras layers (encoder blocks, MLPs, MobileNet
and EfficientNet blocks) need no handler: the tracer walks into them
(`keras_biprune._keras_internals.traced_into`). The layers here hold weights
themselves. They are registered by class path (`HANDLERS`), so keras_hub is
never imported: a model that has none of them needs no keras_hub.
"""

import keras

from keras_biprune.handlers.base import LayerHandler, positions


class ViTPatchingAndEmbeddingHandler(LayerHandler):
    """keras-hub's ``ViTPatchingAndEmbedding``: a patch ``Conv2D`` (its filters are
    the embedding channels), a class token and position embeddings added to them.

    Its config does not round-trip (it stores ``num_patches``/``num_positions``,
    which ``__init__`` does not take, and leaves out ``use_patch_bias`` and
    ``data_format``): `rebuild_config` gives one that does.
    """

    scores_inputs = True

    def trace(self, layer, inputs, ctx):
        if inputs[0] is not None:
            ctx.freeze(inputs[0], "ViTPatchingAndEmbedding reads its image channels")
        return [ctx.new(layer.hidden_dim, -1)]

    def rebuild_config(self, layer, config):
        config = {k: v for k, v in config.items() if k not in ("num_patches", "num_positions")}
        config.update(use_patch_bias=layer.use_patch_bias, data_format=layer.data_format)
        return config

    def prune_config(self, layer, config, io):
        if io.outputs[0] is not None:
            config["hidden_dim"] = int(io.outputs[0].sum())
        return config

    def prune_weights(self, layer, weights, io, take):
        keep = io.outputs[0]
        names = [w.path.rsplit("/", 1)[-1] for w in layer.weights]
        out = []
        for name, w in zip(names, weights):
            if name == "kernel":
                w = take(w, -2, io.inputs[0], consumed=True)
            out.append(take(w, -1, keep))
        return out

    def macs_per_entry(self, layer, input_shapes, output_shapes):
        """The patch kernel works once per patch; the rest adds."""
        patches = positions(output_shapes[0], -1) - int(layer.use_class_token)
        return [patches if w.path.endswith("patch_embedding/kernel") else 0
                for w in layer.weights]

    def kernel_columns(self, layer):
        kernel = keras.ops.convert_to_numpy(layer.patch_embedding.kernel)
        return kernel.reshape(-1, kernel.shape[-1])


HANDLERS = {
    "keras_hub.src.models.vit.vit_layers.ViTPatchingAndEmbedding":
        ViTPatchingAndEmbeddingHandler(),
}
"""Handlers by ``module.QualName`` of the class they serve."""
