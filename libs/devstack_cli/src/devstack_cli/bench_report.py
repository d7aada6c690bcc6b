"""`devstack bench`'s outputs from its `results.json`: the Markdown report, the PNG charts, the
summary table printed at the end, and the comparison with an earlier run (`--compare`).

Everything here reads the report dictionary only, so an old `results.json` can be redrawn or
compared without running anything.
"""

from __future__ import annotations

import math
from collections.abc import Iterable
from pathlib import Path
from typing import Any

from rich.table import Table

# Figures compared by --compare: (label, how to read it, True when higher is better).
Row = dict[str, Any]


def _runs(report: dict[str, Any]) -> list[Row]:
    runs: list[Row] = report.get("results", [])
    return runs


def _targets(report: dict[str, Any]) -> list[str]:
    return list(report.get("targets", {}))


def _scenarios(report: dict[str, Any]) -> list[str]:
    seen: dict[str, None] = {}
    for run in _runs(report):
        seen.setdefault(run["scenario"], None)
    return list(seen)


def _connections(report: dict[str, Any]) -> list[int]:
    return sorted({int(r["connections"]) for r in _runs(report)})


def _index(report: dict[str, Any]) -> dict[tuple[str, str, int], Row]:
    return {(r["target"], r["scenario"], int(r["connections"])): r for r in _runs(report)}


def _fmt(value: float | None, digits: int = 0) -> str:
    if value is None:
        return "-"
    if digits == 0:
        return f"{value:,.0f}"
    return f"{value:,.{digits}f}"


def _ms(value: float | None) -> str:
    if value is None:
        return "-"
    return f"{value:.2f}" if value < 10 else f"{value:.1f}" if value < 100 else f"{value:.0f}"


# -- Markdown -----------------------------------------------------------------------------


