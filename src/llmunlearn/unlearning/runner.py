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

from ..config import (
    DOMAINS,
    ExecutionConfig,
    Profile,
    UnlearnConfig,
    check_choice,
    check_int,
    check_positive,
    profile_config,
)
from ..data.corpus import chunk_splits
from ..evaluation import (
    EVALUATION_ROW,
    domain_sets,
    evaluate_folder,
    evaluate_reference,
    evaluation_row,
    evaluation_sets,
    finite_row,
    zoo_evaluation,
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


@dataclasses.dataclass(frozen=True)
class UnlearnInputs:
    """What the unlearning stage reads (``unlearn`` in :data:`~llmunlearn.stages.STAGES`),
    resolved once per domain and original by :func:`unlearning_inputs`: a run of
    :func:`unlearning_run` receives these and its own arguments, never the profile, and
    builds nothing upstream (no pre-training, splitting or evaluation of the original)."""

    name: str  # the profile's name: the runs' folder names
    seed: int  # the profile's seed: the default unlearning seed, the evaluation's samples
    domain: str
    key: dict  # the profile's parts in every run's key (config.profile_config)
    unlearning: UnlearnConfig  # the budget, the evaluation sizes and steps
    execution: ExecutionConfig  # threads, gradient checkpointing, compile
    chunk_len: int  # the model part's context: documents are cut into chunks of this length
    original: Run  # the pre-training stage's run every method starts from
    reference: dict  # the evaluate stage's row of the original on the domain: every step 0
    splits: dict  # the data stage's documents: {"domain": ..., "general": ...} by split

    @property
    def target(self) -> float:
        """The approximate-retraining perplexity a run's forget perplexity should reach."""
        return self.reference.get("whole_approximate_ppl", self.reference["ppl_approximate"])

    @property
    def batch(self) -> int:
        """Forget chunks per step on the domain."""
        return self.unlearning.batch_for(self.domain)

    def load(self):
        """The original model and tokenizer, and the domain's and general's splits chunked
        with that tokenizer (kept per process: :func:`~llmunlearn.data.corpus.chunk_splits`)."""
        model, tokenizer = load_original(self.original)
        check_context(model, self.chunk_len)
        chunks = {k: chunk_splits(v, tokenizer, self.chunk_len) for k, v in self.splits.items()}
        return model, tokenizer, chunks["domain"], chunks["general"]


def unlearning_inputs(
    profile: Profile, domain: str, original: Run | None = None, progress: bool = False
) -> UnlearnInputs:
    """Resolve the unlearning stage's inputs on ``domain`` from ``profile``, once: the
    original (``original``, else :func:`~llmunlearn.training.pretraining.pretrain`'s), its
    evaluated row (step 0 of every run, :func:`~llmunlearn.evaluation.zoo_evaluation`) and
    the documents of the domain's and general's splits (one
    :func:`~llmunlearn.evaluation.domain_sets` for both)."""
    check_choice("domain", domain, DOMAINS)
    original = original or pretrain(profile, progress=progress)
    sets = domain_sets(profile, domain)
    return UnlearnInputs(
        name=profile.name,
        seed=profile.seed,
        domain=domain,
        key=profile_config(profile),
        unlearning=profile.unlearning,
        execution=profile.execution,
        chunk_len=profile.chunk_len,
        original=original,
        reference=zoo_evaluation(sets, original),
        splits={"domain": sets.splits("domain"), "general": sets.splits("general")},
    )


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
    others keep their defaults. The stage's inputs are resolved once
    (:func:`unlearning_inputs`) and handed to every run. Runs that are not cached yet
    execute in ``jobs`` parallel processes (default: the profile's ``jobs``), each with its
    share of the profile's threads."""

    methods = list(methods or METHODS)
    hparams = dict(hparams or {})
    for m in [*methods, *hparams]:
        get_method(m)
    for m, hp in hparams.items():
        resolve_hparams(get_method(m), hp)  # every value checked before any run starts
    inputs = unlearning_inputs(profile, domain, kwargs.pop("original", None))
    jobs = profile.jobs if jobs is None else jobs
    worker = with_threads(inputs, jobs)
    runs = run_missing(
        unlearning_run,
        [
            (
                m,
                (worker, m),
                {
                    **kwargs,
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


def eval_points(unlearning: UnlearnConfig, steps: int) -> tuple[int, ...]:
    """The steps a run of ``steps`` steps is evaluated at (after step 0): the ``unlearning``
    part's ``grid_eval_steps`` up to ``steps`` and ``steps`` itself when it sets them, else
    every ``eval_every`` steps and the last."""
    if unlearning.grid_eval_steps:
        return tuple(sorted({*(s for s in unlearning.grid_eval_steps if s <= steps), steps}))
    every = unlearning.eval_every
    return tuple(sorted({*range(every, steps + 1, every), steps}))


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

    The entry point of one run: its arguments are checked, the stage's inputs resolved
    from ``profile`` (:func:`unlearning_inputs`: ``original``, else the profile's original
    model) and handed to :func:`unlearning_run`, which documents the run and its summary.
    """
    # before anything is built (unlearning_inputs checks the domain first thing)
    check_run_args(method, hparams, lr, steps, seed, optimizer)
    return unlearning_run(
        unlearning_inputs(profile, domain, original, progress),
        method,
        lr=lr,
        steps=steps,
        hparams=hparams,
        optimizer=optimizer,
        seed=seed,
        keep_model=keep_model,
        progress=progress,
        plan_only=plan_only,
    )


def unlearning_run(
    inputs: UnlearnInputs,
    method: str,
    *,
    lr: float | None = None,
    steps: int | None = None,
    hparams: dict | None = None,
    optimizer: str = "adamw",
    seed: int | None = None,
    keep_model: bool = True,
    progress: bool = True,
    plan_only: bool = False,
) -> Run:
    """The unlearning stage: ``method`` on the forget set of ``inputs`` (one domain, one
    original, resolved by :func:`unlearning_inputs`); returns its :class:`Run`.

    ``lr``, ``steps`` and ``seed`` default to the profile's (its ``unlearning`` part and
    seed); ``seed`` is the unlearning seed (data order, random labels); the original model
    does not change with it.

    ``optimizer`` is ``"adamw"`` (the paper's) or ``"sophia"`` (SophiaG, the survey's
    second-order claim). The batch is ``inputs.batch`` forget chunks per step (and as many
    retain chunks); the length is ``steps``, else ``unlearn_epochs`` passes over the forget
    set when the profile sets it, else ``unlearn_steps``.
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
    what an executor asks before it sends a run away).
    """
    plan = _plan(inputs, method, lr, steps, hparams, optimizer, seed, keep_model)
    run = plan["run"]
    if run.done or plan_only:
        return run
    t_load = time.perf_counter()
    loaded = _loaded(plan, method)
    load_s = time.perf_counter() - t_load
    spec, hp, tokenizer = plan["spec"], plan["hp"], loaded["tokenizer"]
    on_eval = _evaluator(plan, loaded, keep_model, inputs.seed)
    result = train(
        loaded["model"],
        lambda m, b, ref=None: spec.loss(m, b, ref, hp),
        loaded["streams"],
        plan["cfg"],
        run.path,
        on_eval=on_eval,
        eval_steps=plan["evaluated_steps"],
        frozen=(loaded["ref"],) if loaded["ref"] is not None else (),
        desc=f"{method} on {inputs.domain}",
        progress=progress,
    )
    kept = result["status"] == "finished" and keep_model
    if kept:  # every process takes part (FSDP gathers the shards); the main one writes
        result["save"](on_eval.as_evaluated(result["model"]), run.path / "model", tokenizer)
    if not result["is_main_process"]:
        return run  # under `accelerate launch`, the main process writes the results
    if kept and not (run.path / "selected").exists():  # the rule falls back to the last step
        (run.path / "selected").symlink_to("model")
    run.finish(_summary(plan, loaded, result, load_s))
    return run


def _loaded(plan: dict, method: str) -> dict:
    """What a planned run trains on: the original model (``model``, with its ``tokenizer``
    and parameter count ``n``), the frozen original some methods read (``ref``: in the
    compute dtype, :func:`~llmunlearn.training.pretraining.load_reference`), the data
    ``streams`` (a method's ``prepare`` applied to forget), the domain's ``chunks`` and the
    ``evaluated`` sets."""
    spec, inputs = plan["spec"], plan["inputs"]
    if spec.evaluate_as is not None and fsdp_launched():
        raise ValueError(
            f"method {method!r} evaluates a transformed copy of the model (evaluate_as), which "
            "a sharded model cannot give under FSDP; run it with one process or DDP"
        )
    model, tokenizer, chunks, general = plan["loaded"] or inputs.load()
    n = n_params(model)  # before FSDP flattens the parameters into this process's shards
    ref = None
    if spec.needs_reference or spec.prepare is not None:
        ref = load_reference(inputs.original)
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
        "evaluated": evaluation_sets(inputs.unlearning, inputs.seed, chunks, general),
    }


def _evaluator(plan: dict, loaded: dict, keep_model: bool, seed: int):
    """The run's ``on_eval(model, step, save)``: step 0 is the original model's cached row;
    later steps evaluate the model as the method has it evaluated (``as_evaluated``, also
    an attribute) and write the first one that reaches the target as ``selected``, once,
    from every process; a non-finite perplexity raises :class:`Diverged`."""
    spec, hp, run, target = plan["spec"], plan["hp"], plan["run"], plan["inputs"].target
    ref, tokenizer, evaluated = loaded["ref"], loaded["tokenizer"], loaded["evaluated"]
    selected = [(run.path / "selected").exists()]  # the same answer on every process

    def as_evaluated(m):
        return spec.evaluate_as(m, ref, hp) if spec.evaluate_as is not None else m

    def on_eval(m, step, save):
        if step == 0:  # every method starts from the original model: computed once
            return dict(plan["inputs"].reference)
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


def _summary(plan: dict, loaded: dict, result: dict, load_s: float) -> dict:
    """What a finished (or diverged) run's ``summary.json`` holds (see :func:`unlearning_run`)."""
    spec, target, chunks = plan["spec"], plan["inputs"].target, loaded["chunks"]
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
            loaded["n"],
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


def _plan(inputs: UnlearnInputs, method, lr, steps, hparams, optimizer, seed, keep_model) -> dict:
    """What a run of :func:`unlearning_run` is before it trains: its checked arguments, its
    length and configuration, and its :class:`Run` folder (done if cached)."""

    # every argument is checked before anything is trained or loaded
    spec, hp = check_run_args(method, hparams, lr, steps, seed, optimizer)
    unlearning = inputs.unlearning
    lr = unlearning.unlearn_lr if lr is None else lr
    torch.set_num_threads(inputs.execution.threads)
    loaded = None
    if steps is None and unlearning.unlearn_epochs:  # the length depends on the forget set
        loaded = inputs.load()
        steps = max(1, int(unlearning.unlearn_epochs * len(loaded[2]["forget"]) // inputs.batch))
    elif steps is None:
        steps = unlearning.unlearn_steps
    seed = inputs.seed if seed is None else seed
    cfg = _train_config(inputs, steps, lr, seed, optimizer, keep_model)
    run = _run_folder(inputs, method, spec, hp, cfg, keep_model)
    return {
        "inputs": inputs,
        "run": run,
        "spec": spec,
        "hp": hp,
        "seed": seed,
        "cfg": cfg,
        "evaluated_steps": eval_points(unlearning, steps),
        "loaded": loaded,
    }


def _train_config(inputs: UnlearnInputs, steps, lr, seed, optimizer, keep_model) -> TrainConfig:
    """The loop's configuration of an unlearning run."""
    unlearning, execution, batch = inputs.unlearning, inputs.execution, inputs.batch
    return TrainConfig(
        steps=steps,
        lr=lr,
        batch=batch,
        micro_batch=min(batch, unlearning.unlearn_micro_batch),
        seed=seed,
        optimizer=optimizer,
        # a run without its weights is short: rerun, not resumed; a run evaluated at fixed
        # steps (the grid's axis) is too, so checkpoints fall only on evaluated steps
        checkpoint_every=unlearning.eval_every
        if keep_model and not unlearning.grid_eval_steps
        else 0,
        gradient_checkpointing=bool(execution.gradient_checkpointing),
        # evaluated at fixed steps (the grid's steps axis): a constant rate after warm-up
        schedule="constant" if unlearning.grid_eval_steps else "cosine",
        compile=execution.compile,
    )


def _run_folder(inputs: UnlearnInputs, method, spec, hp, cfg, keep_model) -> Run:
    """The run's folder, keyed by what it computes: the profile's parts, the domain, the
    method with its file's digest and hyper-parameters, the original, the loop's
    configuration (not how the run is kept) and what an evaluated row holds. A finished
    grid run (no weights kept) asked for again with its model is started afresh."""
    name, config = (
        f"{inputs.name}-{inputs.domain}-{method}",
        {
            "profile": inputs.key,
            "domain": inputs.domain,
            "method": method,
            "code": method_digest(spec),  # an edited method file: new runs
            "hparams": hp,
            "original": inputs.original.path.name,
            "train": {
                k: v
                for k, v in dataclasses.asdict(cfg).items()
                if k not in ("checkpoint_every", "compile")
            },  # how a run is kept, not what it computes
            "evaluation": EVALUATION_ROW,
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
