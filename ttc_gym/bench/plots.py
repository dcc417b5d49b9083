"""Paper-style PNG figures of a benchmark summary (matplotlib, Agg backend, imported lazily).

- accuracy_vs_tokens.png: accuracy against mean tokens used, one line per agent through its budgets;
- j_curves.png: mean J (forced-answer accuracy) after each episode, per agent, one panel per budget;
- regret.png: MRT's normalized token regret and the cumulative episode regret per agent and budget;
- maj_at_k.png: maj@k over episodes (only when the env reports graded forced answers).
Error bars and bands are 95% intervals (1.96 s.e.) over problems.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

Z95 = 1.959963984540054


def _pyplot():
    import matplotlib

    matplotlib.use("Agg")  # files only: no display needed
    import matplotlib.pyplot as plt

    plt.rcParams.update({
        "font.size": 9, "axes.titlesize": 10, "axes.labelsize": 9, "legend.fontsize": 8,
        "axes.spines.top": False, "axes.spines.right": False, "figure.dpi": 100,
    })
    return plt


def _colors(agents: list[str]) -> dict[str, str]:
    import matplotlib

    palette = list(matplotlib.colormaps["tab10"].colors)
    colors, k = {}, 0
    for agent in agents:
        if agent.split(":")[0] == "oracle":
            colors[agent] = "black"
        else:
            colors[agent] = palette[k % len(palette)]
            k += 1
    return colors


def _rows(summary: dict, budget: str) -> dict[str, dict]:
    return {r["agent"]: r for r in summary["rows"] if r["budget"] == budget}


def _pick_budgets(summary: dict, most: int = 4) -> list[dict]:
    budgets = summary["budgets"]
    if len(budgets) <= most:
        return budgets
    idx = np.unique(np.linspace(0, len(budgets) - 1, most).round().astype(int))
    return [budgets[i] for i in idx]


def _ranked_agents(summary: dict) -> list[str]:
    last = summary["budgets"][-1]["label"]
    return [r["agent"] for r in sorted(_rows(summary, last).values(), key=lambda r: r["rank"])]


def _footer(fig, summary: dict, extra: str = "") -> None:
    text = f"{summary['num_problems']} problems per agent and budget; bars/bands: 95% intervals. {extra}"
    fig.text(0.01, 0.005, text.strip(), fontsize=7, color="0.35", ha="left", va="bottom")


def plot_accuracy_vs_tokens(summary: dict, path: Path) -> Path:
    plt = _pyplot()
    agents = summary["agents"]
    colors = _colors(agents)
    fig, ax = plt.subplots(figsize=(7.2, 4.4))
    markers = "osD^v<>ph*"
    for k, agent in enumerate(_ranked_agents(summary)):
        xs, ys, xe, ye = [], [], [], []
        for b in summary["budgets"]:
            m = _rows(summary, b["label"])[agent]["metrics"]
            xs.append(m["tokens"]["mean"]); xe.append(Z95 * m["tokens"]["se"])
            ys.append(m["accuracy"]["mean"]); ye.append(Z95 * m["accuracy"]["se"])
        top = colors[agent] == "black"  # the oracle, drawn over the others
        ax.errorbar(xs, ys, xerr=xe, yerr=ye, color=colors[agent], marker=markers[k % len(markers)],
                    markersize=5, linewidth=2.0 if top else 1.5, capsize=2, label=agent, zorder=3 if top else 2)
    # Budget labels next to the top-ranked agent's points.
    top = _ranked_agents(summary)[0]
    for b in summary["budgets"]:
        m = _rows(summary, b["label"])[top]["metrics"]
        ax.annotate(b["label"], (m["tokens"]["mean"], m["accuracy"]["mean"]), textcoords="offset points",
                    xytext=(-4, 7), ha="right", fontsize=7, color="0.3")
    ax.set_xlabel("tokens used per problem (mean)")
    ax.set_ylabel("accuracy (fraction of problems solved)")
    ax.set_ylim(0, 1.02)
    ax.set_xlim(left=0)
    ax.grid(alpha=0.3)
    ax.set_title(f"{summary['env_id']}: accuracy vs. test-time compute (one point per budget)")
    ax.legend(loc="center left", bbox_to_anchor=(1.01, 0.5), frameon=False, title="agent")
    _footer(fig, summary)
    fig.tight_layout(rect=(0, 0.03, 1, 1))
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path


def _curve_panels(summary: dict, key: str, path: Path, ylabel: str, title: str, start: int) -> Path:
    plt = _pyplot()
    budgets = _pick_budgets(summary)
    colors = _colors(summary["agents"])
    agents = _ranked_agents(summary)
    n = len(budgets)
    fig, axes = plt.subplots(1, n, figsize=(2.0 + 2.6 * n, 3.6), sharey=True, squeeze=False)
    for ax, b in zip(axes[0], budgets):
        rows = _rows(summary, b["label"])
        for agent in agents:
            curve = rows[agent].get(key)
            if curve is None:
                continue
            mean, se = np.asarray(curve["mean"]), np.asarray(curve["se"])
            x = np.arange(start, start + mean.size)
            top = colors[agent] == "black"  # the oracle, drawn over the others
            ax.plot(x, mean, color=colors[agent], linewidth=2.0 if top else 1.5, zorder=3 if top else 2,
                    label=agent)
            ax.fill_between(x, mean - Z95 * se, mean + Z95 * se, color=colors[agent], alpha=0.15, linewidth=0)
        if key == "j_curve":
            ax.axhline(b["j_star"], color="0.4", linestyle="--", linewidth=1)
            ax.annotate(f"J* = {b['j_star']:.2f}", (0, b["j_star"]), textcoords="offset points", xytext=(2, 3),
                        fontsize=7, color="0.3")
        ax.set_title(b["label"] + (f"  (C0 = {b['budget_tokens']} tokens)" if b.get("budget_tokens") else ""))
        ax.set_xlabel("episodes used" if key == "j_curve" else "k (episodes whose forced answers are pooled)")
        ax.set_ylim(0, 1.02)
        ax.grid(alpha=0.3)
        if b["budget_episodes"] <= 12:
            ax.set_xticks(range(start, b["budget_episodes"] + 1))
    axes[0][0].set_ylabel(ylabel)
    handles, labels = axes[0][0].get_legend_handles_labels()
    fig.legend(handles, labels, loc="center left", bbox_to_anchor=(1.0, 0.5), frameon=False, title="agent")
    fig.suptitle(title)
    _footer(fig, summary, "Curves held at their last value once an agent answers.")
    fig.tight_layout(rect=(0, 0.04, 1, 1))
    fig.savefig(path, dpi=110, bbox_inches="tight")
    plt.close(fig)
    return path


def plot_j_curves(summary: dict, path: Path) -> Path:
    return _curve_panels(
        summary, "j_curve", path, "J = P(forced answer is correct)",
        f"{summary['env_id']}: mean J after each episode (higher and earlier is better)", start=0,
    )


def plot_maj_at_k(summary: dict, path: Path) -> Path:
    return _curve_panels(
        summary, "maj_curve", path, "maj@k accuracy", f"{summary['env_id']}: majority vote over the forced "
        "answers of episodes 1..k", start=1,
    )


def plot_regret(summary: dict, path: Path) -> Path:
    plt = _pyplot()
    agents = _ranked_agents(summary)
    budgets = summary["budgets"]
    panels = [
        ("token_regret", r"$J^* - \frac{1}{C_0}\int_0^{C_0} J(t)\,dt$",
         "token regret, ttc-gym's axis (J_0 from 0 tokens)"),
        ("episode_regret", r"$\sum_{j=1}^{H}\,(J^* - J_j)$  [episodes]", "cumulative regret over the H episodes"),
    ]
    if all("mrt_token_regret" in r["metrics"] for r in summary["rows"]):
        panels.insert(1, ("mrt_token_regret", r"$1 - \frac{1}{C_0}\int_0^{C_0} J(t)\,dt$",
                          "token regret, MRT notebook's axis (J = 0 at 0; prompt counted)"))
    fig, axes = plt.subplots(len(panels), 1, figsize=(max(6.5, 0.95 * len(agents) + 1.5), 3.3 * len(panels)),
                             sharex=True)
    cmap = plt.get_cmap("Blues")
    width = 0.8 / len(budgets)
    x = np.arange(len(agents))
    for ax, (metric, ylabel, title) in zip(axes, panels):
        for k, b in enumerate(budgets):
            rows = _rows(summary, b["label"])
            means = [rows[a]["metrics"][metric]["mean"] for a in agents]
            errs = [Z95 * rows[a]["metrics"][metric]["se"] for a in agents]
            shade = cmap(0.35 + 0.6 * (k + 1) / len(budgets))
            ax.bar(x - 0.4 + width * (k + 0.5), means, width, yerr=errs, color=shade, capsize=2,
                   error_kw={"linewidth": 0.8}, label=f"{b['label']} (J* = {b['j_star']:.2f})")
        ax.axhline(0, color="0.3", linewidth=0.8)
        ax.set_ylabel(ylabel)
        ax.set_title(f"{title} (lower is better)", loc="left")
        ax.grid(axis="y", alpha=0.3)
    axes[0].legend(title="budget", frameon=False, loc="upper left")
    axes[-1].set_xticks(x)
    axes[-1].set_xticklabels(agents, rotation=25, ha="right")
    fig.suptitle(f"{summary['env_id']}: regret per agent and budget")
    _footer(fig, summary, "Agents in rank order at the largest budget.")
    fig.tight_layout(rect=(0, 0.03, 1, 1))
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path


def make_plots(summary: dict, out_dir: Path) -> dict[str, Path]:
    out_dir = Path(out_dir)
    files = {
        "plot_accuracy_vs_tokens": plot_accuracy_vs_tokens(summary, out_dir / "accuracy_vs_tokens.png"),
        "plot_j_curves": plot_j_curves(summary, out_dir / "j_curves.png"),
        "plot_regret": plot_regret(summary, out_dir / "regret.png"),
    }
    if any("maj_curve" in r for r in summary["rows"]):
        files["plot_maj_at_k"] = plot_maj_at_k(summary, out_dir / "maj_at_k.png")
    return files
