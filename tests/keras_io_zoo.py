"""Real-world models: building code after keras-io examples, at toy sizes.

Each builder follows the model-building code of one keras-io example (named
and linked above it) as a user would copy it, custom layers and ``Lambda``
layers included, with widths, depths and inputs shrunk so a check takes
seconds. ``tests/test_keras_io_zoo.py`` runs the surgery invariants on each
and ``benchmarks/zoo.py`` prints how much of each one prunes.
"""

import keras
import numpy as np
from keras import layers, ops

__all__ = ["KERAS_IO_ZOO", "sample_input"]


# https://keras.io/examples/vision/mnist_convnet/
def mnist_convnet():
    return keras.Sequential([
        keras.Input((28, 28, 1)),
        layers.Conv2D(8, 3, activation="relu"),
        layers.MaxPooling2D(2),
        layers.Conv2D(16, 3, activation="relu"),
        layers.MaxPooling2D(2),
        layers.Flatten(),
        layers.Dropout(0.5),
        layers.Dense(10, activation="softmax"),
    ])


def _xception_stem(x, stem, sizes):
    """The entry flow both keras-io examples below share: a strided conv, then
    per size two separable convs, a pool and a strided 1x1 shortcut."""
    x = layers.Conv2D(stem, 3, strides=2, padding="same")(x)
    x = layers.BatchNormalization()(x)
    x = layers.Activation("relu")(x)
    previous = x
    for size in sizes:
        x = layers.Activation("relu")(x)
        x = layers.SeparableConv2D(size, 3, padding="same")(x)
        x = layers.BatchNormalization()(x)
        x = layers.Activation("relu")(x)
        x = layers.SeparableConv2D(size, 3, padding="same")(x)
        x = layers.BatchNormalization()(x)
        x = layers.MaxPooling2D(3, strides=2, padding="same")(x)
        residual = layers.Conv2D(size, 1, strides=2, padding="same")(previous)
        x = layers.add([x, residual])
        previous = x
    return x


# https://keras.io/examples/vision/image_classification_from_scratch/ (small Xception)
def xception_from_scratch():
    inputs = keras.Input((32, 32, 3))
    x = _xception_stem(layers.Rescaling(1.0 / 255)(inputs), 16, [16, 32])
    x = layers.SeparableConv2D(48, 3, padding="same")(x)
    x = layers.BatchNormalization()(x)
    x = layers.Activation("relu")(x)
    x = layers.GlobalAveragePooling2D()(x)
    x = layers.Dropout(0.25)(x)
    return keras.Model(inputs, layers.Dense(1)(x))


# https://keras.io/examples/vision/oxford_pets_image_segmentation/ (U-Net-like)
def oxford_pets_unet():
    inputs = keras.Input((32, 32, 3))
    x = previous = _xception_stem(inputs, 8, [16, 32])
    for filters in [32, 16, 8]:
        x = layers.Activation("relu")(x)
        x = layers.Conv2DTranspose(filters, 3, padding="same")(x)
        x = layers.BatchNormalization()(x)
        x = layers.Activation("relu")(x)
        x = layers.Conv2DTranspose(filters, 3, padding="same")(x)
        x = layers.BatchNormalization()(x)
        x = layers.UpSampling2D(2)(x)
        residual = layers.UpSampling2D(2)(previous)
        residual = layers.Conv2D(filters, 1, padding="same")(residual)
        x = layers.add([x, residual])
        previous = x
    return keras.Model(inputs, layers.Conv2D(3, 3, activation="softmax", padding="same")(x))


# https://keras.io/examples/vision/super_resolution_sub_pixel/ (ESPCN)
def espcn_super_resolution():
    upscale = 3
    inputs = keras.Input((12, 12, 1))
    x = layers.Conv2D(16, 5, activation="relu", padding="same")(inputs)
    x = layers.Conv2D(16, 3, activation="relu", padding="same")(x)
    x = layers.Conv2D(8, 3, activation="relu", padding="same")(x)
    x = layers.Conv2D(1 * upscale**2, 3, padding="same")(x)
    return keras.Model(inputs, ops.depth_to_space(x, upscale))


