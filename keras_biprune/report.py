"""The before/after table of a pruning run, for ``BiLevelPruner.summary`` and ``keras-biprune report``.

It reads the plain ``report_`` dict of a fitted `keras_biprune.BiLevelPruner`
(also written to ``report.json`` by ``export``), so it needs neither Keras nor
TensorFlow: the command line prints a report without loading either.
"""

_NAME = 22


def format_report(report, title=None):
    """The table of a pruning report: size, FLOPs (and latency) against the target, accuracy
    change, widths.

    Args:
        report: a `BiLevelPruner.report_` dict, or the ``report.json`` an
            export wrote. Missing sections are skipped.
        title: an optional first line.

    Returns:
        The table as one string (no trailing newline).

    Example:

    ```python
    import json
    from keras_biprune.report import format_report
    with open("pruned/report.json") as f:
        print(format_report(json.load(f)))
    ```
    """
    lines = [title] if title else []
    lines.append(f"{'':{_NAME}}{'original':>14}{'pruned':>14}{'kept':>9}")
    for name, key, pruned in (("parameters", "params", "pruned"), ("MACs", "macs", "pruned")):
        if key in report:
            lines.append(_size_row(name, report[key]["original"], report[key][pruned]))
    macs = report.get("macs", {})
    if "pruned_sparse" in macs and macs["pruned_sparse"] != macs.get("pruned"):
        lines.append(_size_row("MACs (non-zero)", macs["original"], macs["pruned_sparse"]))
    target = _target_line(report)
    if target:
        lines.append(target)
    if report.get("latency"):
        lines.append(_latency_line(report["latency"]))
    validation = report.get("validation") or {}
    original, pruned = validation.get("original") or {}, validation.get("pruned") or {}
    if original:
        lines.append(f"{'validation':{_NAME}}{'original':>14}{'pruned':>14}{'change':>9}")
        for name, before in original.items():
            after = pruned.get(name)
            lines.append(f"{'val ' + name:{_NAME}}{before:>14.4f}"
                         + (f"{after:>14.4f}{_change(name, before, after):>9}"
                            if after is not None else f"{'-':>14}"))
    search = report.get("search") or {}
    if search:
        text = (f"search: {search.get('method', '?')}, {search.get('evaluations', '?')} plans "
                f"scored in {_seconds(search.get('seconds'))}")
        if report.get("finetune_seconds") is not None:
            text += f"; fine-tuning: {_seconds(report['finetune_seconds'])}"
        lines.append(text)
    widths = report.get("widths") or {}
    if widths:
        lines.append("widths (group: original -> pruned):")
        lines += [f"  {group}: {before} -> {after}" for group, (before, after) in widths.items()]
    return "\n".join(lines)


def _size_row(name, before, after):
    kept = f"{after / before:.1%}" if before else "-"
    return f"{name:{_NAME}}{before:>14,}{after:>14,}{kept:>9}"


def _target_line(report):
    kept, target = report.get("flops_kept"), report.get("target_flops")
    if kept is None:
        return None
    text = f"FLOPs kept: {kept:.1%}"
    sparse = report.get("sparse_flops_kept")
    if sparse is not None and abs(sparse - kept) > 1e-12:
        text += f" ({sparse:.1%} non-zero)"
    if target is not None:
        reached = min(kept, sparse if sparse is not None else kept) <= target + 1e-9
        text += f" of the original; target: at most {target:.1%} ({'met' if reached else 'missed'})"
    return text


def _latency_line(latency):
    """``latency (tflite, batch 1): predicted 48.0%, measured 51.2% of the original's ...``."""
    text = (f"latency ({latency['runtime']}, batch {latency['batch_size']}): predicted "
            f"{latency['predicted']:.1%}, measured {latency['measured']:.1%} of the original's "
            f"({latency['original_ms']:.3f} -> {latency['pruned_ms']:.3f} ms)")
    target = latency.get("target")
    if target is not None:
        text += (f"; target: at most {target:.1%} "
                 f"({'met' if latency['measured'] <= target + 1e-9 else 'missed'} as measured)")
    return text


def _change(name, before, after):
    """``after - before``, in percentage points for accuracy-like metrics (in [0, 1])."""
    delta = after - before
    if "acc" in name.lower() and 0 <= before <= 1 and 0 <= after <= 1:
        return f"{100 * delta:+.2f} pt"
    return f"{delta:+.4f}"


def _seconds(value):
    return "?" if value is None else f"{value:.0f} s"