def markdown(report: dict[str, Any]) -> str:
    machine = report["machine"]
    settings = report["settings"]
    index = _index(report)
    targets = _targets(report)
    conns = _connections(report)
    lines = [
        f"# Benchmark {report['started_at']}, commit {report['commit']}"
        + (" (with uncommitted changes)" if report.get("commit_dirty") else ""),
        "",
        f"Mode **{report['mode']}**. Machine: {machine['cpu_model']}, {machine['cores']} cores, "
        f"{machine['memory_gib']} GiB, {machine['os']}, kernel {machine['kernel']}; load average "
        f"{machine['load_average_at_start']} at the start, "
        f"{machine.get('load_average_at_end', '-')} at the end.",
        "",
        f"Load: {settings['load_generator']}; {settings['scheme'].upper()}; "
        f"{settings['warmup_s']} s warm-up then {settings['duration_s']} s measured per run; "
        f"connections {', '.join(str(c) for c in settings['connections'])}; order: "
        f"{settings['order']}. Pinning: {_pinning(settings['pinning'])}. Stack profile "
        f"`{report['stack']['profile']}`.",
        "",
        "Targets: " + ", ".join(f"`{t}` ({report['targets'][t]['kind']})" for t in targets) + ".",
    ]
    if report.get("skipped"):
        lines += ["", "Skipped: " + "; ".join(f"{k}: {v}" for k, v in report["skipped"].items())]
    heads = headlines(report)
    if heads:
        lines += ["", "## Headlines", "", "| figure | target | measured |", "|---|---|---|"]
        lines += [f"| {what} | {target} | {value} |" for what, target, value in heads]
    lines += ["", "## Requests per second (ratio to the fastest in the same row group)", ""]
    header = "| scenario | target | " + " | ".join(f"c={c}" for c in conns) + " |"
    lines += [header, "|---|---|" + "---|" * len(conns)]
    for scenario in _scenarios(report):
        best = {
            c: max(
                (
                    r["requests_per_second"]
                    for (t, s, cc), r in index.items()
                    if s == scenario and cc == c
                ),
                default=0.0,
            )
            for c in conns
        }
        for target in targets:
            cells = []
            for c in conns:
                run = index.get((target, scenario, c))
                if run is None:
                    cells.append("")
                    continue
                ratio = run["requests_per_second"] / best[c] if best[c] else 0
                cells.append(f"{_fmt(run['requests_per_second'])} ({ratio:.2f})")
            if any(cells):
                lines.append(f"| {scenario} | {target} | " + " | ".join(cells) + " |")
    lines += ["", "## Latency, ms: p50 / p90 / p99 / p99.9", ""]
    lines += [header, "|---|---|" + "---|" * len(conns)]
    for scenario in _scenarios(report):
        for target in targets:
            cells = []
            for c in conns:
                run = index.get((target, scenario, c))
                lat = run["latency_ms"] if run else None
                cells.append(
                    " / ".join(_ms(lat[p]) for p in ("p50", "p90", "p99", "p99.9")) if lat else ""
                )
            if any(cells):
                lines.append(f"| {scenario} | {target} | " + " | ".join(cells) + " |")
    lines += [
        "",
        "## Answers other than 2xx, and socket errors",
        "",
    ]
    bad = [r for r in _runs(report) if r["non_2xx"] or any(r["socket_errors"].values())]
    if not bad:
        total = sum(r["requests"] for r in _runs(report))
        lines.append(f"None: every one of the {total:,} answers was 2xx, no socket error.")
    else:
        lines += ["| scenario | target | c | statuses | socket errors |", "|---|---|---|---|---|"]
        for r in bad:
            errors = ", ".join(f"{k} {v}" for k, v in r["socket_errors"].items() if v) or "-"
            statuses = ", ".join(f"{k}: {v}" for k, v in r["statuses"].items())
            lines.append(
                f"| {r['scenario']} | {r['target']} | {r['connections']} | {statuses} | {errors} |"
            )
    warm_bad = [
        r
        for r in _runs(report)
        if r.get("warmup") and any(not 200 <= int(k) < 300 for k in r["warmup"]["statuses"])
    ]
    if warm_bad:
        lines += ["", "During the warm-ups (not counted above):", ""]
        lines += [
            f"- {r['target']} {r['scenario']} c={r['connections']}: "
            + ", ".join(f"{k}: {v}" for k, v in r["warmup"]["statuses"].items())
            for r in warm_bad
        ]
    lines += [
        "",
        "## Server CPU seconds per 1,000 requests (from /proc), and requests per CPU-second",
        "",
        "The server's user + system CPU time during the measured run, per 1,000 answers; in "
        "brackets, 1,000 divided by it: the requests/s one core would serve if the server had it "
        "to itself. On a shared machine this moves far less than requests/s do.",
        "",
    ]
    lines += [header, "|---|---|" + "---|" * len(conns)]
    for scenario in _scenarios(report):
        for target in targets:
            cells = []
            for c in conns:
                run = index.get((target, scenario, c))
                per = run["cpu_seconds_per_1000_requests"] if run else None
                if run is None or per is None:
                    cells.append("")
                else:
                    cells.append(f"{per:.3f} ({_fmt(1000 / per) if per else '-'})")
            if any(cells):
                lines.append(f"| {scenario} | {target} | " + " | ".join(cells) + " |")
    lines += [
        "",
        "## Memory and start-up",
        "",
        "Start-up of an implementation: the supervisor's start (as `devstack start NAME`) to the "
        "first `/health` 200, its launcher's AppRole login and certificate included. A "
        "baseline's: its process spawned to `/health` 200, once (no launcher, no Vault).",
        "",
        "| target | RSS idle, MB | RSS after the run, MB | start-up, s (median) | runs |",
        "|---|---|---|---|---|",
    ]
    for target in targets:
        t = report["targets"][target]
        runs = ", ".join(f"{x:.2f}" for x in t["startup_s"]["runs"])
        median = t["startup_s"]["median"]
        lines.append(
            f"| {target} | {_fmt(t['rss_mb']['idle'], 1)} | {_fmt(t['rss_mb']['after_run'], 1)} "
            f"| {_fmt(median, 2)} | {runs} |"
        )
    if report.get("ceilings"):
        lines += [
            "",
            "## Ceilings: the stores' own benchmarks, same connection counts",
            "",
            "| tool | what | c | requests/s | p50 ms | p99 ms |",
            "|---|---|---|---|---|---|",
        ]
        for row in report["ceilings"]:
            lat = row.get("latency_ms", {})
            lines.append(
                f"| {row['tool']} | {row['what']} | {row['connections']} | "
                f"{_fmt(row['requests_per_second'])} | {_ms(lat.get('p50'))} | "
                f"{_ms(lat.get('p99'))} |"
            )
        fractions = ceiling_fractions(report)
        if fractions:
            lines += [
                "",
                "Each route as a fraction of its store's ceiling at the same connections:",
                "",
                "| route | ceiling | target | " + " | ".join(f"c={c}" for c in conns) + " |",
                "|---|---|---|" + "---|" * len(conns),
            ]
            for (scenario, tool, target), by_c in fractions.items():
                cells = [f"{by_c[c]:.1%}" if c in by_c else "" for c in conns]
                lines.append(f"| {scenario} | {tool} | {target} | " + " | ".join(cells) + " |")
    lines += ["", "## Versions", "", "| what | version |", "|---|---|"]
    for name, version in report.get("versions", {}).items():
        lines.append(f"| {name} | {version or '-'} |")
    if report.get("errors"):
        lines += ["", "## Errors during the run", ""]
        lines += [f"- {e}" for e in report["errors"]]
    lines += [
        "",
        "Charts: [requests per second](requests_per_second.png), "
        "[p99 latency](latency_p99.png), [memory and start-up](memory_startup.png).",
        "",
    ]
    return "\n".join(lines)


