"""``lwscale sweep --dry-run``: the cells a sweep would train and an estimate of their time."""

from __future__ import annotations

from lwscale.cli.console import console, note, warn

# above this many FLOPs per training step of one cell, a CPU dry run does not time steps:
# one step would take minutes (e.g. configs/gpu-scale.yaml's width 2048 is ~2e13 FLOPs)
CPU_TIMING_MAX_FLOPS = 2e11


def _load_data(spec, device, todo: list, timed_synthetic: bool) -> tuple[float | None, str]:
    """Load the spec's data as the sweep will (cached; memory-mapped), so that data that cannot
    feed this spec (a validation set larger than the corpus, ids outside the vocabulary) is
    one line from the dry run too, not an error after it; and time it. Returns (seconds or
    None, a note on what they cover). The synthetic source's training stream is priced by generating
    its first missing chunk (kept in the cache for the sweep) times the chunks still missing;
    with ``timed_synthetic`` False (a spec too large to time here) it is not generated at all."""
    import time

    import torch

    from lwscale.data.load import load_dataset

    if spec.data.source == "synthetic" and not timed_synthetic:
        return None, "the synthetic teacher is too large to run here"
    ms = spec.model
    t0 = time.perf_counter()
    dataset = load_dataset(
        spec.data,
        ms.seq_len,
        spec.train.batch_size,
        spec.train.eval_tokens,
        device if spec.data.source == "synthetic" else torch.device("cpu"),
        max_width=max(ms.widths),
        depth=ms.depth,
        head_dim=ms.head_dim,
        log=note,
    )
    seconds = time.perf_counter() - t0
    if spec.data.source != "synthetic" or not todo:
        return seconds, "measured; cached for the sweep"
    need = max(c.steps for c in todo) * spec.train.batch_size
    missing = []
    for seed in sorted({c.seed for c in todo}):
        stream = dataset.stream(seed)
        n_chunks = -(-need // stream.cfg.chunk_seqs)
        missing += [(stream, i) for i in range(n_chunks) if not stream._path(i).exists()]
    if missing:
        t0 = time.perf_counter()
        stream, i = missing[0]
        stream.chunk(i)
        seconds += (time.perf_counter() - t0) * len(missing)
    return seconds, (
        f"measured: the teacher's validation set, and the {len(missing)} missing training chunk(s) "
        "at the time of the first"
        if missing
        else "measured; cached for the sweep"
    )


def _evaluations(steps: int, interval: int) -> int:
    """Evaluations a cell of ``steps`` runs: at step 0, every ``interval`` steps, and at the end."""
    return 1 + (steps - 1) // interval + 1


def print_dry_run(spec, plan, dev, out, retry_failed: bool) -> None:
    """The plan's cost on ``dev`` without training: the cells a sweep of ``spec`` into its run
    directory would train (finished records skipped, a changed spec refused as the sweep
    refuses it), and their time: training from a quick measured step time, evaluation
    (eval_tokens at every eval point) at the measured forward speed, and data preparation."""
    import time

    from lwscale.rundir.claims import read_claims
    from lwscale.rundir.status import fmt_duration
    from lwscale.rundir.store import Store
    from lwscale.runners.local import make_stacks
    from lwscale.runners.stacking import choose_k
    from lwscale.sweep.plan import model_flops_per_token
    from lwscale.training.loop import time_steps

    store = Store(Store.root_for(spec, out))
    store.check_spec(spec)  # the sweep's refusal of a changed spec, before any timing
    records = {c.id: store.read_record(c.id) for c in plan.cells}
    for w in store.warnings:
        warn(w)
    timeout_s, now = spec.runner.claim_timeout_minutes * 60, time.time()
    live = {cid for cid, cl in read_claims(store.root).items() if not cl.stale(timeout_s, now)}
    finished = [c for c in plan.cells if records[c.id] is not None and records[c.id].finished]
    failed = [c for c in plan.cells if records[c.id] is not None and records[c.id].status == "failed"]
    todo = [c for c in plan.cells if c.id not in live and (records[c.id] is None or retry_failed and c in failed)]
    running = [c for c in plan.cells if c.id in live and c not in finished]
    skipped = []
    if finished:
        skipped.append(f"{len(finished)} of {len(plan.cells)} already finished, skipped")
    if failed and not retry_failed:
        skipped.append(f"{len(failed)} failed, skipped without --retry-failed")
    if running:
        skipped.append(f"{len(running)} being trained by other workers, which the sweep waits for")
    said = f" ({'; '.join(skipped)})" if skipped else ""
    per_step = {c.width: model_flops_per_token(spec, c.model) * spec.train.batch_size * c.model.seq_len for c in todo}
    too_big = dev.type != "cuda" and bool(per_step) and max(per_step.values()) > CPU_TIMING_MAX_FLOPS
    data_s, data_what = _load_data(spec, dev, todo, timed_synthetic=not too_big)
    if not todo:
        if len(finished) == len(plan.cells):
            console.print(
                f"dry run: nothing to train: all {len(plan.cells)} cells are already finished", soft_wrap=True
            )
        else:
            console.print(f"dry run: nothing to train{said}", soft_wrap=True)
        return
    if too_big:
        total = sum(per_step[c.width] * c.steps for c in todo)
        console.print(
            f"dry run: {len(todo)} cells to train{said}, {total:.2g} training FLOPs in all; no time "
            f"estimate on {dev}: one step at width {max(per_step, key=per_step.get)} is "
            f"{max(per_step.values()):.1g} FLOPs, too slow to time here (run the dry run on the "
            "machine that will train)",
            soft_wrap=True,
        )
        return
    k = choose_k(spec, todo, dev, note, run_dir=store.root, save=False)
    stacks = make_stacks(todo, k)
    timing: dict = {}
    train_s = eval_s = 0.0
    n_val = -(-max(1, spec.train.eval_tokens // spec.model.seq_len) // spec.train.batch_size)  # eval batches
    evals = set()
    for stack in stacks:
        key = (stack[0].model, len(stack))
        if key not in timing:
            timing[key] = time_steps(stack[0].model, spec, dev, k=len(stack), forward=True)
        step_s, fwd_s = timing[key]
        n_eval = _evaluations(stack[0].steps, spec.train.eval_interval)
        evals.add(n_eval)
        train_s += step_s * stack[0].steps
        eval_s += fwd_s * n_val * n_eval
    n_eval = "/".join(map(str, sorted(evals)))
    total = train_s + eval_s + (data_s or 0.0)
    console.print(
        f"dry run: {len(todo)} cells to train in {len(stacks)} stacks of up to {max(k.values())} on {dev}{said}; "
        f"estimated time {fmt_duration(total)}: training {fmt_duration(train_s)} (from a quick measured step time), "
        f"evaluation {fmt_duration(eval_s)} ({n_eval} evaluations of {spec.train.eval_tokens:,} tokens per cell, at "
        f"the measured forward speed)"
        + (
            f", data preparation {fmt_duration(data_s)} ({data_what})"
            if data_s is not None
            else f"; data preparation not timed ({data_what})"
        ),
        soft_wrap=True,
    )
