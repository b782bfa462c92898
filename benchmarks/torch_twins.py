"""PyTorch twins of the benchmark models, pruned by Torch-Pruning at a FLOPs target.

The peer a user would otherwise pick: each Keras model of `benchmarks.models`
has a twin here with the same layers and widths, trained with the same recipe
(Adam, cosine-decayed learning rate 1e-3 → 0, batch 128, same epochs) and
cached in ``benchmarks/_cache/torch_<name>[_digits].pt``. Torch-Pruning's
``MetaPruner`` (uniform per-layer ratio, ``round_to`` like ours, the classifier
ignored) prunes it with ``GroupMagnitudeImportance`` (L1) or
``GroupTaylorImportance``; the ratio is bisected until the MACs meet the
target. The pruned twin is fine-tuned with the recipe ``compare.py`` uses for
every method (Adam, cosine 5e-4 → 0, batch 128), its BatchNorm statistics
re-estimated on training images as ``compare.py`` does, and timed on the CPU.

Run by ``benchmarks.compare`` in its own process (PyTorch and TensorFlow
each size their thread pools for the whole machine)::

    python -m benchmarks.torch_twins --model vgg_small --budgets 0.5 --seed 0 --out rows.json

Needs ``torch`` and ``torch-pruning`` (``pip install -e '.[bench]'``).
"""

import argparse
import copy
import json
import os
import time

import numpy as np
import torch
import torch_pruning as tp
from torch import nn

from benchmarks._timing import paired
from benchmarks.models import CACHE_DIR, DATASETS, default_epochs, load_data

IMPORTANCES = ("l1", "taylor")


def _conv_bn(c_in, c_out, kernel_size=3, stride=1, groups=1):
    return [nn.Conv2d(c_in, c_out, kernel_size, stride, kernel_size // 2, groups=groups,
                      bias=False), nn.BatchNorm2d(c_out, eps=1e-3, momentum=0.01)]


class VGGSmall(nn.Module):
    """`benchmarks.models.vgg_small`: 3 stages of 2 conv-BN-ReLU (32/64/128), max-pools, MLP head."""

    def __init__(self, image_size, classes=10):
        super().__init__()
        body, c_in = [], 1
        for filters in (32, 64, 128):
            for _ in (1, 2):
                body += [*_conv_bn(c_in, filters), nn.ReLU()]
                c_in = filters
            body.append(nn.MaxPool2d(2))
        self.features = nn.Sequential(*body, nn.Flatten())
        flat = self.features(torch.zeros(1, 1, image_size, image_size)).shape[1]
        self.head = nn.Sequential(nn.Linear(flat, 128), nn.ReLU(), nn.Linear(128, classes))

    def forward(self, x):
        return self.head(self.features(x))


class _Basic(nn.Module):
    def __init__(self, c_in, c_out, stride):
        super().__init__()
        self.body = nn.Sequential(*_conv_bn(c_in, c_out, stride=stride), nn.ReLU(),
                                  *_conv_bn(c_out, c_out))
        self.shortcut = (nn.Sequential(*_conv_bn(c_in, c_out, 1, stride)) if stride != 1
                         else nn.Identity())

    def forward(self, x):
        return torch.relu(self.shortcut(x) + self.body(x))


class ResNet20(nn.Module):
    """`benchmarks.models.resnet20`: stem, 3 stages × 3 basic blocks (16/32/64), 1×1 shortcuts."""

    def __init__(self, image_size, classes=10):
        super().__init__()
        blocks, c_in = [*_conv_bn(1, 16), nn.ReLU()], 16
        for stage, filters in enumerate((16, 32, 64)):
            for block in range(3):
                stride = 2 if stage > 0 and block == 0 else 1
                blocks.append(_Basic(c_in, filters, stride))
                c_in = filters
        self.features = nn.Sequential(*blocks, nn.AdaptiveAvgPool2d(1), nn.Flatten())
        self.head = nn.Linear(64, classes)

    def forward(self, x):
        return self.head(self.features(x))


class _Inverted(nn.Module):
    def __init__(self, c_in, c_out, expansion, stride):
        super().__init__()
        hidden = c_in * expansion
        expand = [*_conv_bn(c_in, hidden, 1), nn.ReLU6()] if expansion != 1 else []
        self.body = nn.Sequential(*expand, *_conv_bn(hidden, hidden, 3, stride, groups=hidden),
                                  nn.ReLU6(), *_conv_bn(hidden, c_out, 1))
        self.residual = stride == 1 and c_in == c_out

    def forward(self, x):
        return x + self.body(x) if self.residual else self.body(x)


