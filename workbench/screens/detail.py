"""Run detail: live metric charts, samples as they arrive, the resolved spec, the log, lineage.

Metrics are read incrementally (rows with a seq above the last one seen), so a long run
costs one small query a second. Any metric name gets a chart; `x` and `val_x` share one.
"""

from __future__ import annotations

from collections import defaultdict
from pathlib import Path
from typing import Any, ClassVar

from rich.text import Text
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import VerticalScroll
from textual.widgets import Footer, Log, Static, TabbedContent, TabPane

from workbench.screens.base import StoreScreen, age, short_path
from workbench.screens.tomlfmt import dumps
from workbench.widgets.chart import LineChart

FIRST = ("loss", "lr", "tokens_per_s", "mfu", "grad_norm")
LOG_BYTES = 32 * 1024


def chart_groups(names: set[str]) -> list[tuple[str, list[str]]]:
    """(chart title, metric names) — loss first, then throughput, then the rest by name."""
    order = sorted(names, key=lambda n: (FIRST.index(n) if n in FIRST else len(FIRST), n))
    groups = []
    for name in order:
        if name.startswith("val_") and name[4:] in names:
            continue
        groups.append((name, [name] + ([f"val_{name}"] if f"val_{name}" in names else [])))
    return groups


def log_tail(run_dir: Path, lines: int = 200) -> list[str]:
    """The last lines of stdout.log, else of events.jsonl."""
    for name in ("stdout.log", "events.jsonl"):
        path = run_dir / name
        if path.exists():
            with open(path, "rb") as f:
                f.seek(max(0, path.stat().st_size - LOG_BYTES))
                text = f.read().decode("utf-8", errors="replace")
            return text.splitlines()[-lines:]
    return ["(no log yet)"]


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
    ]

    def __init__(self, run_id: str) -> None:
        super().__init__()
        self.run_id = run_id
        self.run: dict[str, Any] | None = None
        self.series: dict[str, list[tuple[float, float]]] = defaultdict(list)
        self.last_seq = -1
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

    def read(self, store) -> dict[str, Any]:
        store.refresh()
        run = store.get_run(self.run_id)
        if run is None:
            return {"run": None}
        _, metrics = store.sql(
            "SELECT seq, step, name, value FROM metrics WHERE run_id = ? AND seq > ? "
            "AND value IS NOT NULL ORDER BY seq, name",
            [self.run_id, self.last_seq],
        )
        _, models = store.sql("SELECT name FROM models WHERE run_id = ?", [self.run_id])
        return {
            "run": run,
            "metrics": metrics,
            "samples": store.samples(self.run_id, limit=100),
            "artifacts": store.artifacts(self.run_id),
            "children": store.children(self.run_id),
            "models": [m for (m,) in models],
            "log": log_tail(Path(run["run_dir"] or store.run_dir(self.run_id))),
        }

    def show(self, data: dict[str, Any]) -> None:
        run = data["run"]
        if run is None:
            self.query_one("#detail-status", Static).update("this run is gone from the store")
            return
        first = self.run is None
        self.run = run
        self._show_header(run)
        self._show_metrics(data["metrics"])
        self._show_samples(data["samples"])
        if first:
            spec = dumps(run.get("spec") or {})
            self.query_one("#spec-text", Static).update(spec or "(no spec recorded)")
        self._show_log(data["log"])
        self._show_lineage(run, data)

    def _show_header(self, run: dict) -> None:
        self.query_one("#detail-title", Static).update(
            Text.assemble(run["run_id"], "  ", (run["status"], "bold"))
        )
        total = run.get("progress_total")
        parts = [run["pipeline"]]
        if total:
            parts.append(f"step {run.get('progress_step') or 0}/{total}")
        if run.get("device"):
            parts.append(run["device"])
        if run.get("started_at"):
            parts.append(f"started {age(run['started_at'], self.app.now())} ago")
        if run.get("reason"):
            parts.append(run["reason"])
        self.query_one("#detail-status", Static).update(" · ".join(parts))

    def _show_metrics(self, rows: list[tuple]) -> None:
        for seq, step, name, value in rows:
            self.series[name].append((float(step or 0), float(value)))
            self.last_seq = max(self.last_seq, seq)
        box = self.query_one("#chart-grid", VerticalScroll)
        for i, (title, names) in enumerate(chart_groups(set(self.series))):
            chart_id = f"chart-{title}"
            found = box.query(f"#{chart_id}")
            chart = found.first() if found else None
            if chart is None:
                chart = LineChart(title, id=chart_id, classes="wide" if i == 0 else "")
                box.mount(chart)
            chart.set_series({n: self.series[n] for n in names})

    def _show_samples(self, samples: list[dict]) -> None:
        if not samples:
            return
        text = Text()
        for s in samples:
            text.append(f"step {s['step']:>6}  ", style="bold")
            text.append(s.get("prompt") or "", style="dim")
            text.append((s.get("completion") or "") + "\n")
        self.query_one("#samples-text", Static).update(text)

    def _show_log(self, lines: list[str]) -> None:
        if lines != self._log_lines:
            self._log_lines = lines
            log = self.query_one(Log)
            log.clear()
            log.write_lines(lines)

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

    def action_stop(self) -> None:
        from workbench.screens.runs import stop_run

        if self.run is not None:
            self.notify(stop_run(self.run))

    def action_resume(self) -> None:
        if self.run is not None:
            self.app.resume_run(self.run)

    async def action_edit(self) -> None:
        if self.run is not None:
            await self.app.open_launch(self.run.get("spec") or {}, source=self.run_id)