class PixelShuffle(layers.Layer):
    """EDSR's sub-pixel layer as the example writes it: no ``**kwargs``."""

    def __init__(self, factor):
        super().__init__()
        self.factor = factor

    def call(self, x):
        return ops.depth_to_space(x, self.factor)


# https://keras.io/examples/vision/edsr/
def edsr():
    inputs = keras.Input((10, 10, 3))
    x = layers.Rescaling(1.0 / 255)(inputs)
    x = x_in = layers.Conv2D(16, 3, padding="same")(x)
    for _ in range(2):
        r = layers.Conv2D(16, 3, padding="same", activation="relu")(x)
        r = layers.Conv2D(16, 3, padding="same")(r)
        x = layers.Add()([x, r])
    x = layers.Conv2D(16, 3, padding="same")(x)
    x = layers.Add()([x_in, x])
    x = layers.Conv2D(16 * 4, 3, padding="same")(x)
    x = PixelShuffle(2)(x)
    x = layers.Conv2D(3, 3, padding="same")(x)
    return keras.Model(inputs, layers.Rescaling(255)(x))


# https://keras.io/examples/audio/speaker_recognition_using_cnn/
def speaker_recognition_1d():
    def residual_block(x, filters, conv_num=3):
        s = layers.Conv1D(filters, 1, padding="same")(x)
        for _ in range(conv_num - 1):
            x = layers.Conv1D(filters, 3, padding="same")(x)
            x = layers.Activation("relu")(x)
        x = layers.Conv1D(filters, 3, padding="same")(x)
        x = layers.Add()([x, s])
        x = layers.Activation("relu")(x)
        return layers.MaxPool1D(pool_size=2, strides=2)(x)

    inputs = keras.Input((64, 1))
    x = residual_block(inputs, 8, 2)
    x = residual_block(x, 16, 2)
    x = residual_block(x, 16, 3)
    x = layers.AveragePooling1D(pool_size=3, strides=3)(x)
    x = layers.Flatten()(x)
    x = layers.Dense(32, activation="relu")(x)
    x = layers.Dense(16, activation="relu")(x)
    return keras.Model(inputs, layers.Dense(5, activation="softmax")(x))


# https://keras.io/examples/timeseries/timeseries_classification_from_scratch/ (FCN)
def timeseries_fcn():
    inputs = keras.Input((50, 1))
    x = inputs
    for _ in range(3):
        x = layers.Conv1D(16, 3, padding="same")(x)
        x = layers.BatchNormalization()(x)
        x = layers.ReLU()(x)
    x = layers.GlobalAveragePooling1D()(x)
    return keras.Model(inputs, layers.Dense(2, activation="softmax")(x))


# https://keras.io/examples/timeseries/timeseries_classification_transformer/
def timeseries_transformer():
    def encoder(inputs, head_size, num_heads, ff_dim):
        x = layers.MultiHeadAttention(key_dim=head_size, num_heads=num_heads)(inputs, inputs)
        x = layers.LayerNormalization(epsilon=1e-6)(x)
        res = x + inputs
        x = layers.Conv1D(filters=ff_dim, kernel_size=1, activation="relu")(res)
        x = layers.Conv1D(filters=inputs.shape[-1], kernel_size=1)(x)
        x = layers.LayerNormalization(epsilon=1e-6)(x)
        return x + res

    inputs = keras.Input((20, 4))
    x = inputs
    for _ in range(2):
        x = encoder(x, 8, 2, 8)
    x = layers.GlobalAveragePooling1D(data_format="channels_last")(x)
    x = layers.Dense(16, activation="relu")(x)
    return keras.Model(inputs, layers.Dense(2, activation="softmax")(x))


