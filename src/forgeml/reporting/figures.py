"""The report's figures as PNG bytes (no network needed to view them)."""

from __future__ import annotations

import io

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402


def _png(fig) -> bytes:
    buffer = io.BytesIO()
    fig.savefig(buffer, format="png", dpi=110, bbox_inches="tight")
    plt.close(fig)
    return buffer.getvalue()


def learning_curves(history: list[dict]) -> bytes:
    epochs = [h["epoch"] for h in history]
    fig, (ax_loss, ax_acc) = plt.subplots(1, 2, figsize=(9, 3.4))
    for split, style in (("train", "-"), ("val", "--")):
        ax_loss.plot(epochs, [h[f"{split}_loss"] for h in history], style, label=split)
        ax_acc.plot(epochs, [h[f"{split}_acc"] for h in history], style, label=split)
    ax_loss.set(title="Loss (lower is better)", xlabel="epoch", ylabel="cross-entropy")
    ax_acc.set(title="Accuracy (higher is better)", xlabel="epoch", ylabel="accuracy")
    for ax in (ax_loss, ax_acc):
        ax.grid(alpha=0.3)
        ax.legend()
    return _png(fig)


def confusion_matrix(matrix: list[list[int]], class_names: list[str]) -> bytes:
    values = np.asarray(matrix)
    size = max(4.0, 0.5 * len(class_names) + 2)
    fig, ax = plt.subplots(figsize=(size, size * 0.85))
    image = ax.imshow(values, cmap="Blues")
    ax.set_xticks(range(len(class_names)), class_names, rotation=45, ha="right")
    ax.set_yticks(range(len(class_names)), class_names)
    ax.set(xlabel="predicted", ylabel="actual", title="Confusion matrix (test split)")
    threshold = values.max() / 2
    for (row, col), count in np.ndenumerate(values):
        if count:
            ax.text(col, row, str(count), ha="center", va="center", fontsize=7,
                    color="white" if count > threshold else "black")
    fig.colorbar(image, ax=ax, fraction=0.046)
    return _png(fig)


def per_class_f1(f1: list[float], class_names: list[str]) -> bytes:
    fig, ax = plt.subplots(figsize=(max(5, 0.55 * len(class_names)), 3))
    ax.bar(class_names, f1, color="#4c72b0")
    ax.axhline(float(np.mean(f1)), color="black", linestyle="--", linewidth=1, label="macro F1")
    ax.set(ylim=(max(0.0, min(f1) - 0.1), 1.0), ylabel="F1", title="F1 per class (test split)")
    ax.tick_params(axis="x", rotation=45)
    ax.legend()
    return _png(fig)


