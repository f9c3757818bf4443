"""Ingest throughput and peak memory for a long events.jsonl tail, against plain DuckDB.

    python benchmarks/ingest.py                  # a 1M-line tail (and a 250k one for memory)
    python benchmarks/ingest.py --rows 200000    # quicker
    python benchmarks/ingest.py --tracemalloc    # also Python's own peak (slower runs)
    python benchmarks/ingest.py --repeat 3       # each way's quickest of 3 (a busy machine)

Each measurement is a fresh process that reports its own time and peak resident memory
(ru_maxrss). The clock starts once the process has imported the libraries that way uses
(numpy and pyarrow for ingest, duckdb for read_json): a first import is paid once per
process whatever the rows, and is reported apart (`ingest ... with its first imports`).
Six ways to put the same metric rows into a DuckDB file:

- `Store.ingest`: the workbench path (parse, check every field, chunks stored under short
  lock holds, each one transaction; the metrics lines of a chunk parsed and checked as
  Arrow columns, store/ingest_fast.py);
- `ingest, lines`: the same with the column path off: every line parsed and checked on its
  own, as before the column path existed;
- `read_json`: DuckDB parsing the same file itself in one INSERT … SELECT (no checks);
- `arrow insert`: the rows already in Python lists, copied as one Arrow table (no parsing);
- `arrow chunks`: the rows already built as Arrow tables, one per ingest chunk, each in its
  own store transaction (lock, open, insert, commit, close): the floor of the policy before
  lock holds took several chunks, whatever the parsing costs;
- `arrow holds`: the same tables stored in the transactions the ingest run took (as many
  chunks a hold as it stored, with a hold's settings): the floor of ingest as it stores,
  whatever the parsing costs.

The figures that matter are ratios: ingest rows/s against each reference, and the growth of
peak memory from a 250k-line tail to a 1M-line one (flat when ingest streams). Resident
memory includes DuckDB's buffers; `--tracemalloc` adds the peak of Python's own allocations,
which the chunk size bounds. The longest lock hold of the ingest run is printed too.
"""

from __future__ import annotations

import argparse
import importlib
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
RUN = "pretrain-20250101-000000-bench"


def write_tail(path: Path, n: int) -> None:
    t = time.time()
    head = {"seq": 1, "t": t, "kind": "run_started", "pid": 1, "host": "elsewhere"}
    tpl = '{"seq": %d, "t": %.6f, "kind": "metrics", "step": %d, "values": {"loss": %.6f}}\n'
    with open(path, "w") as f:
        f.write(json.dumps(head) + "\n")
        f.writelines(tpl % (i + 1, t + i * 1e-4, i, 1.0 / i) for i in range(1, n + 1))


def child(kind: str, home: str, n: int, holds: list[int]) -> None:
    """Run one measurement in this process and print a JSON line with seconds and memory."""
    import resource

    imports = _import_for(kind)
    start = time.perf_counter()
    out: dict = {}
    if kind.startswith("ingest"):
        from store import Store, db
        from store import ingest as ingest_mod

        store = Store(home)
        store.list_runs()  # the schema exists; what follows is ingest alone
        if kind == "ingest-traced":
            import tracemalloc

            tracemalloc.start()
        if kind == "ingest-lines":  # no line goes the column path
            ingest_mod.COLUMNS = False
        out["holds"] = _count_holds(ingest_mod)
        db.longest_hold_s(reset=True)
        start = time.perf_counter()
        store.ingest()
        out["longest_hold_s"] = db.longest_hold_s()
    elif kind == "read_json":
        _read_json(Path(home))
    elif kind == "arrow":
        _arrow_insert(Path(home), n)
    elif kind in ("arrow-chunks", "arrow-holds"):
        tables = _chunk_tables(Path(home))
        groups = [1] * len(tables) if kind == "arrow-chunks" else holds
        start = time.perf_counter()
        _insert_chunks(Path(home), tables, groups, hold=kind == "arrow-holds")
    seconds = time.perf_counter() - start
    peak_mb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    if kind == "ingest-traced":
        import tracemalloc

        peak_mb = tracemalloc.get_traced_memory()[1] / 2**20
    print(json.dumps({"kind": kind, "seconds": seconds, "peak_mb": peak_mb,
                      "imports_s": imports, **out}))  # fmt: skip


def _import_for(kind: str) -> float:
    """Import what this way uses (before the clock); return how long that took."""
    start = time.perf_counter()
    names = ["duckdb"] if kind == "read_json" else ["duckdb", "numpy", "pyarrow.json",
                                                    "pyarrow.compute"]  # fmt: skip
    for name in names:
        importlib.import_module(name)
    return time.perf_counter() - start


