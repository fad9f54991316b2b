"""ForgeML's sentiment train stage vs a plain-PyTorch fine-tuning loop, side by side in one run.

Both fine-tune the same MiniLM classifier on the same first N training snippets of the prepared
Rotten Tomatoes split, with the same batches, layer-wise learning rates, schedule and clipping:
  (a) benchmarks/plain_minilm.py: the plain loop;
  (b) `forgeml train` (Lightning, MLflow logging, checkpointing, progress bar; no model logging).
Prints the training tokens/s ratio b/a (loop time only, both sides) and the projected training
time of the default experiment (2 epochs over 10,201 snippets) from ForgeML's rate.

    python benchmarks/bench_sentiment.py --texts 640 --repeats 2
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import tempfile
from pathlib import Path

from bench_train import BIN, make_project, sh

PARAMS = "pipelines/sentiment/params.yaml"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--texts", type=int, default=640, help="training snippets per run")
    parser.add_argument("--repeats", type=int, default=2)
    parser.add_argument("--threads", type=int, default=0, help="OMP threads (0: torch default)")
    args = parser.parse_args()
    env = {**os.environ, "PATH": f"{BIN}{os.pathsep}{os.environ['PATH']}",
           "PYTHONWARNINGS": "ignore"}
    if args.threads:
        env["OMP_NUM_THREADS"] = str(args.threads)
    env.pop("MLFLOW_TRACKING_URI", None)
    overrides = ["experiment=sentiment_minilm", f"train.train_limit={args.texts}",
                 "trainer.max_epochs=1", "logger.log_model=false"]
    plain, forge = [], []
    with tempfile.TemporaryDirectory(prefix="forgeml-bench-sentiment-") as tmp:
        project = make_project(Path(tmp) / "project", overrides, env, params=PARAMS)
        sh([str(BIN / "forgeml"), "prepare", "-p", PARAMS], project, env)
        for _ in range(args.repeats):  # interleaved, so machine noise hits both sides alike
            _, out = sh([str(BIN / "python"), str(Path(__file__).parent / "plain_minilm.py"),
                         PARAMS], project, env)
            plain.append(json.loads(out.strip().splitlines()[-1]))
            sh([str(BIN / "forgeml"), "train", "-p", PARAMS], project, env)
            forge.append(json.loads((project / "metrics/sentiment/train.json").read_text()))

    def med(rows, key):
        return statistics.median(r[key] for r in rows)

    a, b = med(plain, "train_tokens_per_second"), med(forge, "train_tokens_per_second")
    texts_per_s = med(forge, "train_samples_per_second")
    print(f"texts={args.texts} repeats={args.repeats} threads={plain[0]['threads']} "
          f"(machine: {os.cpu_count()} cores); medians")
    plain_texts = med(plain, "train_samples_per_second")
    print(f"(a) plain PyTorch loop : {a:8,.0f} tokens/s  {plain_texts:6.1f} texts/s")
    print(f"(b) ForgeML train stage: {b:8,.0f} tokens/s  {texts_per_s:6.1f} texts/s  peak memory "
          f"{med(forge, 'peak_memory_mb'):,.0f} MB")
    print(f"tokens/s ratio b/a     : {b / a:.3f}   (per run: "
          + ", ".join(f"{f['train_tokens_per_second'] / p['train_tokens_per_second']:.3f}"
                      for p, f in zip(plain, forge, strict=True)) + ")")
    print(f"projected default training (2 x 10,201 snippets): {2 * 10201 / texts_per_s / 60:.1f} "
          "min")


if __name__ == "__main__":
    sys.exit(main())
