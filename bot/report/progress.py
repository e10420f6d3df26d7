"""Live per-step progress of a diagnosis in a terminal (rich), fed with :class:`StepEvent`.

``StepProgress(console, steps)`` is a context manager and an async progress callback::

    with StepProgress(console, [(s.id, s.title) for s in runbook.steps]) as progress:
        await services.incidents.diagnose(env, ..., on_progress=progress)

One row per step: a spinner while it waits or runs, then its status and duration. The
display is transient (it is erased when the block ends; the report that follows lists the
steps again). Front ends only use it when their output is a terminal and the format is
text, so ``--format json`` and piped output never see it.
"""

from __future__ import annotations

from types import TracebackType

from rich.console import Console
from rich.progress import Progress, SpinnerColumn, TaskID, TextColumn, TimeElapsedColumn

from bot.models import StepEvent, StepPhase, StepStatus

_STYLE = {StepStatus.OK: "green", StepStatus.FAILED: "red", StepStatus.TIMEOUT: "yellow",
          StepStatus.ERROR: "red", StepStatus.SKIPPED: "dim"}
HEADER = "running the runbook"  # first line of the display (tests look for it)


def phase_text(event: StepEvent) -> str:
    """The status cell of a step's row: ``queued``, ``running`` or e.g. ``[green]ok[/] 0.42s``."""
    if event.result is None:
        return "[dim]queued[/]" if event.phase == StepPhase.QUEUED else "[cyan]running[/]"
    r = event.result
    style = _STYLE.get(r.status, "")
    note = f" [dim]({r.error[:60]})[/]" if r.error and r.status != StepStatus.OK else ""
    return f"[{style}]{r.status.value}[/] {r.duration_s:.2f}s{note}"


class StepProgress:
    """A rich :class:`Progress` with one task per runbook step; call it with each event."""

    def __init__(self, console: Console, steps: list[tuple[str, str]], *, title: str = HEADER) -> None:
        self.console = console
        self.progress = Progress(SpinnerColumn(finished_text="•"), TextColumn("{task.description}"),
                                 TextColumn("{task.fields[status]}"), TimeElapsedColumn(),
                                 console=console, transient=True, refresh_per_second=8)
        self.title = title
        self.tasks: dict[str, TaskID] = {}
        self.steps = steps

    def __enter__(self) -> StepProgress:
        self.progress.start()
        self.progress.console.print(f"[bold]{self.title}[/] ({len(self.steps)} steps)")
        for step_id, title in self.steps:
            self._task(step_id, title)
        return self

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        self.progress.stop()

    def _task(self, step_id: str, title: str) -> TaskID:
        if step_id not in self.tasks:
            self.tasks[step_id] = self.progress.add_task(title, total=1, start=False, status="[dim]queued[/]")
        return self.tasks[step_id]

    async def __call__(self, event: StepEvent) -> None:
        task = self._task(event.step_id, event.title)
        if event.phase != StepPhase.QUEUED:
            self.progress.start_task(task)
        done = 1 if event.phase == StepPhase.FINISHED else 0
        self.progress.update(task, completed=done, status=phase_text(event))
        if done:
            self.progress.stop_task(task)
        self.progress.refresh()
