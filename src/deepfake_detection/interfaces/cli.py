"""`deepfake-detection` command line: train, evaluate (and the thin front ends above them)."""

from __future__ import annotations

import argparse
import dataclasses
import importlib.util
import itertools
import json
import logging
import os
import shlex
import sys
import time
from collections import Counter
from pathlib import Path
from typing import TYPE_CHECKING

from deepfake_detection import tensorflow_logs
from deepfake_detection.errors import DetectionError
from deepfake_detection.escaping import for_terminal
from deepfake_detection.inference.shipped import OPERATING_POINTS, check_name
from deepfake_detection.interfaces import prediction_io as outputs

# Every other project module is imported inside the command that needs it: `--help`, usage
# errors and a bad `-o` then answer without loading TensorFlow first.
if TYPE_CHECKING:
    from deepfake_detection.evaluation.report import Parts

log = logging.getLogger("deepfake_detection")
TRACKED_EXPORT = "models/final_model"  # the original design's files, tracked in the repository


def _setup_logging(log_file: Path | None = None) -> None:
    handlers: list[logging.Handler] = [logging.StreamHandler(sys.stderr)]
    if log_file:
        log_file.parent.mkdir(parents=True, exist_ok=True)
        handlers.append(logging.FileHandler(log_file))
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(message)s",
                        handlers=handlers, force=True)
    logging.getLogger("tensorflow").setLevel(logging.WARNING)  # per-step all-reduce chatter


def _data_dir(args: argparse.Namespace) -> str:
    from deepfake_detection.training.data import DataError, download_cifake

    if args.download:
        return str(download_cifake())
    if not args.data:
        raise DataError("no data: pass --data DIR (a folder with train/ and test/, each holding "
                        "REAL/ and FAKE/) or --download to fetch CIFAKE from Kaggle")
    return args.data


def _train_config(args: argparse.Namespace):
    from deepfake_detection.attacks import parse_eps
    from deepfake_detection.training.config import ConfigError, TrainConfig, recipe

    if args.config and args.recipe:
        raise ConfigError("--config and --recipe both give a whole configuration; pick one")
    config = (TrainConfig.load(args.config) if args.config
              else recipe(args.recipe or "reference"))
    overrides = {
        "output_dir": args.out, "arch": args.arch, "weights": args.weights,
        "image_size": args.image_size, "batch_size": args.batch_size,
        "val_fraction": args.val_fraction, "seed": args.seed,
        "max_images_per_class": args.max_per_class, "export_stem": args.export,
        "early_stopping_patience": args.patience, "adv_attack": args.adv_attack,
        "adv_eps": args.adv_eps and parse_eps(args.adv_eps), "adv_ratio": args.adv_ratio,
        "adv_steps": args.adv_steps, "strategy": args.strategy,
    }
    for key, value in overrides.items():
        if value is not None:
            setattr(config, key, value)
    for item in args.set or []:
        key, _, value = item.partition("=")
        if not hasattr(config, key) or key == "phases" or not value:
            raise ConfigError(f"--set {item!r}: use KEY=VALUE with a TrainConfig field")
        if isinstance(getattr(config, key), list) and not value.startswith("["):
            setattr(config, key, value.split(","))  # --set exclude_sources=flux,sdxl
            continue
        try:
            setattr(config, key, type(getattr(config, key))(json.loads(value)))
        except (ValueError, TypeError):
            setattr(config, key, value)  # plain strings need no JSON quotes
    if args.data or args.download or not args.config:  # a saved config keeps its data
        config.data_dir = _data_dir(args)
    phases = {phase.name: phase for phase in config.phases}
    if args.export is None and config.export_stem == TRACKED_EXPORT:
        # The tracked models/final_model.* is written only when asked (`python train.py` asks).
        config.export_stem = str(Path(config.output_dir) / "final_model")
    for item in args.epochs or []:
        name, _, count = item.partition("=")
        if name not in phases or not count.isdigit():
            raise ConfigError(f"--epochs {item!r}: use PHASE=N with PHASE in {sorted(phases)}")
        phases[name].epochs = int(count)
    config.validate()  # flags, --set and --epochs are checked as a config file is
    return config


def cmd_train(args: argparse.Namespace) -> int:
    if args.cpu_replicas:
        from deepfake_detection.training.distribute import split_cpu

        split_cpu(args.cpu_replicas)
    config = _train_config(args)
    from deepfake_detection.training.distribute import output_dir
    from deepfake_detection.training.trainer import check_outputs, train

    check_outputs(config, force=args.force)
    if config.adv_attack == "fgsm" and any(p.adversarial and p.epochs for p in config.phases):
        _need_art()
    _setup_logging(output_dir(config.output_dir) / "train.log")

    log.info("config: %s", config.to_dict())
    out = train(config)
    print(f"saved bundle: {out}")
    if args.evaluate:
        report = _evaluate(out, config.data_dir, out / "report", args.batch_size or 256)
        _write_model_card(out, report, "deepfake-detection " + shlex.join(args.argv))
    return 0