# https://keras.io/examples/vision/3D_image_classification/
def ct_scan_3d():
    inputs = keras.Input((16, 16, 8, 1))
    x = inputs
    for filters in [8, 8, 16]:
        x = layers.Conv3D(filters, 3, activation="relu", padding="same")(x)
        x = layers.MaxPool3D(2, padding="same")(x)
        x = layers.BatchNormalization()(x)
    x = layers.GlobalAveragePooling3D()(x)
    x = layers.Dense(16, activation="relu")(x)
    x = layers.Dropout(0.3)(x)
    return keras.Model(inputs, layers.Dense(1, activation="sigmoid")(x))


class OrthogonalRegularizer(keras.regularizers.Regularizer):
    """PointNet's regularizer, as in the example: no ``get_config``."""

    def __init__(self, num_features, l2reg=0.001):
        self.num_features = num_features
        self.l2reg = l2reg
        self.eye = ops.eye(num_features)

    def __call__(self, x):
        x = ops.reshape(x, (-1, self.num_features, self.num_features))
        xxt = ops.tensordot(x, x, axes=(2, 2))
        xxt = ops.reshape(xxt, (-1, self.num_features, self.num_features))
        return ops.sum(self.l2reg * ops.square(xxt - self.eye))


# https://keras.io/examples/vision/pointnet/
def pointnet():
    def conv_bn(x, filters):
        x = layers.Conv1D(filters, kernel_size=1, padding="valid")(x)
        x = layers.BatchNormalization(momentum=0.0)(x)
        return layers.Activation("relu")(x)

    def dense_bn(x, filters):
        x = layers.Dense(filters)(x)
        x = layers.BatchNormalization(momentum=0.0)(x)
        return layers.Activation("relu")(x)

    def tnet(inputs, num_features):
        bias = keras.initializers.Constant(ops.convert_to_numpy(ops.eye(num_features)).flatten())
        x = conv_bn(inputs, 8)
        x = conv_bn(x, 16)
        x = layers.GlobalMaxPooling1D()(x)
        x = dense_bn(x, 16)
        x = layers.Dense(num_features * num_features, kernel_initializer="zeros",
                         bias_initializer=bias,
                         activity_regularizer=OrthogonalRegularizer(num_features))(x)
        feat_t = layers.Reshape((num_features, num_features))(x)
        return layers.Dot(axes=(2, 1))([inputs, feat_t])

    inputs = keras.Input((32, 3))
    x = tnet(inputs, 3)
    x = conv_bn(x, 8)
    x = conv_bn(x, 8)
    x = tnet(x, 8)
    x = conv_bn(x, 8)
    x = conv_bn(x, 16)
    x = layers.GlobalMaxPooling1D()(x)
    x = dense_bn(x, 16)
    x = layers.Dropout(0.3)(x)
    return keras.Model(inputs, layers.Dense(4, activation="softmax")(x))


# https://keras.io/examples/vision/convmixer/
def convmixer():
    inputs = keras.Input((16, 16, 3))
    x = layers.Rescaling(scale=1.0 / 255)(inputs)
    x = layers.Conv2D(16, kernel_size=2, strides=2)(x)
    x = layers.Activation("gelu")(x)
    x = layers.BatchNormalization()(x)
    for _ in range(2):
        x0 = x
        x = layers.DepthwiseConv2D(kernel_size=3, padding="same")(x)
        x = layers.Add()([layers.BatchNormalization()(layers.Activation("gelu")(x)), x0])
        x = layers.Conv2D(16, kernel_size=1)(x)
        x = layers.BatchNormalization()(layers.Activation("gelu")(x))
    x = layers.GlobalAvgPool2D()(x)
    return keras.Model(inputs, layers.Dense(10, activation="softmax")(x))


