"""The report section "Can it run in real time?": the compress stage's table (accuracy, size,
latency, throughput per variant), an accuracy-vs-latency chart, the int8 gate, and a
recommendation in plain words."""

from __future__ import annotations

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402

from forgeml.reporting.figures import _png  # noqa: E402


def compression_of(cfg) -> dict | None:
    """The compress stage's result (None when the pipeline has not run it)."""
    import json
    from pathlib import Path

    path = Path(cfg.paths.metrics) / "compression.json"
    return json.loads(path.read_text())["detail"] if path.is_file() else None


def figures_of(cfg) -> dict[str, bytes]:
    compression = compression_of(cfg)
    return {"accuracy_vs_latency": accuracy_vs_latency(compression["rows"])} \
        if compression and compression.get("rows") else {}


def section_of(cfg, level: str) -> dict | None:
    compression = compression_of(cfg)
    return section(compression, level) if compression else None


def accuracy_vs_latency(rows: list[dict], metric: str = "accuracy") -> bytes:
    fig, ax = plt.subplots(figsize=(6.4, 3.6))
    for row in rows:
        ax.scatter(row["p99_ms"], row["acc"] * 100, s=30 + 25 * row["size_mb"] ** 0.5)
        ax.annotate(row["name"], (row["p99_ms"], row["acc"] * 100), fontsize=7,
                    xytext=(4, 3), textcoords="offset points")
    ax.set_xscale("log")
    ax.set(title=f"Test {metric} vs latency (up and left is better; marker area ~ size)",
           xlabel="p99 latency, one input (ms, log scale)", ylabel=f"test {metric} (%)")
    ax.grid(alpha=0.3, which="both")
    return _png(fig)


def section(compression: dict, level: str) -> dict:
    if "skipped" in compression:
        return {"skipped": compression["skipped"]}
    rows, gate = compression["rows"], compression["int8_gate"]
    fp32, best = rows[0], compression["recommendation"]
    by_key = {row["key"]: row for row in rows}
    chosen = by_key[best["key"]]
    def points(pair: dict) -> str:
        return (f"{pair['difference'] * 100:+.1f} pts ({pair['low'] * 100:+.1f} to "
                f"{pair['high'] * 100:+.1f})")

    table = [{
        "name": row["name"],
        "accuracy": f"{row['acc']:.2%} ({row['acc_ci'][0]:.1%}-{row['acc_ci'][1]:.1%})",
        "vs_fp32": points(row["vs_fp32"]) if "vs_fp32" in row else "reference",
        "size": f"{row['size_mb']:.2f} MB", "p50": f"{row['p50_ms']:.3f} ms",
        "p99": f"{row['p99_ms']:.3f} ms", "throughput": f"{row['throughput_per_s']:,.0f}/s",
    } for row in rows]
    threads = compression["threads"]
    advice = (f"Serve {best['name']}: one input takes {chosen['p99_ms']:.2f} ms at the 99th "
              f"percentile on {threads} CPU thread(s) (PyTorch fp32: {fp32['p99_ms']:.2f} ms; "
              f"{fp32['p50_ms'] / chosen['p50_ms']:.1f}x faster at the median), its file is "
              f"{best['smaller']:.1f}x smaller, and its test accuracy is {chosen['acc']:.2%} "
              + (f"({-best['drop_points']:+.1f} points)." if abs(best["drop_points"]) >= 0.05
                 else "(the same as the trained model)."))
    if best["key"] == fp32["key"]:
        advice = ("Keep the trained PyTorch model: every cheaper variant loses more than "
                  f"{gate['max_drop']} accuracy points.")
    verdict = ("passes its gate" if gate["passed"] else "FAILS its gate: do not ship it")
    gate_note = (f"The int8 model {verdict}: it loses {gate['drop_points']:.2f} accuracy points "
                 f"(at most {gate['max_drop']} allowed).")
    int8, onnx = by_key.get("onnx_int8"), by_key.get("onnx_fp32")
    if int8 and onnx and int8["p50_ms"] > onnx["p50_ms"]:
        gate_note += (" Dynamic int8 quantisation does not make this network faster on CPU "
                      "(quantising activations on every call costs more than the int8 matrix "
                      f"products save at this size); it does make the file "
                      f"{onnx['size_mb'] / int8['size_mb']:.1f}x smaller.")
    return {"table": table, "advice": advice, "gate_note": gate_note, "threads": threads,
            "n_test": compression["n_test"], "level": level}
