"""Torch-Pruning's choice of channels for the benchmark models, made on PyTorch twins.

The peer a user would otherwise pick. Each Keras model of `benchmarks.models`
has a twin here with the same layers, widths, paddings and batch-norm
settings. The twin does not train on its own: `from_keras` copies the trained
Keras weights into it, and `main` refuses to go on unless both compute the
same logits on the same images. Torch-Pruning 1.6's ``MetaPruner`` prunes the
twin with ``GroupMagnitudeImportance(p=1)`` (``l1``, its default) or
``GroupTaylorImportance`` (``taylor``, gradients of one batch), ranking
channels across layers (``global_pruning=True``, so that a FLOPs budget can be
met closely), with widths in multiples of ``round_to`` as ours and the
classifier left whole; the pruning ratio is bisected until the twin keeps at
most the budget's share of the MACs.

What comes back is *which channels each batch norm kept*. `benchmarks.compare`
turns that into a plan of the Keras model and gives it exactly what every
other method gets: the same rebuild, fine-tuning, scoring and timing. So its
rows compare the choice of channels, not two frameworks' training loops.

Run by ``benchmarks.compare`` in its own process (PyTorch and TensorFlow each
size their thread pools for the whole machine)::

    python -m benchmarks.torch_twins --model vgg_small --weights keras.npz --budgets 0.5 \\
        --out plans.json

``keras.npz`` holds the Keras weights (``<layer>:<i>``) and, as ``images`` and
``logits``, a few images with the Keras model's outputs. Needs ``torch`` and
``torch-pruning`` (``pip install -e '.[bench]'``).
"""

import argparse
import copy
import json
import math
import time

import numpy as np
import torch
import torch_pruning as tp
from torch import nn

from benchmarks.models import DATASETS, load_data

IMPORTANCES = ("l1", "taylor")


