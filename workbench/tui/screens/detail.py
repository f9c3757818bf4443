"""Run detail: live metric charts, samples as they arrive, the resolved spec, the log, lineage.

Each `StoreChanged` re-reads the run with `ops.views.run_view` (one store transaction) and
only the metric rows past the last one seen, so a long run costs one small read per change.
Train and validation series of one metric share a chart. The log tail is read from the run
folder on a timer of its own: it needs no store access.
"""

from __future__ import annotations

import datetime as dt
from collections import defaultdict
from dataclasses import dataclass
from pathlib import Path
from typing import Any, ClassVar

from rich.text import Text
from textual import work
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import VerticalScroll
from textual.message import Message
from textual.widgets import Footer, Log, Static, TabbedContent, TabPane

from workbench.ops import runs as run_ops
from workbench.ops.fmt import PERCENT_METRICS, human_age, human_seconds, short_path
from workbench.ops.runlist import eta_seconds
from workbench.ops.views import chart_groups, log_tail, run_view, series_label
from workbench.tui.screens.base import StoreScreen
from workbench.tui.tomlfmt import dumps
from workbench.tui.widgets.chart import LineChart

LOG_EVERY_S = 1.0
SMOOTHING = (0.0, 0.6, 0.9)


@dataclass
class LogRead(Message):
    """The tail of the run's log was read from its folder."""

    lines: list[str]