def cmd_robustness_study(args: argparse.Namespace) -> int:
    """The same recipe twice, adversarial phase off and on; both attacked, one report."""
    _need_art()
    from deepfake_detection.evaluation.robustness import AttackPlan
    from deepfake_detection.evaluation.study import run_study, study_configs

    out = Path(args.out or "runs/robustness-study")
    configs = study_configs(_train_config(args), out, args.adv_epochs, force=args.force)
    _setup_logging(out / "study.log")
    plan = AttackPlan(subset=args.attack_subset, pgd_steps=args.pgd_steps)
    print(run_study(configs, plan, out, "deepfake-detection " + shlex.join(args.argv)))
    return 0


def cmd_calibrate(args: argparse.Namespace) -> int:
    _setup_logging()
    from deepfake_detection.inference.bundle import METADATA_FILE
    from deepfake_detection.training.trainer import recalibrate

    cal = recalibrate(args.model)["calibration"]
    print(f"temperature {cal['temperature']:.4f}; validation ECE {cal['val_ece_before']:.4f} -> "
          f"{cal['val_ece_after']:.4f}; written to {Path(args.model) / METADATA_FILE}")
    return 0


def cmd_novelty(args: argparse.Namespace) -> int:
    _setup_logging()
    from deepfake_detection.inference.detectors import resolve
    from deepfake_detection.training.trainer import fit_novelty

    fitted = fit_novelty(resolve(args.model))
    print(f"novelty threshold {fitted['threshold']:.2f} ({fitted['percentile']:g}th percentile "
          f"of {fitted['validation_images']} validation images); written to {args.model}")
    return 0


def cmd_operating_points(args: argparse.Namespace) -> int:
    _setup_logging()
    from deepfake_detection.inference.detectors import resolve
    from deepfake_detection.training.trainer import fit_operating_points

    strict = fit_operating_points(resolve(args.model))
    caught = strict["fakes_caught"]
    print(f"strict threshold {strict['value']:.4f}: {strict['reals_called_fake']:.1%} of "
          f"validation reals called AI" + ("" if caught is None else
                                           f", {caught:.1%} of its fakes caught")
          + f"; written to {args.model}")
    return 0


def cmd_family_head(args: argparse.Namespace) -> int:
    _setup_logging()
    from deepfake_detection.inference.detectors import resolve
    from deepfake_detection.training.attribution import fit_family_head

    fitted = fit_family_head(resolve(args.model), args.data, unknown_rate=args.unknown_rate)
    print(f"family head: {len(fitted['families'])} families; validation top-1 "
          f"{fitted['validation_top1']:.3f}, named right {fitted['validation_named_right']:.3f};"
          f" a held-out family's fakes named: {fitted['validation_held_out_named']:.0%}; "
          f"written to {args.model}")
    return 0


def cmd_fuse_probe(args: argparse.Namespace) -> int:
    _setup_logging()
    from deepfake_detection.inference.detectors import resolve
    from deepfake_detection.training.trainer import fuse_probe

    metadata = fuse_probe(resolve(args.model), args.out, args.arch, args.weight, args.force,
                          args.noise)
    print(f"wrote {args.out}: threshold {metadata['threshold']['value']:.4f}, validation "
          f"ROC-AUC {metadata['validation_metrics']['roc_auc']:.4f}")
    return 0


def cmd_fuse_networks(args: argparse.Namespace) -> int:
    _setup_logging()
    from deepfake_detection.inference.detectors import resolve
    from deepfake_detection.training.trainer import fuse_networks

    metadata = fuse_networks(resolve(args.model), resolve(args.second), args.out, args.weight,
                             args.force)
    print(f"wrote {args.out}: threshold {metadata['threshold']['value']:.4f}, validation "
          f"ROC-AUC {metadata['validation_metrics']['roc_auc']:.4f}")
    return 0


def _evaluate(model: Path | str | None, data_dir: str, out: Path, batch_size: int,
              parts: Parts | None = None) -> dict:
    """Evaluate (with the bundle's training history) and print the headline figures; returns
    the report dict."""
    from deepfake_detection.evaluation.report import Parts, evaluate
    from deepfake_detection.inference.detectors import load

    _one_detector(model, "evaluate scores")
    detector = load(model or "cifake")
    trained_on = detector.metadata.get("config", {}).get("data_dir")
    own = bool(trained_on) and Path(trained_on).resolve() == Path(data_dir).resolve()
    # Training curves belong in a report on the bundle's own data, not in one on yours.
    parts = dataclasses.replace(parts or Parts(), history=detector.bundle.history if own
                                else None)
    report = evaluate(detector, data_dir, out, parts, batch_size)
    clean = report["clean"]
    print(f"accuracy {clean['at_threshold']['accuracy']:.4f} at threshold "
          f"{detector.threshold:.4f}, ROC-AUC {clean['roc_auc']:.4f}, "
          f"PR-AUC {clean['pr_auc']:.4f}; {len(report['failed_files'])} unreadable file(s)")
    print(f"report: {out / 'report.md'}")
    return report


