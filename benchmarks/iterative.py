"""Iterative (``steps=k``) against one-shot pruning at a low FLOPs target, on the demo's model.

Trains the demo's small ResNet (`keras_biprune.demo`) on the demo's data
(Fashion-MNIST's 12,000 images when its files are installed, else digits),
cached in ``benchmarks/_cache``; then, for each ``--steps`` value, runs
``BiLevelPruner(target_flops=--target, steps=k).fit`` with its default
recovery and prints the FLOPs kept, the test accuracy before and after and
the wall time. Rows are appended to ``--out`` as they finish; a rerun skips
the rows it has.

    python -m benchmarks.iterative --target 0.3 --steps 1 3
"""

import argparse
import json
import os
import time

CACHE = os.path.join(os.path.dirname(__file__), "_cache")


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", default="auto", choices=("auto", "digits", "fashion_mnist"))
    parser.add_argument("--target", type=float, default=0.3)
    parser.add_argument("--steps", type=int, nargs="+", default=[1, 3])
    parser.add_argument("--seeds", type=int, nargs="+", default=[0])
    parser.add_argument("--train-steps", type=int, default=700,
                        help="training steps of the demo's model (the demo's default preset)")
    parser.add_argument("--out", default="docs/benchmarks/iterative.json")
    args = parser.parse_args(argv)
    rows = []
    if os.path.exists(args.out):
        with open(args.out) as f:
            rows = json.load(f)

    import keras

    import keras_biprune as kb
    from keras_biprune import demo

    for seed in args.seeds:
        ((x, y), (x_test, y_test)), description = demo.load(args.data, seed)
        name = "fashion_mnist" if description.startswith("Fashion") else "digits"
        path = os.path.join(CACHE, f"demo_{name}_{args.train_steps}_{seed}.keras")
        if os.path.exists(path):
            model = keras.saving.load_model(path)
        else:
            keras.utils.set_random_seed(seed)
            model = demo.train(x, y, max(1, round(args.train_steps * demo.BATCH_SIZE / len(x))),
                               seed, verbose=0)
            os.makedirs(CACHE, exist_ok=True)
            model.save(path)
        before = model.evaluate(x_test, y_test, verbose=0, return_dict=True)["accuracy"]
        for steps in args.steps:
            key = {"data": name, "target": args.target, "steps": steps, "seed": seed}
            if any(all(r.get(k) == v for k, v in key.items()) for r in rows):
                continue
            keras.utils.set_random_seed(seed)
            started = time.perf_counter()
            pruner = kb.BiLevelPruner(model, target_flops=args.target, steps=steps,
                                      search_kwargs=demo.PRESETS["default"][1],
                                      random_state=seed, verbose=2)
            pruner.fit(x, y, validation_data=(x_test, y_test), batch_size=demo.BATCH_SIZE)
            after = pruner.report_["validation"]["pruned"]["accuracy"]
            rows.append(key | {"flops_kept": pruner.report_["flops_kept"],
                               "accuracy_before": before, "accuracy_after": after,
                               "epochs": len(pruner.history_.history["loss"]),
                               "stages": pruner.report_.get("stages", []),
                               "seconds": time.perf_counter() - started})
            with open(args.out, "w") as f:
                json.dump(rows, f, indent=1)
    for r in rows:
        print(f"{r['data']:14} target {r['target']:.2f} steps {r['steps']} seed {r['seed']}: "
              f"FLOPs kept {r['flops_kept']:.3f}, accuracy {r['accuracy_before']:.4f} -> "
              f"{r['accuracy_after']:.4f} ({r['epochs']} epochs), {r['seconds']:.0f} s")


if __name__ == "__main__":
    main()