def headlines(report: dict[str, Any]) -> list[tuple[str, str, str]]:
    """The figures issues 14 and 15 set targets for, at the highest connection count of the run,
    for the targets present: (figure, target, measured)."""
    conns = _connections(report)
    if not conns:
        return []
    top = conns[-1]
    index = _index(report)
    kinds = {t: v["kind"] for t, v in report.get("targets", {}).items()}
    impls = [t for t, k in kinds.items() if k == "implementation"]
    found: list[tuple[str, str, str]] = []
    top_runs = [r for r in _runs(report) if r["connections"] == top and r["target"] in impls]
    bad = sum(r["non_2xx"] + sum(r["socket_errors"].values()) for r in top_runs)
    found.append(
        (
            f"answers other than 2xx (and socket errors) at c={top}, every scenario, "
            f"{len(impls)} implementations",
            "0",
            f"{bad:,} of {sum(r['requests'] for r in top_runs):,}",
        )
    )

    def ratio(a: str, b: str, scenario: str, cpu: bool = False) -> float | None:
        ra, rb = index.get((a, scenario, top)), index.get((b, scenario, top))
        if not ra or not rb:
            return None
        if cpu:
            ca, cb = ra["cpu_seconds_per_1000_requests"], rb["cpu_seconds_per_1000_requests"]
            return float(cb / ca) if ca and cb else None
        rps_b = rb["requests_per_second"]
        return float(ra["requests_per_second"] / rps_b) if rps_b else None

    def both(a: str, b: str, scenario: str) -> str | None:
        by_rps, by_cpu = ratio(a, b, scenario), ratio(a, b, scenario, cpu=True)
        if by_rps is None:
            return None
        cpu_text = f"{by_cpu:.2f}" if by_cpu is not None else "-"
        return f"{by_rps:.2f} (per CPU-second: {cpu_text})"

    for other, scenario, target in (
        ("golang", "cache_get", "0.5"),  # issue 14
        ("golang", "postgres_get", "0.5"),
        ("starlette", "health", "0.7"),  # issue 15: the baselines on the same server settings
        ("starlette_redis", "cache_get", "0.5"),
        ("starlette_postgres", "postgres_get", "0.5"),
    ):
        value = both("code_first", other, scenario)
        if value:
            found.append((f"code_first requests/s / {other}'s, {scenario} c={top}", target, value))
    if "code_first" in impls and "api_first" in impls:
        gaps = []
        for scenario in _scenarios(report):
            r = ratio("api_first", "code_first", scenario)
            if r:
                gaps.append((abs(r - 1), scenario, r))
        if gaps:
            worst = max(gaps)
            found.append(
                (
                    f"api_first / code_first requests/s, every scenario at c={top} (worst)",
                    "0.90-1.10",
                    f"{min(g[2] for g in gaps):.2f} to {max(g[2] for g in gaps):.2f} "
                    f"(worst {worst[1]})",
                )
            )
    fractions = ceiling_fractions(report)
    for impl in impls:
        share = fractions.get(("cache_get", "redis-benchmark", impl), {}).get(top)
        if share is not None:
            found.append(
                (
                    f"{impl} cache_get / redis-benchmark GET, c={top}",
                    "0.25" if impl in ("golang", "rust") else "-",
                    f"{share:.3f}",
                )
            )
    return found


def _pinning(pinning: Any) -> str:
    if isinstance(pinning, dict):
        return (
            f"server on CPU {pinning['server_cpu']}, load generator on CPU "
            f"{pinning['load_generator_cpu']}, data stores {pinning['data_stores']}"
        )
    return str(pinning)


