"""Rich progress bars for cells in training (``sweep`` and ``transfer --train``)."""

from __future__ import annotations

import math

from lwscale.cli.console import console


class RichProgress:
    """Rich bars for a sweep: overall cells, and the current stack's step, best loss,
    tokens/s per cell and (on a GPU with a known peak) the stack's MFU."""

    def __init__(self, spec):
        self.spec, self.bars = spec, None

    def start(self, total_cells: int) -> None:
        from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

        self.bars = Progress(
            TextColumn("{task.description:<28}"),
            BarColumn(),
            MofNCompleteColumn(),
            TimeElapsedColumn(),
            TextColumn("{task.fields[speed]}"),
            console=console,
        )
        self.bars.start()
        self.overall = self.bars.add_task("cells", total=total_cells, speed="")
        self.current = self.bars.add_task("stack", total=1, speed="")

    def stack_started(self, stack) -> None:
        import time

        from lwscale.sweep.plan import model_flops_per_token
        from lwscale.training.loop import resolve_device, resolve_precision
        from lwscale.training.perf import peak_flops

        device = resolve_device(self.spec.train.device)
        self.width, self.k = stack[0].width, len(stack)
        self.tokens_per_step = self.spec.train.batch_size * stack[0].model.seq_len
        self.flops_per_token = model_flops_per_token(self.spec, stack[0].model)
        self.peak = peak_flops(device, resolve_precision(self.spec, device))
        self.last = (0, time.perf_counter())
        self.bars.reset(self.current, total=stack[0].steps, description=f"width {self.width} x{self.k}", speed="")

    def step(self, step, steps, losses) -> None:
        import time

        from lwscale.training.perf import throughput

        finite = [x for x in losses if not math.isnan(x)]
        desc = f"width {self.width} x{self.k}" + (f" loss {min(finite):.3f}" if finite else "")
        now = time.perf_counter()
        (s0, t0), self.last = self.last, (step, now)
        speed = ""
        if step > s0 and now > t0:  # the records' arithmetic (training/perf.py), over the steps since the last update
            perf = throughput((step - s0) * self.tokens_per_step, now - t0, self.flops_per_token, self.k, self.peak)
            speed = f"{perf['tokens_per_s']:,.0f} tok/s/cell"
            if perf["mfu"] is not None:
                speed += f", MFU {perf['mfu']:.0%}"
        self.bars.update(self.current, completed=step, description=desc, speed=speed)

    def stack_finished(self, stack) -> None:
        self.bars.advance(self.overall, len(stack))
        if self.bars.finished:
            self.bars.stop()

    def __del__(self):
        if self.bars is not None:
            self.bars.stop()
