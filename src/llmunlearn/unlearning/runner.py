"""The unlearning runner: one method, one domain, one budget, evaluated along the way.

Every method starts from the original model and is trained with the one loop in
:mod:`llmunlearn.training.loop`. Perplexity on forget / approximate / retain and general
(general/evaluation) is recorded at step 0 (the original model) and every ``eval_every``
steps: every forget and approximate chunk, a fixed sample of at most ``eval_chunks`` retain and
general chunks. One selection rule serves every
method (:func:`select_step`). A run whose loss or perplexity stops being finite is
recorded with status ``diverged``: kept in the results, never presented as a result.
"""

from __future__ import annotations

import dataclasses
import shutil
import time
from pathlib import Path

import torch

from ..config import DOMAINS, Profile, check_choice, check_int, check_positive, profile_config
from ..data.corpus import domain_chunks
from ..evaluation import (
    evaluate_folder,
    evaluate_reference,
    evaluation_config,
    evaluation_row,
    evaluation_sets,
    finite_row,
)
from ..models import check_context, n_params
from ..progress import progress_bar as tqdm
from ..runs import Run
from ..training.executor import run_missing, with_threads
from ..training.loop import (
    OPTIMIZERS,
    Diverged,
    TrainConfig,
    fsdp_launched,
    train,
    training_flops,
)
from ..training.pretraining import load_original, load_reference, pretrain, pretrain_zoo
from .methods import METHODS, get_method, method_digest, resolve_hparams


def unlearn_all(
    profile: Profile,
    domain: str,
    methods=None,
    *,
    jobs: int | None = None,
    hparams: dict[str, dict] | None = None,
    **kwargs,
) -> dict[str, Run]:
    """:func:`unlearn` for every method (or the ones named), same budget; method -> run.
    ``hparams`` maps a method to its hyper-parameters (``{"npo": {"beta": 0.2}}``); the
    others keep their defaults. Runs that are not cached yet execute in ``jobs``
    parallel processes (default: the profile's ``jobs``), each with its share of the
    profile's threads."""

    methods = list(methods or METHODS)
    hparams = dict(hparams or {})
    for m in [*methods, *hparams]:
        get_method(m)
    for m, hp in hparams.items():
        resolve_hparams(get_method(m), hp)  # every value checked before any run starts
    original = kwargs.pop("original", None) or pretrain(profile, progress=False)
    evaluate_reference(profile, domain, original)  # every run's step 0, computed once
    jobs = profile.jobs if jobs is None else jobs
    worker = with_threads(profile, jobs)
    runs = run_missing(
        unlearn,
        [
            (
                m,
                (worker, domain, m),
                {
                    **kwargs,
                    "original": original,
                    "hparams": hparams.get(m),
                    "progress": jobs == 1 and kwargs.get("progress", True),
                },
            )
            for m in methods
        ],
        jobs,
        profile.threads,
        desc=f"unlearning {domain}",
    )
    return dict(zip(methods, runs))


def eval_points(profile: Profile, steps: int) -> tuple[int, ...]:
    """The steps a run of ``steps`` steps is evaluated at (after step 0): the profile's
    ``grid_eval_steps`` up to ``steps`` and ``steps`` itself when it sets them, else every
    ``eval_every`` steps and the last."""
    if profile.grid_eval_steps:
        return tuple(sorted({*(s for s in profile.grid_eval_steps if s <= steps), steps}))
    return tuple(sorted({*range(profile.eval_every, steps + 1, profile.eval_every), steps}))


def reaches_target(row: dict, target: float) -> bool:
    """Whether an evaluated step's forget perplexity reaches ``target`` (the original
    model's approximate perplexity, the paper's approximate-retraining reference)."""
    return row["step"] > 0 and row["ppl_forget"] >= target


def select_step(evals: list[dict], target: float) -> dict:
    """The selection rule, the same for every method: the first evaluated step that
    :func:`reaches_target`; if none does, the last step."""
    for row in evals:
        if reaches_target(row, target):
            return {**row, "reached_target": True}
    return {**evals[-1], "reached_target": False}