def misclassified_grid(images: np.ndarray, labels: list[str], predicted: list[str],
                       confidence: list[float], columns: int = 8) -> bytes:
    count = len(images)
    rows = max(1, -(-count // columns))
    fig, axes = plt.subplots(rows, columns, figsize=(columns * 1.2, rows * 1.45))
    for ax in np.atleast_1d(axes).ravel():
        ax.axis("off")
    for ax, image, actual, guess, conf in zip(np.atleast_1d(axes).ravel(), images, labels,
                                              predicted, confidence, strict=False):
        ax.imshow(image[0] if image.shape[0] == 1 else image.transpose(1, 2, 0), cmap="gray")
        ax.set_title(f"{actual} → {guess}\n{conf:.0%}", fontsize=7)
    fig.suptitle("Misclassified test images (actual → predicted, confidence)", fontsize=9)
    return _png(fig)


def lm_learning_curves(history: list[dict], baselines: dict[str, float]) -> bytes:
    """Train/validation loss by step, with the baselines' test loss as reference lines."""
    steps = [h["step"] for h in history]
    fig, ax = plt.subplots(figsize=(8, 3.6))
    ax.plot(steps, [h["train_loss"] for h in history], "-o", ms=3, label="train")
    ax.plot(steps, [h["val_loss"] for h in history], "--o", ms=3, label="validation")
    for (name, loss), color in zip(baselines.items(), ("#c62828", "#6a1b9a"), strict=False):
        ax.axhline(loss, color=color, lw=1, ls=":", label=f"{name} baseline (test)")
    ax.set(title="Loss (lower is better)", xlabel="optimizer step",
           ylabel="cross-entropy, nats/token")
    ax.grid(alpha=0.3)
    ax.legend()
    return _png(fig)


def perplexity_bars(rows: list[tuple[str, float, tuple[float, float]]], level: str) -> bytes:
    """Test perplexity per model with its bootstrap interval (1 = always certain and right)."""
    names = [r[0] for r in rows]
    values = np.array([r[1] for r in rows])
    errors = np.array([[v - r[2][0], r[2][1] - v] for v, r in zip(values, rows, strict=True)]).T
    fig, ax = plt.subplots(figsize=(7, 0.6 * len(rows) + 1.2))
    ax.barh(names, values, xerr=errors, color=["#2e7d32"] + ["#9e9e9e"] * (len(rows) - 1))
    for y, v in enumerate(values):
        ax.text(v, y, f" {v:.2f}", va="center")
    ax.set_xlim(left=0)
    ax.invert_yaxis()
    ax.set(title=f"Test perplexity (lower is better; {level} intervals)", xlabel="perplexity")
    ax.grid(alpha=0.3, axis="x")
    return _png(fig)


def ranking_curves(ks: list[int], curves: dict[str, dict[str, list[float]]], k: int) -> bytes:
    """HR@K and NDCG@K for K = 1..20, one line per scorer."""
    fig, (ax_hr, ax_ndcg) = plt.subplots(1, 2, figsize=(9, 3.4))
    for (name, curve), style in zip(curves.items(), ("-o", "--s", ":^"), strict=False):
        ax_hr.plot(ks, curve["hr"], style, ms=3, label=name)
        ax_ndcg.plot(ks, curve["ndcg"], style, ms=3, label=name)
    for ax, title in ((ax_hr, "Hit rate @K"), (ax_ndcg, "NDCG @K")):
        ax.axvline(k, color="#999", lw=0.8)
        ax.set(title=f"{title} (higher is better)", xlabel="K (list length)", ylim=(0, 1))
        ax.grid(alpha=0.3)
        ax.legend()
    return _png(fig)


def recsys_learning_curves(history: list[dict], k: int) -> bytes:
    epochs = [h["epoch"] for h in history]
    fig, (ax_loss, ax_rank) = plt.subplots(1, 2, figsize=(9, 3.4))
    ax_loss.plot(epochs, [h["train_loss"] for h in history], "-", label="train (sampled pairs)")
    ax_loss.plot(epochs, [h["val_loss"] for h in history], "--", label="validation")
    ax_rank.plot(epochs, [h["val_hr"] for h in history], "-", label=f"validation HR@{k}")
    ax_rank.plot(epochs, [h["val_ndcg"] for h in history], "--", label=f"validation NDCG@{k}")
    ax_loss.set(title="Loss (lower is better)", xlabel="epoch", ylabel="binary cross-entropy")
    ax_rank.set(title="Ranking quality (higher is better)", xlabel="epoch")
    for ax in (ax_loss, ax_rank):
        ax.grid(alpha=0.3)
        ax.legend()
    return _png(fig)


def slice_bars(slices: list[dict], names: list[str], title: str, count_key: str = "users"
               ) -> bytes:
    """A metric per slice (rows of `slices`, with `bucket` and `count_key`) and model (`names`)."""
    fig, ax = plt.subplots(figsize=(8, 3.4))
    width = 0.8 / len(names)
    x = np.arange(len(slices))
    for j, name in enumerate(names):
        ax.bar(x + j * width, [s[name] or 0 for s in slices], width, label=name)
    ax.set_xticks(x + width * (len(names) - 1) / 2,
                  [f"{s['bucket']}\n({s[count_key]} {count_key})" for s in slices])
    ax.set(title=title, ylim=(0, 1))
    ax.grid(alpha=0.3, axis="y")
    ax.legend(fontsize=8)
    return _png(fig)


def accuracy_vs_cost(rows: list[tuple[str, float, tuple[float, float], float]],
                     level: str) -> bytes:
    """(label, accuracy, interval, seconds per 1k predictions): is the better model worth it?"""
    fig, ax = plt.subplots(figsize=(7, 3.8))
    for label, acc, (low, high), cost in rows:
        x = max(cost, 1e-3)
        ax.errorbar([x], [acc], yerr=[[acc - low], [high - acc]], fmt="o", capsize=4,
                    label=label)
    ax.set_xscale("log")
    ax.set(xlabel="seconds per 1,000 predictions on this CPU (log scale)",
           ylabel="test accuracy", title=f"Accuracy ({level} interval) against prediction cost")
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8, loc="upper left", bbox_to_anchor=(1.01, 1))  # never over a point
    return _png(fig)


def reliability_diagram(bins: list[dict]) -> bytes:
    """Mean confidence vs accuracy per confidence bin; the diagonal is perfect calibration."""
    fig, ax = plt.subplots(figsize=(4.2, 4))
    ax.plot([0.5, 1], [0.5, 1], "--", color="grey", label="perfectly calibrated")
    ax.plot([b["confidence"] for b in bins], [b["accuracy"] for b in bins], "o-",
            label="model")
    ax.set(xlabel="confidence", ylabel="accuracy", title="Calibration (test split)",
           xlim=(0.5, 1), ylim=(0, 1))
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8)
    return _png(fig)


def validation_curves(histories: dict[str, list[dict]]) -> bytes:
    """Validation accuracy per epoch for each trained model."""
    fig, (ax_loss, ax_acc) = plt.subplots(1, 2, figsize=(9, 3.4))
    for label, history in histories.items():
        epochs = [h["epoch"] for h in history]
        line = ax_acc.plot(epochs, [h["val_acc"] for h in history], "o-", label=label)[0]
        ax_loss.plot(epochs, [h["train_loss"] for h in history], "-", color=line.get_color(),
                     label=f"{label} (train)")
        ax_loss.plot(epochs, [h["val_loss"] for h in history], "--", color=line.get_color())
    ax_loss.set(title="Loss: train solid, validation dashed", xlabel="epoch",
                ylabel="cross-entropy")
    ax_acc.set(title="Validation accuracy (higher is better)", xlabel="epoch")
    for ax in (ax_loss, ax_acc):
        ax.grid(alpha=0.3)
    ax_acc.legend(fontsize=8)
    return _png(fig)


