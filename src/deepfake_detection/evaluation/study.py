"""The robustness study: one recipe trained twice, adversarial phase off and on, both attacked
the same way, one report (`deepfake-detection robustness-study`)."""

from __future__ import annotations

import copy
import dataclasses
import json
from pathlib import Path
from typing import Any

from deepfake_detection.evaluation import rendering
from deepfake_detection.evaluation.report import Parts, evaluate
from deepfake_detection.evaluation.robustness import AttackPlan
from deepfake_detection.inference.detector import Detector
from deepfake_detection.training.config import TrainConfig
from deepfake_detection.training.trainer import check_outputs, train


def study_configs(base: TrainConfig, out: Path, adv_epochs: int,
                  force: bool = False) -> dict[str, TrainConfig]:
    """`undefended` (no adversarial epochs) and `defended` (`adv_epochs`), each in its own
    folder under `out`, outputs checked before any training."""
    configs = {}
    for name, epochs in (("undefended", 0), ("defended", adv_epochs)):
        config = configs[name] = copy.deepcopy(base)
        config.output_dir, config.export_stem = str(out / name), ""
        for phase in config.phases:
            phase.epochs = epochs if phase.adversarial else phase.epochs
        check_outputs(config, force=force)
    return configs


def run_study(configs: dict[str, TrainConfig], plan: AttackPlan, out: Path,
              command: str) -> str:
    """Train and attack each configuration (eps and seed from its config), then write
    robustness_study.{json,md} and the robustness curve under `out`; returns the Markdown."""
    reports, threat_models = {}, {}
    for name, config in configs.items():
        detector = Detector.load(train(config))
        adversarial = detector.metadata["adversarial_training"]
        threat_models[name] = adversarial["threat_model"] if adversarial["applied"] else "nothing"
        parts = Parts(history=detector.bundle.history, attack=dataclasses.replace(
            plan, eps255=config.adv_eps, seed=config.seed))
        reports[name] = evaluate(detector, config.data_dir, detector.bundle_dir / "report",
                                 parts, config.batch_size)
    rendering.plot_sweep({n: r["adversarial"]["sweep"] for n, r in reports.items()},
                         out / "robustness_curve.png")
    summary: dict[str, Any] = {n: {"clean": r["clean"], "adversarial": r["adversarial"],
                                   "trained_against": threat_models[n]}
                               for n, r in reports.items()}
    (out / "robustness_study.json").write_text(json.dumps(summary, indent=2))
    text = rendering.render_study(reports, threat_models, command)
    (out / "robustness_study.md").write_text(text)
    return text