class MobileNetV2(nn.Module):
    """`benchmarks.models.mobilenetv2`: inverted residual blocks, 1×1 head conv (128), GAP."""

    def __init__(self, image_size, classes=10):
        super().__init__()
        blocks, c_in = [*_conv_bn(1, 16), nn.ReLU6()], 16
        for t, c, n, s in ((1, 16, 1, 1), (4, 24, 2, 2), (4, 32, 2, 2), (4, 64, 2, 1)):
            for block in range(n):
                blocks.append(_Inverted(c_in, c, t, s if block == 0 else 1))
                c_in = c
        self.features = nn.Sequential(*blocks, *_conv_bn(c_in, 128, 1), nn.ReLU6(),
                                      nn.AdaptiveAvgPool2d(1), nn.Flatten())
        self.head = nn.Linear(128, classes)

    def forward(self, x):
        return self.head(self.features(x))


TWINS = {"vgg_small": VGGSmall, "resnet20": ResNet20, "mobilenetv2": MobileNetV2}


def _tensors(x, y=None):
    x = torch.from_numpy(np.ascontiguousarray(np.transpose(x, (0, 3, 1, 2))))
    return x if y is None else (x, torch.from_numpy(y.astype(np.int64)))


def train(model, x, y, epochs, lr, batch_size=128, seed=0):
    """Adam with a per-step cosine decay of the learning rate from ``lr`` to 0."""
    generator = torch.Generator().manual_seed(seed)
    steps = epochs * -(-len(x) // batch_size)
    optimizer = torch.optim.Adam(model.parameters(), lr=lr, eps=1e-7)
    schedule = torch.optim.lr_scheduler.CosineAnnealingLR(optimizer, steps)
    loss_fn = nn.CrossEntropyLoss()
    model.train()
    for _ in range(epochs):
        for batch in torch.randperm(len(x), generator=generator).split(batch_size):
            optimizer.zero_grad()
            loss_fn(model(x[batch]), y[batch]).backward()
            optimizer.step()
            schedule.step()
    model.eval()


@torch.inference_mode()
def accuracy(model, x, y, batch_size=500):
    model.eval()
    hits = sum((model(xb).argmax(1) == yb).sum().item()
               for xb, yb in zip(x.split(batch_size), y.split(batch_size)))
    return hits / len(x)


def train_or_load(name, dataset, x, y, x_test, y_test, seed=0):
    """The trained twin (cached) and its record."""
    stem = f"torch_{name}" if dataset == "fashion_mnist" else f"torch_{name}_{dataset}"
    path = os.path.join(CACHE_DIR, stem + ".pt")
    torch.manual_seed(seed)
    model = TWINS[name](x.shape[-1])
    epochs = default_epochs(name, dataset)
    if os.path.exists(path):
        state = torch.load(path)
        model.load_state_dict(state["weights"])
        model.eval()
        return model, state["info"]
    start = time.perf_counter()
    train(model, x, y, epochs, 1e-3, seed=seed)
    info = {"name": name, "dataset": dataset, "epochs": epochs, "seed": seed,
            "train_seconds": round(time.perf_counter() - start, 1),
            "test_accuracy": round(accuracy(model, x_test, y_test), 4)}
    os.makedirs(CACHE_DIR, exist_ok=True)
    torch.save({"weights": model.state_dict(), "info": info}, path)
    return model, info


@torch.no_grad()
def recalibrate_bn(model, x, batches=32, batch_size=128):
    """Re-estimates every BatchNorm's statistics on ``x``, like `kb.training.recalibrate_batch_norm`."""
    norms = [m for m in model.modules() if isinstance(m, nn.BatchNorm2d)]
    for m in norms:
        m.reset_running_stats()
        m.momentum = None                  # a cumulative average
    model.train()
    for xb in x[:batches * batch_size].split(batch_size):
        model(xb)
    for m in norms:
        m.momentum = 0.01
    model.eval()


def _importance(name):
    return (tp.importance.GroupMagnitudeImportance(p=1) if name == "l1"
            else tp.importance.GroupTaylorImportance())


def prune(model, importance, ratio, example, calibration, round_to):
    """A pruned copy at a uniform per-layer channel ratio (Taylor: gradients of ``calibration``)."""
    pruned = copy.deepcopy(model)
    classifier = pruned.head if isinstance(pruned.head, nn.Linear) else pruned.head[-1]
    pruner = tp.pruner.MetaPruner(pruned, example, importance=_importance(importance),
                                  pruning_ratio=ratio, ignored_layers=[classifier],
                                  round_to=round_to if round_to > 1 else None)
    if importance == "taylor":
        pruned.zero_grad()
        x, y = calibration
        nn.functional.cross_entropy(pruned(x), y).backward()
    pruner.step()
    pruned.zero_grad(set_to_none=True)
    pruned.eval()
    return pruned


def prune_to_flops(model, importance, target, example, calibration, round_to, steps=12):
    """Bisects the channel ratio until the pruned twin keeps at most ``target`` of the MACs."""
    full, _ = tp.utils.count_ops_and_params(model, example)
    low, high, best = 0.0, 0.95, None
    for _ in range(steps):
        mid = (low + high) / 2
        candidate = prune(model, importance, mid, example, calibration, round_to)
        macs, _ = tp.utils.count_ops_and_params(candidate, example)
        if macs / full <= target:
            high, best = mid, candidate
        else:
            low = mid
    return best or prune(model, importance, high, example, calibration, round_to)


@torch.inference_mode()
def paired_latency(a, b, batch_size, image_size, rounds, runs):
    """Median ms per forward pass of two models, timed in turn (see `benchmarks._timing.paired`)."""
    x = torch.randn(batch_size, 1, image_size, image_size)
    a.eval()
    b.eval()
    return tuple(paired([lambda: a(x), lambda: b(x)], rounds, runs))


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", choices=sorted(TWINS), default="vgg_small")
    parser.add_argument("--dataset", choices=DATASETS, default="fashion_mnist")
    parser.add_argument("--budgets", type=float, nargs="+", default=[0.5])
    parser.add_argument("--importances", nargs="+", choices=IMPORTANCES, default=list(IMPORTANCES))
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--finetune-epochs", type=int, default=1)
    parser.add_argument("--finetune-images", type=int, default=None)
    parser.add_argument("--search-images", type=int, default=5000,
                        help="last training images held out (not fine-tuned on), as in compare.py")
    parser.add_argument("--test-images", type=int, default=None)
    parser.add_argument("--round-to", type=int, default=8)
    parser.add_argument("--latency-rounds", type=int, default=5)
    parser.add_argument("--latency-runs", type=int, default=20)
    parser.add_argument("--out", required=True, help="JSON file the rows are written to")
    args = parser.parse_args(argv)

    torch.manual_seed(args.seed)
    (x_train, y_train), (x_test, y_test) = load_data(args.dataset)
    x_test, y_test = _tensors(x_test[:args.test_images], y_test[:args.test_images])
    x, y = _tensors(x_train, y_train)
    model, info = train_or_load(args.model, args.dataset, x, y, x_test, y_test)
    x_ft, y_ft = x[:-args.search_images][:args.finetune_images], y[:-args.search_images][
        :args.finetune_images]
    calibration = (x[-args.search_images:][:256], y[-args.search_images:][:256])
    size = x.shape[-1]
    example = torch.zeros(1, 1, size, size)
    full_macs, full_params = tp.utils.count_ops_and_params(model, example)
    base = accuracy(model, x_test, y_test)
    rows = []
    for budget in args.budgets:
        for importance in args.importances:
            start = time.perf_counter()
            pruned = prune_to_flops(model, importance, budget, example, calibration,
                                    args.round_to)
            search_seconds = time.perf_counter() - start
            macs, params = tp.utils.count_ops_and_params(pruned, example)
            before = accuracy(pruned, x_test, y_test)
            recalibrated = copy.deepcopy(pruned)
            recalibrate_bn(recalibrated, x_ft)
            before_bn = accuracy(recalibrated, x_test, y_test)
            torch.manual_seed(args.seed)
            start = time.perf_counter()
            train(pruned, x_ft, y_ft, args.finetune_epochs, 5e-4, seed=args.seed)
            finetune_seconds = time.perf_counter() - start
            recalibrate_bn(pruned, x_ft)
            latency = {}
            for batch in (1, 64):
                full_ms, pruned_ms = paired_latency(model, pruned, batch, size,
                                                    args.latency_rounds, args.latency_runs)
                latency[f"torch_b{batch}"] = [full_ms, pruned_ms]
            rows.append({
                "model": args.model, "dataset": args.dataset, "budget": budget,
                "seed": args.seed, "method": f"torch-pruning-{importance}",
                "framework": "torch", "unpruned_accuracy": base,
                "accuracy_before": before, "accuracy_before_bn": before_bn,
                "accuracy_after": accuracy(pruned, x_test, y_test),
                "flops": macs / full_macs, "params": params / full_params,
                "search_seconds": search_seconds, "finetune_seconds": finetune_seconds,
                "latency_ms": latency,
                "widths": [m.out_channels for m in pruned.modules() if isinstance(m, nn.Conv2d)],
                "twin": info})
            print(json.dumps(rows[-1]), flush=True)
    with open(args.out, "w") as f:
        json.dump(rows, f)


if __name__ == "__main__":
    main()
