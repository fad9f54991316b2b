"""The report stage every task shares: read the run, data card and evaluation; find the earlier
runs of the pipeline and compare with the latest one (paired on the same test examples when the
data allows); lay out verdict, comparison, data card, cost, history and lineage. A task supplies
only what differs, as the hooks of its `ReportSections`."""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, ClassVar

import numpy as np
from omegaconf import DictConfig

from forgeml import tracking
from forgeml.artifacts import read_data_card, read_evaluation, read_run
from forgeml.bootstrap import level, paired_bootstrap_difference
from forgeml.reporting.crossval import section as cross_validation_section
from forgeml.reporting.render import lineage, table, write_report
from forgeml.task_interface import Stage

log = logging.getLogger(__name__)
FIRST_RUN = ("This is the first evaluated run of this pipeline, so there is no earlier model to "
             "compare with.")
Rows = list[tuple[str, str]]


def points(x: float) -> str:
    """A difference of proportions in percentage points, signed."""
    return f"{x * 100:+.1f} points"


@dataclass(frozen=True)
class Headline:
    """The metric a task is judged by, and the per-example file behind it (in the evaluation
    folder, logged as `evaluation/<file>`), for paired comparisons between runs."""

    metric: str  # the MLflow metric, e.g. "test/acc"; its interval is <metric>_ci_low/_high
    per_example_file: str
    read: Callable[[Path], np.ndarray]  # the file -> one value per test example
    lower_is_better: bool = False


@dataclass
class Previous:
    """The latest earlier run of the pipeline, as compared with this one."""

    name: str
    run_id: str
    model: str
    value: float
    ci: tuple[float | None, float | None]
    # > 0 means this run is better; None when the two runs did not score the same examples.
    paired: dict | None = None


@dataclass
class Verdict:
    sentences: list[str]
    better: bool = False
    worse: bool = False


@dataclass
class ReportContext:
    cfg: DictConfig
    run: dict
    card: dict
    result: dict
    uri: str
    tags: dict[str, str]
    earlier: list[dict] = field(default_factory=list)
    previous: Previous | None = None

    @property
    def model_name(self) -> str:
        return self.tags.get("forgeml.model", "model")

    @property
    def level(self) -> str:
        return level(self.cfg.evaluate.confidence)

    def interval(self, pair, fmt: str = ".1%") -> str:
        low, high = pair if pair else (None, None)
        return f"{low:{fmt}} – {high:{fmt}}" if low is not None else "–"

    def against_previous(self, examples: str, fmt: str = ".1%",
                         difference: Callable[[dict], str] | None = None) -> tuple[str, bool, bool]:
        """(sentence, clearly better, clearly worse) comparing with the previous run on the same
        `examples` when paired, else as indicative only."""
        prev = self.previous
        if prev is None:
            return FIRST_RUN, False, False
        who = f"the previous run ({prev.model} '{prev.name}', {prev.value:{fmt}})"
        if prev.paired is None:
            return (f"{who[0].upper()}{who[1:]} was scored on different {examples}, so the "
                    "comparison is indicative only.", False, False)
        diff = prev.paired
        better, worse = diff["low"] > 0, diff["high"] < 0
        words = ("a clear improvement" if better else "a clear regression" if worse
                 else "within noise: not clearly different")
        shown = difference(diff) if difference else (
            f"{points(diff['difference'])} ({self.level} interval {points(diff['low'])} to "
            f"{points(diff['high'])})")
        return f"Against {who} on the same {examples} it is {shown}: {words}.", better, worse


class ReportSections:
    """The hooks of one task's report; `template` names `<template>.{html,md}.j2`."""

    template: ClassVar[str]

    def headline(self, cfg: DictConfig) -> Headline:
        raise NotImplementedError

    def comparable(self, ctx: ReportContext, earlier: dict) -> bool:
        """Whether the earlier run scored the same test examples (then the comparison is
        paired): by default, when it saw the same data."""
        return earlier["tags"].get("forgeml.data_hash") == ctx.card["data_hash"]

    def title(self, ctx: ReportContext) -> str:
        raise NotImplementedError

    def verdict(self, ctx: ReportContext) -> Verdict:
        raise NotImplementedError

    def comparison(self, ctx: ReportContext) -> dict:
        raise NotImplementedError

    def training_note(self, ctx: ReportContext) -> str:
        raise NotImplementedError

    def data_card(self, ctx: ReportContext) -> Rows:
        """The task's rows, between the common source/licence rows and the data hash."""
        return []

    def cost(self, ctx: ReportContext) -> Rows:
        """The task's rows after parameters and model size."""
        return []

    def history(self, ctx: ReportContext) -> tuple[list[str], Callable[[dict], list[str]]]:
        """(columns after Run and Model, earlier run -> its cells)."""
        raise NotImplementedError

    def figures(self, ctx: ReportContext) -> dict[str, bytes]:
        return {}

    def sections(self, ctx: ReportContext) -> dict[str, Any]:
        """What the task's template shows beyond the common layout."""
        return {}

    def summary(self, ctx: ReportContext) -> str:
        """The headline line the CLI prints."""
        raise NotImplementedError


