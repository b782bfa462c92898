"""The one table that maps layer and operation classes to their handlers."""

import keras
from keras import layers

from keras_biprune import _keras_internals as internals
from keras_biprune.errors import HandlerError
from keras_biprune.handlers import keras_hub
from keras_biprune.handlers.attention import MultiHeadAttentionHandler
from keras_biprune.handlers.channelwise import (
    GlobalPoolingHandler,
    InferenceIdentityHandler,
    PadHandler,
    PassThroughHandler,
    PerChannelHandler,
    ReductionHandler,
    RescalingHandler,
    SpatialHandler,
)
from keras_biprune.handlers.couplers import ConcatenateHandler, MergeHandler, SplitHandler
from keras_biprune.handlers.normalization import NormalizationHandler
from keras_biprune.handlers.producers import (
    ConvHandler,
    ConvTransposeHandler,
    DenseHandler,
    DepthwiseConvHandler,
    EmbeddingHandler,
    SeparableConvHandler,
)
from keras_biprune.handlers.reshaping import (
    ChannelSelectHandler,
    DepthToSpaceHandler,
    FlattenHandler,
    PermuteHandler,
    ReshapeHandler,
    SpaceToDepthHandler,
)
from keras_biprune.layers import ChannelSelect

_np, _nn = internals.np_ops, internals.nn_ops
_apps = internals.application_layer_classes()

_BUILTIN = {
    ConvHandler(): [layers.Conv1D, layers.Conv2D, layers.Conv3D],
    DenseHandler(): [layers.Dense],
    EmbeddingHandler(): [layers.Embedding],
    ConvTransposeHandler(): [layers.Conv1DTranspose, layers.Conv2DTranspose,
                             layers.Conv3DTranspose],
    DepthwiseConvHandler(): [layers.DepthwiseConv1D, layers.DepthwiseConv2D],
    SeparableConvHandler(): [layers.SeparableConv1D, layers.SeparableConv2D],
    PerChannelHandler(): [layers.BatchNormalization, layers.PReLU, layers.Normalization],
    NormalizationHandler(): [layers.LayerNormalization, layers.GroupNormalization,
                             layers.RMSNormalization],
    PerChannelHandler(size_key="projection_dim"): _apps["layer_scale"],
    MultiHeadAttentionHandler(): [layers.MultiHeadAttention],
    RescalingHandler(): [layers.Rescaling],
    PassThroughHandler(): [
        layers.Activation, layers.ReLU, layers.LeakyReLU, layers.ELU, layers.Softmax,
        layers.Dropout, layers.SpatialDropout1D, layers.SpatialDropout2D,
        layers.SpatialDropout3D, layers.GaussianNoise, layers.GaussianDropout,
        layers.AlphaDropout, layers.ActivityRegularization, layers.Identity,
        *_apps["elementwise"],
        _nn.Relu, _nn.Relu6, _nn.Sigmoid, _nn.HardSigmoid, _nn.HardSilu, _nn.Silu, _nn.Gelu,
        _nn.Elu, _nn.Selu, _nn.Celu, _nn.LeakyRelu, _nn.Softplus, _nn.Softsign,
        _nn.Softmax, _nn.LogSoftmax, _nn.HardTanh, _nn.LogSigmoid,
        _np.Abs, _np.Absolute, _np.Negative, _np.Exp, _np.Log, _np.Sqrt, _np.Square,
        _np.Tanh, _np.Clip, _np.Reciprocal, _np.Sign, _np.Floor, _np.Ceil, _np.Round,
        _np.Copy,
    ],
    SpatialHandler(): [
        layers.MaxPooling1D, layers.MaxPooling2D, layers.MaxPooling3D,
        layers.AveragePooling1D, layers.AveragePooling2D, layers.AveragePooling3D,
        layers.ZeroPadding1D, layers.ZeroPadding2D, layers.ZeroPadding3D,
        layers.Cropping1D, layers.Cropping2D, layers.Cropping3D,
        layers.UpSampling1D, layers.UpSampling2D, layers.UpSampling3D,
        layers.Resizing, internals.image_ops.Resize,
    ],
    PadHandler(): [_np.Pad],
    SplitHandler(): [_np.Split],
    DepthToSpaceHandler(): [_nn.DepthToSpace],
    SpaceToDepthHandler(): [_nn.SpaceToDepth],
    GlobalPoolingHandler(): [
        layers.GlobalAveragePooling1D, layers.GlobalAveragePooling2D,
        layers.GlobalAveragePooling3D, layers.GlobalMaxPooling1D, layers.GlobalMaxPooling2D,
        layers.GlobalMaxPooling3D,
    ],
    MergeHandler(): [
        layers.Add, layers.Subtract, layers.Multiply, layers.Average, layers.Maximum,
        layers.Minimum, _np.Add, _np.Subtract, _np.Multiply, _np.Divide, _np.TrueDivide,
        _np.Maximum, _np.Minimum, *_apps["merge"],
    ],
    ConcatenateHandler(): [layers.Concatenate, _np.Concatenate],
    ReductionHandler(): [_np.Mean, _np.Max, _np.Min, _np.Sum, _np.Var, _np.Std],
    ReshapeHandler(): [layers.Reshape, _np.Reshape, _np.ExpandDims, _np.Squeeze],
    FlattenHandler(): [layers.Flatten],
    PermuteHandler(): [layers.Permute, _np.Transpose],
    ChannelSelectHandler(): [ChannelSelect],
}

_OPAQUE = InferenceIdentityHandler()


class HandlerRegistry:
    """Maps classes to handlers: exact class first, then the nearest base class.

    ``by_name`` maps ``module.QualName`` to handlers for classes of optional
    packages (keras-hub), so those packages are never imported here.
    """

    def __init__(self, table, by_name):
        self._table = {cls: handler for handler, classes in table.items() for cls in classes}
        self._by_name = dict(by_name)

    def register(self, cls, handler):
        if not isinstance(cls, type):
            raise HandlerError(
                f"register_handler expects a layer class. Received: cls={cls!r}. "
                "Pass the class itself, e.g. register_handler(MyLayer, MyHandler())."
            )
        if not callable(getattr(handler, "trace", None)):
            raise HandlerError(
                "register_handler expects a handler with trace/prune_config/prune_weights "
                f"(a keras_biprune.LayerHandler). Received: handler={handler!r}. "
                "Subclass kb.LayerHandler and pass an instance."
            )
        self._table[cls] = handler

    def lookup(self, op):
        for cls in type(op).__mro__:
            handler = self._table.get(cls) or self._by_name.get(
                f"{cls.__module__}.{cls.__qualname__}")
            if handler is not None:
                return handler
            if cls in (layers.Layer, keras.Model):
                break
        return _OPAQUE


REGISTRY = HandlerRegistry(_BUILTIN, keras_hub.HANDLERS)
