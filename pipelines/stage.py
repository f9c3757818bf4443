"""What the training stages share: a spec's output section, the models a spec starts from,
driving a (done, total) generator as Progress events, and the lineage and last word of the
model a run makes."""

from __future__ import annotations

from pydantic import Field

from pipelines.spec import JobSpec, Section
from store.events import Note, Progress


class Output(Section):
    model_name: str | None = Field(None, description="registry name (default: the run id)")


class StageSpec(JobSpec):
    """A stage's spec, whose `model` section holds only model references."""

    def model_refs(self) -> list[str]:
        """The models this spec starts from: its `model` section's fields, in order."""
        return list(self.model.model_dump().values())


def lineage(ref: str, folder) -> dict[str, str]:
    """The registry meta of a model made from the one `ref` names (found in `folder`)."""
    return {"base": ref, "base_path": str(folder), "tokenizer": str(folder), "parent_model": ref}


def made_note(spec, ctx, kind: str, try_it: str, figure: str | None = None) -> Note:
    """A run's last word: what it made, where, the figure that matters and what to try next
    (`try_it` is formatted with the model's `name`)."""
    name = spec.output.model_name or ctx.run_id
    said = f": {figure}" if figure is not None else ""
    return Note(
        text=f"made {kind} model {name!r} in {ctx.run_dir / 'model'}{said}. "
        f"Try it: {try_it.format(name=name)}"
    )


def drive(ctx, gen, phase: str, stopped: str):
    """Run a generator of (done, total) to its return value, a Progress event per step; a
    stop request between steps closes it and raises Cancelled(stopped)."""
    from pipelines.runner import Cancelled

    while True:
        if ctx.should_stop():
            gen.close()
            raise Cancelled(stopped)
        try:
            done, total = next(gen)
        except StopIteration as end:
            return end.value
        yield Progress(step=done, total=total, phase=phase)
