"""The home page's before/after figure of ``make demo`` (``keras-biprune demo``).

The demo trains a small ResNet (48/96 channels) on scikit-learn's digits,
prunes it with `keras_biprune.BiLevelPruner`'s defaults at
``target_flops=0.5`` and ``target_latency=0.7`` (TensorFlow, batch 64) and
exports it. Its printed summary is copied below as
measured (digits, TensorFlow latency at batch 64 on 2 CPU cores); this
script only draws it, so the figure can be redrawn without training:

    python -m benchmarks.demo_figure            # writes docs/benchmarks/demo_before_after.png
"""

import argparse

import numpy as np

# Measured by `make demo` (digits; BiLevelPruner defaults, target_flops=0.5, target_latency=0.7).
WIDTHS = {"stem": (48, 32), "block1_conv1": (48, 32), "down": (96, 64), "block2_conv1": (96, 80)}
MACS = (6_000_576, 2_968_192)
ACCURACY = (0.9972, 0.9944)         # test accuracy
LATENCY_MS = (3.14, 2.19)           # TensorFlow, batch 64, 2 CPU cores, timed in turn


def draw(out):
    import matplotlib
    from matplotlib.figure import Figure

    with matplotlib.rc_context({"font.size": 11, "axes.titlesize": 12}):
        fig = Figure(figsize=(9.0, 3.2), layout="constrained")
        left, right = fig.subplots(1, 2, width_ratios=[1.25, 1])
        names = list(WIDTHS)
        x = np.arange(len(names))
        before, after = (np.array([WIDTHS[n][i] for n in names]) for i in (0, 1))
        left.bar(x - 0.2, before, 0.4, color="#9ecae1", label="original")
        left.bar(x + 0.2, after, 0.4, color="#08519c", label="pruned")
        for xi, b, a in zip(x, before, after):
            left.text(xi + 0.2, a + 1, str(a), ha="center", va="bottom", fontsize=10)
            left.text(xi - 0.2, b + 1, str(b), ha="center", va="bottom", fontsize=10,
                      color="0.35")
        left.set_xticks(x, names)
        left.set(ylabel="channels", title="Widths kept per channel group",
                 ylim=(0, 1.2 * max(before)))
        left.legend(loc="upper left", frameon=False)

        rows = [("MACs", MACS[1] / MACS[0], f"{MACS[0]:,} → {MACS[1]:,}",
                 f"{MACS[1] / MACS[0]:.1%}"),
                ("latency\n(TF, batch 64)", LATENCY_MS[1] / LATENCY_MS[0],
                 f"{LATENCY_MS[0]:.2f} → {LATENCY_MS[1]:.2f} ms",
                 f"{LATENCY_MS[1] / LATENCY_MS[0]:.2f}×")]
        y = np.arange(len(rows))[::-1]
        right.barh(y, [1.0] * len(rows), 0.7, color="#9ecae1", label="original")
        right.barh(y, [r[1] for r in rows], 0.45, color="#08519c", label="pruned")
        for yi, (_, share, text, short) in zip(y, rows):
            right.text(0.02, yi + 0.38, text, va="bottom", fontsize=10)
            right.text(share - 0.02, yi, short, va="center", ha="right",
                       color="white", fontsize=10, fontweight="bold")
        right.set_yticks(y, [r[0] for r in rows])
        right.set(xlim=(0, 1.05), ylim=(-0.5, len(rows) - 0.1),
                  xlabel="pruned, as a share of the original",
                  title=f"Test accuracy {ACCURACY[0]:.4f} → {ACCURACY[1]:.4f}")
        right.axvline(1.0, color="0.4", linewidth=0.8)
        fig.savefig(out, dpi=110)


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", default="docs/benchmarks/demo_before_after.png")
    draw(parser.parse_args(argv).out)


if __name__ == "__main__":
    main()