def unlearn(
    profile: Profile,
    domain: str,
    method: str,
    *,
    lr: float | None = None,
    steps: int | None = None,
    hparams: dict | None = None,
    optimizer: str = "adamw",
    original: Run | None = None,
    seed: int | None = None,
    keep_model: bool = True,
    progress: bool = True,
    plan_only: bool = False,
) -> Run:
    """Run (or reuse) ``method`` on ``domain``'s forget set; returns its :class:`Run`.

    ``seed`` is the unlearning seed (data order, random labels; default the profile's);
    the original model does not change with it.

    ``optimizer`` is ``"adamw"`` (the paper's) or ``"sophia"`` (SophiaG, the survey's
    second-order claim). The batch is ``profile.batch_for(domain)`` forget chunks per step
    (and as many retain chunks); the length is ``steps``, else ``unlearn_epochs`` passes
    over the forget set when the profile sets it, else ``unlearn_steps``.
    ``summary.json`` holds ``status``, ``evals`` (one row per evaluated step; step 0 is
    the original model's cached :func:`evaluate_reference` row), ``target``
    (approximate-retraining perplexity), ``selected`` (:func:`select_step`), ``tokens``,
    ``flops`` (:func:`~llmunlearn.training.loop.training_flops`: the trained tokens, Sophia's
    Hessian passes, the original model's pass that makes adversarial labels and, for
    methods that hold the frozen original model, 2 N per trained token, an upper bound on
    what it reads) and ``wall_s``. A run checkpoints at every evaluation and resumes from
    its last checkpoint.

    ``keep_model=False`` (the hyper-parameter grid's runs) keeps the numbers and not the
    weights: no ``model`` and ``selected`` folders (13 MB each on ``cpu``). A finished
    run kept that way is run again when its model is asked for.

    ``plan_only`` returns the run's folder without training (``.done`` when it is cached:
    what an executor asks before it sends a run away), as :func:`pretrain` does.
    """
    plan = _plan(
        profile, domain, method, lr, steps, hparams, optimizer, original, seed, keep_model, progress
    )
    run = plan["run"]
    if run.done or plan_only:
        return run
    t_load = time.perf_counter()
    inputs = _inputs(plan, method)
    load_s = time.perf_counter() - t_load
    spec, hp, tokenizer = plan["spec"], plan["hp"], inputs["tokenizer"]
    on_eval = _evaluator(plan, inputs, keep_model, profile.seed)
    result = train(
        inputs["model"],
        lambda m, b, ref=None: spec.loss(m, b, ref, hp),
        inputs["streams"],
        plan["cfg"],
        run.path,
        on_eval=on_eval,
        eval_steps=plan["evaluated_steps"],
        frozen=(inputs["ref"],) if inputs["ref"] is not None else (),
        desc=f"{method} on {domain}",
        progress=progress,
    )
    kept = result["status"] == "finished" and keep_model
    if kept:  # every process takes part (FSDP gathers the shards); the main one writes
        result["save"](on_eval.as_evaluated(result["model"]), run.path / "model", tokenizer)
    if not result["is_main_process"]:
        return run  # under `accelerate launch`, the main process writes the results
    if kept and not (run.path / "selected").exists():  # the rule falls back to the last step
        (run.path / "selected").symlink_to("model")
    run.finish(_summary(plan, inputs, result, load_s))
    return run


def _inputs(plan: dict, method: str) -> dict:
    """What a planned run trains on: the original model (``model``, with its ``tokenizer``
    and parameter count ``n``), the frozen original some methods read (``ref``: in the
    compute dtype, :func:`~llmunlearn.training.pretraining.load_reference`), the data
    ``streams`` (a method's ``prepare`` applied to forget), the domain's ``chunks`` and the
    ``evaluated`` sets."""
    spec = plan["spec"]
    if spec.evaluate_as is not None and fsdp_launched():
        raise ValueError(
            f"method {method!r} evaluates a transformed copy of the model (evaluate_as), which "
            "a sharded model cannot give under FSDP; run it with one process or DDP"
        )
    model, tokenizer, chunks, general = plan["loaded"] or plan["load"]()
    n = n_params(model)  # before FSDP flattens the parameters into this process's shards
    ref = None
    if spec.needs_reference or spec.prepare is not None:
        ref = load_reference(plan["original"])
    forget = chunks["forget"]
    if spec.prepare is not None:
        forget = spec.prepare(forget, ref, tokenizer, plan["seed"])
    streams = {"forget": forget}
    if spec.retain is not None:
        streams["retain"] = chunks["retain"] if spec.retain == "in" else general["retain"]
    return {
        "model": model,
        "tokenizer": tokenizer,
        "n": n,
        "ref": ref,
        "streams": streams,
        "chunks": chunks,
        "evaluated": evaluation_sets(plan["profile"], chunks, general),
    }