def gan_curves(history: list[dict]) -> bytes:
    """Validation FID and KID per epoch (log scale: the first epoch is far off), and the two
    networks' losses."""
    epochs = [h["epoch"] for h in history]
    scored = [h for h in history if np.isfinite(h["val_fid"])]  # the validated epochs
    fig, (ax_fid, ax_kid, ax_loss) = plt.subplots(1, 3, figsize=(12, 3.3))
    ax_fid.semilogy([h["epoch"] for h in scored], [h["val_fid"] for h in scored], "-o", ms=3)
    ax_fid.set(title="FID vs validation images (lower is better)", xlabel="epoch")
    ax_kid.semilogy([h["epoch"] for h in scored], [max(h["val_kid"], 1e-6) for h in scored],
                    "-o", ms=3, color="tab:orange")
    ax_kid.set(title="KID vs validation images", xlabel="epoch")
    ax_loss.plot(epochs, [h["d_loss"] for h in history], label="discriminator")
    ax_loss.plot(epochs, [h["g_loss"] for h in history], label="generator")
    ax_loss.set(title="Adversarial losses", xlabel="epoch", ylabel="loss")
    ax_loss.legend(fontsize=8)
    for ax in (ax_fid, ax_kid, ax_loss):
        ax.grid(alpha=0.3)
    fig.tight_layout()
    return _png(fig)


def image_strip(grids: list[np.ndarray], captions: list[str], title: str) -> bytes:
    """Pictures side by side (e.g. the same fixed-noise grid at several epochs)."""
    fig, axes = plt.subplots(1, len(grids), figsize=(2.3 * len(grids), 2.6), squeeze=False)
    for ax, grid, caption in zip(axes[0], grids, captions, strict=True):
        ax.imshow(grid, cmap="gray", vmin=0, vmax=255)
        ax.set_title(caption, fontsize=9)
        ax.axis("off")
    fig.suptitle(title, fontsize=10, y=1.04)
    return _png(fig)


def labelled_grid(grid: np.ndarray, row_labels: list[str], title: str) -> bytes:
    """One picture of equal-height rows, each row named on the left."""
    fig, ax = plt.subplots(figsize=(6, 0.5 * len(row_labels) + 0.8))
    ax.imshow(grid, cmap="gray", vmin=0, vmax=255)
    step = grid.shape[0] / len(row_labels)
    ax.set_yticks([step * (i + 0.5) for i in range(len(row_labels))], row_labels, fontsize=8)
    ax.set_xticks([])
    ax.set_title(title, fontsize=10)
    return _png(fig)


def image_pairs(left: np.ndarray, right: np.ndarray, captions: list[str], title: str) -> bytes:
    """Pairs of uint8 (N, C, H, W) images: left[i] above right[i]."""
    n = len(left)
    fig, axes = plt.subplots(2, n, figsize=(1.25 * n + 0.4, 3), squeeze=False)
    for i in range(n):
        for row, images in enumerate((left, right)):
            image = images[i].transpose(1, 2, 0)
            axes[row][i].imshow(image.squeeze(-1) if image.shape[-1] == 1 else image,
                                cmap="gray", vmin=0, vmax=255)
            axes[row][i].axis("off")
        axes[0][i].set_title(captions[i], fontsize=7)
    fig.suptitle(title, fontsize=9)
    return _png(fig)


def class_bars(values: list[float], class_names: list[str], title: str, ylabel: str,
               reference: float | None = None, reference_label: str = "") -> bytes:
    fig, ax = plt.subplots(figsize=(max(5, 0.55 * len(class_names)), 3))
    ax.bar(range(len(values)), values, color="tab:blue")
    if reference is not None:
        ax.axhline(reference, color="tab:red", ls="--", lw=1, label=reference_label)
        ax.legend(fontsize=8)
    ax.set_xticks(range(len(class_names)), class_names, rotation=45, ha="right")
    ax.set(title=title, ylabel=ylabel)
    ax.grid(axis="y", alpha=0.3)
    return _png(fig)


def label_efficiency(series: dict[str, list[tuple[int, float, tuple[float, float]]]]) -> bytes:
    """Test accuracy against the number of labelled images (log scale), one line per model,
    with each point's interval."""
    fig, ax = plt.subplots(figsize=(6.4, 3.8))
    for name, points in series.items():
        labels = [p[0] for p in points]
        accs = np.array([p[1] for p in points])
        lows, highs = np.array([p[2][0] for p in points]), np.array([p[2][1] for p in points])
        ax.errorbar(labels, accs, yerr=[accs - lows, highs - accs], marker="o", capsize=3,
                    label=name)
    ax.set_xscale("log")
    ax.set(title="Test accuracy by number of labelled training images",
           xlabel="labelled images (log scale)", ylabel="test accuracy")
    ax.grid(alpha=0.3, which="both")
    ax.legend(fontsize=8)
    return _png(fig)