def ceiling_fractions(report: dict[str, Any]) -> dict[tuple[str, str, str], dict[int, float]]:
    """cache_get against redis-benchmark GET, postgres_get against pgbench, per connections."""
    ceilings = {
        (row["tool"], int(row["connections"])): float(row["requests_per_second"])
        for row in report.get("ceilings", [])
    }
    found: dict[tuple[str, str, str], dict[int, float]] = {}
    for run in _runs(report):
        tool = {"cache_get": "redis-benchmark", "postgres_get": "pgbench"}.get(run["scenario"])
        ceiling = ceilings.get((tool or "", int(run["connections"])))
        if tool and ceiling:
            key = (run["scenario"], tool, run["target"])
            found.setdefault(key, {})[int(run["connections"])] = (
                run["requests_per_second"] / ceiling
            )
    return found


# -- charts -----------------------------------------------------------------------------------


def _rps(run: Row) -> float:
    return float(run["requests_per_second"])


def _p99(run: Row) -> float:
    return float(run["latency_ms"]["p99"])


def charts(report: dict[str, Any], folder: Path) -> list[Path]:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from matplotlib.patches import Rectangle

    written = []
    targets = _targets(report)
    scenarios = _scenarios(report)
    conns = _connections(report)
    index = _index(report)
    colours = {t: plt.get_cmap("tab10")(i % 10) for i, t in enumerate(targets)}
    title = f"{report['started_at'][:10]} {report['commit']} ({report['mode']})"
    for name, label, read in (
        ("requests_per_second", "requests/s (log scale)", _rps),
        ("latency_p99", "p99 latency, ms (log scale)", _p99),
    ):
        cols = 3
        rows = max(1, math.ceil(len(scenarios) / cols))
        fig, axes = plt.subplots(rows, cols, figsize=(5 * cols, 3.6 * rows), squeeze=False)
        for ax, scenario in zip(axes.flat, scenarios, strict=False):
            present = [t for t in targets if any((t, scenario, c) in index for c in conns)]
            width = 0.8 / max(1, len(present))
            for i, target in enumerate(present):
                xs, ys = [], []
                for j, c in enumerate(conns):
                    run = index.get((target, scenario, c))
                    if run is not None and read(run) > 0:
                        xs.append(j + (i - (len(present) - 1) / 2) * width)
                        ys.append(read(run))
                ax.bar(xs, ys, width, label=target, color=colours[target])
            ax.set_title(scenario)
            ax.set_xticks(range(len(conns)), [f"c={c}" for c in conns])
            ax.set_yscale("log")
            ax.set_ylabel(label)
            ax.grid(axis="y", alpha=0.3)
        for ax in list(axes.flat)[len(scenarios) :]:
            ax.axis("off")
        handles = [Rectangle((0, 0), 1, 1, color=colours[t]) for t in targets]
        fig.suptitle(f"{label.split(' (')[0]}: {title}", y=0.995, fontsize=10)
        fig.legend(
            handles,
            targets,
            loc="upper center",
            bbox_to_anchor=(0.5, 0.975),
            ncol=min(len(targets), 7),
        )
        fig.tight_layout(rect=(0, 0, 1, 0.93))
        path = folder / f"{name}.png"
        fig.savefig(path, dpi=90)
        plt.close(fig)
        written.append(path)

    fig, (mem, start) = plt.subplots(1, 2, figsize=(12, 4))
    xs = list(range(len(targets)))
    idle = [report["targets"][t]["rss_mb"]["idle"] or 0 for t in targets]
    after = [report["targets"][t]["rss_mb"]["after_run"] or 0 for t in targets]
    mem.bar([x - 0.2 for x in xs], idle, 0.4, label="idle", color="#8fb3d9")
    mem.bar([x + 0.2 for x in xs], after, 0.4, label="after the run", color="#2f6fad")
    mem.set_xticks(list(xs), targets, rotation=20)
    mem.set_ylabel("resident memory, MB")
    mem.legend()
    mem.grid(axis="y", alpha=0.3)
    medians = [report["targets"][t]["startup_s"]["median"] or 0 for t in targets]
    start.bar(list(xs), medians, 0.6, color="#d98f3a", label="median")
    for x, t in zip(xs, targets, strict=True):
        runs = report["targets"][t]["startup_s"]["runs"]
        start.plot([x] * len(runs), runs, "k.", label="each start" if x == 0 else None)
    start.set_xticks(list(xs), targets, rotation=20)
    start.set_ylabel("start-up: launch to /health 200, s")
    start.legend()
    start.grid(axis="y", alpha=0.3)
    fig.suptitle(f"memory and start-up: {title}", fontsize=10)
    fig.tight_layout()
    path = folder / "memory_startup.png"
    fig.savefig(path, dpi=90)
    plt.close(fig)
    written.append(path)
    return written