def _count_holds(ingest_mod) -> list[int]:
    """The chunks each lock hold of this process stores, as it stores them."""
    holds: list[int] = []
    store_held = ingest_mod._store_held

    def counted(*args):
        holds.append(store_held(*args))
        return holds[-1]

    ingest_mod._store_held = counted
    return holds


def _read_json(home: Path) -> None:
    import duckdb

    path = home / "runs" / RUN / "events.jsonl"
    with duckdb.connect(str(home / "reference.duckdb")) as conn:
        conn.execute(
            "CREATE TABLE m AS SELECT seq, step, 'loss' AS name, values.loss AS value, "
            "to_timestamp(t) AS t FROM read_json(?, columns = {seq: 'BIGINT', t: 'DOUBLE', "
            "kind: 'VARCHAR', step: 'BIGINT', values: 'STRUCT(loss DOUBLE)'}) "
            "WHERE kind = 'metrics'",
            [str(path)],
        )


def _arrow_insert(home: Path, n: int) -> None:
    import duckdb
    import pyarrow as pa

    t = time.time()
    table = pa.table({
        "run_id": pa.array([RUN] * n), "step": pa.array(range(1, n + 1), pa.int64()),
        "name": pa.array(["loss"] * n), "value": pa.array([1.0 / i for i in range(1, n + 1)]),
        "t": pa.array([int((t + i * 1e-4) * 1e6) for i in range(n)], pa.timestamp("us")),
        "seq": pa.array(range(2, n + 2), pa.int64()),
    })  # fmt: skip
    with duckdb.connect(str(home / "arrow.duckdb")) as conn:
        conn.register("batch", table)
        conn.execute("CREATE TABLE m AS SELECT * FROM batch")


def _chunk_tables(home: Path) -> list:
    """The tail's metric rows as Arrow tables, one per chunk ingest would read (not timed)."""
    import pyarrow as pa

    from store.eventlog import read_lines

    path, offset, tables = home / "runs" / RUN / "events.jsonl", 0, []
    while True:
        lines, end = read_lines(path, offset)
        if end == offset:
            return tables
        rows = [json.loads(raw) for raw, _ in lines]
        rows = [r for r in rows if r["kind"] == "metrics"]
        tables.append(pa.table({
            "run_id": pa.array([RUN] * len(rows)), "step": pa.array([r["step"] for r in rows]),
            "name": pa.array(["loss"] * len(rows)),
            "value": pa.array([r["values"]["loss"] for r in rows], pa.float64()),
            "t": pa.array([int(r["t"] * 1e6) for r in rows], pa.timestamp("us")),
            "seq": pa.array([r["seq"] for r in rows], pa.int64()),
        }))  # fmt: skip
        offset = end


def _insert_chunks(home: Path, tables: list, groups: list[int], hold: bool) -> None:
    """Store the tables in transactions of `groups` tables each (with a lock hold's
    settings when `hold`), the way ingest inserts its Arrow tables."""
    from store import Store
    from store.ingest import prepare_hold
    from store.ingest_rows import insert_arrow

    store = Store(home)
    store.list_runs()
    done = 0
    for group in groups:
        with store.connect() as conn:
            if hold:
                prepare_hold(conn)
            for table in tables[done : done + group]:
                insert_arrow(
                    conn, table,
                    "INSERT INTO metrics (run_id, step, name, value, nonfinite, split, t, seq) "
                    "SELECT run_id, step, name, value, false, 'train', t, seq FROM _chunk",
                    "_chunk",
                )  # fmt: skip
        done += group


def measure(kind: str, n: int, holds: list[int] | None = None) -> dict:
    """A fresh home with an n-line tail, then one child process doing `kind`."""
    with tempfile.TemporaryDirectory() as home:
        folder = Path(home) / "runs" / RUN
        folder.mkdir(parents=True)
        write_tail(folder / "events.jsonl", n)
        if kind.startswith(("ingest", "arrow-")):
            _create_run(home)
        env = {**os.environ, "PYTHONPATH": str(ROOT), "WORKBENCH_HOME": home}
        out = subprocess.run(
            [sys.executable, __file__, "--child", kind, home, str(n), json.dumps(holds or [])],
            capture_output=True, text=True, check=True, env=env, cwd=ROOT,
        ).stdout  # fmt: skip
    return json.loads(out.strip().splitlines()[-1])