def cmd_export(args: argparse.Namespace) -> int:
    from deepfake_detection.inference.detectors import load
    from deepfake_detection.inference.export import export

    _one_detector(args.model, "export writes")
    result = export(load(args.model), args.format, args.out, force=args.force)
    print(f"wrote {result['path']} ({args.format}, calibrated P(FAKE); largest difference from "
          f"the detector {result['max_abs_prob_diff']:.1e}) and {result['sidecar']}")
    return 0


def _one_detector(model: str | None, what: str) -> None:
    """`auto` is a choice per image, not one detector: commands about one bundle refuse it."""
    if model == "auto":
        from deepfake_detection.inference.bundle import BundleError

        raise BundleError(f"{what} one detector: --model cifake, native, robust or a folder")


def _need_art() -> None:
    """Attacks come from ART, an optional extra: say so before any work."""
    if importlib.util.find_spec("art") is None:
        from deepfake_detection.training.data import DataError

        raise DataError('--attacks needs the Adversarial Robustness Toolbox: pip install -e '
                        '".[attacks]"')


def cmd_evaluate(args: argparse.Namespace) -> int:
    _setup_logging()
    from deepfake_detection.evaluation.report import Parts
    from deepfake_detection.evaluation.robustness import AttackPlan
    from deepfake_detection.inference.detectors import AUTO, BUNDLES

    plan = None
    if args.attacks:
        from deepfake_detection.attacks import describe_eps, parse_eps

        _need_art()
        plan = AttackPlan(eps255=parse_eps(args.eps), eps_given=describe_eps(args.eps),
                          subset=args.attack_subset, pgd_steps=args.pgd_steps, seed=args.seed,
                          strongest_suite=args.strongest,
                          strongest_eps=tuple(args.strongest_eps or ()) or None,
                          square_queries=args.square_queries)
    if args.baseline and not args.perturbations:
        from deepfake_detection.training.data import DataError

        raise DataError("--baseline compares perturbation batteries: add --perturbations")
    if args.baseline:
        from deepfake_detection.inference.detectors import load
    # Options are checked before any work; then `auto` is resolved to one detector.
    model = _auto_choice(_data_dir(args)) if args.model == AUTO else args.model
    out = (Path(args.out) if args.out else Path("runs") / f"{model}-report"
           if model in BUNDLES else Path(model) / "report")
    parts = Parts(attack=plan, perturbations=args.perturbations,
                  baseline=load(args.baseline) if args.baseline else None)
    report = _evaluate(model, _data_dir(args), out, args.batch_size, parts)
    if args.model_card:
        from deepfake_detection.inference.detectors import resolve

        folder = resolve(model)
        _write_model_card(folder, report, _reproduce(folder) + " && deepfake-detection "
                          + shlex.join(args.argv))
    return 0


def _auto_choice(data_dir: str) -> str:
    """The shipped detector `auto` picks for every test image of the folder, as `predict`
    would: an evaluation measures one detector, so a folder that `auto` would split between
    two is refused, naming both."""
    from collections import Counter

    from deepfake_detection.evaluation.report import resolve_split
    from deepfake_detection.inference.detectors import AutoDetector
    from deepfake_detection.training.data import DataError, discover

    auto = AutoDetector.load()
    picks = Counter(auto.choose(p).name for p in discover(resolve_split(data_dir)).paths)
    if len(picks) > 1:
        split = ", ".join(f"{name} for {n}" for name, n in picks.most_common())
        raise DataError(f"--model auto would split this folder between detectors ({split} "
                        "images) and evaluate measures one: pass --model with one of them")
    name = next(iter(picks), "cifake")
    print(f"auto: the {name} detector answers for all {sum(picks.values())} images",
          file=sys.stderr)
    return name


def _reproduce(folder: Path) -> str:
    """The commands that rebuild a bundle: train from its saved config, then the novelty fit,
    or for a fused bundle the fuse-probe or fuse-networks step (which fits novelty itself);
    then the family head where the bundle has one."""
    from deepfake_detection.inference.bundle import CONFIG_FILE, SECOND_CONFIG_FILE, Bundle

    config = os.path.relpath(folder / CONFIG_FILE)  # the card travels with the repository
    run = f"runs/{folder.name}"
    metadata = Bundle.open(folder).metadata
    probe, second = metadata.get("trace_probe"), metadata.get("fused_with")
    if probe:
        steps = (f"deepfake-detection train --config {config} --out {run}-base && "
                 f"deepfake-detection fuse-probe --model {run}-base --out {run} --arch "
                 f"{probe['arch']} --weight {probe['weight']}"
                 + (f" --noise {probe['noise_max']:g}" if probe.get("noise_max") else ""))
    elif second:
        steps = (f"deepfake-detection train --config {config} --out {run}-first && "
                 f"deepfake-detection train --config "
                 f"{os.path.relpath(folder / SECOND_CONFIG_FILE)} --out {run}-second && "
                 f"deepfake-detection fuse-networks --model {run}-first --with {run}-second "
                 f"--out {run} --weight {second['weight']}")
    else:
        steps = f"deepfake-detection train --config {config} --out {run}" + (
            f" && deepfake-detection novelty --model {run}"
            if (folder / "novelty.npz").is_file() else "")
    head = metadata.get("family_head")
    return steps + (f" && deepfake-detection family-head --model {run} --data {head['data']}"
                    if head else "")