# https://keras.io/examples/vision/mobilevit/
def mobilevit():
    def conv_block(x, filters=16, kernel_size=3, strides=2):
        return layers.Conv2D(filters, kernel_size, strides=strides, activation="swish",
                             padding="same")(x)

    def inverted_residual(x, expanded_channels, output_channels, strides=1):
        m = layers.Conv2D(expanded_channels, 1, padding="same", use_bias=False)(x)
        m = layers.BatchNormalization()(m)
        m = keras.activations.swish(m)
        if strides == 2:
            m = layers.ZeroPadding2D(padding=((0, 1), (0, 1)))(m)
        m = layers.DepthwiseConv2D(3, strides=strides, padding="same" if strides == 1 else "valid",
                                   use_bias=False)(m)
        m = layers.BatchNormalization()(m)
        m = keras.activations.swish(m)
        m = layers.Conv2D(output_channels, 1, padding="same", use_bias=False)(m)
        m = layers.BatchNormalization()(m)
        if keras.ops.equal(x.shape[-1], output_channels) and strides == 1:
            return layers.Add()([m, x])
        return m

    def transformer_block(x, projection_dim, num_heads=2):
        x1 = layers.LayerNormalization(epsilon=1e-6)(x)
        attention = layers.MultiHeadAttention(num_heads=num_heads, key_dim=projection_dim,
                                              dropout=0.1)(x1, x1)
        x2 = layers.Add()([attention, x])
        x3 = layers.LayerNormalization(epsilon=1e-6)(x2)
        x3 = layers.Dense(projection_dim * 2, activation=keras.activations.swish)(x3)
        x3 = layers.Dense(projection_dim, activation=keras.activations.swish)(x3)
        return layers.Add()([x3, x2])

    def mobilevit_block(x, num_blocks, projection_dim, patch_size=4):
        local = conv_block(x, filters=projection_dim, strides=1)
        local = conv_block(local, filters=projection_dim, kernel_size=1, strides=1)
        num_patches = int((local.shape[1] * local.shape[2]) / patch_size)
        global_features = layers.Reshape((patch_size, num_patches, projection_dim))(local)
        for _ in range(num_blocks):
            global_features = transformer_block(global_features, projection_dim)
        folded = layers.Reshape((*local.shape[1:-1], projection_dim))(global_features)
        folded = conv_block(folded, filters=x.shape[-1], kernel_size=1, strides=1)
        local_global = layers.Concatenate(axis=-1)([x, folded])
        return conv_block(local_global, filters=projection_dim, strides=1)

    inputs = keras.Input((16, 16, 3))
    x = layers.Rescaling(scale=1.0 / 255)(inputs)
    x = conv_block(x, filters=8)
    x = inverted_residual(x, expanded_channels=16, output_channels=8)
    x = inverted_residual(x, expanded_channels=16, output_channels=12, strides=2)
    x = mobilevit_block(x, num_blocks=1, projection_dim=16)
    x = conv_block(x, filters=24, kernel_size=1, strides=1)
    x = layers.GlobalAvgPool2D()(x)
    return keras.Model(inputs, layers.Dense(5, activation="softmax")(x))


class StochasticDepth(layers.Layer):
    """CCT's drop path, as the example writes it (identity at inference)."""

    def __init__(self, drop_prop, **kwargs):
        super().__init__(**kwargs)
        self.drop_prob = drop_prop
        self.seed_generator = keras.random.SeedGenerator(1337)

    def call(self, x, training=None):
        if training:
            keep_prob = 1 - self.drop_prob
            shape = (ops.shape(x)[0],) + (1,) * (len(x.shape) - 1)
            random_tensor = keep_prob + keras.random.uniform(shape, 0, 1, seed=self.seed_generator)
            return (x / keep_prob) * ops.floor(random_tensor)
        return x