def _evaluator(plan: dict, inputs: dict, keep_model: bool, seed: int):
    """The run's ``on_eval(model, step, save)``: step 0 is the original model's cached row;
    later steps evaluate the model as the method has it evaluated (``as_evaluated``, also
    an attribute) and write the first one that reaches the target as ``selected``, once,
    from every process; a non-finite perplexity raises :class:`Diverged`."""
    spec, hp, run, target = plan["spec"], plan["hp"], plan["run"], plan["target"]
    ref, tokenizer, evaluated = inputs["ref"], inputs["tokenizer"], inputs["evaluated"]
    selected = [(run.path / "selected").exists()]  # the same answer on every process

    def as_evaluated(m):
        return spec.evaluate_as(m, ref, hp) if spec.evaluate_as is not None else m

    def on_eval(m, step, save):
        if step == 0:  # every method starts from the original model: computed once
            return dict(plan["reference"])
        m = as_evaluated(m)
        row = evaluation_row(m, evaluated, seed)
        if not finite_row(row):
            raise Diverged(f"perplexity overflow at step {step}")
        if keep_model and not selected[0] and reaches_target({**row, "step": step}, target):
            # the model the selection rule picks, written whole (from every process)
            save(m, run.path / "selected", tokenizer)
            selected[0] = True
        return row

    on_eval.as_evaluated = as_evaluated
    return on_eval


def _summary(plan: dict, inputs: dict, result: dict, load_s: float) -> dict:
    """What a finished (or diverged) run's ``summary.json`` holds (see :func:`unlearn`)."""
    spec, target, chunks = plan["spec"], plan["target"], inputs["chunks"]
    # a method whose labels come from the original model pays for that pass once
    labelled = (
        int(sum(int(sum(r)) for r in chunks["forget"]["attention_mask"]))
        if spec.labels_from_model
        else 0
    )
    return {
        "status": result["status"],
        "evals": result["evals"],
        "log": result["log"],
        "target": target,
        "selected": select_step(result["evals"], target),
        "tokens": result["tokens"],
        "batch": result["batch"],
        "hessian_tokens": result["hessian_tokens"],
        "flops": training_flops(
            inputs["n"],
            result["tokens"],
            reference_tokens=result["tokens"] if spec.needs_reference else 0,
            hessian_tokens=result["hessian_tokens"],
            labelling_tokens=labelled,
        ),
        "wall_s": result["wall_s"],
        "timing": {
            "load_s": load_s,
            "eval_s": result["eval_s"],
            "train_s": result["wall_s"] - result["eval_s"],
        },
    }


def check_run_args(method, hparams, lr, steps, seed, optimizer) -> tuple:
    """An unlearning run's own arguments checked (``None``: the profile's): the method and
    its hyper-parameters (returned as ``(spec, hparams)``), a positive learning rate, at
    least one step, a non-negative seed, a known optimizer. A ``ValueError`` names the
    value otherwise."""
    spec = get_method(method)
    hp = resolve_hparams(spec, hparams)
    if lr is not None:
        check_positive("learning rate", lr)
    if steps is not None:
        check_int("steps", steps, 1)
    if seed is not None:
        check_int("seed", seed, 0)
    check_choice("optimizer", optimizer, OPTIMIZERS)
    return spec, hp