def _write_model_card(folder: Path, report: dict, command: str) -> None:
    """The bundle's model card from this evaluation (`command` reproduces it)."""
    from deepfake_detection.evaluation.rendering import render_model_card
    from deepfake_detection.inference.bundle import Bundle

    saved = Bundle.open(folder)
    print(f"model card: {saved.write_card(render_model_card(saved.metadata, report, command))}")


MODEL_HELP = ("auto (default: the native detector for images at least 128 px on each side, the "
              "cifake detector for smaller ones), cifake, native, robust (adversarially trained "
              "cifake), or a bundle folder")


def cmd_predict(args: argparse.Namespace) -> int:
    """Score files/folders/globs; exit 0 when all scored, 1 when some could not be read.

    JSONL and CSV stream: records are written as they are scored and flushed at least every
    FLUSH_SECONDS, paths are walked lazily, and memory stays bounded whatever the folder's size.
    `--resume` skips the sources already in the output file (matched by resolved path) and
    appends the rest.
    """
    from deepfake_detection.inference.checking import Checker
    from deepfake_detection.inference.content_credentials import TrustSettings
    from deepfake_detection.inference.detectors import load
    from deepfake_detection.training.data import DataError

    streaming = args.jsonl or args.csv
    if args.resume and not (streaming and args.output):
        raise DataError("--resume needs --output FILE with --jsonl or --csv")
    done = _resume_state(args) if args.output else set()
    unmatched: list[str] = []
    not_images: Counter[str] = Counter()
    skip = done | ({outputs.source_key(args.output)} if args.output else set())
    files = (f for f in outputs.iter_inputs(args.paths, unmatched, not_images)
             if not skip or outputs.resume_key(f, args.csv) not in skip)
    first = list(itertools.islice(files, 2))
    if not first:
        _warn_unmatched(unmatched)
        if done:
            print(f"nothing left to score: all {len(done)} file(s) are in {args.output}",
                  file=sys.stderr)
            return 0
        raise DataError("no images to score in " + ", ".join(args.paths)
                        + (f" ({_not_images(not_images)})" if not_images else ""))
    trust = TrustSettings.from_env(tuple(args.trust_anchors or ()), tuple(args.allowed_certs
                                   or ()), False if args.no_c2pa_trust_list else None).check()
    checker = Checker(load(args.model, uncertain_margin=args.uncertain_margin,
                           operating_point=args.operating_point),
                      trust_metadata=args.trust_metadata, trust=trust)
    scored = _write_predictions(args, checker, itertools.chain(first, files),
                                args.quiet or len(first) < 2)
    return _summary(args, scored, unmatched, not_images, len(done))


def _not_images(counts: Counter[str]) -> str:
    """`skipped 3 files that are not images: .txt 2, .md 1`."""
    total = sum(counts.values())
    return (f"skipped {total} file{'s' if total > 1 else ''} that {'are' if total > 1 else 'is'}"
            " not an image: " + ", ".join(f"{suffix} {n}" for suffix, n in counts.most_common()))


def _resume_state(args: argparse.Namespace) -> set[str]:
    """Check `--output` before any work; with `--resume`, the sources it already holds."""
    outputs.check_output(args.output, args.paths, force=args.force, resume=args.resume)
    if not args.resume:
        return set()
    done, torn = outputs.scored_sources(args.output, args.csv)
    if torn:
        print(f"warning: {args.output}: dropped its cut-short last record ({torn} bytes, left "
              "by an interrupted run); that image is scored again", file=sys.stderr)
    return done


def _write_predictions(args: argparse.Namespace, checker, files, quiet: bool
                       ) -> tuple[dict[str, int], float]:
    """Score `files` into the chosen output, with a progress bar on a terminal; returns the
    verdict counts and the seconds it took."""
    from tqdm.auto import tqdm

    if args.tiles:
        results = (_predict_tiled(checker, f, args.tiles) for f in files)
    else:
        results = checker.check_many(files, batch_size=args.batch_size)
    counts = dict.fromkeys(outputs.VERDICTS, 0)
    rows = outputs.count_verdicts((r.to_dict() for r in tqdm(
        results, unit="img", file=sys.stderr, disable=quiet or None)), counts)
    started = time.perf_counter()
    append = bool(args.resume and Path(args.output).is_file()
                  and Path(args.output).stat().st_size)
    try:
        out = outputs.open_output(args.output, append)
        try:
            if args.jsonl or args.csv:
                outputs.write_stream(rows, out, csv_format=args.csv, header=not append)
            elif args.json:
                json.dump(list(rows), out, indent=2)
                out.write("\n")
            else:
                outputs.write_table(list(rows), out)
        finally:
            if out is not sys.stdout:
                out.close()
    except BrokenPipeError:
        raise
    except OSError as error:
        raise outputs.OutputError(f"{args.output or 'standard output'}: cannot write "
                                  f"({error.strerror or error})") from None
    return counts, time.perf_counter() - started