# https://keras.io/examples/vision/cct/ (Compact Convolutional Transformer)
def cct():
    projection_dim = 16

    def tokenizer(images):
        x = images
        for filters in [8, projection_dim]:
            x = layers.ZeroPadding2D(1)(x)
            x = layers.Conv2D(filters, 3, strides=1, padding="valid", use_bias=False,
                              activation="relu", kernel_initializer="he_normal")(x)
            x = layers.ZeroPadding2D(1)(x)
            x = layers.MaxPooling2D(3, 2, "same")(x)
        return ops.reshape(x, (-1, x.shape[1] * x.shape[2], x.shape[-1]))

    inputs = keras.Input((16, 16, 3))
    encoded = tokenizer(inputs)
    for _ in range(2):
        x1 = layers.LayerNormalization(epsilon=1e-5)(encoded)
        attention = layers.MultiHeadAttention(num_heads=2, key_dim=projection_dim,
                                              dropout=0.1)(x1, x1)
        attention = StochasticDepth(0.1)(attention)
        x2 = layers.Add()([attention, encoded])
        x3 = layers.LayerNormalization(epsilon=1e-5)(x2)
        x3 = layers.Dense(projection_dim, activation=ops.gelu)(x3)
        x3 = layers.Dense(projection_dim, activation=ops.gelu)(x3)
        x3 = StochasticDepth(0.1)(x3)
        encoded = layers.Add()([x3, x2])
    representation = layers.LayerNormalization(epsilon=1e-5)(encoded)
    weights = ops.softmax(layers.Dense(1)(representation), axis=1)
    weighted = ops.matmul(ops.transpose(weights, axes=(0, 2, 1)), representation)
    weighted = ops.squeeze(weighted, -2)
    return keras.Model(inputs, layers.Dense(10)(weighted))


class Patches(layers.Layer):
    """The ViT example's patch layer: ``__init__(self, patch_size)``, no ``**kwargs``."""

    def __init__(self, patch_size):
        super().__init__()
        self.patch_size = patch_size

    def call(self, images):
        patches = ops.image.extract_patches(images, size=self.patch_size)
        batch = ops.shape(patches)[0]
        return ops.reshape(patches, (batch, -1, patches.shape[-1]))


class PatchEncoder(layers.Layer):
    def __init__(self, num_patches, projection_dim):
        super().__init__()
        self.num_patches = num_patches
        self.projection = layers.Dense(units=projection_dim)
        self.position_embedding = layers.Embedding(input_dim=num_patches,
                                                   output_dim=projection_dim)

    def call(self, patch):
        positions = ops.expand_dims(ops.arange(start=0, stop=self.num_patches, step=1), axis=0)
        return self.projection(patch) + self.position_embedding(positions)


# https://keras.io/examples/vision/image_classification_with_vision_transformer/
def vision_transformer():
    projection_dim = 16
    inputs = keras.Input((16, 16, 3))
    patches = Patches(4)(inputs)
    encoded = PatchEncoder(16, projection_dim)(patches)
    for _ in range(2):
        x1 = layers.LayerNormalization(epsilon=1e-6)(encoded)
        attention = layers.MultiHeadAttention(num_heads=2, key_dim=projection_dim,
                                              dropout=0.1)(x1, x1)
        x2 = layers.Add()([attention, encoded])
        x3 = layers.LayerNormalization(epsilon=1e-6)(x2)
        for units in [projection_dim * 2, projection_dim]:
            x3 = layers.Dense(units, activation=keras.activations.gelu)(x3)
            x3 = layers.Dropout(0.1)(x3)
        encoded = layers.Add()([x3, x2])
    representation = layers.LayerNormalization(epsilon=1e-6)(encoded)
    representation = layers.Flatten()(representation)
    features = layers.Dense(32, activation=keras.activations.gelu)(representation)
    return keras.Model(inputs, layers.Dense(10)(features))


# https://keras.io/examples/vision/mlp_image_classification/ (MLP-Mixer)
def mlp_mixer():
    num_patches, dim = 16, 16
    inputs = keras.Input((16, 16, 3))
    x = layers.Conv2D(dim, 4, strides=4)(inputs)  # the patch embedding as a strided conv
    x = layers.Reshape((num_patches, dim))(x)
    for _ in range(2):
        y = layers.LayerNormalization(epsilon=1e-6)(x)
        y = layers.Permute((2, 1))(y)
        y = layers.Dense(num_patches, activation="gelu")(y)
        y = layers.Dense(num_patches)(y)
        y = layers.Permute((2, 1))(y)
        x = layers.Add()([x, y])
        y = layers.LayerNormalization(epsilon=1e-6)(x)
        y = layers.Dense(dim, activation="gelu")(y)
        y = layers.Dense(dim)(y)
        x = layers.Add()([x, y])
    x = layers.GlobalAveragePooling1D()(x)
    return keras.Model(inputs, layers.Dense(10)(x))


