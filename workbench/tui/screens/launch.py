"""Launch: pick a pipeline and a preset, edit the generated form, start the job detached.

The form is built from the pipeline's `Spec`; every edit is validated (after a short pause)
with `ops.specs.from_form`, the same validation as `workbench run`, and the error text shows
under the form. A valid spec is estimated in a worker as `workbench run --dry-run` does
(`ops.estimate.dry_run`: memory per rank, 6·N·D, a wall time; the matmul peak timed once) and
the estimate shows under it; a job that cannot fit shows the fixes, and Launch refuses it.
Launching calls `ops.runs.start` (as `workbench run --detach` does). The form is the state:
this screen reads nothing from the store.
"""

from __future__ import annotations

import threading
from dataclasses import dataclass
from typing import Any, ClassVar

from textual import work
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Horizontal, Vertical
from textual.message import Message
from textual.widgets import Button, Footer, Select, Static
from textual.worker import Worker, WorkerState, get_current_worker

from workbench.ops import OpError, estimate, launch, specs
from workbench.ops.estimate import Estimate
from workbench.tui.screens.base import WorkbenchScreen
from workbench.tui.widgets.specform import FormError, SpecForm

VALIDATE_AFTER_S = 0.3
# One estimate at a time (the first times a matmul); a start waits for the one in flight.
# (dry_run's process counts are per thread, `preflight.assume_processes`: none reaches the
# environment a job inherits.)
ESTIMATING = threading.Lock()


@dataclass
class SpecChecked(Message):
    """The pipeline's preflight and estimate ran on `spec`: `error` is None when the preflight
    passed; `estimate` is None for a job that trains nothing (or when `error` is set)."""

    spec: Any
    summary: str
    error: str | None
    estimate: Estimate | None = None


class EstimatePanel(Static):
    """The estimate of the spec in the form: compute, memory per rank, and the fixes of a job
    that does not fit (in the error colour)."""

    DEFAULT_CSS = """
    EstimatePanel {
        height: auto;
        max-height: 45%;
        padding: 0 1;
        color: $text-muted;
    }
    EstimatePanel.refused {
        color: $error;
    }
    """

    def show(self, est: Estimate | None) -> None:
        """Show `est` (None: nothing)."""
        lines = [] if est is None else estimate.brief(est)
        if est is not None and est.refusal:
            lines += ["change one of:", *(f"• {fix}" for fix in est.fixes)]
        self.set_class(bool(est and est.refusal), "refused")
        self.update("\n".join(lines))