def _summary(args: argparse.Namespace, scored: tuple[dict[str, int], float],
             unmatched: list[str], not_images: Counter[str], resumed: int) -> int:
    """The one summary line on stderr (none for one image scored alone); the exit status."""
    counts, seconds = scored
    _warn_unmatched(unmatched)
    total = sum(counts.values())
    good = total - counts["error"]
    failed = counts["error"] + len(unmatched)
    if total == 1 and not failed and not resumed and not not_images:
        return 0  # one image: its result is the whole answer
    strict = (", strict: AI only where <= 1% of validation reals scored as high"
              if args.operating_point == "strict" else "")
    parts = [f"{good} scored ({counts['fake']} AI{strict}, {counts['uncertain']} uncertain, "
             f"{counts['real']} no sign of AI)", f"{failed} failed"]
    if resumed:
        parts.append(f"{resumed} skipped (already in {args.output})")
    if not_images:
        parts.append(_not_images(not_images))
    rate = f"; {good / seconds:.0f} images/s" if good and seconds > 0 else ""
    print(", ".join(parts) + rate, file=sys.stderr)
    return 1 if failed else 0


def _warn_unmatched(unmatched: list[str]) -> None:
    for item in unmatched:
        print(f"warning: {for_terminal(item)}: no such file, folder or match", file=sys.stderr)


def cmd_scan(args: argparse.Namespace) -> int:
    """`predict --jsonl` on Ray Data (local, or a cluster with --address)."""
    from deepfake_detection.interfaces.scan import scan

    outputs.check_output(args.output, args.paths, force=args.force)
    result = scan(args.paths, args.output, model=args.model, batch_size=args.batch_size,
                  concurrency=args.concurrency, address=args.address,
                  options={"uncertain_margin": args.uncertain_margin,
                           "operating_point": args.operating_point})
    print(f"{result['images'] - result['error']} scored ({result['real']} real, "
          f"{result['uncertain']} uncertain, {result['fake']} fake), {result['error']} failed; "
          f"{result['images_per_s']:.0f} images/s on Ray -> {args.output}", file=sys.stderr)
    _warn_unmatched(result["unmatched"])
    return 1 if result["error"] or result["unmatched"] else 0


def _predict_tiled(checker, path: str, grid: int):
    from deepfake_detection.imaging import ImageError
    from deepfake_detection.inference.detector import Prediction

    try:
        return checker.check_tiles(path, grid)
    except ImageError as error:
        return Prediction(source=path, threshold=checker.detector.threshold, error=str(error),
                          detector=checker.detector.name,
                          operating_point=checker.detector.operating_point)


def cmd_app(args: argparse.Namespace) -> int:
    from deepfake_detection.interfaces.app import launch

    launch(args.model, host=args.host, port=args.port, share=args.share)
    return 0


