"""Candidates per second in this process and on a local Ray cluster, on the same plans.

One population of random plans (50 % of each group kept) of VGG-small
(Fashion-MNIST shape, untrained weights: the speed of scoring does not depend on
them) is scored by ``kb.Evaluator`` in this process, then through
``kb.distributed.RayExecutor`` with 1 and 2 actors (one CPU each) on a local
cluster of ``--cpus`` CPUs. Every evaluator first scores the population once
(compiling, and on Ray starting and loading the actors); the timed pass is the
second. The scores on Ray must equal the in-process ones.

The per-candidate overhead of the round trip is
``(time with 1 actor - time in process) / candidates``: sending the plans,
the actor's call and the scores' way back, for a population cut into the
executor's chunks.

    python -m benchmarks.ray_throughput [--population 32] [--cpus 2] [--out PATH]
"""

import argparse
import json
import os
import platform
import time

import numpy as np

EVAL_IMAGES = 1024
CALIBRATION_IMAGES = 256


def _timed(evaluator, plans):
    evaluator.evaluate(plans)                                   # warm-up
    start = time.perf_counter()
    scores = evaluator.evaluate(plans)
    return time.perf_counter() - start, scores


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--population", type=int, default=32)
    parser.add_argument("--cpus", type=int, default=2, help="CPUs of the local Ray cluster")
    parser.add_argument("--out", default="docs/benchmarks/ray_throughput")
    args = parser.parse_args(argv)

    import keras
    import ray

    import keras_biprune as kb
    from benchmarks.models import vgg_small

    keras.utils.set_random_seed(0)
    model = vgg_small()
    rng = np.random.default_rng(0)
    n = EVAL_IMAGES + CALIBRATION_IMAGES
    data = (rng.normal(size=(n, 28, 28, 1)).astype("float32"), rng.integers(0, 10, n))
    settings = {"eval_size": EVAL_IMAGES, "calibration_size": CALIBRATION_IMAGES}
    local = kb.Evaluator(model, data, **settings)
    plans = [kb.PruningPlan.random(local.graph, 0.5, seed=s) for s in range(args.population)]
    seconds, reference = _timed(local, plans)
    rows = [{"where": "in process", "actors": 0, "seconds": seconds,
             "candidates_per_s": len(plans) / seconds}]
    print(f"in process ({local.engine} engine): {rows[0]['candidates_per_s']:.2f} candidates/s")
    ray.init(num_cpus=args.cpus, include_dashboard=False, log_to_driver=False)
    try:
        for actors in (1, 2):
            with kb.distributed.RayExecutor(num_actors=actors) as executor:
                evaluator = kb.Evaluator(model, data, executor=executor, **settings)
                seconds, scores = _timed(evaluator, plans)
            np.testing.assert_array_equal(scores, reference)
            rows.append({"where": "ray", "actors": actors, "seconds": seconds,
                         "candidates_per_s": len(plans) / seconds})
            print(f"ray, {actors} actor(s): {rows[-1]['candidates_per_s']:.2f} candidates/s "
                  "(the same scores)")
    finally:
        ray.shutdown()
    overhead = (rows[1]["seconds"] - rows[0]["seconds"]) / len(plans)
    print(f"round-trip overhead: {overhead * 1e3:.1f} ms per candidate")
    result = {"model": "vgg_small", "population": len(plans), "eval_images": EVAL_IMAGES,
              "calibration_images": CALIBRATION_IMAGES, "engine": local.engine,
              "cluster_cpus": args.cpus, "machine_cpus": os.cpu_count(),
              "platform": platform.platform(), "rows": rows,
              "overhead_ms_per_candidate": overhead * 1e3}
    with open(f"{args.out}.json", "w") as f:
        json.dump(result, f, indent=2)
    print(f"wrote {args.out}.json")


if __name__ == "__main__":
    main()