def _plan(
    profile, domain, method, lr, steps, hparams, optimizer, original, seed, keep_model, progress
) -> dict:
    """What a run of :func:`unlearn` is before it trains: its checked arguments, its
    length and configuration, the original model's cached evaluation (step 0) and target,
    and its :class:`Run` folder (done if cached)."""

    # every argument is checked before anything is trained or loaded
    check_choice("domain", domain, DOMAINS)
    spec, hp = check_run_args(method, hparams, lr, steps, seed, optimizer)
    lr = profile.unlearn_lr if lr is None else lr
    original = original or pretrain(profile, progress=progress)
    batch = profile.batch_for(domain)
    reference = evaluate_reference(profile, domain, original)  # step 0 of every method
    target = reference.get("whole_approximate_ppl", reference["ppl_approximate"])

    torch.set_num_threads(profile.threads)

    def load():
        model, tokenizer = load_original(original)
        check_context(model, profile.chunk_len)
        return model, tokenizer, *domain_chunks(profile, domain, tokenizer)

    loaded = None
    if steps is None and profile.unlearn_epochs:  # the length depends on the forget set
        loaded = load()
        steps = max(1, int(profile.unlearn_epochs * len(loaded[2]["forget"]) // batch))
    elif steps is None:
        steps = profile.unlearn_steps
    seed = profile.seed if seed is None else seed
    cfg = _train_config(profile, steps, lr, batch, seed, optimizer, keep_model)
    run = _run_folder(profile, domain, method, spec, hp, original, cfg, keep_model)
    return {
        "profile": profile,
        "run": run,
        "spec": spec,
        "hp": hp,
        "lr": lr,
        "steps": steps,
        "seed": seed,
        "cfg": cfg,
        "original": original,
        "target": target,
        "reference": reference,
        "evaluated_steps": eval_points(profile, steps),
        "load": load,
        "loaded": loaded,
    }


def _train_config(profile, steps, lr, batch, seed, optimizer, keep_model) -> TrainConfig:
    """The loop's configuration of an unlearning run."""
    return TrainConfig(
        steps=steps,
        lr=lr,
        batch=batch,
        micro_batch=min(batch, profile.unlearn_micro_batch),
        seed=seed,
        optimizer=optimizer,
        # a run without its weights is short: rerun, not resumed; a run evaluated at fixed
        # steps (the grid's axis) is too, so checkpoints fall only on evaluated steps
        checkpoint_every=profile.eval_every if keep_model and not profile.grid_eval_steps else 0,
        gradient_checkpointing=bool(profile.gradient_checkpointing),
        # evaluated at fixed steps (the grid's steps axis): a constant rate after warm-up
        schedule="constant" if profile.grid_eval_steps else "cosine",
        compile=profile.compile,
    )


def _run_folder(profile, domain, method, spec, hp, original, cfg, keep_model) -> Run:
    """The run's folder, keyed by what it computes: the profile's parts, the domain, the
    method with its file's digest and hyper-parameters, the original, the loop's
    configuration (not how the run is kept) and what an evaluated row holds. A finished
    grid run (no weights kept) asked for again with its model is started afresh."""
    name, config = (
        f"{profile.name}-{domain}-{method}",
        {
            "profile": profile_config(profile),
            "domain": domain,
            "method": method,
            "code": method_digest(spec),  # an edited method file: new runs
            "hparams": hp,
            "original": original.path.name,
            "train": {
                k: v
                for k, v in dataclasses.asdict(cfg).items()
                if k not in ("checkpoint_every", "compile")
            },  # how a run is kept, not what it computes
            "evaluation": evaluation_config(profile)["row"],
        },
    )
    run = Run.create("unlearn", name, config)
    if (
        run.done
        and keep_model
        and run.summary["status"] == "finished"
        and not (run.path / "selected").exists()
    ):  # a grid run, now wanted with its model
        shutil.rmtree(run.path)
        run = Run.create("unlearn", name, config)
    return run


# --- the models a domain compares: the zoo's and each method's selected model ----------
def domain_models(
    profile: Profile, domain: str, zoo: dict | None = None, methods=None, **unlearn_kwargs
) -> dict[str, Path]:
    """The models compared on ``domain``: the original, the domain's exact retrained model
    (when the profile pre-trains one) and the selected model of every method that
    finished (runs are cached): name -> folder."""
    return {
        name: path
        for name, (path, _) in measured_models(
            profile, domain, zoo, methods, **unlearn_kwargs
        ).items()
    }


def measured_models(
    profile: Profile, domain: str, zoo: dict | None, methods, **unlearn_kwargs
) -> dict[str, tuple[Path, dict]]:
    """:func:`domain_models` with, for each model, the :func:`evaluation_row` the runs
    already measured of it on the domain's evaluation sets (all cached)."""

    zoo = zoo if zoo is not None else pretrain_zoo(profile, progress=False)
    runs = unlearn_all(profile, domain, methods, original=zoo["original"], **unlearn_kwargs)
    out = {
        name: (zoo[key].path / "model", evaluate_reference(profile, domain, zoo[key]))
        for name, key in (("original", "original"), ("retrained", f"retrained-{domain}"))
        if key in zoo
    }  # a base-model profile has no retrained model
    out.update(
        {
            m: (r.path / "selected", r.summary["selected"])
            for m, r in runs.items()
            if r.summary["status"] == "finished"
        }
    )
    return out


def evaluate_domain(
    profile: Profile, domain: str, zoo: dict | None = None, methods=None, **unlearn_kwargs
) -> dict[str, Run]:
    """Evaluation runs of :func:`domain_models` (all cached): name -> :class:`Run`. What
    the runs already measured of a model on the same sets is not measured again."""

    zoo = zoo if zoo is not None else pretrain_zoo(profile, progress=False)
    models = measured_models(profile, domain, zoo, methods, **unlearn_kwargs)
    out = {}
    with tqdm(
        models.items(),
        desc=f"evaluating {domain}",
        unit="model",
        disable=not unlearn_kwargs.get("progress", True),
    ) as bar:
        for name, (path, row) in bar:
            bar.set_postfix_str(name)
            out[name] = evaluate_folder(profile, domain, path, zoo, known=row)
    return out
