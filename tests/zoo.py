"""Shared zoo of small hand-built Keras 3 models, one per topology.

Every builder takes ``seed=0`` and returns a built, uncompiled model whose
weights were overwritten by :func:`randomize_weights`, so BatchNormalization
statistics (and every other weight) are non-trivial and deterministic.
"""

import math

import keras
import numpy as np
from keras import layers, ops

__all__ = ["ZOO", "randomize_weights", "sample_input", "tiny_chain", "tiny_classification"]


def _iter_layers(layer):
    """Yield ``layer`` and, recursively, every sub-layer of nested models."""
    yield layer
    for sub in getattr(layer, "layers", None) or []:
        yield from _iter_layers(sub)


def _fan_in(layer, leaf, shape):
    if leaf == "depthwise_kernel":  # (kh, kw, cin, mult): one input channel
        return int(np.prod(shape[:-2]))
    if isinstance(layer, layers.Conv2DTranspose):  # (kh, kw, out, in)
        return int(np.prod(shape[:-2])) * int(shape[-1])
    return int(np.prod(shape[:-1]))


def randomize_weights(model, seed=0):
    """Overwrite every float weight of ``model`` (nested models included).

    BN/GroupNorm/LayerNorm ``gamma`` and every ``*variance`` get
    uniform(0.5, 1.5) (variances must stay positive); ``beta``, means and biases
    get normal * 0.1; PReLU ``alpha`` gets uniform(0.05, 0.3); kernels get
    normal / sqrt(fan_in) so activations stay O(1).  Returns ``model``.
    """
    rng = np.random.default_rng(seed)
    seen = set()
    for layer in _iter_layers(model):
        for w in layer.weights:
            if id(w) in seen:
                continue
            seen.add(id(w))
            dtype = keras.backend.standardize_dtype(w.dtype)
            if "float" not in dtype:
                continue
            leaf = (getattr(w, "path", None) or w.name).split("/")[-1]
            shape = tuple(int(d) for d in w.shape)
            if leaf == "count":
                continue
            if "variance" in leaf or leaf == "gamma":
                value = rng.uniform(0.5, 1.5, shape)
            elif leaf == "alpha":
                value = rng.uniform(0.05, 0.3, shape)
            elif "kernel" in leaf and len(shape) >= 2:
                fan_in = max(_fan_in(layer, leaf, shape), 1)
                value = rng.standard_normal(shape) / math.sqrt(fan_in)
            else:  # beta, moving_mean, mean, bias, ...
                value = rng.standard_normal(shape) * 0.1
            w.assign(value.astype(dtype))
    return model


def sample_input(model, n=2, seed=0):
    """Random float32 input(s) for ``model``: a list if it has several inputs."""
    rng = np.random.default_rng(seed)
    arrays = [
        rng.standard_normal((n,) + tuple(int(d) for d in t.shape[1:])).astype("float32")
        for t in model.inputs
    ]
    return arrays if len(arrays) > 1 else arrays[0]


def _finish(inputs, outputs, name, seed):
    model = keras.Model(inputs, outputs, name=name)
    return randomize_weights(model, seed)


def _cbr(x, filters, kernel=3, strides=1, act="relu", **kw):
    x = layers.Conv2D(filters, kernel, strides=strides, padding="same", **kw)(x)
    x = layers.BatchNormalization()(x)
    return layers.Activation(act)(x) if act else x


def plain_chain(seed=0):
    """Straight chain: Conv-BN-ReLU x2, MaxPool, Conv, GAP, Dense head."""
    inp = keras.Input((12, 12, 3))
    x = _cbr(inp, 8)
    x = _cbr(x, 12)
    x = layers.MaxPooling2D()(x)
    x = layers.Conv2D(16, 3, padding="same")(x)
    x = layers.GlobalAveragePooling2D()(x)
    return _finish(inp, layers.Dense(5)(x), "plain_chain", seed)


