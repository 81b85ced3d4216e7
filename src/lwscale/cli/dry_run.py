"""``lwscale sweep --dry-run``: the cells a sweep would train and an estimate of their time,
as ``lwscale.runners.estimate`` works them out."""

from __future__ import annotations

from lwscale.cli.console import console, note, warn


def print_dry_run(spec, plan, dev, out, retry_failed: bool) -> None:
    """Print the plan's cost on ``dev`` without training (``runners.estimate.estimate``)."""
    from lwscale.rundir.status import fmt_duration
    from lwscale.runners.estimate import estimate

    est = estimate(spec, plan, dev, out, retry_failed, log=note, warn=warn)
    said = f" ({'; '.join(est.skipped)})" if est.skipped else ""
    if not est.todo:
        if est.finished == est.cells:
            console.print(f"dry run: nothing to train: all {est.cells} cells are already finished", soft_wrap=True)
        else:
            console.print(f"dry run: nothing to train{said}", soft_wrap=True)
        return
    if not est.timed:
        per_step = est.flops_per_step
        console.print(
            f"dry run: {len(est.todo)} cells to train{said}, {est.total_flops:.2g} training FLOPs in all; no time "
            f"estimate on {dev}: one step at width {max(per_step, key=per_step.get)} is "
            f"{max(per_step.values()):.1g} FLOPs, too slow to time here (run the dry run on the "
            "machine that will train)",
            soft_wrap=True,
        )
        return
    n_eval = "/".join(map(str, est.evaluations))
    console.print(
        f"dry run: {len(est.todo)} cells to train in {est.stacks} stacks of up to {max(est.k.values())} on {dev}{said}; "
        f"estimated time {fmt_duration(est.total_s)}: training {fmt_duration(est.train_s)} (from a quick measured step "
        f"time), evaluation {fmt_duration(est.eval_s)} ({n_eval} evaluations of {spec.train.eval_tokens:,} tokens per "
        "cell, at the measured forward speed)"
        + (
            f", data preparation {fmt_duration(est.data_s)} ({est.data_what})"
            if est.data_s is not None
            else f"; data preparation not timed ({est.data_what})"
        ),
        soft_wrap=True,
    )