def _add_data_args(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--data", help="folder with train/ and test/, each with REAL/ and FAKE/")
    parser.add_argument("--download", action="store_true",
                        help="fetch CIFAKE from Kaggle with kagglehub (needs the internet)")


def _add_train_args(train: argparse.ArgumentParser) -> None:
    _add_data_args(train)
    train.add_argument("--config", help="a config.json saved by an earlier run")
    train.add_argument("--recipe", help="named starting configuration: reference (default, the "
                       "original EfficientNetB2 design), fast (the measured best at 32x32), "
                       "robust (fast, then adversarial training), native, or robust_native "
                       "(experimental: native at half resolution fine-tuned against L-inf "
                       "2/255; not robust enough to ship)")
    train.add_argument("--set", action="append", metavar="KEY=VALUE",
                       help="override any config field, e.g. --set augment_blur_jpeg=0.1")
    train.add_argument("--out", help="bundle folder to write (default runs/reference)")
    train.add_argument("--arch", help="architecture (see `deepfake-detection models`)")
    train.add_argument("--weights", help="imagenet | none | PATH (default imagenet)")
    train.add_argument("--image-size", type=_bounded(int, 8, 2048),
                       help="square input side (default 32)")
    train.add_argument("--batch-size", type=POSITIVE)
    train.add_argument("--val-fraction", type=float, help="validation share of train (0.2)")
    train.add_argument("--seed", type=int)
    train.add_argument("--epochs", action="append", metavar="PHASE=N",
                       help="epochs of a phase, e.g. --epochs fine_tune=5 (repeatable)")
    train.add_argument("--patience", type=int, help="EarlyStopping patience in epochs")
    train.add_argument("--max-per-class", type=int, help="cap images per class (smoke runs)")
    train.add_argument("--export", help="also write STEM.keras and STEM.h5 (default "
                       "OUT/final_model; `python train.py` writes models/final_model; '' to "
                       "skip)")
    train.add_argument("--force", action="store_true",
                       help="replace a finished bundle in --out and existing export files")
    train.add_argument("--adv-attack", choices=("fgsm_rs", "pgd", "fgsm"),
                       help="adversarial training: fgsm_rs (default) or pgd per batch, or fgsm "
                       "(the original design: ART FGSM copies of --adv-ratio of the training "
                       "set added)")
    train.add_argument("--adv-eps", type=_eps, help="adversarial-training eps: 8/255, 8 (1/255 "
                       "steps) or 0.03 (below 1: a fraction of the pixel range)")
    train.add_argument("--adv-ratio", type=float, help="adversarial share of a batch (0.3)")
    train.add_argument("--adv-steps", type=int, help="PGD steps in adversarial training")
    train.add_argument("--strategy", choices=("default", "mirrored", "multiworker"),
                       help="tf.distribute: one device, this machine's devices, or the "
                       "machines in TF_CONFIG (batch size is per replica; LR scales with them)")
    train.add_argument("--cpu-replicas", type=int, metavar="N",
                       help="split the CPU into N logical devices (try mirrored/multiworker "
                       "without GPUs)")


def _bounded(kind: type, low: float, high: float | None = None):
    """An argparse type accepting `kind` values in [low, high] (high None: no upper bound), so
    a nonsensical number is a one-line usage error (exit 2) before any work starts."""
    def parse(text: str):
        try:
            value = kind(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"{text!r} is not a {kind.__name__}") from None
        if value != value or value < low or (high is not None and value > high):
            bound = f"between {low} and {high}" if high is not None else f"at least {low}"
            raise argparse.ArgumentTypeError(f"{text} is out of range: must be {bound}")
        return value

    parse.__name__ = kind.__name__  # argparse names the type in its messages
    return parse


def _eps(text: str) -> str:
    """An eps as `attacks.parse_eps` reads it, checked at parse time; the text is kept so the
    report can say how it was read."""
    from deepfake_detection.attacks import parse_eps

    try:
        parse_eps(text)
    except ValueError as error:
        raise argparse.ArgumentTypeError(str(error)) from None
    return text


POSITIVE = _bounded(int, 1)
MARGIN = _bounded(float, 0.0, 0.49)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="deepfake-detection",
        description="Tell real photographs from AI-generated images, and show the evidence.")
    sub = parser.add_subparsers(dest="command", required=True)
    for add in (_add_training_commands, _add_evaluate_command, _add_bundle_commands,
                _add_checking_commands):
        add(sub)
    for command in (parser, *sub.choices.values()):
        command.add_argument("--verbose", action="store_true", default=argparse.SUPPRESS,
                             help="show TensorFlow's start-up messages (or set DFD_VERBOSE=1)")
    return parser


def _add_training_commands(sub) -> None:
    """train and robustness-study."""

    train = sub.add_parser("train", help="train a detector and save a bundle")
    _add_train_args(train)
    train.add_argument("--evaluate", action="store_true",
                       help="evaluate on the data's test split afterwards")
    train.set_defaults(func=cmd_train)

    study = sub.add_parser(
        "robustness-study", help="train an undefended and an adversarially trained detector "
        "with the same recipe otherwise, attack both, write one report")
    _add_train_args(study)
    study.add_argument("--adv-epochs", type=int, default=5,
                       help="epochs of the adversarial phase of the defended model")
    _add_attack_args(study)
    study.set_defaults(func=cmd_robustness_study)


def _add_attack_args(parser: argparse.ArgumentParser) -> None:
    """How much of the test split is attacked, and how hard (study and evaluate)."""
    parser.add_argument("--attack-subset", type=_bounded(int, 0), default=0, metavar="N",
                        help="attack a seeded, balanced subset of N test images (0 = all)")
    parser.add_argument("--pgd-steps", type=POSITIVE, default=10)


def _add_evaluate_command(sub) -> None:
    """evaluate: reports, attacks, the battery, model cards."""
    evaluate = sub.add_parser("evaluate", help="evaluate a bundle on a labelled folder")
    _add_data_args(evaluate)
    evaluate.add_argument("--model", default="auto",
                          help="auto (default: the detector predict uses, when it is the same "
                          "one for every image of the folder), cifake, native, robust or a "
                          "bundle folder")
    evaluate.add_argument("--out", help="report folder (default MODEL/report, or "
                          "runs/NAME-report for a shipped detector)")
    evaluate.add_argument("--batch-size", type=POSITIVE, default=256)
    evaluate.add_argument("--attacks", action="store_true",
                          help="add FGSM/PGD scenarios and an eps sweep (ART, L-inf)")
    evaluate.add_argument("--eps", default="8/255", type=_eps,
                          help="FGSM eps of the scenarios: 8/255, 8 (1/255 steps) or 0.05 "
                          "(below 1: a fraction of the pixel range, 12.75/255)")
    _add_attack_args(evaluate)
    evaluate.add_argument("--strongest", action="store_true",
                          help="with --attacks: also APGD-CE, APGD-margin, PGD-50 x3 and Square, "
                          "worst case per image, at 2, 4 and 8/255 for 32x32 models and 1, 2 "
                          "and 4/255 for native ones (slow)")
    evaluate.add_argument("--strongest-eps", type=float, nargs="+", metavar="EPS",
                          help="eps of the strongest check, in /255 (e.g. 1 2 4)")
    evaluate.add_argument("--square-queries", type=POSITIVE, default=1000,
                          help="queries of the Square attack in the strongest check (1000)")
    evaluate.add_argument("--model-card", action="store_true",
                          help="(re)write the bundle's model_card.md from this evaluation")
    evaluate.add_argument("--seed", type=int, default=0)
    evaluate.add_argument("--baseline", metavar="BUNDLE",
                          help="with --perturbations: also run the battery on this bundle (e.g. "
                          "the same recipe without augmentation) and compare, before/after")
    evaluate.add_argument("--perturbations", action="store_true",
                          help="add the JPEG/blur/noise/rescale/crop battery")
    evaluate.set_defaults(func=cmd_evaluate)