def residual(seed=0):
    """ResNet: identity block (layers.Add), strided 1x1-projection block,
    and a residual join written as ``x + y`` (a keras.ops node)."""
    inp = keras.Input((16, 16, 3))
    x = _cbr(inp, 8)
    y = _cbr(_cbr(x, 8), 8, act=None)
    x = layers.ReLU()(layers.Add()([x, y]))
    y = _cbr(_cbr(x, 16, strides=2), 16, act=None)
    s = _cbr(x, 16, kernel=1, strides=2, act=None)
    x = layers.ReLU()(layers.Add()([s, y]))
    y = _cbr(x, 16, act=None)
    x = layers.ReLU()(x + y)
    x = layers.GlobalAveragePooling2D()(x)
    return _finish(inp, layers.Dense(5)(x), "residual", seed)


def inception(seed=0):
    """Inception: 1x1 / 3x3 / 5x5-as-two-3x3 / pool-1x1 branches joined by
    layers.Concatenate, then a second module joined by ops.concatenate."""
    inp = keras.Input((16, 16, 3))
    x = _cbr(inp, 8)
    b1 = _cbr(x, 4, kernel=1)
    b2 = _cbr(_cbr(x, 4, kernel=1), 6)
    b3 = _cbr(_cbr(_cbr(x, 4, kernel=1), 4), 4)
    b4 = layers.MaxPooling2D(3, strides=1, padding="same")(x)
    b4 = _cbr(b4, 4, kernel=1)
    x = layers.Concatenate()([b1, b2, b3, b4])
    x = _cbr(x, 12)
    c1 = _cbr(x, 6, kernel=1)
    c2 = _cbr(x, 5)
    x = ops.concatenate([c1, c2], axis=-1)
    x = layers.Conv2D(10, 3, padding="same", activation="relu")(x)
    x = layers.GlobalAveragePooling2D()(x)
    return _finish(inp, layers.Dense(5)(x), "inception", seed)


def depthwise_separable(seed=0):
    """Depthwise (multiplier 1 and 2), SeparableConv2D (multiplier 1 and 2)
    and a MobileNetV2 inverted-residual block (expand, depthwise, project, Add)."""
    inp = keras.Input((12, 12, 3))
    x = _cbr(inp, 8)
    x = layers.DepthwiseConv2D(3, padding="same")(x)
    x = layers.ReLU()(layers.BatchNormalization()(x))
    x = layers.Conv2D(8, 1)(x)
    x = layers.DepthwiseConv2D(3, padding="same", depth_multiplier=2)(x)
    x = layers.ReLU()(layers.BatchNormalization()(x))
    x = layers.SeparableConv2D(8, 3, padding="same", activation="relu")(x)
    x = layers.SeparableConv2D(8, 3, padding="same", depth_multiplier=2)(x)
    block_in = layers.ReLU()(layers.BatchNormalization()(x))
    y = _cbr(block_in, 16, kernel=1, act="relu6")
    y = layers.DepthwiseConv2D(3, padding="same")(y)
    y = layers.Activation("relu6")(layers.BatchNormalization()(y))
    y = _cbr(y, 8, kernel=1, act=None)
    x = layers.Add()([block_in, y])
    x = layers.GlobalAveragePooling2D()(x)
    return _finish(inp, layers.Dense(5)(x), "depthwise_separable", seed)


def squeeze_excitation(seed=0):
    """Squeeze-and-excitation: Dense-based SE + Reshape + layers.Multiply, and a
    conv-based SE (GAP keepdims) applied with broadcasting ``x * se``."""
    inp = keras.Input((12, 12, 3))
    x = _cbr(inp, 16)
    se = layers.GlobalAveragePooling2D()(x)
    se = layers.Dense(4, activation="relu")(se)
    se = layers.Dense(16, activation="sigmoid")(se)
    se = layers.Reshape((1, 1, 16))(se)
    x = layers.Multiply()([x, se])
    x = _cbr(x, 12)
    se = layers.GlobalAveragePooling2D(keepdims=True)(x)
    se = layers.Conv2D(3, 1, activation="relu")(se)
    se = layers.Conv2D(12, 1, activation="sigmoid")(se)
    x = x * se
    x = layers.GlobalAveragePooling2D()(x)
    return _finish(inp, layers.Dense(5)(x), "squeeze_excitation", seed)


