"""evaluate (recsys): HR@K and NDCG@K of the model and of popularity and matrix-factorisation
baselines on the same frozen candidates (held-out item + sampled negatives) and by full ranking,
with bootstrap intervals, paired differences and a per-user-activity slice."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch
from omegaconf import DictConfig
from torch import nn

from forgeml import tracking
from forgeml.artifacts import read_run
from forgeml.bootstrap import bootstrap_interval, level, paired_bootstrap_difference
from forgeml.data.interactions import TEST, TRAIN, VAL, PreparedInteractions, load_interactions
from forgeml.io import atomic_write_json, atomic_write_text, staged_outputs
from forgeml.models.ranker import score_candidates
from forgeml.ranking_metrics import hit_rate, ndcg, rank_of_target
from forgeml.tasks.recsys.network import load_network

CURVE_KS = list(range(1, 21))


class Scorers:
    """Scores of (user, item) candidates for the model and the two baselines."""

    def __init__(self, network: nn.Module, data: PreparedInteractions, mf_factors: int,
                 seed: int, batch_users: int = 256):
        from scipy.sparse import csr_matrix
        from sklearn.decomposition import TruncatedSVD

        self.network, self.batch_users = network.eval(), batch_users
        train = data.rows(TRAIN)
        self.popularity = np.bincount(data.item[train], minlength=data.n_items).astype(float)
        matrix = csr_matrix((np.ones(len(train)), (data.user[train], data.item[train])),
                            shape=(data.n_users, data.n_items))
        # PureSVD (Cremonesi et al., 2010): a truncated SVD of the binary user-item matrix.
        svd = TruncatedSVD(n_components=min(mf_factors, data.n_items - 1), random_state=seed)
        self.user_factors = svd.fit_transform(matrix)
        self.item_factors = svd.components_.T

    @torch.no_grad()
    def model(self, users: np.ndarray, items: np.ndarray) -> np.ndarray:
        out = []
        for start in range(0, len(users), self.batch_users):
            u = torch.from_numpy(users[start:start + self.batch_users])
            c = torch.from_numpy(items[start:start + self.batch_users])
            out.append(score_candidates(self.network, u, c).numpy())
        return np.concatenate(out)

    def pop(self, users: np.ndarray, items: np.ndarray) -> np.ndarray:
        return self.popularity[items]

    def mf(self, users: np.ndarray, items: np.ndarray) -> np.ndarray:
        return np.einsum("rf,rcf->rc", self.user_factors[users], self.item_factors[items])


def full_ranking_ranks(score, users: np.ndarray, targets: np.ndarray,
                       seen: list[set[int]], n_items: int, seed: int) -> np.ndarray:
    """Rank of each target among ALL items the user has not interacted with in train/val."""
    rng = np.random.default_rng(seed)
    ranks = np.empty(len(users), dtype=np.int64)
    all_items = np.arange(n_items)
    for start in range(0, len(users), 128):
        u = users[start:start + 128]
        scores = score(u, np.broadcast_to(all_items, (len(u), n_items)).copy())
        for row, user in enumerate(u.tolist()):
            known = list(seen[user])
            scores[row, known] = -np.inf
        target_scores = scores[np.arange(len(u)), targets[start:start + 128]]
        above = (scores > target_scores[:, None]).sum(axis=1)
        ties = (scores == target_scores[:, None]).sum(axis=1) - 1
        ranks[start:start + len(u)] = above + np.floor(rng.random(len(u)) * (ties + 1))
    return ranks


def evaluate(cfg: DictConfig) -> dict:
    run = read_run(cfg)
    uri = tracking.tracking_uri(cfg)
    tracking.check_reachable(uri, cfg.logger.connect_timeout_s)
    ev = cfg.evaluate
    k = ev.k
    data = load_interactions(cfg.paths.prepared)
    scorers = Scorers(load_network(cfg), data, ev.mf_factors, cfg.seed)
    users, candidates = data.candidates(TEST)
    names = {"model": scorers.model, "popularity": scorers.pop, "mf": scorers.mf}

    result: dict = {"k": k, "n_test": len(users), "num_negatives": ev.num_negatives}
    ranks: dict[str, np.ndarray] = {}
    for name, score in names.items():
        # Same seed for every scorer: ties (popularity has many) break the same way.
        ranks[name] = rank_of_target(score(users, candidates), np.random.default_rng(cfg.seed))
        hits, gains = hit_rate(ranks[name], k), ndcg(ranks[name], k)
        result[name] = {
            "hr": float(hits.mean()), "ndcg": float(gains.mean()),
            "hr_ci": bootstrap_interval(hits, ev.bootstrap_samples, ev.confidence, cfg.seed),
            "ndcg_ci": bootstrap_interval(gains, ev.bootstrap_samples, ev.confidence, cfg.seed),
            "hr_curve": [float(hit_rate(ranks[name], kk).mean()) for kk in CURVE_KS],
            "ndcg_curve": [float(ndcg(ranks[name], kk).mean()) for kk in CURVE_KS],
        }
    for name in ("popularity", "mf"):
        result[name]["vs_model"] = paired_bootstrap_difference(
            hit_rate(ranks["model"], k), hit_rate(ranks[name], k), ev.bootstrap_samples,
            ev.confidence, cfg.seed)
    result["curve_ks"] = CURVE_KS

    seen = data.seen((TRAIN, VAL))
    if ev.full_ranking:
        targets = candidates[:, 0]
        result["full_ranking"] = {}
        for name, score in names.items():
            full = full_ranking_ranks(score, users, targets, seen, data.n_items, cfg.seed)
            result["full_ranking"][name] = {"hr": float(hit_rate(full, k).mean()),
                                            "ndcg": float(ndcg(full, k).mean())}
    if ev.membership_examples:
        result["membership"] = membership_attack(cfg, scorers, data)
    result["slices"] = activity_slices(data, users, ranks, k, list(ev.activity_buckets))
    result["examples"] = example_users(data, scorers, users, candidates[:, 0], seen, ranks,
                                       k, ev.example_users, cfg.seed)

    model = result["model"]
    headline = {
        f"hr_at_{k}": model["hr"], f"ndcg_at_{k}": model["ndcg"],
        f"hr_at_{k}_ci_low": model["hr_ci"][0], f"hr_at_{k}_ci_high": model["hr_ci"][1],
        f"popularity_hr_at_{k}": result["popularity"]["hr"], f"mf_hr_at_{k}": result["mf"]["hr"],
        f"popularity_ndcg_at_{k}": result["popularity"]["ndcg"],
        f"mf_ndcg_at_{k}": result["mf"]["ndcg"],
    }
    if "membership" in result:
        headline["membership_auc"] = result["membership"]["auc"]
    if ev.full_ranking:
        headline[f"full_hr_at_{k}"] = result["full_ranking"]["model"]["hr"]
        headline[f"full_ndcg_at_{k}"] = result["full_ranking"]["model"]["ndcg"]
    with staged_outputs() as staged:
        out = staged.dir(cfg.paths.eval)
        atomic_write_text(out / "ranks.csv", "user,item,model,popularity,mf\n" + "".join(
            f"{u},{i},{m},{p},{f}\n" for u, i, m, p, f in zip(
                users.tolist(), candidates[:, 0].tolist(), ranks["model"].tolist(),
                ranks["popularity"].tolist(), ranks["mf"].tolist(), strict=True)))
        atomic_write_json(out / "evaluation.json", result)
        metrics_file = staged.write_json(Path(cfg.paths.metrics) / "test.json", headline)
        tracking.log_metrics(uri, run["run_id"], {f"test/{key}": v for key, v in headline.items()})
        tracking.log_artifacts(uri, run["run_id"], [metrics_file, out], "evaluation")
    return result


def membership_attack(cfg: DictConfig, scorers: Scorers, data: PreparedInteractions) -> dict:
    """The loss-threshold attack on training interactions vs as many held-out validation ones
    (the loss of an observed interaction is softplus(-logit)). Validation, not test: with
    `data.split.val=random` a validation interaction is a random earlier one of its user, drawn
    like the training ones, while the test one is each user's latest, and a model that merely
    scores newer items lower would look leaky against it."""
    from forgeml.privacy.membership import loss_threshold_attack, sample_indices

    train, held_out = data.rows(TRAIN), data.rows(VAL)
    size = min(cfg.evaluate.membership_examples, len(train), len(held_out))
    members = train[sample_indices(len(train), size, cfg.seed)]
    others = held_out[sample_indices(len(held_out), size, cfg.seed + 1)]

    def losses(rows: np.ndarray) -> np.ndarray:
        return np.logaddexp(0.0, -scorers.model(data.user[rows], data.item[rows, None])[:, 0])

    ev = cfg.evaluate
    return loss_threshold_attack(losses(members), losses(others), ev.bootstrap_samples,
                                 ev.confidence, cfg.seed)


def activity_slices(data: PreparedInteractions, users: np.ndarray, ranks: dict[str, np.ndarray],
                    k: int, edges: list[int]) -> list[dict]:
    """HR@K per bucket of users' training activity (cold/light vs heavy users)."""
    activity = np.bincount(data.user[data.rows(TRAIN)], minlength=data.n_users)[users]
    bounds = [0, *edges, None]
    slices = []
    for low, high in zip(bounds[:-1], bounds[1:], strict=True):
        inside = (activity > low) & ((activity <= high) if high is not None else True)
        label = f"{low + 1}–{high}" if high is not None else f"> {low}"
        if low == 0:
            label = f"≤ {high}"
        row = {"bucket": f"{label} train interactions", "users": int(inside.sum())}
        for name, r in ranks.items():
            row[name] = float(hit_rate(r[inside], k).mean()) if inside.any() else float("nan")
        slices.append(row)
    return slices