def build_context(cfg: DictConfig, sections: ReportSections) -> ReportContext:
    run = read_run(cfg)
    uri = tracking.tracking_uri(cfg)
    tracking.check_reachable(uri, cfg.logger.connect_timeout_s)
    tags = tracking.client(uri).get_run(run["run_id"]).data.tags
    ctx = ReportContext(cfg, run, read_data_card(cfg), read_evaluation(cfg), uri, tags)
    headline = sections.headline(cfg)
    ctx.earlier = tracking.previous_runs(uri, cfg.logger.experiment_name, run["run_id"],
                                         headline.metric)
    if ctx.earlier:
        ctx.previous = _previous(ctx, sections, headline, ctx.earlier[0])
    return ctx


def _previous(ctx: ReportContext, sections: ReportSections, headline: Headline,
              earlier: dict) -> Previous:
    metrics = earlier["metrics"]
    previous = Previous(
        name=earlier["run_name"] or earlier["run_id"][:8], run_id=earlier["run_id"],
        model=earlier["tags"].get("forgeml.model", "?"), value=metrics[headline.metric],
        ci=(metrics.get(f"{headline.metric}_ci_low"), metrics.get(f"{headline.metric}_ci_high")))
    if sections.comparable(ctx, earlier):
        mine = headline.read(Path(ctx.cfg.paths.eval) / headline.per_example_file)
        previous.paired = paired_with(ctx, earlier["run_id"], headline, mine)
    return previous


def paired_with(ctx: ReportContext, run_id: str, headline: Headline,
                mine: np.ndarray) -> dict | None:
    """Paired bootstrap of this run's per-example values against another run's (read from its
    logged evaluation), oriented so that > 0 means this run is better; None when that run has
    no such artifact or scored a different number of examples."""
    try:
        path = tracking.download(ctx.uri, run_id, f"evaluation/{headline.per_example_file}")
        theirs = headline.read(Path(path))
    except Exception as err:  # an old run without the artifact: intervals only
        log.warning("cannot load the evaluation of run %s: %s", run_id, err)
        return None
    if len(mine) != len(theirs):
        return None
    better, worse = (theirs, mine) if headline.lower_is_better else (mine, theirs)
    ev = ctx.cfg.evaluate
    return paired_bootstrap_difference(better, worse, ev.bootstrap_samples, ev.confidence,
                                       ctx.cfg.seed)


def write(cfg: DictConfig, sections: ReportSections) -> Path:
    """Write reports/<p>/report.html (self-contained) and report.md; log both to the run."""
    ctx = build_context(cfg, sections)
    card, run = ctx.card, ctx.run
    columns, cells = sections.history(ctx)
    verdict = sections.verdict(ctx)
    # What the run concluded, on its page and in the runs table of MLflow's UI.
    tracking.describe_run(ctx.uri, run["run_id"], " ".join(verdict.sentences) + (
        "\n\nThe full report is the artifact `report/report.html` (Artifacts tab)."))
    context = {
        "title": f"{cfg.pipeline.name}: {sections.title(ctx)}",
        "verdict": verdict,
        "comparison": sections.comparison(ctx),
        "training_note": sections.training_note(ctx),
        "data_card": [(name, card[key]) for name, key in (
            ("Source", "source"), ("Origin", "origin"), ("Licence", "licence")) if key in card]
        + sections.data_card(ctx) + [("Data hash", card["data_hash"])],
        "cost": [("Parameters", _parameters(run)),
                 ("Model size (float32)", f"{run['parameters'] * 4 / 1e6:.2f} MB"),
                 *sections.cost(ctx)],
        "history": table(["Run", "Model", *columns], [
            [r["run_name"] or r["run_id"][:8], r["tags"].get("forgeml.model", "?"), *cells(r)]
            for r in ctx.earlier]),
        "lineage": lineage(cfg, run, ctx.tags, ctx.uri),
        "level": ctx.level,
        "cross_validation": cross_validation_section(cfg),
        **sections.sections(ctx),
    }
    return write_report(cfg, run, ctx.uri, sections.template, context, sections.figures(ctx))


def _parameters(run: dict) -> str:
    trained = run.get("trainable_parameters", run["parameters"])
    return f"{run['parameters']:,}" + (
        f" ({trained:,} updated in training)" if trained != run["parameters"] else "")


def summary(cfg: DictConfig, sections: ReportSections, path: Path) -> str:
    ctx = ReportContext(cfg, {}, {}, read_evaluation(cfg), "", {})
    return f"[bold]{cfg.pipeline.name}: {sections.summary(ctx)}[/bold]\nreport: {path.resolve()}"


def stage(sections: ReportSections) -> Stage:
    """A task's report stage: this skeleton with the task's sections."""
    return Stage(run=lambda cfg: write(cfg, sections),
                 summarize=lambda cfg, path: summary(cfg, sections, path))