class RunDetailScreen(StoreScreen):
    MODE = "runs"
    BINDINGS: ClassVar[list[Binding]] = [
        Binding("escape", "back", "Back"),
        Binding("s", "stop", "Stop"),
        Binding("r", "resume", "Resume"),
        Binding("e", "edit", "Edit+run"),
        Binding("c", "tab('charts')", "Charts", show=False),
        Binding("a", "tab('samples')", "Samples", show=False),
        Binding("p", "tab('spec')", "Spec", show=False),
        Binding("l", "tab('log')", "Log", show=False),
        Binding("i", "tab('lineage')", "Lineage", show=False),
        Binding("m", "smooth", "Smooth"),
        Binding("y", "log_scale", "Log y"),
    ]

    def __init__(self, run_id: str) -> None:
        super().__init__()
        self.run_id = run_id
        self.run: dict[str, Any] | None = None
        self.series: dict[str, list[tuple[float, float]]] = defaultdict(list)
        self.charts: dict[str, str] = {}  # series label -> chart title
        self.chart_widgets: dict[str, LineChart] = {}  # chart title -> its chart, in order
        self.last_seq = -1
        self.smoothing, self.log_y = 0.0, False  # how every chart draws its series
        self._train_span: list[tuple[int, Any]] = []  # [(step, time)] of the first train row
        self.folder: Path | None = None
        self._log_lines: list[str] = []

    def compose(self) -> ComposeResult:
        yield from self.compose_modebar()
        yield Static(self.run_id, id="detail-title")
        yield Static("", id="detail-status")
        with TabbedContent(initial="charts"):
            with TabPane("Charts", id="charts"):
                yield VerticalScroll(id="chart-grid")
            with TabPane("Samples", id="samples"):
                yield VerticalScroll(Static("no samples yet", id="samples-text"), classes="pane")
            with TabPane("Spec", id="spec"):
                yield VerticalScroll(Static("", id="spec-text", markup=False), classes="pane")
            with TabPane("Log", id="log"):
                yield Log(id="log-view", classes="log-view", max_lines=2000)
            with TabPane("Lineage", id="lineage"):
                yield VerticalScroll(Static("", id="lineage-text"), classes="pane")
        yield Footer(compact=True)

    def on_mount(self) -> None:
        self.set_interval(LOG_EVERY_S, self._read_log)
        self.focus_pane("charts")

    def focus_pane(self, tab: str) -> None:
        """The visible pane takes the arrow keys (the chart grid scrolls with them)."""
        self.set_focus(self.query_one(f"#{tab}").query("VerticalScroll, Log").first())

    def on_tabbed_content_tab_activated(self, event: TabbedContent.TabActivated) -> None:
        self.focus_pane(event.pane.id or "charts")

    def read(self, store) -> dict[str, Any]:
        return run_view(store, self.run_id, self.last_seq)

    def show(self, data: dict[str, Any]) -> None:
        run = data["run"]
        if run is None:
            self.query_one("#detail-status", Static).update("this run is gone from the store")
            return
        first = self.run is None
        self.run, self.folder = run, data["folder"]
        self._show_metrics(data["metrics"])
        self._show_header(run)
        self._show_samples(data["samples"])
        if first:
            spec = dumps(run.get("spec") or {})
            self.query_one("#spec-text", Static).update(spec or "(no spec recorded)")
            self._read_log()
        self._show_lineage(run, data)

    def _show_header(self, run: dict) -> None:
        name = f"  ({run['name']})" if run.get("name") else ""
        self.query_one("#detail-title", Static).update(
            Text.assemble(run["run_id"], name, "  ", (run["status"], "bold"))
        )
        total = run.get("progress_total")
        parts = [run["pipeline"]]
        if total:
            phase = run.get("progress_phase") or "step"
            parts.append(f"{phase} {run.get('progress_step') or 0}/{total}")
        if eta := eta_seconds(run, self.first_train()):
            parts.append(f"eta {human_seconds(eta)}")
        if run.get("device"):
            parts.append(run["device"])
        if run.get("started_at"):
            parts.append(f"started {human_age(run['started_at'], self.app.now())} ago")
        if run.get("reason"):
            parts.append(run["reason"])
        self.query_one("#detail-status", Static).update(" · ".join(parts))

    def first_train(self) -> tuple[int, float] | None:
        """(step, unix time) of the run's first train metric: where its training rate starts."""
        if not self._train_span:
            return None
        step, t = self._train_span[0]
        return step, t.replace(tzinfo=dt.UTC).timestamp() if t.tzinfo is None else t.timestamp()

    def _show_metrics(self, rows: list[dict]) -> None:
        for m in rows:
            if m.get("split") in (None, "train") and m.get("t") is not None:
                point = (m.get("step") or 0, m["t"])
                self._train_span = self._train_span or [point]
            self.last_seq = max(self.last_seq, m.get("seq") or 0)
            if m.get("value") is None:
                continue
            chart, label = series_label(m["name"], m.get("split"))
            self.charts[label] = chart
            value = float(m["value"]) * (100.0 if chart in PERCENT_METRICS else 1.0)
            self.series[label].append((float(m.get("step") or 0), value))
        groups = chart_groups(self.charts)
        if [title for title, _ in groups] != list(self.chart_widgets):
            self._mount_charts([title for title, _ in groups])
        for title, labels in groups:
            self.chart_widgets[title].set_series({n: self.series[n] for n in labels})

    def _mount_charts(self, titles: list[str]) -> None:
        """Rebuild the grid in chart order — loss first, wide — whenever a new chart appears,
        so a metric that shows up late (loss after SFT's baseline evaluation) never sits
        below the ones logged earlier. Rare: once per new metric name."""
        box = self.query_one("#chart-grid", VerticalScroll)
        box.remove_children()
        self.chart_widgets = {
            t: LineChart(
                t, unit="%" if t in PERCENT_METRICS else "", classes="wide" if i == 0 else ""
            )
            for i, t in enumerate(titles)
        }
        for chart in self.chart_widgets.values():
            chart.set_view(self.smoothing, self.log_y)
        box.mount_all(self.chart_widgets.values())

    def _show_samples(self, samples: list[dict]) -> None:
        if not samples:
            return
        text = Text()
        for s in samples:
            text.append(f"step {s['step']:>6}  ", style="bold")
            text.append(s.get("prompt") or "", style="dim")
            text.append((s.get("completion") or "") + "\n")
        self.query_one("#samples-text", Static).update(text)

    def _read_log(self) -> None:
        if self.folder is not None and self.is_current:
            self._log_worker(self.folder)

    @work(thread=True, exclusive=True, group="log", exit_on_error=False)
    def _log_worker(self, folder: Path) -> None:
        self.post_message(LogRead(log_tail(folder)))

    def on_log_read(self, message: LogRead) -> None:
        if message.lines != self._log_lines:
            self._log_lines = message.lines
            log = self.query_one(Log)
            log.clear()
            log.write_lines(message.lines)

    def _show_lineage(self, run: dict, data: dict) -> None:
        home = self.home
        out = [f"[b]parents[/b]   {', '.join(run.get('parents') or []) or '-'}"]
        kids = [f"{c['run_id']} ({c['status']})" for c in data["children"]]
        out.append(f"[b]children[/b]  {', '.join(kids) or '-'}")
        out.append(f"[b]models[/b]    {', '.join(data['models']) or '-'}")
        for a in data["artifacts"]:
            if a["type"] == "model":
                out.append(f"  model folder {short_path(a['path'], home)}")
        ckpts = [a for a in data["artifacts"] if a["type"] == "checkpoint"]
        if ckpts:
            out.append(f"[b]checkpoints[/b] {len(ckpts)}, newest at step {ckpts[-1]['step']}")
        out.append(f"[b]folder[/b]    {short_path(run.get('run_dir'), home)}")
        self.query_one("#lineage-text", Static).update("\n".join(out))

    def action_back(self) -> None:
        self.app.pop_screen()

    def action_tab(self, tab: str) -> None:
        self.query_one(TabbedContent).active = tab
        self.focus_pane(tab)

    def action_smooth(self) -> None:
        """Cycle the charts' smoothing: raw, 0.6, 0.9 (an exponential moving average)."""
        steps = list(SMOOTHING)
        self.smoothing = steps[(steps.index(self.smoothing) + 1) % len(steps)]
        self._set_view()

    def action_log_scale(self) -> None:
        self.log_y = not self.log_y
        self._set_view()

    def _set_view(self) -> None:
        for chart in self.chart_widgets.values():
            chart.set_view(self.smoothing, self.log_y)

    def action_stop(self) -> None:
        self.app.run_op("stop", run_ops.stop, self.app.store(), self.run_id)

    def action_resume(self) -> None:
        self.app.resume_run(self.run_id)

    async def action_edit(self) -> None:
        if self.run is not None:
            await self.app.open_launch(self.run.get("spec") or {}, source=self.run_id)