def flatten_dense(seed=0):
    """Conv -> pool -> conv -> Flatten -> Dense(16) -> Dropout -> Dense(5)."""
    inp = keras.Input((12, 12, 3))
    x = layers.Conv2D(8, 3, padding="same", activation="relu")(inp)
    x = layers.MaxPooling2D()(x)
    x = layers.Conv2D(8, 3, padding="same", activation="relu")(x)
    x = layers.Flatten()(x)
    x = layers.Dense(16, activation="relu")(x)
    x = layers.Dropout(0.2)(x)
    return _finish(inp, layers.Dense(5)(x), "flatten_dense", seed)


def nested(seed=0):
    """Inner functional model and inner keras.Sequential used as layers."""
    i = keras.Input((12, 12, 8))
    t = layers.Conv2D(12, 3, padding="same")(i)
    t = layers.ReLU()(layers.BatchNormalization()(t))
    t = layers.Conv2D(8, 3, padding="same")(t)
    inner = keras.Model(i, t, name="inner_functional")
    seq = keras.Sequential(
        [
            keras.Input((12, 12, 8)),
            layers.Conv2D(10, 3, padding="same"),
            layers.BatchNormalization(),
            layers.ReLU(),
            layers.Conv2D(12, 1),
        ],
        name="inner_sequential",
    )
    inp = keras.Input((12, 12, 3))
    x = _cbr(inp, 8)
    x = layers.ReLU()(inner(x))
    x = seq(x)
    x = layers.GlobalAveragePooling2D()(x)
    return _finish(inp, layers.Dense(5)(x), "nested", seed)


def shared_layer(seed=0):
    """One Conv2D instance and one BN instance each called on two branches,
    merged with Add."""
    inp = keras.Input((12, 12, 3))
    x = _cbr(inp, 8)
    a = layers.Conv2D(8, 3, padding="same", activation="relu")(x)
    b = layers.Conv2D(8, 1, activation="relu")(x)
    conv = layers.Conv2D(12, 3, padding="same")
    bn = layers.BatchNormalization()
    ya, yb = bn(conv(a)), bn(conv(b))
    x = layers.ReLU()(layers.Add()([ya, yb]))
    x = layers.GlobalAveragePooling2D()(x)
    return _finish(inp, layers.Dense(5)(x), "shared_layer", seed)


def multi_io(seed=0):
    """Two image inputs (12x12x3, 12x12x1), a shared conv applied to both
    streams, a concat join, and two heads: Dense(5) and Dense(1)."""
    rgb = keras.Input((12, 12, 3), name="rgb")
    depth = keras.Input((12, 12, 1), name="depth")
    a = _cbr(rgb, 8)
    b = _cbr(depth, 8)
    shared = layers.Conv2D(8, 3, padding="same", activation="relu")
    x = layers.Concatenate()([shared(a), shared(b)])
    x = _cbr(x, 12)
    x = layers.GlobalAveragePooling2D()(x)
    cls = layers.Dense(5, name="cls")(x)
    reg = layers.Dense(1, name="reg")(layers.Dense(8, activation="relu")(x))
    return _finish([rgb, depth], [cls, reg], "multi_io", seed)


def grouped_conv(seed=0):
    """Conv2D(8) -> Conv2D(16, groups=4) -> BN -> ReLU -> Conv2D(8, groups=2)."""
    inp = keras.Input((12, 12, 3))
    x = layers.Conv2D(8, 3, padding="same", activation="relu")(inp)
    x = layers.Conv2D(16, 3, padding="same", groups=4)(x)
    x = layers.ReLU()(layers.BatchNormalization()(x))
    x = layers.Conv2D(8, 3, padding="same", groups=2, activation="relu")(x)
    x = layers.GlobalAveragePooling2D()(x)
    return _finish(inp, layers.Dense(5)(x), "grouped_conv", seed)


def conv1d(seed=0):
    """1-D chain on (32, 4): Conv1D-BN-ReLU, Conv1D, MaxPool1D, Conv1D, GAP1D."""
    inp = keras.Input((32, 4))
    x = layers.Conv1D(8, 3, padding="same")(inp)
    x = layers.ReLU()(layers.BatchNormalization()(x))
    x = layers.Conv1D(12, 3, padding="same", activation="relu")(x)
    x = layers.MaxPooling1D()(x)
    x = layers.Conv1D(16, 3, padding="same")(x)
    x = layers.GlobalAveragePooling1D()(x)
    return _finish(inp, layers.Dense(5)(x), "conv1d", seed)


