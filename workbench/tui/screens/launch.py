"""Launch: pick a pipeline and a preset, edit the generated form, start the job detached.

The form is built from the pipeline's `Spec`; every edit is validated (after a short pause)
with `ops.specs.from_form`, the same validation as `workbench run`, and the error text shows
under the form. Launching calls `ops.runs.start` (as `workbench run --detach` does). The form
is the state: this screen reads nothing from the store.
"""

from __future__ import annotations

from typing import Any, ClassVar

from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Horizontal, Vertical
from textual.widgets import Button, Footer, Select, Static

from workbench.ops import OpError, specs
from workbench.tui.screens.base import WorkbenchScreen
from workbench.tui.widgets.specform import FormError, SpecForm

VALIDATE_AFTER_S = 0.3


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
        self._timer = None

    def compose(self) -> ComposeResult:
        self.pipelines = specs.launchable_pipelines()
        yield from self.compose_modebar()
        with Horizontal(id="launch-top"):
            yield Select(
                [(n, n) for n in self.pipelines],
                prompt="pipeline",
                id="pipeline",
                allow_blank=not self.pipelines,
                compact=True,
            )
            yield Select([], prompt="preset", id="preset", compact=True)
            yield Button("Launch", variant="primary", id="launch", compact=True)
        yield Vertical(id="form-box")
        yield Static("", id="errors")
        yield Footer(compact=True)

    async def on_mount(self) -> None:
        if self.pipelines:
            await self.use_pipeline(self.pipelines[0])

    async def use_pipeline(self, pipeline: str, values: dict | None = None) -> None:
        """Show `pipeline`'s presets; fill the form from `values`, else its first preset."""
        self.pipeline = pipeline
        presets = specs.presets_for(pipeline)
        select = self.query_one("#preset", Select)
        with self.prevent(Select.Changed):
            select.set_options([(p, p) for p in presets])
            if values is None and presets:
                select.value = presets[0]
        if values is None:
            values = specs.preset_values(presets[0]) if presets else {}
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
        if event.select.id == "pipeline" and event.value != self.pipeline:
            await self.use_pipeline(str(event.value))
        elif event.select.id == "preset" and not event.select.is_blank():
            await self.build_form(specs.preset_values(str(event.value)))

    def on_spec_form_edited(self, event: SpecForm.Edited) -> None:
        if self._timer is not None:
            self._timer.stop()
        self._timer = self.set_timer(VALIDATE_AFTER_S, self.validate)

    def validate(self) -> Any:
        """Validate the form with the pipeline's Spec; show the result; return the spec or None."""
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
            return None
        errors.set_class(True, "ok")
        errors.update(f"✓ valid {self.pipeline} spec — ctrl+s launches it")
        return self.spec

    def on_button_pressed(self, event: Button.Pressed) -> None:
        if event.button.id == "launch":
            self.action_launch()

    def action_launch(self) -> None:
        spec = self.validate()
        if spec is None:
            self.notify("fix the spec first (see the message under the form)", severity="error")
            return
        self.app.start_job(spec)
        self.app.switch_mode("runs")

    async def action_reset(self) -> None:
        select = self.query_one("#preset", Select)
        if not select.is_blank():
            await self.build_form(specs.preset_values(str(select.value)))

    def action_runs(self) -> None:
        self.app.switch_mode("runs")