def _same_padding(size, kernel_size, stride):
    """Keras' ``padding="same"``: ``(before, after)`` and the output size."""
    out = math.ceil(size / stride)
    total = max((out - 1) * stride + kernel_size - size, 0)
    return (total // 2, total - total // 2), out


class _Twin(nn.Module):
    """Records, under the Keras layer names, the modules made by `conv_bn` and `dense`."""

    def __init__(self, image_size):
        super().__init__()
        self.keras = {}
        self.size = image_size

    def conv_bn(self, name, c_in, c_out, kernel_size=3, stride=1, depthwise=False):
        """``[pad], conv, bn`` as ``<name>_conv``/``<name>_bn`` (``<name>`` for a depthwise)."""
        (before, after), self.size = _same_padding(self.size, kernel_size, stride)
        pad = [] if before == after else [nn.ZeroPad2d((before, after, before, after))]
        conv = nn.Conv2d(c_in, c_out, kernel_size, stride, before if before == after else 0,
                         groups=c_in if depthwise else 1, bias=False)
        bn = nn.BatchNorm2d(c_out, eps=1e-3, momentum=0.01)
        self.keras[f"{name}_conv"], self.keras[f"{name}_bn"] = conv, bn
        return [*pad, conv, bn]

    def dense(self, name, c_in, c_out):
        self.keras[name] = nn.Linear(c_in, c_out)
        return self.keras[name]


class VGGSmall(_Twin):
    """`benchmarks.models.vgg_small`: 3 stages of 2 conv-BN-ReLU (32/64/128), max-pools, MLP head."""

    def __init__(self, image_size, channels=1, classes=10):
        super().__init__(image_size)
        body, c_in = [], channels
        for stage, filters in enumerate((32, 64, 128), start=1):
            for i in (1, 2):
                body += [*self.conv_bn(f"block{stage}_{i}", c_in, filters), nn.ReLU()]
                c_in = filters
            body.append(nn.MaxPool2d(2))
            self.size //= 2
        self.features = nn.Sequential(*body, nn.Flatten())
        self.flatten_shape = (self.size, self.size, c_in)        # Keras' (H, W, C) order
        self.head = nn.Sequential(self.dense("fc", self.size ** 2 * c_in, 128), nn.ReLU(),
                                  self.dense("logits", 128, classes))

    def forward(self, x):
        return self.head(self.features(x))


class _Basic(nn.Module):
    def __init__(self, twin, name, c_in, c_out, stride):
        super().__init__()
        size = twin.size
        self.body = nn.Sequential(*twin.conv_bn(f"{name}_1", c_in, c_out, stride=stride),
                                  nn.ReLU(), *twin.conv_bn(f"{name}_2", c_out, c_out))
        if stride != 1:
            twin.size, out = size, twin.size
            self.shortcut = nn.Sequential(*twin.conv_bn(f"{name}_shortcut", c_in, c_out, 1,
                                                        stride))
            twin.size = out
        else:
            self.shortcut = nn.Identity()

    def forward(self, x):
        return torch.relu(self.shortcut(x) + self.body(x))


class ResNet20(_Twin):
    """`benchmarks.models.resnet20`: stem, 3 stages × 3 basic blocks (16/32/64), 1×1 shortcuts."""

    def __init__(self, image_size, channels=1, classes=10):
        super().__init__(image_size)
        blocks, c_in = [*self.conv_bn("stem", channels, 16), nn.ReLU()], 16
        for stage, filters in enumerate((16, 32, 64), start=1):
            for block in (1, 2, 3):
                stride = 2 if stage > 1 and block == 1 else 1
                blocks.append(_Basic(self, f"stage{stage}_block{block}", c_in, filters, stride))
                c_in = filters
        self.features = nn.Sequential(*blocks, nn.AdaptiveAvgPool2d(1), nn.Flatten())
        self.head = self.dense("logits", 64, classes)

    def forward(self, x):
        return self.head(self.features(x))


class _Inverted(nn.Module):
    def __init__(self, twin, name, c_in, c_out, expansion, stride):
        super().__init__()
        hidden = c_in * expansion
        expand = ([*twin.conv_bn(f"{name}_expand", c_in, hidden, 1), nn.ReLU6()]
                  if expansion != 1 else [])
        self.body = nn.Sequential(*expand,
                                  *twin.conv_bn(f"{name}_dw", hidden, hidden, 3, stride, True),
                                  nn.ReLU6(), *twin.conv_bn(f"{name}_project", hidden, c_out, 1))
        self.residual = stride == 1 and c_in == c_out

    def forward(self, x):
        return x + self.body(x) if self.residual else self.body(x)


class MobileNetV2(_Twin):
    """`benchmarks.models.mobilenetv2`: inverted residual blocks, 1×1 head conv (128), GAP."""

    def __init__(self, image_size, channels=1, classes=10):
        super().__init__(image_size)
        blocks, c_in = [*self.conv_bn("stem", channels, 16), nn.ReLU6()], 16
        for stage, (t, c, n, s) in enumerate(((1, 16, 1, 1), (4, 24, 2, 2), (4, 32, 2, 2),
                                              (4, 64, 2, 1)), start=1):
            for block in range(1, n + 1):
                blocks.append(_Inverted(self, f"stage{stage}_block{block}", c_in, c, t,
                                        s if block == 1 else 1))
                c_in = c
        self.features = nn.Sequential(*blocks, *self.conv_bn("head", c_in, 128, 1), nn.ReLU6(),
                                      nn.AdaptiveAvgPool2d(1), nn.Flatten())
        self.head = self.dense("logits", 128, classes)

    def forward(self, x):
        return self.head(self.features(x))


TWINS = {"vgg_small": VGGSmall, "resnet20": ResNet20, "mobilenetv2": MobileNetV2}


def to_torch(images):
    """NHWC NumPy images as an NCHW tensor."""
    return torch.from_numpy(np.ascontiguousarray(np.transpose(images, (0, 3, 1, 2))))


@torch.no_grad()
def from_keras(name, weights, image_size, channels=1, classes=10):
    """The twin of Keras model ``name`` carrying ``weights`` (``{layer: [arrays]}``), in eval mode."""
    twin = TWINS[name](image_size, channels, classes)
    for layer, module in twin.keras.items():
        w = [torch.from_numpy(np.asarray(a, np.float32)) for a in weights[layer]]
        if isinstance(module, nn.Conv2d):
            depthwise = module.groups > 1            # Keras (kh, kw, c, 1), else (kh, kw, in, out)
            module.weight.copy_(w[0].permute(2, 3, 0, 1) if depthwise else w[0].permute(3, 2, 0, 1))
        elif isinstance(module, nn.BatchNorm2d):
            for target, value in zip((module.weight, module.bias, module.running_mean,
                                      module.running_var), w):
                target.copy_(value)
        else:
            kernel = w[0]
            if layer == "fc":                        # rows in Keras' (H, W, C) flatten order
                h, wd, c = twin.flatten_shape
                kernel = kernel.reshape(h, wd, c, -1).permute(2, 0, 1, 3).reshape(h * wd * c, -1)
            module.weight.copy_(kernel.T)
            module.bias.copy_(w[1])
    return twin.eval()


def macs(model, example):
    """Multiply-accumulates of conv and linear kernels on one example, as `keras_biprune.cost`."""
    total, hooks = [0], []

    def count(module, _, output):
        per_position = module.weight.numel()
        total[0] += per_position * (output[0, 0].numel() if isinstance(module, nn.Conv2d) else 1)

    for module in model.modules():
        if isinstance(module, (nn.Conv2d, nn.Linear)):
            hooks.append(module.register_forward_hook(count))
    with torch.no_grad():
        model(example)
    for hook in hooks:
        hook.remove()
    return total[0]


def _importance(name):
    return (tp.importance.GroupMagnitudeImportance(p=1) if name == "l1"
            else tp.importance.GroupTaylorImportance())


def prune(model, importance, ratio, example, calibration, round_to):
    """A pruned copy: Torch-Pruning's global ranking at channel ``ratio``."""
    pruned = copy.deepcopy(model)
    classifier = pruned.keras["logits"]
    pruner = tp.pruner.MetaPruner(pruned, example, importance=_importance(importance),
                                  pruning_ratio=ratio, global_pruning=True,
                                  ignored_layers=[classifier],
                                  round_to=round_to if round_to > 1 else None)
    if importance == "taylor":
        pruned.zero_grad()
        x, y = calibration
        nn.functional.cross_entropy(pruned(x), y).backward()
    pruner.step()
    pruned.zero_grad(set_to_none=True)
    return pruned.eval()


def prune_to_flops(model, importance, target, example, calibration, round_to, steps=12):
    """Bisects the ratio until the pruned twin keeps at most ``target`` of the MACs."""
    full = macs(model, example)
    low, high, best = 0.0, 0.95, None
    for _ in range(steps):
        mid = (low + high) / 2
        candidate = prune(model, importance, mid, example, calibration, round_to)
        if macs(candidate, example) / full <= target:
            high, best = mid, candidate
        else:
            low = mid
    return best or prune(model, importance, high, example, calibration, round_to)


def kept_channels(twin, pruned):
    """``{Keras layer: indices of the channels it kept}`` of a pruned twin.

    A batch norm's channels are told apart by their four values, a hidden
    dense layer's by their biases (the classifier is never pruned).
    """
    kept = {}
    for layer, module in twin.keras.items():
        if layer == "logits" or isinstance(module, nn.Conv2d):
            continue
        rows = {v: i for i, v in enumerate(_rows(module))}
        if len(rows) != module.weight.shape[0]:
            raise RuntimeError(f"{layer}: channels with equal values cannot be told apart")
        kept[layer] = [rows[v] for v in _rows(pruned.keras[layer])]
    return kept


def _rows(module):
    values = ([module.weight, module.bias, module.running_mean, module.running_var]
              if isinstance(module, nn.BatchNorm2d) else [module.bias])
    return [tuple(v) for v in torch.stack(values, 1).tolist()]


def _load(path):
    """``({layer: [arrays]}, images, logits)`` of a file written by `benchmarks.compare`."""
    data = np.load(path)
    weights = {}
    for key in sorted((k for k in data.files if ":" in k), key=lambda k: int(k.split(":")[1])):
        weights.setdefault(key.split(":")[0], []).append(data[key])
    return weights, data["images"], data["logits"]


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", choices=sorted(TWINS), default="vgg_small")
    parser.add_argument("--weights", required=True,
                        help="npz of the Keras weights and reference logits")
    parser.add_argument("--dataset", choices=DATASETS, default="fashion_mnist")
    parser.add_argument("--budgets", type=float, nargs="+", default=[0.5])
    parser.add_argument("--importances", nargs="+", choices=IMPORTANCES, default=list(IMPORTANCES))
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--search-images", type=int, default=5000,
                        help="last training images: Taylor's batch is drawn from them")
    parser.add_argument("--round-to", type=int, default=8)
    parser.add_argument("--out", required=True, help="JSON file the plans are written to")
    args = parser.parse_args(argv)

    weights, images, logits = _load(args.weights)
    twin = from_keras(args.model, weights, images.shape[1], images.shape[-1], logits.shape[-1])
    with torch.no_grad():
        gap = float(np.abs(twin(to_torch(images)).numpy() - logits).max())
    if gap > 1e-3 * max(1.0, float(np.abs(logits).max())):
        raise RuntimeError(f"The PyTorch twin of {args.model} does not compute the Keras "
                           f"model's logits: max difference {gap:.3g}.")
    (x, y), _ = load_data(args.dataset)
    pick = np.random.default_rng(args.seed).permutation(args.search_images)[:256]
    calibration = (to_torch(x[-args.search_images:][pick]),
                   torch.from_numpy(y[-args.search_images:][pick].astype(np.int64)))
    torch.manual_seed(args.seed)
    example = torch.zeros(1, images.shape[-1], images.shape[1], images.shape[2])
    full = macs(twin, example)
    results = []
    for budget in args.budgets:
        for importance in args.importances:
            start = time.perf_counter()
            pruned = prune_to_flops(twin, importance, budget, example, calibration,
                                    args.round_to)
            results.append({"budget": budget, "importance": importance,
                            "search_seconds": time.perf_counter() - start,
                            "twin_flops": macs(pruned, example) / full, "twin_gap": gap,
                            "kept": kept_channels(twin, pruned)})
            print(f"torch-pruning-{importance} {budget:.2f}: twin FLOPs "
                  f"{results[-1]['twin_flops']:.3f}", flush=True)
    with open(args.out, "w") as f:
        json.dump(results, f)


if __name__ == "__main__":
    main()
