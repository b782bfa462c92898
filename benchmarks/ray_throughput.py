"""Candidates per second in this process and on a local Ray cluster, on the same plans.

One population of random plans (50 % of each group kept) of VGG-small
(Fashion-MNIST shape, untrained weights: the speed of scoring does not depend on
them) is scored by ``kb.Evaluator`` in this process, then through
``kb.distributed.RayExecutor`` with 1 and 2 actors (one CPU each) on a local
cluster of ``--cpus`` CPUs. Every evaluator first scores the population once
(compiling, and on Ray starting and loading the actors); then ``--repeats``
timed passes, of which the median counts. The scores on Ray must equal the
in-process ones.

The per-candidate overhead of the round trip (sending the plans, the actor's
call, the scores' way back, for a population cut into the executor's chunks)
is measured where scoring costs almost nothing: the same plans on an
evaluator of one image (one calibration image, batch 1), in process and on 1
actor: ``(time on 1 actor - time in process) / candidates``. The difference
of the full-size rows is reported too; on a shared machine it is within noise.

    python -m benchmarks.ray_throughput [--population 32] [--cpus 2] [--repeats 3] [--out PATH]
"""

import argparse
import json
import os
import platform
import time

import numpy as np

EVAL_IMAGES = 1024
CALIBRATION_IMAGES = 256


def _timed(evaluator, plans, repeats):
    """The median seconds of ``repeats`` passes after a warm-up one, and the scores."""
    scores, seconds = evaluator.evaluate(plans), []
    for _ in range(repeats):
        start = time.perf_counter()
        again = evaluator.evaluate(plans)
        seconds.append(time.perf_counter() - start)
        np.testing.assert_array_equal(again, scores)
    return float(np.median(seconds)), scores


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--population", type=int, default=32)
    parser.add_argument("--cpus", type=int, default=2, help="CPUs of the local Ray cluster")
    parser.add_argument("--repeats", type=int, default=3)
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
    tiny = {"eval_size": 1, "calibration_size": 1, "batch_size": 1}
    local = kb.Evaluator(model, data, **settings)
    plans = [kb.PruningPlan.random(local.graph, 0.5, seed=s) for s in range(args.population)]
    seconds, reference = _timed(local, plans, args.repeats)
    tiny_local, tiny_reference = _timed(kb.Evaluator(model, data, **tiny), plans, args.repeats)
    rows = [{"where": "in process", "actors": 0, "seconds": seconds,
             "candidates_per_s": len(plans) / seconds}]
    print(f"in process ({local.engine} engine): {rows[0]['candidates_per_s']:.2f} candidates/s")
    ray.init(num_cpus=args.cpus, include_dashboard=False, log_to_driver=False)
    try:
        for actors in (1, 2):
            with kb.distributed.RayExecutor(num_actors=actors) as executor:
                evaluator = kb.Evaluator(model, data, executor=executor, **settings)
                seconds, scores = _timed(evaluator, plans, args.repeats)
                if actors == 1:
                    tiny_ray, tiny_scores = _timed(
                        kb.Evaluator(model, data, executor=executor, **tiny), plans,
                        args.repeats)
                    np.testing.assert_array_equal(tiny_scores, tiny_reference)
            np.testing.assert_array_equal(scores, reference)
            rows.append({"where": "ray", "actors": actors, "seconds": seconds,
                         "candidates_per_s": len(plans) / seconds})
            print(f"ray, {actors} actor(s): {rows[-1]['candidates_per_s']:.2f} candidates/s "
                  "(the same scores)")
    finally:
        ray.shutdown()
    overhead = (tiny_ray - tiny_local) / len(plans)
    difference = (rows[1]["seconds"] - rows[0]["seconds"]) / len(plans)
    print(f"round-trip overhead: {overhead * 1e3:.2f} ms per candidate (1-image evaluator: "
          f"{len(plans) / tiny_local:.0f} candidates/s in process, {len(plans) / tiny_ray:.0f} "
          f"on 1 actor); full-size difference {difference * 1e3:.1f} ms per candidate")
    result = {"model": "vgg_small", "population": len(plans), "eval_images": EVAL_IMAGES,
              "calibration_images": CALIBRATION_IMAGES, "engine": local.engine,
              "cluster_cpus": args.cpus, "machine_cpus": os.cpu_count(),
              "platform": platform.platform(), "repeats": args.repeats, "rows": rows,
              "tiny_seconds": {"in process": tiny_local, "ray, 1 actor": tiny_ray},
              "overhead_ms_per_candidate": overhead * 1e3,
              "full_size_difference_ms_per_candidate": difference * 1e3}
    with open(f"{args.out}.json", "w") as f:
        json.dump(result, f, indent=2)
    print(f"wrote {args.out}.json")


if __name__ == "__main__":
    main()
