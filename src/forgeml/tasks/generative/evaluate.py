"""evaluate (generative): how good, how varied and how original the generator's images are,
against the real test split, in the frozen classifier's feature space: FID and KID with
intervals over fresh sample sets, and their reference points (real train vs real test: the
floor; noise; the generator after one epoch); per-class FID; conditional accuracy (does a
sample show the class it was asked for); class coverage and diversity (mode collapse); and
memorisation (each sample's nearest training image, against how close real unseen images come
to the training set)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch
from omegaconf import DictConfig

from forgeml import tracking
from forgeml.artifacts import read_run
from forgeml.bootstrap import bootstrap_interval, level
from forgeml.data.tensors import load_split
from forgeml.io import atomic_write_json, staged_outputs
from forgeml.tasks.generative.images import to_uint8
from forgeml.tasks.generative.network import (
    load_epoch1_generator,
    load_features,
    load_generator,
)
from forgeml.tasks.generative.quality import (
    FeatureSpace,
    fid_kid,
    fid_kid_over_sample_sets,
    mean_pairwise_distance,
    nearest,
)

SHOWN_FILE = "shown.pt"
# A sample is "as close as a copy" when it is nearer its nearest training image than this
# quantile of real unseen (test) images are to theirs.
COPY_QUANTILE = 0.05


def requested_labels(n: int, classes: int) -> torch.Tensor | None:
    """Every class equally often (None for an unconditional generator)."""
    return torch.arange(n) % classes if classes else None


def evaluate(cfg: DictConfig) -> dict:
    """Write metrics/<p>/test.json, plots/<p>/per_class.csv and eval/<p>/; log to the run."""
    run = read_run(cfg)
    uri = tracking.tracking_uri(cfg)
    tracking.check_reachable(uri, cfg.logger.connect_timeout_s)
    ev, seed = cfg.evaluate, cfg.seed
    space = load_features(cfg)
    generator = load_generator(cfg)
    classes = generator.num_classes
    test_x, test_y = load_split(cfg.paths.prepared, "test")
    train_x, _ = load_split(cfg.paths.prepared, "train")

    labels = requested_labels(ev.samples, classes)

    def draw(draw_seed: int) -> torch.Tensor:
        return generator.sample(ev.samples, labels,
                                generator=torch.Generator().manual_seed(draw_seed))

    fake = draw(seed)
    f_test, f_fake = space.features(test_x), space.features(fake)
    rng = np.random.default_rng(seed)
    train_pick = torch.as_tensor(rng.choice(len(train_x), min(ev.samples, len(train_x)),
                                            replace=False))
    f_train = space.features(train_x[train_pick])

    result: dict = {"samples": ev.samples, "n_test": len(test_y), "conditional": bool(classes),
                    "level": level(ev.confidence)}
    result |= fid_kid_over_sample_sets(
        f_test, lambda s: f_fake if s == seed else space.features(draw(s)),
        ev.bootstrap_samples, ev.confidence, seed)
    result["references"] = _references(cfg, space, f_test, f_train, fake.shape, labels)
    test_predicted = space.predict(test_x)
    test_correct = (test_predicted == test_y).numpy()
    result["classifier_test_acc"] = float(test_correct.mean())
    result["classifier_test_acc_ci"] = bootstrap_interval(test_correct, 1000, ev.confidence, seed)
    predicted = space.predict(fake)
    result |= _coverage(cfg, predicted, labels, f_fake, f_test, test_y, seed)
    result["diversity"] = {"samples": mean_pairwise_distance(f_fake, seed=seed),
                           "real_test": mean_pairwise_distance(f_test, seed=seed)}
    result["diversity"]["ratio"] = result["diversity"]["samples"] / max(
        result["diversity"]["real_test"], 1e-12)
    memorisation, pairs = _memorisation(ev, space, fake, train_x, test_x)
    result["memorisation"] = memorisation
    shown = {name: torch.from_numpy(to_uint8(images)) for name, images in (
        ("per_class", _per_class_examples(fake, labels, classes, 8)),
        ("nearest_samples", fake[pairs["samples"]]),
        ("nearest_train", train_x[pairs["train"]]))}

    headline = {
        "fid": result["fid"], "fid_ci_low": result["fid_ci"][0],
        "fid_ci_high": result["fid_ci"][1], "kid": result["kid"],
        "kid_ci_low": result["kid_ci"][0], "kid_ci_high": result["kid_ci"][1],
        "fid_floor": result["references"]["real_train"]["fid"],
        "fid_noise": result["references"]["noise"]["fid"],
        "fid_epoch1": result["references"]["epoch1"]["fid"],
        "classifier_test_acc": result["classifier_test_acc"],
        "min_class_share": result["min_class_share"],
        "diversity_ratio": result["diversity"]["ratio"],
        "copy_share_pixels": memorisation["pixels"]["copy_share"],
    }
    if classes:
        headline |= {"conditional_acc": result["conditional_acc"],
                     "conditional_acc_ci_low": result["conditional_acc_ci"][0],
                     "conditional_acc_ci_high": result["conditional_acc_ci"][1]}
    names = list(cfg.data.class_names)
    per_class = "class,accuracy,fid,share\n" + "".join(
        f"{names[c]},{row['accuracy']:.6f},{row['fid']:.6f},{row['share']:.6f}\n"
        for c, row in enumerate(result["per_class"]))
    with staged_outputs() as staged:
        out = staged.dir(cfg.paths.eval)
        atomic_write_json(out / "evaluation.json", result)
        torch.save(shown, out / SHOWN_FILE)
        staged.write_text(Path(cfg.paths.plots) / "per_class.csv", per_class)
        metrics_file = staged.write_json(Path(cfg.paths.metrics) / "test.json", headline)
        # Logged before the outputs are committed: outputs never describe a run MLflow lacks.
        tracking.log_metrics(uri, run["run_id"], {f"test/{k}": v for k, v in headline.items()})
        tracking.log_artifacts(uri, run["run_id"], [metrics_file, out], "evaluation")
    return result


def _references(cfg: DictConfig, space: FeatureSpace, f_test: torch.Tensor,
                f_train: torch.Tensor, shape: torch.Size, labels: torch.Tensor | None) -> dict:
    """FID/KID of the floor (real training images), of uniform noise and of the generator after
    one epoch, against the same test features."""
    noise = torch.rand(shape, generator=torch.Generator().manual_seed(cfg.seed + 1))
    early = load_epoch1_generator(cfg).sample(
        shape[0], labels, generator=torch.Generator().manual_seed(cfg.seed))
    references = {}
    for name, features in (("real_train", f_train), ("noise", space.features(noise)),
                           ("epoch1", space.features(early))):
        fid, kid = fid_kid(f_test, features, cfg.seed)
        references[name] = {"fid": fid, "kid": kid}
    return references


def _coverage(cfg: DictConfig, predicted: torch.Tensor, labels: torch.Tensor | None,
              f_fake: torch.Tensor, f_test: torch.Tensor, test_y: torch.Tensor,
              seed: int) -> dict:
    """Per class: how often samples asked for it are classified as it, FID against that class's
    test images, and its share of all samples as the classifier sees them (1 = the expected
    share; mode collapse shows as classes far below 1)."""
    classes = cfg.data.num_classes
    counts = torch.bincount(predicted, minlength=classes).double()
    shares = (counts / counts.sum() * classes).tolist()
    rows = []
    for c in range(classes):
        asked = labels == c if labels is not None else predicted == c
        real = f_test[test_y == c]
        fid = (fid_kid(real, f_fake[asked], seed)[0]
               if int(asked.sum()) > 1 and len(real) > 1 else float("nan"))
        accuracy = (float((predicted[asked] == c).double().mean())
                    if labels is not None and int(asked.sum()) else float("nan"))
        rows.append({"accuracy": accuracy, "fid": fid, "share": shares[c],
                     "count": int(counts[c])})
    out = {"per_class": rows, "min_class_share": min(shares)}
    if labels is not None:
        correct = (predicted == labels).numpy()
        out["conditional_acc"] = float(correct.mean())
        out["conditional_acc_ci"] = bootstrap_interval(
            correct, 1000, cfg.evaluate.confidence, seed)
    return out


def _memorisation(ev: DictConfig, space: FeatureSpace, fake: torch.Tensor,
                  train_x: torch.Tensor, test_x: torch.Tensor) -> tuple[dict, dict]:
    """For the first `memorisation_samples` samples, the nearest training image in pixel and in
    feature space; the share closer to it than COPY_QUANTILE of real test images are to theirs
    (about COPY_QUANTILE when the generator does not copy), and the closest pairs to show."""
    m = min(ev.memorisation_samples, len(fake))
    samples, unseen = fake[:m], test_x[:m]
    found: dict = {"samples": m, "quantile": COPY_QUANTILE}
    pixel_index = None
    for space_name, embed in (("pixels", lambda x: x.flatten(1)), ("features", space.features)):
        pool = embed(train_x)
        index, distance = nearest(embed(samples), pool)
        _, real_distance = nearest(embed(unseen), pool)
        threshold = float(np.quantile(real_distance, COPY_QUANTILE))
        found[space_name] = {
            "copy_share": float((distance < threshold).mean()),
            "threshold": threshold,
            "median_sample_distance": float(np.median(distance)),
            "median_test_distance": float(np.median(real_distance)),
        }
        if space_name == "pixels":
            pixel_index, pixel_distance = index, distance
    closest = np.argsort(pixel_distance)[:ev.nearest_shown]
    found["closest_pixel_distances"] = pixel_distance[closest].tolist()
    return found, {"samples": torch.as_tensor(closest), "train": torch.as_tensor(
        pixel_index[closest])}


def _per_class_examples(fake: torch.Tensor, labels: torch.Tensor | None, classes: int,
                        per_class: int) -> torch.Tensor:
    """`per_class` samples of each class in class order (the first ones, unconditional)."""
    if labels is None:
        return fake[:per_class * 10]
    return torch.cat([fake[labels == c][:per_class] for c in range(classes)])


def summarize(cfg: DictConfig, result: dict) -> str:
    low, high = result["fid_ci"]
    text = (f"test FID {result['fid']:.2f} ({result['level']} CI {low:.2f}-{high:.2f}; real "
            f"train {result['references']['real_train']['fid']:.2f}, noise "
            f"{result['references']['noise']['fid']:.1f}, epoch 1 "
            f"{result['references']['epoch1']['fid']:.2f})")
    if result["conditional"]:
        text += (f"; samples classified as asked {result['conditional_acc']:.1%} (real test "
                 f"{result['classifier_test_acc']:.1%})")
    return text
