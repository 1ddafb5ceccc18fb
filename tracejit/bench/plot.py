"""A PNG of the speed-up over NumPy per workload and system (needs matplotlib, which is optional)."""
from __future__ import annotations

__all__ = ["plot_report", "have_matplotlib"]


def have_matplotlib() -> bool:
    import importlib.util
    return importlib.util.find_spec("matplotlib") is not None


def plot_report(report, path) -> str | None:
    """Write the plot to ``path``. Returns ``None`` on success, or a note saying why there is no plot."""
    if not have_matplotlib():
        return "matplotlib is not installed, so no plot was drawn (pip install matplotlib)"
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    timed = [r for r in report.results if r.kind == "time"]
    latency = [r for r in report.results if r.kind == "latency"]
    if not timed and not latency:
        return "nothing to plot"
    columns = [c for c in report.columns() if c != "numpy"]
    n_panels = 1 + bool(latency) if timed else 1
    fig, axes = plt.subplots(1, n_panels, figsize=(12 if n_panels == 1 else 16, 5.5),
                             gridspec_kw={"width_ratios": [3, 1]} if n_panels == 2 else None, squeeze=False)
    axes = axes[0]
    colors = plt.get_cmap("tab10")

    if timed:
        ax = axes[0]
        cols = [c for c in columns if any(r.systems.get(c) and r.systems[c].ok for r in timed)]
        width = 0.8 / max(1, len(cols))
        for j, c in enumerate(cols):
            xs, ys = [], []
            for i, r in enumerate(timed):
                sp = r.speedup(c)
                if sp:
                    xs.append(i - 0.4 + width * (j + 0.5))
                    ys.append(sp)
            color = colors(report.columns().index(c) % 10)
            if c == "copy limit":  # a bound, not a system: drawn as an outline
                bars = ax.bar(xs, ys, width, label=c, facecolor="none", edgecolor=color, hatch="//")
            else:
                bars = ax.bar(xs, ys, width, label=c, color=color)
            for b, y in zip(bars, ys):
                ax.annotate(f"{y:.2g}", (b.get_x() + b.get_width() / 2, y), ha="center", va="bottom", fontsize=7)
        ax.axhline(1.0, color="black", lw=0.8, ls="--")
        ax.set_yscale("log")
        ax.set_xticks(range(len(timed)))
        ax.set_xticklabels([r.name for r in timed], rotation=15)
        ax.set_ylabel("speed-up over NumPy eager (log scale, higher is faster)")
        ax.set_title("time per call: NumPy median / system median")
        ax.legend(fontsize=8)
        ax.grid(axis="y", which="both", alpha=0.3)

    if latency:
        ax = axes[-1]
        cols = [c for c in report.columns() if any(r.systems.get(c) and r.systems[c].ok for r in latency)]
        width = 0.8 / max(1, len(cols))
        for j, c in enumerate(cols):
            xs, ys = [], []
            for i, r in enumerate(latency):
                s = r.systems.get(c)
                if s and s.ok:
                    xs.append(i - 0.4 + width * (j + 0.5))
                    ys.append(s.median)
            ax.bar(xs, ys, width, label=c, color=colors(report.columns().index(c) % 10))
        ax.set_xticks(range(len(latency)))
        ax.set_xticklabels([r.name.replace("compile_", "") for r in latency])
        ax.set_ylabel("seconds from process start to first result")
        ax.set_title("compile latency")
        ax.legend(fontsize=8)
        ax.grid(axis="y", alpha=0.3)

    machine = report.machine
    fig.suptitle(f"tracejit benchmarks — {machine.get('cpu', '')}, {machine.get('usable_cores', '?')} cores, "
                 f"{machine.get('date', '')}", fontsize=10)
    fig.tight_layout()
    import os
    os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return None
