"""Small keras-hub backbones built from their classes (no preset download)."""

import keras_hub


def resnet():
    return keras_hub.models.ResNetBackbone(
        input_conv_filters=[16], input_conv_kernel_sizes=[3],
        stackwise_num_filters=[64, 32], stackwise_num_blocks=[2, 2],
        stackwise_num_strides=[1, 2], block_type="bottleneck_block",
        image_shape=(32, 32, 3))


def mobilenet_v3():
    return keras_hub.models.MobileNetBackbone(
        stackwise_expansion=[[16], [32, 48]], stackwise_num_blocks=[1, 2],
        stackwise_num_filters=[[16], [24, 24]], stackwise_kernel_size=[[3], [5, 5]],
        stackwise_num_strides=[[2], [2, 1]], stackwise_se_ratio=[[None], [0.25, 0.25]],
        stackwise_activation=[["relu"], ["hard_swish", "hard_swish"]],
        stackwise_padding=[[1], [2, 2]], output_num_filters=48, depthwise_filters=8,
        depthwise_stride=1, depthwise_residual=False, last_layer_filter=64,
        squeeze_and_excite=0.5, input_num_filters=8, image_shape=(32, 32, 3))


def efficientnet():
    return keras_hub.models.EfficientNetBackbone(
        stackwise_width_coefficients=[1.0] * 4, stackwise_depth_coefficients=[1.0] * 4,
        stackwise_kernel_sizes=[3, 3, 3, 3], stackwise_num_repeats=[1, 2, 1, 1],
        stackwise_input_filters=[16, 16, 24, 32], stackwise_output_filters=[16, 24, 32, 40],
        stackwise_expansion_ratios=[1, 4, 4, 4],
        stackwise_squeeze_and_excite_ratios=[0.0, 0.0, 0.25, 0.25],
        stackwise_strides=[1, 2, 2, 1],
        stackwise_block_types=["fused", "fused", "unfused", "unfused"],
        stackwise_force_input_filters=[0] * 4, stackwise_nores_option=[False] * 4,
        num_features=64, input_shape=(32, 32, 3))


def cspdarknet():
    return keras_hub.models.CSPNetBackbone(
        stem_filters=16, stem_kernel_size=3, stem_strides=1, stackwise_depth=[1, 2],
        stackwise_strides=[1, 2], stackwise_num_filters=[16, 32], stage_type="dark", block_type="dark_block",
        image_shape=(32, 32, 3))


def vit():
    return keras_hub.models.ViTBackbone(
        image_shape=(32, 32, 3), patch_size=4, num_layers=3, num_heads=4, hidden_dim=32,
        mlp_dim=128)


BACKBONES = {f.__name__: f for f in (resnet, mobilenet_v3, efficientnet, cspdarknet, vit)}
