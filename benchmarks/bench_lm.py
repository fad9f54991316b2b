"""ForgeML's LM train stage vs nanoGPT's plain-PyTorch loop, side by side in one run.

Both train the same GPT (nanoGPT's small CPU configuration: 4 layers, 4 heads, 128-dim
embeddings, block 64, batch 12, dropout 0) on the same prepared Shakespeare tokens, with the same
seeds, batches, optimizer, schedule and number of steps:
  (a) benchmarks/plain_gpt.py: the plain loop;
  (b) `forgeml train` (Lightning, MLflow logging, checkpointing, progress bar).
Prints the training tokens/s ratio b/a (loop time only, both sides) and the validation loss of
both final models on the same 200 fixed validation batches.

    python benchmarks/bench_lm.py --steps 500 --repeats 2
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import tempfile
from pathlib import Path

import torch
import yaml
from bench_train import BIN, make_project, sh

from forgeml.data.token_stream import RandomWindows, load_tokens
from forgeml.models.gpt import GPT

PARAMS = "pipelines/lm/params.yaml"


@torch.no_grad()
def val_loss(project: Path, state: dict, eval_batches: int = 200) -> float:
    params = yaml.safe_load((project / PARAMS).read_text())
    card = json.loads((project / params["paths"]["prepared"] / "data_card.json").read_text())
    vocab = card["tokenizer"]["vocab_size"]
    model_cfg = {k: v for k, v in params["model"].items() if k != "_target_"}
    model = GPT(vocab_size=vocab, **model_cfg)
    model.load_state_dict(state)
    model.eval()
    tokens = load_tokens(project / params["paths"]["prepared"], "val", vocab)
    stream = RandomWindows(tokens, model_cfg["block_size"], params["train"]["batch_size"],
                           seed=2024, n_batches=eval_batches)
    losses = [torch.nn.functional.cross_entropy(model(x).transpose(1, 2), y).item()
              for x, y in stream]
    return statistics.fmean(losses)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--steps", type=int, default=500)
    parser.add_argument("--repeats", type=int, default=2)
    parser.add_argument("--threads", type=int, default=0, help="OMP threads (0: torch default)")
    args = parser.parse_args()
    env = {**os.environ, "PATH": f"{BIN}{os.pathsep}{os.environ['PATH']}",
           "PYTHONWARNINGS": "ignore"}
    if args.threads:
        env["OMP_NUM_THREADS"] = str(args.threads)
    env.pop("MLFLOW_TRACKING_URI", None)
    # One validation pass, at the end, on both sides; the same step budget.
    overrides = ["experiment=lm_gpt", f"trainer.max_steps={args.steps}",
                 f"trainer.val_check_interval={args.steps}"]
    plain, forge = [], []
    with tempfile.TemporaryDirectory(prefix="forgeml-bench-lm-") as tmp:
        project = make_project(Path(tmp) / "project", overrides, env, params=PARAMS)
        sh([str(BIN / "forgeml"), "prepare", "-p", PARAMS], project, env)
        for _ in range(args.repeats):  # interleaved, so machine noise hits both sides alike
            _, out = sh([str(BIN / "python"), str(Path(__file__).parent / "plain_gpt.py"),
                         PARAMS, str(project / "plain.pt")], project, env)
            row = json.loads(out.strip().splitlines()[-1])
            row["val_loss"] = val_loss(project, torch.load(project / "plain.pt"))
            plain.append(row)
            sh([str(BIN / "forgeml"), "train", "-p", PARAMS], project, env)
            row = json.loads((project / "metrics/lm/train.json").read_text())
            # One validation, at the last step: the best checkpoint is the last one.
            best = torch.load(project / "models/lm/best.ckpt", weights_only=True)["state_dict"]
            row["val_loss"] = val_loss(project, {k.removeprefix("network."): v
                                                 for k, v in best.items()})
            forge.append(row)

    def med(rows, key):
        return statistics.median(r[key] for r in rows)

    a, b = med(plain, "train_tokens_per_second"), med(forge, "train_tokens_per_second")
    va, vb = med(plain, "val_loss"), med(forge, "val_loss")
    print(f"steps={args.steps} repeats={args.repeats} threads={plain[0]['threads']} "
          f"(machine: {os.cpu_count()} cores); medians")
    print(f"(a) plain PyTorch (nanoGPT loop): {a:8,.0f} tokens/s  val loss {va:.4f}")
    print(f"(b) ForgeML train stage         : {b:8,.0f} tokens/s  val loss {vb:.4f}")
    print(f"tokens/s ratio b/a              : {b / a:.3f}   (per run: "
          + ", ".join(f"{f['train_tokens_per_second'] / p['train_tokens_per_second']:.3f}"
                      for p, f in zip(plain, forge, strict=True)) + ")")
    print(f"val loss difference (b-a)/a     : {(vb - va) / va:+.2%}")


if __name__ == "__main__":
    sys.exit(main())