class LaunchScreen(WorkbenchScreen):
    MODE = "launch"
    BINDINGS: ClassVar[list[Binding]] = [
        Binding("ctrl+s", "launch", "Launch"),
        Binding("ctrl+r", "reset", "Reset to preset"),
        Binding("escape", "runs", "Runs", show=False),
    ]

    def __init__(self) -> None:
        super().__init__()
        self.spec: Any = None  # the last spec that validated
        self.pipeline: str | None = None
        self.launching = False  # a start is in flight: another press waits for it
        self.refused: Any = None  # the last spec whose estimate does not fit
        self._timer = None

    def compose(self) -> ComposeResult:
        self.pipelines = specs.launchable_pipelines()
        yield from self.compose_modebar()
        with Horizontal(id="launch-top"):
            yield Select(
                [(n, n) for n in self.pipelines],
                prompt="pipeline",
                id="pipeline",
                value=self.first_pipeline() or Select.BLANK,
                allow_blank=not self.pipelines,
                compact=True,
            )
            yield Select([], prompt="preset", id="preset", compact=True)
            yield Button("Launch", variant="primary", id="launch", compact=True)
        yield Vertical(id="form-box")
        yield Static("", id="errors")
        yield EstimatePanel("", id="estimate")
        yield Footer(compact=True)

    def first_pipeline(self) -> str | None:
        """The pipeline Launch opens on: pretrain (on its tiny preset), else the first."""
        if launch.DEFAULT_PIPELINE in self.pipelines:
            return launch.DEFAULT_PIPELINE
        return self.pipelines[0] if self.pipelines else None

    async def on_mount(self) -> None:
        if first := self.first_pipeline():
            await self.use_pipeline(first)

    async def use_pipeline(self, pipeline: str, values: dict | None = None) -> None:
        """Show `pipeline`'s presets; fill the form from `values`, else its default (tiny)
        preset."""
        self.pipeline = pipeline
        presets = specs.presets_for(pipeline)
        preset = launch.default_preset(pipeline, presets)
        select = self.query_one("#preset", Select)
        with self.prevent(Select.Changed):
            select.set_options([(p, p) for p in presets])
            if values is None and preset:
                select.value = preset
        if values is None:
            values = specs.preset_values(preset) if preset else {}
        await self.build_form(values)

    async def build_form(self, values: dict) -> None:
        box = self.query_one("#form-box", Vertical)
        await box.remove_children()
        await box.mount(SpecForm(specs.spec_class(self.pipeline), values, id="form"))
        self.validate()

    async def prefill(self, spec: dict, source: str | None = None) -> None:
        """Fill the form from a run's spec (re-launch with edits)."""
        pipeline = spec.get("pipeline")
        if pipeline not in self.pipelines:
            self.notify(f"pipeline {pipeline!r} cannot be launched from here", severity="error")
            return
        with self.prevent(Select.Changed):
            self.query_one("#pipeline", Select).value = pipeline
        await self.use_pipeline(pipeline, values=spec)
        with self.prevent(Select.Changed):
            self.query_one("#preset", Select).clear()
        if source:
            self.notify(f"editing a copy of {source}'s spec")

    async def on_select_changed(self, event: Select.Changed) -> None:
        if event.select.id == "pipeline" and event.select.value != self.pipeline:
            await self.use_pipeline(str(event.select.value))
        elif event.select.id == "preset" and not event.select.is_blank():
            await self.build_form(specs.preset_values(str(event.value)))

    def on_spec_form_edited(self, event: SpecForm.Edited) -> None:
        if self._timer is not None:
            self._timer.stop()
        self._timer = self.set_timer(VALIDATE_AFTER_S, self.validate)

    def validate(self, check: bool = True) -> Any:
        """Validate the form with the pipeline's Spec; show the result; return the spec or None.
        With `check` (and no start in flight), estimate and preflight it in a worker."""
        errors = self.query_one("#errors", Static)
        forms = self.query(SpecForm)
        if not forms:
            return None
        try:
            data = {"pipeline": self.pipeline, **forms.first().values()}
            self.spec = specs.from_form(data)
        except (OpError, FormError) as e:
            self.spec = None
            errors.set_class(False, "ok")
            errors.update(str(e))
            self.query_one(EstimatePanel).show(None)
            return None
        errors.set_class(True, "ok")
        if check and not self.launching:
            errors.update(f"✓ valid {self.pipeline} spec — checking data, device and memory…")
            self._check_worker(self.spec)
        return self.spec

    @work(thread=True, exclusive=True, group="preflight", exit_on_error=False)
    def _check_worker(self, spec: Any) -> None:
        """The estimate and the pipeline's preflight, off the UI thread (it reads files and
        times a matmul once), one at a time; a check the form has outdated is skipped."""
        with ESTIMATING:
            if get_current_worker().is_cancelled:
                return
            store = self.app.store()
            try:
                est = estimate.dry_run(store, spec, reuse_peak=True)
                if not est.trains:
                    launch.check(store, spec)  # dry_run runs the preflight of a training job
            except OpError as e:
                self.post_message(SpecChecked(spec, "", str(e)))
                return
        summary = launch.summary(spec) if not est.trains else ""
        self.post_message(SpecChecked(spec, summary, None, est if est.trains else None))

    def on_spec_checked(self, message: SpecChecked) -> None:
        if message.spec is not self.spec or self.launching:
            return  # the form changed meanwhile, or a start says what happens now
        errors, est = self.query_one("#errors", Static), message.estimate
        refusal = est.refusal if est is not None else None
        self.refused = message.spec if refusal else None
        self.query_one(EstimatePanel).show(est if message.error is None else None)
        errors.set_class(message.error is None and not refusal, "ok")
        if message.error is not None:
            errors.update(message.error)
        elif refusal:
            errors.update(
                f"✗ the {self.pipeline} job does not fit in memory: change one of the settings "
                "below — ctrl+s refuses it until it fits"
            )
        elif est is not None:
            errors.update(f"✓ valid {self.pipeline} spec — ctrl+s launches it")
        else:
            errors.update(f"✓ valid {self.pipeline} spec · {message.summary} — ctrl+s launches it")

    def on_button_pressed(self, event: Button.Pressed) -> None:
        if event.button.id == "launch":
            self.action_launch()

    def action_launch(self) -> None:
        """Start the job (the runner's preflight refuses a bad one before anything is
        written); back to Runs once it started. A second press meanwhile does nothing."""
        if self.launching:
            self.notify("a launch is already starting", severity="warning")
            return
        spec = self.validate(check=False)
        if spec is None:
            self.notify("fix the spec first (see the message under the form)", severity="error")
            return
        if spec == self.refused:
            self.notify("this job does not fit in memory: see the fixes under the form",
                        severity="error")  # fmt: skip
            return
        if self._timer is not None:
            self._timer.stop()
        self.launching = True
        self.query_one("#errors", Static).update(f"starting {self.pipeline}…")
        self._start_worker(spec)

    @work(thread=True, group="start", exit_on_error=False)
    def _start_worker(self, spec: Any) -> None:
        """Start the job once no estimate is in flight."""
        with ESTIMATING:
            pass
        self.app.call_from_thread(self.app.start_job, spec, self)

    def on_worker_state_changed(self, event: Worker.StateChanged) -> None:
        super().on_worker_state_changed(event)
        if event.worker.name != "launch" or event.state not in (
            WorkerState.SUCCESS, WorkerState.ERROR, WorkerState.CANCELLED
        ):  # fmt: skip
            return
        self.launching = False
        if event.state == WorkerState.SUCCESS:
            self.validate()
            self.app.switch_mode("runs")
        else:
            errors = self.query_one("#errors", Static)
            errors.set_class(False, "ok")
            errors.update(str(event.worker.error))

    async def action_reset(self) -> None:
        select = self.query_one("#preset", Select)
        if not select.is_blank():
            await self.build_form(specs.preset_values(str(select.value)))

    def action_runs(self) -> None:
        self.app.switch_mode("runs")