def _create_run(home: str) -> None:
    code = f"from store import Store; Store({home!r}).create_run({RUN!r}, 'pretrain', {{}})"
    subprocess.run([sys.executable, "-c", code], check=True, cwd=ROOT, env={**os.environ,
                   "PYTHONPATH": str(ROOT)})  # fmt: skip


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=1_000_000)
    parser.add_argument("--tracemalloc", action="store_true", help="also Python's own peak")
    parser.add_argument("--json", type=Path, help="write the figures here")
    parser.add_argument("--repeat", type=int, default=1, help="rounds; each way's quickest")
    parser.add_argument("--child", nargs=4, metavar=("KIND", "HOME", "N", "HOLDS"),
                        help=argparse.SUPPRESS)  # fmt: skip
    args = parser.parse_args()
    if args.child:
        child(args.child[0], args.child[1], int(args.child[2]), json.loads(args.child[3]))
        return
    n, small = args.rows, max(args.rows // 4, 1)
    results: dict[str, dict] = {}
    for _ in range(args.repeat):  # every way once a round; each keeps its quickest round
        round_ = {kind: measure(kind, n) for kind in ("ingest", "ingest-lines", "read_json")}
        round_["arrow"] = measure("arrow", n)
        round_["arrow-chunks"] = measure("arrow-chunks", n)
        round_["arrow-holds"] = measure("arrow-holds", n, round_["ingest"]["holds"])
        round_["ingest (1/4)"] = measure("ingest", small)
        for kind, r in round_.items():
            if kind not in results or r["seconds"] < results[kind]["seconds"]:
                results[kind] = r
    quarter = results.pop("ingest (1/4)")
    print(f"{'how':<14} {'rows':>9} {'seconds':>8} {'rows/s':>10} {'peak MB':>8}")
    for kind, r in [*results.items(), ("ingest (1/4)", quarter)]:
        rows = small if kind == "ingest (1/4)" else n
        print(f"{kind:<14} {rows:>9} {r['seconds']:>8.2f} {rows / r['seconds']:>10.0f} "
              f"{r['peak_mb']:>8.0f}")  # fmt: skip
    rate = {kind: n / r["seconds"] for kind, r in results.items()}
    ingest, first = rate["ingest"], results["ingest"]
    with_imports = n / (first["seconds"] + first["imports_s"])
    print(f"ingest rows/s vs ingest, lines: {ingest / rate['ingest-lines']:.3f}")
    print(f"ingest rows/s vs read_json:     {ingest / rate['read_json']:.3f}")
    print(f"ingest rows/s vs arrow insert:  {ingest / rate['arrow']:.3f}")
    print(f"ingest rows/s vs arrow chunks:  {ingest / rate['arrow-chunks']:.3f}")
    print(f"ingest rows/s vs arrow holds:   {ingest / rate['arrow-holds']:.3f}")
    print(f"ingest with its first imports (numpy, pyarrow: {first['imports_s']:.2f} s): "
          f"{with_imports:.0f} rows/s")  # fmt: skip
    print(f"ingest lock holds: {len(first['holds'])} ({first['holds']} chunks), the longest "
          f"{first['longest_hold_s'] * 1000:.0f} ms")  # fmt: skip
    growth = results["ingest"]["peak_mb"] / quarter["peak_mb"]
    print(f"ingest peak resident memory, {n} lines vs {small}: {growth:.2f}x (1.00 = flat)")
    print(f"load average {os.getloadavg()[0]:.1f} at the end")
    if args.json:
        figures = {"ingest_rows_s": ingest, "ingest_memory_growth": growth,
                   "ingest_rows_s_with_imports": with_imports,
                   "ingest_vs_lines": ingest / rate["ingest-lines"],
                   "ingest_vs_read_json": ingest / rate["read_json"],
                   "ingest_vs_arrow_chunks": ingest / rate["arrow-chunks"],
                   "ingest_vs_arrow_holds": ingest / rate["arrow-holds"],
                   "arrow_chunks_rows_s": rate["arrow-chunks"],
                   "arrow_holds_rows_s": rate["arrow-holds"],
                   "ingest_longest_hold_ms": first["longest_hold_s"] * 1000}  # fmt: skip
        args.json.write_text(json.dumps(figures, indent=1))
    if args.tracemalloc:
        big, little = measure("ingest-traced", n), measure("ingest-traced", small)
        print(f"ingest peak Python memory: {big['peak_mb']:.0f} MB for {n} lines, "
              f"{little['peak_mb']:.0f} MB for {small}: "
              f"{big['peak_mb'] / little['peak_mb']:.2f}x")  # fmt: skip


if __name__ == "__main__":
    main()
