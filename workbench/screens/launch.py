"""Launch: pick a pipeline and a preset, edit the generated form, start the job detached.

The form is built from the pipeline's `Spec`; every edit is validated (after a short pause)
with `spec_from_dict`, the same code path as `workbench run`, and the SpecError text shows
under the form. Launching writes the run and starts `workbench _exec RUN_ID` detached.
"""

from __future__ import annotations

from typing import Any, ClassVar

from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Horizontal, Vertical
from textual.widgets import Button, Footer, Select, Static

from workbench.screens.base import StoreScreen
from workbench.widgets.specform import FormError, SpecForm

VALIDATE_AFTER_S = 0.3


def available_pipelines() -> list[str]:
    """Pipelines whose module and Spec import (a stage still being written is left out)."""
    from pipelines.registry import PIPELINES, spec_class

    names = []
    for name in PIPELINES:
        try:
            spec_class(name)
        except Exception:  # noqa: BLE001, S112 - a broken or missing stage is just not offered
            continue
        names.append(name)
    return names


def presets_for(pipeline: str) -> list[str]:
    from pipelines.spec import list_presets, preset_summary

    return [p for p in list_presets() if preset_summary(p)[0] == pipeline]


def preset_values(name: str) -> dict[str, Any]:
    from pipelines.spec import preset_path, read_toml

    return read_toml(preset_path(name))


class LaunchScreen(StoreScreen):
    MODE = "launch"
    POLL_S = 3600.0  # nothing to poll: the form is the state
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
        self.pipelines = available_pipelines()
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
        super().on_mount()
        if self.pipelines:
            await self.use_pipeline(self.pipelines[0])

    async def use_pipeline(self, pipeline: str, values: dict | None = None) -> None:
        """Show `pipeline`'s presets; fill the form from `values`, else its first preset."""
        self.pipeline = pipeline
        presets = presets_for(pipeline)
        select = self.query_one("#preset", Select)
        with self.prevent(Select.Changed):
            select.set_options([(p, p) for p in presets])
            if values is None and presets:
                select.value = presets[0]
        if values is None:
            values = preset_values(presets[0]) if presets else {}
        await self.build_form(values)

    async def build_form(self, values: dict) -> None:
        from pipelines.registry import spec_class

        box = self.query_one("#form-box", Vertical)
        await box.remove_children()
        await box.mount(SpecForm(spec_class(self.pipeline), values, id="form"))
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
            await self.build_form(preset_values(str(event.value)))

    def on_spec_form_edited(self, event: SpecForm.Edited) -> None:
        if self._timer is not None:
            self._timer.stop()
        self._timer = self.set_timer(VALIDATE_AFTER_S, self.validate)

    def validate(self) -> Any:
        """Validate the form with the pipeline's Spec; show the result; return the spec or None."""
        from pipelines.registry import spec_from_dict
        from pipelines.spec import SpecError

        errors = self.query_one("#errors", Static)
        forms = self.query(SpecForm)
        if not forms:
            return None
        try:
            data = {"pipeline": self.pipeline, **forms.first().values()}
            self.spec = spec_from_dict(data, where="form")
        except (SpecError, FormError) as e:
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
            await self.build_form(preset_values(str(select.value)))

    def action_runs(self) -> None:
        self.app.switch_mode("runs")