# Width 31 (15 after pooling) never equals a channel count: Keras 3.15's TF
# ops.add takes a (1, C, 1, 1) bias for NHWC when the last axis also has C
# entries, which would make a correct rebuild look wrong.
CF_INPUT = (3, 10, 31)


def _channels_first_trunk(inp):
    cf = "channels_first"
    x = layers.Conv2D(8, 3, padding="same", data_format=cf)(inp)
    x = layers.ReLU()(layers.BatchNormalization(axis=1)(x))
    x = layers.MaxPooling2D(data_format=cf)(x)
    return layers.Conv2D(12, 3, padding="same", activation="relu", data_format=cf)(x)


def channels_first(seed=0):
    """channels_first throughout: Conv2D, BN(axis=1), MaxPool, GAP, Dense."""
    inp = keras.Input(CF_INPUT)
    x = _channels_first_trunk(inp)
    x = layers.GlobalAveragePooling2D(data_format="channels_first")(x)
    return _finish(inp, layers.Dense(5)(x), "channels_first", seed)


def channels_first_flatten(seed=0):
    """channels_first trunk ending in Flatten(channels_first) -> Dense."""
    inp = keras.Input(CF_INPUT)
    x = _channels_first_trunk(inp)
    x = layers.Flatten(data_format="channels_first")(x)
    return _finish(inp, layers.Dense(5)(x), "channels_first_flatten", seed)


def lambda_freeze(seed=0):
    """A Lambda layer (opaque op) between two convs, plus an independent conv
    branch, merged with Concatenate before the head."""
    inp = keras.Input((12, 12, 3))
    a = layers.Conv2D(8, 3, padding="same", activation="relu")(inp)
    a = layers.Lambda(lambda t: t * 2.0)(a)
    a = layers.Conv2D(8, 3, padding="same", activation="relu")(a)
    b = _cbr(inp, 8)
    b = layers.Conv2D(6, 3, padding="same", activation="relu")(b)
    x = layers.Concatenate()([a, b])
    x = layers.GlobalAveragePooling2D()(x)
    return _finish(inp, layers.Dense(5)(x), "lambda_freeze", seed)


def per_channel_layers(seed=0):
    """Chain of per-channel / shape-only layers: PReLU, LayerNorm, GroupNorm
    (2 groups and per-channel), Normalization, Rescaling, LeakyReLU, ELU, swish,
    SpatialDropout2D, AveragePooling2D, ZeroPadding2D, Cropping2D, UpSampling2D,
    Conv2DTranspose, and Reshape (H, W, C) -> (H*W, C) feeding Conv1D."""
    rng = np.random.default_rng(1000 + seed)
    inp = keras.Input((12, 12, 3))
    x = layers.Conv2D(8, 3, padding="same")(inp)
    x = layers.PReLU(shared_axes=[1, 2])(x)
    x = layers.LayerNormalization(axis=-1)(x)
    x = layers.Conv2D(8, 3, padding="same")(x)
    x = layers.GroupNormalization(groups=2)(x)
    x = layers.LeakyReLU(negative_slope=0.1)(x)
    x = layers.Conv2D(8, 3, padding="same")(x)
    x = layers.GroupNormalization(groups=-1)(x)
    x = layers.ELU()(x)
    x = layers.Normalization(
        axis=-1,
        mean=rng.normal(0.0, 0.1, 8).astype("float32"),
        variance=rng.uniform(0.5, 1.5, 8).astype("float32"),
    )(x)
    x = layers.Rescaling(0.5, offset=0.1)(x)
    x = layers.Activation("swish")(x)
    x = layers.SpatialDropout2D(0.1)(x)
    x = layers.AveragePooling2D(2)(x)  # 6x6
    x = layers.ZeroPadding2D(1)(x)  # 8x8
    x = layers.Conv2D(8, 3, padding="same", activation="relu")(x)
    x = layers.Cropping2D(1)(x)  # 6x6
    x = layers.UpSampling2D()(x)  # 12x12
    x = layers.Conv2DTranspose(8, 3, padding="same", activation="relu")(x)
    x = layers.AveragePooling2D(2)(x)  # 6x6
    x = layers.Reshape((36, 8))(x)
    x = layers.Conv1D(10, 3, padding="same", activation="relu")(x)
    x = layers.GlobalAveragePooling1D()(x)
    return _finish(inp, layers.Dense(5)(x), "per_channel_layers", seed)