def _add_bundle_commands(sub) -> None:
    """Commands that update or convert a bundle: calibrate, novelty, fuse-probe, fuse-networks,
    export, models."""
    calibrate = sub.add_parser("calibrate", help="fit temperature scaling for a bundle on its "
                               "own validation split (decisions unchanged)")
    calibrate.add_argument("--model", required=True, help="bundle folder to update")
    calibrate.set_defaults(func=cmd_calibrate)

    novelty = sub.add_parser("novelty", help="fit a bundle's out-of-distribution check on its "
                             "own training data (images unlike it are then 'uncertain')")
    novelty.add_argument("--model", required=True, help="bundle folder to update")
    novelty.set_defaults(func=cmd_novelty)

    points = sub.add_parser("operating-points", help="add the strict operating point (at most "
                            "1%% of the bundle's validation reals called AI) to a bundle "
                            "trained before it existed")
    points.add_argument("--model", required=True, help="native or a bundle folder to update")
    points.set_defaults(func=cmd_operating_points)

    family = sub.add_parser("family-head", help="fit a bundle's generator-family head on a "
                            "labelled set's fakes (sources named as in mixed-256): a fake "
                            "verdict then names the family, or 'unknown'")
    family.add_argument("--model", required=True, help="native or a bundle folder to update")
    family.add_argument("--data", required=True, help="folder with train/FAKE/<source>_*.jpg")
    family.add_argument("--unknown-rate", type=float, default=0.2,
                        help="the share of a never-seen family's fakes that may still get a "
                        "name (50%% and more for some family), on validation (0.2)")
    family.set_defaults(func=cmd_family_head)

    fuse = sub.add_parser("fuse-probe", help="a new bundle: a bundle's network averaged with a "
                          "linear probe on frozen ImageNet trace features (carries over better "
                          "to generators it never saw)")
    fuse.add_argument("--model", required=True, help="native or a bundle folder (unchanged)")
    fuse.add_argument("--out", required=True, help="the new bundle folder")
    fuse.add_argument("--arch", default="efficientnet_lite0", help="the frozen ImageNet network")
    fuse.add_argument("--weight", type=float, default=0.5, help="the probe's share of the logit")
    fuse.add_argument("--noise", type=float, default=0.0, metavar="SIGMA",
                      help="also fit the probe on noisy copies of the training images (sigma up "
                           "to SIGMA/255; 0: off), as the network was trained")
    fuse.add_argument("--force", action="store_true", help="replace a bundle already at --out")
    fuse.set_defaults(func=cmd_fuse_probe)

    both = sub.add_parser("fuse-networks", help="a new bundle: two bundles' networks, trained "
                          "on the same data and split, their calibrated logits averaged (two "
                          "designs that fail on different generators cover each other)")
    both.add_argument("--model", required=True, help="the first bundle (its stages, evidence "
                      "map and validation split are the fused bundle's)")
    both.add_argument("--with", dest="second", required=True, help="the second bundle")
    both.add_argument("--out", required=True, help="the new bundle folder")
    both.add_argument("--weight", type=float, default=0.5,
                      help="the second network's share of the logit")
    both.add_argument("--force", action="store_true", help="replace a bundle already at --out")
    both.set_defaults(func=cmd_fuse_networks)

    export = sub.add_parser("export", help="write a detector as a TensorFlow SavedModel or "
                            "TFLite file that returns its calibrated P(FAKE), checked")
    export.add_argument("--model", default="cifake", help="cifake (default), native, robust or "
                        "a bundle folder")
    export.add_argument("--format", required=True, choices=("savedmodel", "tflite"))
    export.add_argument("--out", required=True, help="SavedModel folder or .tflite file; "
                        "the metadata (threshold, image spec) goes beside it as OUT.json")
    export.add_argument("--force", action="store_true", help="replace existing files")
    export.set_defaults(func=cmd_export)

    models = sub.add_parser("models", help="list the registered architectures")
    models.set_defaults(func=lambda args: print("\n".join(_list_models())) or 0)