def example_users(data: PreparedInteractions, scorers: Scorers, users: np.ndarray,
                  targets: np.ndarray, seen: list[set[int]], ranks: dict[str, np.ndarray],
                  k: int, count: int, seed: int) -> list[dict]:
    """A few test users (least, median and most active first) with their recent history, the
    model's top-k among unseen items, and the item they actually chose next."""
    if count <= 0:
        return []
    activity = np.bincount(data.user[data.rows(TRAIN)], minlength=data.n_users)[users]
    order = np.argsort(activity, kind="stable")
    picks = [order[0], order[len(order) // 2], order[-1]]
    rng = np.random.default_rng(seed)
    picks += rng.choice(len(users), size=max(0, count - 3), replace=False).tolist()
    titles = data.catalog["titles"]
    train = data.rows(TRAIN)
    examples = []
    for row in picks[:count]:
        user = int(users[row])
        mine = train[data.user[train] == user]
        recent = mine[np.argsort(data.timestamp[mine])][-5:][::-1]
        scores = scorers.model(np.array([user]), np.arange(data.n_items)[None, :])[0]
        scores[list(seen[user])] = -np.inf
        top = np.argsort(-scores, kind="stable")[:k]
        target = int(targets[row])
        examples.append({
            "user": data.catalog["user_ids"][user], "train_interactions": int(activity[row]),
            "recent": [titles[i] for i in data.item[recent].tolist()],
            "recommended": [titles[i] for i in top.tolist()],
            "next": titles[target], "next_in_top_k": bool(target in top.tolist()),
            "next_rank_among_candidates": int(ranks["model"][row]) + 1,
        })
    return examples


def summarize(cfg: DictConfig, result: dict) -> str:
    ci = level(cfg.evaluate.confidence)
    k = result["k"]
    model, low_high = result["model"], result["model"]["hr_ci"]
    text = (f"HR@{k} {model['hr']:.4f} ({ci} CI {low_high[0]:.4f}-{low_high[1]:.4f}), NDCG@{k} "
            f"{model['ndcg']:.4f}; popularity HR@{k} {result['popularity']['hr']:.4f}, MF "
            f"{result['mf']['hr']:.4f}")
    if "full_ranking" in result:
        text += f"; full-ranking HR@{k} {result['full_ranking']['model']['hr']:.4f}"
    return text
