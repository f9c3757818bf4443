"""What the Compare and Arena screens share around `AnswerColumns`: the prompt row and the
worker that streams every model's answer at once.

`prompt_row` is a prompt box, " max " and a max-tokens box (the chat defaults), and the
quantize choice (none, int8, int4: the weights every model answers with). A screen's
thread worker calls `stream_columns`, which runs `workbench.ops.compare.side_by_side` and posts
`ColumnsUpdated` to the screen (coalescing; `done` on the last), stopping when the worker is
cancelled or `stop` is set. `StreamsAnswers` is what such a screen does when it is left (the
answers stop) and when its worker fails (the status line says so).
"""

from __future__ import annotations

import threading
from typing import Any, ClassVar

from textual.containers import Horizontal
from textual.message_pump import MessagePump
from textual.widgets import Input, Label, Static
from textual.worker import Worker, WorkerState, get_current_worker

from workbench.ops.chat import DEFAULTS
from workbench.tui.widgets.columns import ColumnsUpdated
from workbench.tui.widgets.picker import quantize_picker


def prompt_row(
    row_id: str, prompt_id: str, placeholder: str, max_id: str, quantize_id: str
) -> Horizontal:
    """[prompt……] max [128] quantize [none]: the one-line prompt, the tokens each answer may
    have and the weights the models answer with."""
    return Horizontal(
        Input(placeholder=placeholder, id=prompt_id, compact=True),
        Label(" max "),
        Input(str(DEFAULTS.max_new_tokens), id=max_id, compact=True, classes="num"),
        Label(" quantize "),
        quantize_picker(quantize_id),
        id=row_id,
    )


def stream_columns(
    node: MessagePump, store: Any, refs: list[str], prompt: str, sampling: Any,
    stop: threading.Event,
) -> None:  # fmt: skip
    """In a thread worker: every model's answer so far to `node` as ColumnsUpdated."""
    from workbench.ops.compare import side_by_side

    worker = get_current_worker()
    columns: list[Any] = []
    for columns in side_by_side(store, refs, prompt, sampling, stop=stop):
        if worker.is_cancelled:
            stop.set()
            break
        node.post_message(ColumnsUpdated(columns))
    node.post_message(ColumnsUpdated(columns, done=True))


class StreamsAnswers:
    """Mixin for a screen (before its StoreScreen base) whose `STREAM_GROUP` worker streams
    answers while `streaming`, stopped by setting `_stop`; `STATUS` is its status line."""

    STREAM_GROUP: ClassVar[str]
    STATUS: ClassVar[str]
    streaming: bool
    _stop: threading.Event

    def on_screen_suspend(self) -> None:
        self._stop.set()

    def on_worker_state_changed(self, event: Worker.StateChanged) -> None:
        super().on_worker_state_changed(event)  # the screen's own: hands it to the app
        if event.worker.group == self.STREAM_GROUP and event.state == WorkerState.ERROR:
            self.streaming = False
            self.query_one(self.STATUS, Static).update(f"failed: {event.worker.error}")