# https://keras.io/examples/vision/autoencoder/ (denoising autoencoder)
def denoising_autoencoder():
    inputs = keras.Input((16, 16, 1))
    x = layers.Conv2D(8, 3, activation="relu", padding="same")(inputs)
    x = layers.MaxPooling2D(2, padding="same")(x)
    x = layers.Conv2D(8, 3, activation="relu", padding="same")(x)
    x = layers.MaxPooling2D(2, padding="same")(x)
    x = layers.Conv2DTranspose(8, 3, strides=2, activation="relu", padding="same")(x)
    x = layers.Conv2DTranspose(8, 3, strides=2, activation="relu", padding="same")(x)
    return keras.Model(inputs, layers.Conv2D(1, 3, activation="sigmoid", padding="same")(x))


# https://keras.io/examples/vision/deeplabv3_plus/ (small backbone in place of ResNet50)
def deeplabv3_plus():
    def conv_block(x, filters=16, kernel_size=3, dilation_rate=1):
        x = layers.Conv2D(filters, kernel_size, dilation_rate=dilation_rate, padding="same",
                          use_bias=False)(x)
        x = layers.BatchNormalization()(x)
        return ops.nn.relu(x)

    def aspp(x):
        dims = x.shape
        pooled = layers.AveragePooling2D(pool_size=(dims[-3], dims[-2]))(x)
        pooled = conv_block(pooled, kernel_size=1)
        pooled = layers.Resizing(dims[-3], dims[-2], interpolation="bilinear")(pooled)
        branches = [pooled, conv_block(x, kernel_size=1)]
        branches += [conv_block(x, dilation_rate=rate) for rate in (2, 3)]
        return conv_block(layers.Concatenate(axis=-1)(branches), kernel_size=1)

    inputs = keras.Input((32, 32, 3))
    low = conv_block(layers.Conv2D(8, 3, strides=4, padding="same")(inputs), filters=8)
    high = conv_block(layers.Conv2D(16, 3, strides=2, padding="same")(low))
    x = aspp(high)
    x = layers.UpSampling2D(size=2, interpolation="bilinear")(x)
    low = conv_block(low, filters=8, kernel_size=1)
    x = layers.Concatenate(axis=-1)([x, low])
    x = conv_block(conv_block(x))
    x = layers.UpSampling2D(size=4, interpolation="bilinear")(x)
    return keras.Model(inputs, layers.Conv2D(3, 1, padding="same")(x))


# https://keras.io/examples/nlp/text_classification_from_scratch/ (1-D convnet on tokens)
def text_cnn():
    inputs = keras.Input((40,), dtype="int64")
    x = layers.Embedding(100, 16)(inputs)
    x = layers.Dropout(0.5)(x)
    x = layers.Conv1D(16, 7, padding="valid", activation="relu", strides=3)(x)
    x = layers.Conv1D(16, 3, padding="valid", activation="relu", strides=3)(x)
    x = layers.GlobalMaxPooling1D()(x)
    x = layers.Dense(16, activation="relu")(x)
    return keras.Model(inputs, layers.Dense(1, activation="sigmoid")(x))


