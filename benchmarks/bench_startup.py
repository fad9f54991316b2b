"""Start-up of each stage and serving command, side by side in one run: the cold import of the
module the CLI runs (what a short run pays before any work) against `import pytorch_lightning`
alone, and whether Lightning is loaded at all. Median of --repeats fresh interpreters.

    python benchmarks/bench_startup.py --repeats 5
"""

from __future__ import annotations

import argparse
import statistics
import subprocess
import sys

MODULES = {
    "import pytorch_lightning (reference)": "pytorch_lightning",
    "forgeml CLI (every command)": "forgeml.cli",
    "prepare (digits)": "forgeml.tasks.classification.prepare",
    "train (digits)": "forgeml.tasks.classification.train",
    "evaluate (digits)": "forgeml.tasks.classification.evaluate",
    "report (digits)": "forgeml.tasks.classification.report",
    "evaluate (lm)": "forgeml.tasks.lm.evaluate",
    "report (recsys)": "forgeml.tasks.recsys.report",
    "generate (lm)": "forgeml.tasks.lm.generate",
    "recommend (recsys)": "forgeml.tasks.recsys.recommend",
    "predict (sentiment)": "forgeml.tasks.sentiment.predictor",
}
PROBE = ("import sys, time; t = time.perf_counter(); import {m}; "
         "print(time.perf_counter() - t, 'pytorch_lightning' in sys.modules)")


def measure(module: str, repeats: int) -> tuple[float, bool]:
    times, lightning = [], False
    for _ in range(repeats):
        out = subprocess.run([sys.executable, "-c", PROBE.format(m=module)], check=True,
                             capture_output=True, text=True).stdout.split()
        times.append(float(out[0]))
        lightning = out[1] == "True"
    return statistics.median(times), lightning


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=5)
    args = parser.parse_args()
    reference, _ = measure("pytorch_lightning", args.repeats)
    print(f"| command | import (s, median of {args.repeats}) | vs Lightning alone | "
          "loads Lightning |\n|---|---|---|---|")
    for label, module in MODULES.items():
        seconds, lightning = measure(module, args.repeats)
        print(f"| {label} | {seconds:.2f} | {seconds / reference:.2f}× | "
              f"{'yes' if lightning else 'no'} |")


if __name__ == "__main__":
    main()