def transformer(seed=0):
    """ViT-style: Conv2D patch embedding with GroupNormalization(2 groups), tokens,
    two pre-norm blocks (LayerNormalization, MultiHeadAttention with its own
    value_dim, residual Add, RMSNormalization, GELU MLP, Add), mean pooling, head."""
    inp = keras.Input((16, 16, 3))
    x = layers.Conv2D(16, 4, strides=4)(inp)
    x = layers.GroupNormalization(groups=2)(x)
    x = layers.Reshape((16, 16))(x)
    for _ in range(2):
        h = layers.LayerNormalization(epsilon=1e-6)(x)
        h = layers.MultiHeadAttention(4, 6, value_dim=5)(h, h)
        x = layers.Add()([x, h])
        h = layers.RMSNormalization()(x)
        h = layers.Dense(32, activation="gelu")(h)
        x = layers.Add()([x, layers.Dense(16)(h)])
    x = layers.LayerNormalization()(x)
    x = layers.GlobalAveragePooling1D()(x)
    return _finish(inp, layers.Dense(5)(x), "transformer", seed)


ZOO = {
    f.__name__: f
    for f in (
        plain_chain,
        residual,
        inception,
        depthwise_separable,
        squeeze_excitation,
        flatten_dense,
        nested,
        shared_layer,
        multi_io,
        grouped_conv,
        conv1d,
        channels_first,
        channels_first_flatten,
        lambda_freeze,
        per_channel_layers,
        transformer,
    )
}


def tiny_chain(name="chain"):
    """For training tests: 8x8x1 -> Conv2D(6, "c1") -> Conv2D(8, "c2") (ReLU) -> Flatten
    -> Dense(3, "fc"), with Keras's own initial weights."""
    inputs = keras.Input((8, 8, 1))
    h = layers.Conv2D(6, 3, padding="same", activation="relu", name="c1")(inputs)
    h = layers.Conv2D(8, 3, padding="same", activation="relu", name="c2")(h)
    h = layers.Flatten()(h)
    return keras.Model(inputs, layers.Dense(3, name="fc")(h), name=name)


def digits_cnn(head="flatten"):
    """The digits tests' CNN, Keras's own initial weights: 8x8x1 -> Conv2D(12, "c1") -> BN
    ("bn1") -> ReLU -> Conv2D(16, "c2") -> then ``head="flatten"``: BN ("bn2") -> ReLU ->
    Flatten -> Dense(10, softmax, "fc"), named "digits_cnn"; ``head="pool"``: ReLU -> global
    average pooling -> Dense(10, logits, "fc"), named "digits"."""
    inputs = keras.Input((8, 8, 1))
    h = layers.Conv2D(12, 3, padding="same", name="c1")(inputs)
    h = layers.ReLU()(layers.BatchNormalization(name="bn1")(h))
    h = layers.Conv2D(16, 3, padding="same", name="c2")(h)
    if head == "pool":
        h = layers.GlobalAveragePooling2D()(layers.ReLU()(h))
        return keras.Model(inputs, layers.Dense(10, name="fc")(h), name="digits")
    h = layers.Flatten()(layers.ReLU()(layers.BatchNormalization(name="bn2")(h)))
    outputs = layers.Dense(10, activation="softmax", name="fc")(h)
    return keras.Model(inputs, outputs, name="digits_cnn")


def tiny_classification(n=64, seed=0):
    """``(x, y)``: n random 8x8x1 images and 3 classes that depend on them."""
    rng = np.random.default_rng(seed)
    x = rng.normal(size=(n, 8, 8, 1)).astype("float32")
    y = (x[:, :4].mean(axis=(1, 2, 3)) > 0).astype("int64") + (x[:, 4:].mean(axis=(1, 2, 3)) > 0)
    return x, y
