"""Markdown tables from the suite's results, written between marker comments of a page."""

from __future__ import annotations

import re
from pathlib import Path

START, END = "<!-- benchmark-suite:start -->", "<!-- benchmark-suite:end -->"
#: targets of issue #20: ours / peer's fastest use
TARGET_ONE, TARGET_MANY = 1.0, 0.5


def _target(outputs: int) -> float:
    return TARGET_ONE if outputs == 1 else TARGET_MANY


def cells_table(rows: list[dict]) -> str:
    lines = ["| model | method | peer (way) | outputs | rows | ours s (MiB) | peer s (MiB) "
             "| ours/peer | check |", "|---|---|---|---|---|---|---|---|---|"]
    for r in rows:
        head = f"| {r['model']} | {r['method']} "
        if "error" in r:
            lines.append(head + f"| | {r['outputs']} | {r['rows']} | error: {r['error'][:80]} "
                         "| | | |")
            continue
        flag = " **!**" if r["ratio"] > _target(r["outputs"]) else ""
        check = r["check"] + (" **MISMATCH**" if r.get("ok") is False else "")
        lines.append(
            head + f"| {r['peer']} ({r['way']}) | {r['outputs']} | {r['rows']} "
            f"| {r['ours_s']:.3g} ({r['ours_mib']:.0f}) | {r['peer_s']:.3g} "
            f"({r['peer_mib']:.0f}) | {r['ratio']:.2f}{flag} | {check} |")
    return "\n".join(lines)


def kernel_table(results: list[dict]) -> str:
    lines = ["| M | nsamples | ours RMSE | shap RMSE | ours s | shap s |",
             "|---|---|---|---|---|---|"]
    for res in results:
        for p in res["points"]:
            lines.append(f"| {res['n_features']} | {p['nsamples']} | {p['ours_err']:.2e} "
                         f"| {p['shap_err']:.2e} | {p['ours_s']:.3g} | {p['shap_s']:.3g} |")
    lines += ["", "Equal error (cheapest of our points at least as accurate as shap's):", "",
              "| M | shap nsamples | shap RMSE | shap s | ours nsamples | ours RMSE | ours s "
              "| ours/shap time |", "|---|---|---|---|---|---|---|---|"]
    for res in results:
        for m in res["matched"]:
            if m["ours_nsamples"] is None:
                lines.append(f"| {res['n_features']} | {m['shap_nsamples']} "
                             f"| {m['shap_err']:.2e} | | none in grid | | | |")
                continue
            lines.append(f"| {res['n_features']} | {m['shap_nsamples']} | {m['shap_err']:.2e} "
                         f"| {m['shap_s']:.3g} | {m['ours_nsamples']} | {m['ours_err']:.2e} "
                         f"| {m['ours_s']:.3g} | {m['ratio']:.2f} |")
    return "\n".join(lines)


def latency_table(lat: dict) -> str:
    return "\n".join([
        "| one row, IG n=50, MLP 30-64-64-2 | seconds |", "|---|---|",
        f"| ours, explain (fit excluded) | {lat['explain_s']:.4f} |",
        f"| ours, fit + explain | {lat['fit_explain_s']:.4f} |",
        f"| captum IntegratedGradients.attribute | {lat['captum_s']:.4f} |",
        f"| `import sknn_explain` (fresh interpreter) | {lat['import_s']:.2f} |",
        f"| `import torch` alone | {lat['import_torch_s']:.2f} |",
        "", f"(ours vs captum on that row: max abs diff {lat['max_abs_diff']:.1e})"])


def render(header: str, rows: list[dict], kernel: list[dict] | None,
           latency: dict | None) -> str:
    parts = [header, "", "### Methods vs peers", "", cells_table(rows)]
    if kernel:
        parts += ["", "### Kernel SHAP at matched accuracy", "", kernel_table(kernel)]
    if latency:
        parts += ["", "### Latency", "", latency_table(latency)]
    return "\n".join(parts)


def write_between_markers(path: Path, body: str) -> None:
    """Replace the text between :data:`START` and :data:`END` (appended if absent)."""
    text = path.read_text() if path.exists() else ""
    block = f"{START}\n{body}\n{END}"
    if START in text and END in text:
        text = re.sub(re.escape(START) + ".*?" + re.escape(END), lambda _: block, text,
                      flags=re.S)
    else:
        text = text.rstrip("\n") + "\n\n" + block + "\n"
    path.write_text(text)