def _add_operating_point(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--operating-point", choices=OPERATING_POINTS, default="balanced",
                        help="balanced (default: both kinds of error weighed equally) or "
                        "strict: AI only where at most 1%% of the detector's validation real "
                        "pictures scored as high (for people who must not accuse anyone)")


def _add_checking_commands(sub) -> None:
    """Commands that check images: predict, scan, app."""
    predict = sub.add_parser("predict", help="score image files, folders or globs")
    predict.add_argument("paths", nargs="+", help="image files, folders (recursive) or globs")
    predict.add_argument("--model", default="auto", help=MODEL_HELP)
    fmt = predict.add_mutually_exclusive_group()
    fmt.add_argument("--json", action="store_true", help="print JSON instead of a table")
    fmt.add_argument("--csv", action="store_true", help="CSV, one row per image, streamed")
    fmt.add_argument("--jsonl", action="store_true",
                     help="JSON Lines, one object per image, streamed (for folders of any size)")
    predict.add_argument("--output", "-o", help="write the table/JSON/CSV to this file")
    predict.add_argument("--batch-size", type=POSITIVE, default=32,
                         help="images scored together (32: the first records are on disk "
                         "within seconds)")
    predict.add_argument("--quiet", "-q", action="store_true",
                         help="no progress bar (it shows only on a terminal anyway)")
    predict.add_argument("--force", action="store_true",
                         help="replace an existing --output file")
    predict.add_argument("--resume", action="store_true",
                         help="with --output and --jsonl/--csv: skip the sources already in the "
                         "file and append the rest (after an interrupted run)")
    predict.add_argument("--tiles", type=_bounded(int, 0, 8), default=0, metavar="N",
                         help="also score an NxN grid of tiles and average (large images)")
    predict.add_argument("--uncertain-margin", type=MARGIN, default=0.1,
                         help="half-width of the 'uncertain' band around the threshold")
    _add_operating_point(predict)
    predict.add_argument("--trust-metadata", action="store_true",
                         help="let a C2PA manifest that declares AI generation, signed by a "
                         "signer on a trust list in use and untampered, set the verdict "
                         "(default: report it beside the pixel verdict)")
    predict.add_argument("--trust-anchors", action="append", metavar="PEM",
                         help="also trust C2PA signers chaining to these CA certificates "
                         "(repeatable; or DFD_TRUST_ANCHORS=a.pem:b.pem)")
    predict.add_argument("--allowed-certs", action="append", metavar="PEM",
                         help="also trust these end-entity signing certificates (repeatable; "
                         "or DFD_ALLOWED_CERTS)")
    predict.add_argument("--no-c2pa-trust-list", action="store_true",
                         help="leave out the shipped official C2PA trust list (or "
                         "DFD_NO_C2PA_TRUST_LIST=1)")
    predict.set_defaults(func=cmd_predict)

    scan = sub.add_parser("scan", help="score a folder of any size on Ray Data (pip install "
                          "'.[scale]'): locally, or on a cluster with --address")
    scan.add_argument("paths", nargs="+", help="image files, folders (recursive) or globs")
    scan.add_argument("--output", "-o", required=True, help="JSON Lines file to write")
    scan.add_argument("--force", action="store_true", help="replace an existing --output file")
    scan.add_argument("--model", default="auto", help=MODEL_HELP)
    scan.add_argument("--batch-size", type=POSITIVE, default=256)
    scan.add_argument("--concurrency", type=POSITIVE, default=1,
                      help="Detector actors (one model each; about one per 1-2 cores)")
    scan.add_argument("--address", help="Ray cluster (auto, ray://HOST:10001); default: local")
    scan.add_argument("--uncertain-margin", type=MARGIN, default=0.1)
    _add_operating_point(scan)
    scan.set_defaults(func=cmd_scan)

    app = sub.add_parser("app", help="serve the Gradio web app on localhost")
    app.add_argument("--model", default="auto", help=MODEL_HELP)
    app.add_argument("--host", default="127.0.0.1", help="0.0.0.0 to serve on the network")
    app.add_argument("--port", type=int, help="default: Gradio's (7860 or the next free)")
    app.add_argument("--share", action="store_true", help="also open a public gradio.live link")
    app.set_defaults(func=cmd_app)


def _list_models() -> list[str]:
    from deepfake_detection.models import list_models

    return list_models()


def main(argv: list[str] | None = None) -> int:
    """Entry point; expected failures print one clear line and exit 2, never a traceback."""
    argv = list(sys.argv[1:] if argv is None else argv)
    args = build_parser().parse_args(argv)
    args.argv = argv  # recorded in model cards as the command that made them
    if getattr(args, "verbose", False):
        os.environ[tensorflow_logs.VERBOSE_ENV] = "1"
    try:
        check_name(getattr(args, "model", None))  # a typo is answered before TensorFlow loads
        tensorflow_logs.import_quietly()
        return int(args.func(args) or 0)
    except DetectionError as error:
        print(f"error: {for_terminal(error)}", file=sys.stderr)
        return 2
    except BrokenPipeError:  # `predict ... | head -1`: the reader left; stop quietly
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())  # so the interpreter's final flush cannot fail
        return 141
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