# https://keras.io/examples/vision/zero_dce/ (DCE-Net, its output split in curve maps)
def zero_dce():
    inputs = keras.Input((16, 16, 3))
    c1 = layers.Conv2D(8, 3, activation="relu", padding="same")(inputs)
    c2 = layers.Conv2D(8, 3, activation="relu", padding="same")(c1)
    c3 = layers.Conv2D(8, 3, activation="relu", padding="same")(c2)
    c4 = layers.Conv2D(8, 3, activation="relu", padding="same")(c3)
    c5 = layers.Conv2D(8, 3, activation="relu", padding="same")(layers.Concatenate()([c4, c3]))
    c6 = layers.Conv2D(8, 3, activation="relu", padding="same")(layers.Concatenate()([c5, c2]))
    curves = layers.Conv2D(24, 3, activation="tanh", padding="same")(layers.Concatenate()([c6, c1]))
    x = inputs
    for r in ops.split(curves, 8, axis=-1):
        x = x + r * (ops.square(x) - x)
    return keras.Model(inputs, x)


# After keras-hub's CSPDarkNet (CSP block: split the channels, convolve half, merge)
def csp_darknet_block():
    def conv_bn(x, filters, kernel_size=3, strides=1, padding="same"):
        x = layers.Conv2D(filters, kernel_size, strides=strides, padding=padding,
                          use_bias=False)(x)
        x = layers.BatchNormalization()(x)
        return layers.Activation("swish")(x)

    inputs = keras.Input((32, 32, 3))
    x = conv_bn(inputs, 8, strides=2)
    x = ops.pad(x, ((0, 0), (1, 1), (1, 1), (0, 0)))
    x = conv_bn(x, 16, strides=2, padding="valid")
    for filters in (16, 32):
        x = conv_bn(x, filters, kernel_size=1)
        left, right = ops.split(x, 2, axis=-1)
        right = conv_bn(conv_bn(right, filters // 2, 1), filters // 2)
        x = conv_bn(layers.Concatenate()([left, right]), filters, kernel_size=1)
    x = ops.space_to_depth(x, 2)
    x = layers.GlobalAveragePooling2D()(x)
    return keras.Model(inputs, layers.Dense(10)(x))


# https://keras.io/examples/vision/conv_lstm/ (next-frame prediction)
def conv_lstm():
    inputs = keras.Input((4, 8, 8, 1))
    x = layers.ConvLSTM2D(8, 3, padding="same", return_sequences=True, activation="relu")(inputs)
    x = layers.BatchNormalization()(x)
    x = layers.ConvLSTM2D(8, 1, padding="same", return_sequences=True, activation="relu")(x)
    return keras.Model(inputs, layers.Conv3D(1, 3, activation="sigmoid", padding="same")(x))


# https://keras.io/api/applications/mobilenet/ (keras.applications, weights=None)
def mobilenet_v2():
    return keras.applications.MobileNetV2(input_shape=(32, 32, 3), alpha=0.35, weights=None,
                                          classes=10)


# https://keras.io/api/applications/mobilenet/#mobilenetv3small-function
def mobilenet_v3_small():
    return keras.applications.MobileNetV3Small(input_shape=(32, 32, 3), alpha=0.75, weights=None,
                                               classes=10, include_preprocessing=False)


# https://keras.io/api/applications/efficientnet/
def efficientnet_b0():
    return keras.applications.EfficientNetB0(input_shape=(32, 32, 3), weights=None, classes=10)


KERAS_IO_ZOO = {
    f.__name__: f
    for f in [
        mnist_convnet, xception_from_scratch, oxford_pets_unet, espcn_super_resolution, edsr,
        speaker_recognition_1d, timeseries_fcn, timeseries_transformer, ct_scan_3d, pointnet,
        convmixer, mobilevit, cct, vision_transformer, mlp_mixer, denoising_autoencoder,
        deeplabv3_plus, text_cnn, zero_dce, csp_darknet_block, conv_lstm, mobilenet_v2,
        mobilenet_v3_small, efficientnet_b0,
    ]
}


def sample_input(model, n=2, seed=0):
    """Random input for ``model``: token ids for an integer input, else normal floats."""
    rng = np.random.default_rng(seed)
    shape = (n,) + tuple(int(d) for d in model.inputs[0].shape[1:])
    if "int" in str(model.inputs[0].dtype):
        return rng.integers(0, 100, shape)
    return rng.standard_normal(shape).astype("float32")
