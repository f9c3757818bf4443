"""A form generated from a pipeline's pydantic `Spec`: the schema is declared once.

Walks `model_fields` recursively: nested sections become titled groups, `bool` a Switch,
`Literal[...]` a Select, numbers and strings an Input, lists and dicts a small TOML editor.
`values()` gives back the nested dict that `spec_from_dict` validates; an empty Input means
"the default" (or None where the field is optional).
"""

from __future__ import annotations

import tomllib
import types
import typing
from dataclasses import dataclass
from typing import Any, Literal

from pydantic import BaseModel
from pydantic_core import PydanticUndefined
from textual.app import ComposeResult
from textual.containers import Horizontal, Vertical, VerticalScroll
from textual.message import Message
from textual.widget import Widget
from textual.widgets import Input, Label, Select, Static, Switch, TextArea

from workbench.tui.tomlfmt import dumps
from workbench.tui.tomlfmt import value as toml_value


class FormError(ValueError):
    """A field's text cannot be read (bad TOML in a list field)."""


@dataclass
class FieldKind:
    kind: str  # section | bool | literal | list | number | text
    optional: bool = False
    options: tuple = ()
    model: type[BaseModel] | None = None


def field_kind(ann: Any) -> FieldKind:
    """What kind of editor an annotation needs (Optional[...] unwrapped)."""
    optional = False
    origin = typing.get_origin(ann)
    if origin in (typing.Union, types.UnionType):
        args = [a for a in typing.get_args(ann) if a is not type(None)]
        optional = len(args) < len(typing.get_args(ann))
        ann = args[0] if len(args) == 1 else ann
        origin = typing.get_origin(ann)
    if isinstance(ann, type) and issubclass(ann, BaseModel):
        return FieldKind("section", optional, model=ann)
    if ann is bool:
        return FieldKind("bool", optional)
    if origin is Literal:
        return FieldKind("literal", optional, options=typing.get_args(ann))
    if origin in (list, dict, tuple, set) or ann in (list, dict):
        return FieldKind("list", optional)
    if ann in (int, float):
        return FieldKind("number", optional)
    return FieldKind("text", optional)


def default_of(field: Any) -> Any:
    if field.default is PydanticUndefined and field.default_factory is None:
        return None
    value = field.get_default(call_default_factory=True)
    return value.model_dump(mode="json") if isinstance(value, BaseModel) else value


def parse_number(text: str) -> Any:
    """'3e-4' -> 0.0003, '1_000' -> 1000; anything else stays text for pydantic to judge."""
    try:
        return tomllib.loads(f"v = {text}")["v"]
    except tomllib.TOMLDecodeError:
        return text


class SpecForm(VerticalScroll):
    """The editable fields of one spec class, filled from `values` (a nested dict)."""

    class Edited(Message):
        """Any field changed (the screen validates after a short pause)."""

    def __init__(self, spec_cls: type[BaseModel], values: dict[str, Any], **kwargs) -> None:
        super().__init__(**kwargs)
        self.spec_cls = spec_cls
        self.initial = values
        self.fields: list[tuple[tuple[str, ...], FieldKind, Widget, Any]] = []

    def compose(self) -> ComposeResult:
        yield from self._group(self.spec_cls, self.initial, ())

    def _group(self, model: type[BaseModel], values: dict, path: tuple[str, ...]) -> ComposeResult:
        for name, field in model.model_fields.items():
            if not path and name == "pipeline":
                continue
            kind = field_kind(field.annotation)
            here = (*path, name)
            value = values.get(name, default_of(field)) if isinstance(values, dict) else None
            if kind.kind == "section":
                yield Static(".".join(here), classes="group-title")
                yield from self._group(kind.model, value or {}, here)
                continue
            yield from self._field(here, kind, field, value)

    def _field(self, path: tuple[str, ...], kind: FieldKind, field: Any, value: Any):
        wid = "f-" + "-".join(path)
        if kind.kind == "bool":
            widget: Widget = Switch(bool(value), id=wid)
        elif kind.kind == "literal":
            options = [(str(o), o) for o in kind.options]
            widget = Select(
                options,
                value=value if value in kind.options else Select.BLANK,
                allow_blank=kind.optional or value not in kind.options,
                compact=True,
                id=wid,
            )
        elif kind.kind == "list":
            text = _list_text(path[-1], value)
            widget = TextArea(text, id=wid, compact=True, soft_wrap=False)
        else:
            text = (
                "" if value is None else (str(value) if kind.kind == "text" else toml_value(value))
            )
            hint = "(none)" if kind.optional else "(default)"
            widget = Input(text, placeholder=hint, compact=True, id=wid)
        self.fields.append((path, kind, widget, field))
        classes = "field list-field" if kind.kind == "list" else "field"
        box = Vertical if kind.kind == "list" else Horizontal
        with box(classes=classes):
            yield Label(path[-1])
            yield widget
        if field.description:
            yield Static(field.description, classes="field-help")

    def values(self) -> dict[str, Any]:
        """The form as a nested dict (raises FormError for unreadable list text)."""
        out: dict[str, Any] = {}
        for path, kind, widget, field in self.fields:
            present, value = self._read(path, kind, widget, field)
            if not present:
                continue
            node = out
            for part in path[:-1]:
                node = node.setdefault(part, {})
            node[path[-1]] = value
        return out

    def _read(self, path, kind: FieldKind, widget: Widget, field: Any) -> tuple[bool, Any]:
        if isinstance(widget, Switch):
            return True, widget.value
        if isinstance(widget, Select):
            return (True, None) if widget.is_blank() else (True, widget.value)
        if isinstance(widget, TextArea):
            if not widget.text.strip():
                return False, None
            try:
                return True, tomllib.loads(widget.text).get(path[-1], [])
            except tomllib.TOMLDecodeError as e:
                raise FormError(f"field {'.'.join(path)!r}: not valid TOML ({e})") from None
        text = widget.value.strip()
        if not text:
            return (True, None) if kind.optional and default_of(field) is None else (False, None)
        return True, parse_number(text) if kind.kind == "number" else widget.value

    def on_input_changed(self, event: Input.Changed) -> None:
        self.post_message(self.Edited())

    def on_switch_changed(self, event: Switch.Changed) -> None:
        self.post_message(self.Edited())

    def on_select_changed(self, event: Select.Changed) -> None:
        event.stop()
        self.post_message(self.Edited())

    def on_text_area_changed(self, event: TextArea.Changed) -> None:
        self.post_message(self.Edited())


def _list_text(name: str, value: Any) -> str:
    """TOML for one list or dict field: `name = [...]` or `[[name]]` blocks."""
    if value in (None, [], {}):
        return f"{name} = []\n" if not isinstance(value, dict) else ""
    return dumps({name: value})
