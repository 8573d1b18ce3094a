"""``main.py export`` and ``main.py predict``: take a trained model away, and use it.

TensorFlow loads only when a command runs, so ``--help`` answers at once.
"""

from __future__ import annotations

import argparse
import sys

from engine import exit_codes
from engine.cli.common import positive_int

FORMAT_CHOICES = ("keras", "savedmodel", "onnx", "litert")


def register(sub: argparse._SubParsersAction) -> None:
    export = sub.add_parser("export", help="export a run's best checkpoint (keras, savedmodel, onnx, litert) "
                            "and check that it predicts like the checkpoint")
    export.add_argument("experiment", metavar="EXPERIMENT_DIR", help="experiment folder (holds experiment.json)")
    export.add_argument("--batch-size", type=positive_int, default=None,
                        help="run to export (default: the run with the best validation accuracy)")
    export.add_argument("--repeat", type=positive_int, default=None,
                        help="repeat number, 1 for the first (default: the best repeat of that batch size)")
    export.add_argument("--format", choices=FORMAT_CHOICES, default="keras")
    export.add_argument("--to", required=True, metavar="PATH",
                        help="export folder to write (replaced only if it holds an earlier export)")
    export.set_defaults(handler=cmd_export)

    predict = sub.add_parser("predict", help="classify images with a .keras file, an export folder or an "
                             "experiment folder")
    predict.add_argument("model", metavar="MODEL_OR_EXPORT",
                         help=".keras file, export folder, or experiment folder (with --batch-size)")
    predict.add_argument("images", metavar="IMAGE_OR_FOLDER", help="an image file or a folder of images")
    predict.add_argument("--batch-size", type=positive_int, default=None,
                         help="for an experiment folder: which run (default: the best run)")
    predict.add_argument("--repeat", type=positive_int, default=None, help="for an experiment folder: repeat, 1 first")
    predict.set_defaults(handler=cmd_predict)


def cmd_export(args: argparse.Namespace) -> int:
    """Exit 0 only when the export was written and its predictions matched the checkpoint's."""
    from engine.artifacts.evaluate import EvaluationError
    from engine.artifacts.export import ExportError, export_run
    from engine.artifacts.safe_load import ModelLoadError

    repeat = args.repeat - 1 if args.repeat else None
    try:
        result = export_run(args.experiment, args.format, args.to, args.batch_size, repeat,
                            log=lambda text: print(text, flush=True))
    except (ExportError, ModelLoadError, EvaluationError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return exit_codes.FAILED
    run = result.run
    print(f"exported batch size {run['batch_size']} (repeat {run.get('repeat', 0) + 1}, epoch "
          f"{run['best']['epoch']}, val accuracy {run['best']['val_accuracy']:.3f}) as {result.format} to "
          f"{result.target}")
    return exit_codes.OK


def cmd_predict(args: argparse.Namespace) -> int:
    from engine.artifacts.predict import image_files, load_predictor, predict_files
    from engine.artifacts.safe_load import ModelLoadError

    try:
        predictor = load_predictor(args.model, args.batch_size, args.repeat - 1 if args.repeat else None)
    except (ModelLoadError, ValueError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return exit_codes.FAILED
    paths = image_files(args.images)
    results = predict_files(predictor, paths)
    for result in results:
        print(result.line())
    classified = sum(r.error is None for r in results)
    print(f"{classified} of {len(results)} images classified with {predictor.source}", file=sys.stderr)
    return exit_codes.OK if classified else exit_codes.FAILED