# -- the summary printed at the end ------------------------------------------------------------


def summary_table(report: dict[str, Any]) -> Table:
    """Requests/s (p99 ms) at the highest connection count: a row per scenario, a column per
    target; then memory and start-up."""
    conns = _connections(report)
    top = conns[-1] if conns else 0
    index = _index(report)
    targets = _targets(report)
    table = Table(title=f"requests/s (p99 ms) at c={top}", box=None, pad_edge=False)
    table.add_column("")
    for target in targets:
        table.add_column(target, justify="right")
    for scenario in _scenarios(report):
        cells = []
        for target in targets:
            run = index.get((target, scenario, top))
            cells.append(
                f"{_fmt(run['requests_per_second'])} ({_ms(run['latency_ms']['p99'])})"
                + (f" [red]{run['non_2xx']} non-2xx[/red]" if run["non_2xx"] else "")
                if run
                else ""
            )
        table.add_row(scenario, *cells)
    info = report["targets"]
    table.add_row(
        "RSS MB idle/after",
        *(
            f"{_fmt(info[t]['rss_mb']['idle'], 1)}/{_fmt(info[t]['rss_mb']['after_run'], 1)}"
            for t in targets
        ),
    )
    table.add_row("start-up s", *(_fmt(info[t]["startup_s"]["median"], 2) for t in targets))
    return table


# -- --compare --------------------------------------------------------------------------------


def compare(
    old: dict[str, Any], new: dict[str, Any], threshold_percent: float
) -> tuple[list[list[str]], list[str]]:
    """Every figure present in both runs: (rows for a table, the regressions beyond the
    threshold). Requests/s falling, p99 rising, memory or start-up rising are regressions."""
    rows: list[list[str]] = []
    regressions: list[str] = []

    def add(what: str, before: float | None, after: float | None, higher_is_better: bool) -> None:
        if before is None or after is None:
            return
        change = (after - before) / before * 100 if before else 0.0
        worse = -change if higher_is_better else change
        flag = "REGRESSION" if worse > threshold_percent else ""
        if flag:
            regressions.append(f"{what}: {before:g} -> {after:g} ({change:+.1f}%)")
        rows.append([what, f"{before:g}", f"{after:g}", f"{change:+.1f}%", flag])

    old_index, new_index = _index(old), _index(new)
    for key in new_index:
        if key not in old_index:
            continue
        target, scenario, c = key
        a, b = old_index[key], new_index[key]
        add(
            f"{target} {scenario} c={c} requests/s",
            a["requests_per_second"],
            b["requests_per_second"],
            True,
        )
        add(
            f"{target} {scenario} c={c} p99 ms",
            a["latency_ms"]["p99"],
            b["latency_ms"]["p99"],
            False,
        )
        add(
            f"{target} {scenario} c={c} CPU s per 1,000 requests",
            a.get("cpu_seconds_per_1000_requests"),
            b.get("cpu_seconds_per_1000_requests"),
            False,
        )
    for target, t in new.get("targets", {}).items():
        o = old.get("targets", {}).get(target)
        if not o:
            continue
        add(f"{target} RSS after MB", o["rss_mb"]["after_run"], t["rss_mb"]["after_run"], False)
        add(f"{target} start-up s", o["startup_s"]["median"], t["startup_s"]["median"], False)
    return rows, regressions


def compare_table(rows: Iterable[list[str]], title: str) -> Table:
    table = Table(title=title, box=None, pad_edge=False)
    for column in ("figure", "before", "after", "change", ""):
        table.add_column(column, justify="left" if column in ("figure", "") else "right")
    for row in rows:
        table.add_row(*row[:4], f"[red]{row[4]}[/red]" if row[4] else "")
    return table


def compare_markdown(rows: Iterable[list[str]], title: str) -> str:
    lines = [f"# {title}", "", "| figure | before | after | change | |", "|---|---|---|---|---|"]
    lines += ["| " + " | ".join(row) + " |" for row in rows]
    return "\n".join(lines) + "\n"
