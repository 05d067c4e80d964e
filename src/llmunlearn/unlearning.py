"""The unlearning runner: one method, one domain, one budget, evaluated along the way.

Every method starts from the original model and is trained with the one loop in
:mod:`llmunlearn.train`. Perplexity on forget / approximate / retain and general
(general/evaluation) is recorded at step 0 (the original model) and every ``eval_every``
steps, each on a fixed sample of at most ``eval_chunks`` chunks. One selection rule serves every
method (:func:`select_step`). A run whose loss or perplexity stops being finite is
recorded with status ``diverged``: kept in the results, never presented as a result.
"""

from __future__ import annotations

import dataclasses
import math
from pathlib import Path

from .config import DOMAINS, Profile, check_choice, pretrain_config, profile_config
from .data import chunk_documents, load_splits
from .methods import get_method, resolve_hparams
from .models import n_params
from .metrics import perplexity
from .pretraining import load_original, pretrain
from .runs import Run
from .train import OPTIMIZERS, Diverged, TrainConfig, train, training_flops


def sample_indices(total: int, n: int, seed: int) -> list[int]:
    """At most ``n`` of ``range(total)``, the same ones every time (seeded), sorted."""
    import random

    if total <= n:
        return list(range(total))
    return sorted(random.Random(seed).sample(range(total), n))


def fixed_sample(chunks, n: int, seed: int):
    """At most ``n`` chunks, the same ones every time (seeded), in their original order."""
    if len(chunks) <= n:
        return chunks
    return chunks.select(sample_indices(len(chunks), n, seed))


def chunked_splits(profile: Profile, domain: str, tokenizer) -> dict:
    """Every split of ``domain`` (or ``general``), chunked with ``tokenizer``."""
    return {s: chunk_documents(tokenizer, docs, profile.chunk_len)
            for s, docs in load_splits(domain, profile).items()}


def domain_chunks(profile: Profile, domain: str, tokenizer) -> tuple[dict, dict]:
    """The domain's splits and the general splits, chunked with ``tokenizer``."""
    return chunked_splits(profile, domain, tokenizer), chunked_splits(profile, "general",
                                                                      tokenizer)


def evaluation_sets(profile: Profile, chunks: dict, general: dict) -> dict:
    """What every model is evaluated on: forget / approximate / retain of the domain and
    general/evaluation (as ``general``), each a fixed sample of ``eval_chunks`` chunks."""
    return {s: fixed_sample(c, profile.eval_chunks, profile.seed) for s, c in
            [*chunks.items(), ("general", general["evaluation"])]}


def evaluation_row(model, sets: dict) -> dict:
    """``ppl_<split>`` and ``acc_<split>`` of ``model`` on each evaluation set, and under
    ``perplexity`` everything :func:`~llmunlearn.metrics.perplexity` gives per split but
    the per-chunk values (so that the full evaluation of the same model on the same sets
    can take it instead of computing it again)."""
    row = {"perplexity": {}}
    for split, c in sets.items():
        res = perplexity(model, c)
        row[f"ppl_{split}"], row[f"acc_{split}"] = res["ppl"], res["acc"]
        row["perplexity"][split] = {k: v for k, v in res.items() if k != "chunk_nll"}
    return row


def finite_row(row: dict) -> bool:
    """Whether every perplexity and accuracy of an :func:`evaluation_row` is finite."""
    return all(math.isfinite(v) for k, v in row.items() if k.startswith(("ppl_", "acc_")))


def evaluation_config(profile: Profile) -> dict:
    """What an evaluation depends on: the zoo's data and model sizes, the split design
    and the evaluation sample (not the unlearning budget)."""
    return {**pretrain_config(profile), "design": profile.design,
            "eval_chunks": profile.eval_chunks}


def evaluate_reference(profile: Profile, domain: str, model_run: Run) -> dict:
    """:func:`evaluation_row` of a model of the zoo (original, retrained) on ``domain``'s
    evaluation sets, the same chunks the unlearning runs are evaluated on (cached). The
    original model's row is every unlearning run's step 0."""
    import torch

    run = Run.create("evaluate", f"{profile.name}-{domain}-{model_run.path.name}",
                     {"profile": evaluation_config(profile), "domain": domain,
                      "model": model_run.path.name})
    if not run.done:
        torch.set_num_threads(profile.threads)
        model, tokenizer = load_original(model_run)
        chunks, general = domain_chunks(profile, domain, tokenizer)
        run.finish(evaluation_row(model.eval(), evaluation_sets(profile, chunks, general)))
    return run.summary


_ZOO_MODELS: dict = {}


def _zoo_model(run: Run):
    """A zoo model in evaluation mode, loaded once per process (a domain's evaluations all
    use the same references); at most four are kept."""
    if run.path not in _ZOO_MODELS:
        if len(_ZOO_MODELS) >= 4:
            _ZOO_MODELS.pop(next(iter(_ZOO_MODELS)))
        model, tokenizer = load_original(run)
        _ZOO_MODELS[run.path] = (model.eval().requires_grad_(False), tokenizer)
    return _ZOO_MODELS[run.path]


def evaluate_run(profile: Profile, domain: str, model_path, zoo: dict | None = None,
                 intervals: bool = True, known: dict | None = None) -> Run:
    """Every metric of :mod:`llmunlearn.evaluation` for the model in ``model_path`` (any
    Hugging Face folder) on ``domain``, cached next to the model's folder name. The zoo's
    retrained model for the domain and the original model serve as MIA references and
    as the target of the distance metrics when their tokenizer is the model's. ``known``:
    an :func:`evaluation_row` of this very model on these sets (an unlearning run's
    selected step, a zoo model's :func:`evaluate_reference`), whose perplexities are taken
    instead of computed again. Returns the evaluation :class:`Run`; its ``summary`` holds
    the metrics."""
    import torch

    from .evaluation import evaluate_model
    from .models import load_model
    from .pretraining import pretrain_zoo

    check_choice("domain", domain, DOMAINS)
    model_path = Path(model_path).resolve()
    run = Run.create("evaluate", f"{profile.name}-{domain}-{model_path.parent.name}-"
                     f"{model_path.name}", {"profile": evaluation_config(profile),
                                            "domain": domain, "model": str(model_path),
                                            "intervals": intervals})
    if run.done:
        return run
    torch.set_num_threads(profile.threads)
    model, tokenizer = load_model(model_path)
    chunks, general = domain_chunks(profile, domain, tokenizer)
    zoo = zoo if zoo is not None else pretrain_zoo(profile, progress=False)
    references = {}
    for name, key in (("retrained", f"retrained-{domain}"), ("original", "original")):
        if key not in zoo:  # a base-model profile has no retrained model
            continue
        ref, ref_tok = _zoo_model(zoo[key])
        if ref_tok.get_vocab() == tokenizer.get_vocab():
            references[name] = ref
    result = evaluate_model(model, tokenizer, evaluation_sets(profile, chunks, general),
                            references, profile=profile, intervals=intervals,
                            known_perplexity=(known or {}).get("perplexity"))
    run.finish(result)
    return run


def unlearn_all(profile: Profile, domain: str, methods=None, *, jobs: int | None = None,
                **kwargs) -> dict[str, Run]:
    """:func:`unlearn` for every method (or the ones named), same budget; method -> run.
    Runs that are not cached yet execute in ``jobs`` parallel processes (default: the
    profile's ``jobs``), each with its share of the profile's threads."""
    from .methods import METHODS
    from .parallel import run_tasks, with_threads

    methods = list(methods or METHODS)
    for m in methods:
        get_method(m)
    original = kwargs.pop("original", None) or pretrain(profile, progress=False)
    evaluate_reference(profile, domain, original)  # every run's step 0, computed once
    jobs = profile.jobs if jobs is None else jobs
    worker = with_threads(profile, jobs)
    runs = run_tasks(unlearn, [(m, (worker, domain, m), {**kwargs, "original": original,
                                                        "progress": jobs == 1 and
                                                        kwargs.get("progress", True)})
                               for m in methods], jobs, profile.threads,
                     desc=f"unlearning {domain}")
    return dict(zip(methods, runs))


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


def unlearn(profile: Profile, domain: str, method: str, *, lr: float | None = None,
            steps: int | None = None, hparams: dict | None = None,
            optimizer: str = "adamw", original: Run | None = None, seed: int | None = None,
            progress: bool = True) -> Run:
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
    ``flops`` (:func:`~llmunlearn.train.training_flops`: the trained tokens, Sophia's
    Hessian passes, the original model's pass that makes adversarial labels and, for
    methods that hold the frozen original model, 2 N per trained token, an upper bound on
    what it reads) and ``wall_s``. A run checkpoints at every evaluation and resumes from
    its last checkpoint.
    """
    import torch

    check_choice("domain", domain, DOMAINS)
    spec = get_method(method)
    hp = resolve_hparams(spec, hparams)
    original = original or pretrain(profile, progress=progress)
    lr = profile.unlearn_lr if lr is None else lr
    if not (lr > 0 and math.isfinite(lr)):
        raise ValueError(f"learning rate must be a positive finite number, got {lr}")
    if steps is not None and steps < 1:
        raise ValueError(f"steps must be at least 1, got {steps}")
    batch = profile.batch_for(domain)
    reference = evaluate_reference(profile, domain, original)  # step 0 of every method
    target = reference["ppl_approximate"]

    import time

    t_load = time.perf_counter()
    torch.set_num_threads(profile.threads)

    def load():
        model, tokenizer = load_original(original)
        return model, tokenizer, *domain_chunks(profile, domain, tokenizer)

    loaded = None
    if steps is None and profile.unlearn_epochs:  # the length depends on the forget set
        loaded = load()
        steps = max(1, int(profile.unlearn_epochs * len(loaded[2]["forget"]) // batch))
    elif steps is None:
        steps = profile.unlearn_steps
    seed = profile.seed if seed is None else seed
    if not isinstance(seed, int) or seed < 0:
        raise ValueError(f"seed must be a non-negative integer, got {seed!r}")
    cfg = TrainConfig(steps=steps, lr=lr, batch=batch,
                      micro_batch=min(batch, profile.unlearn_micro_batch), seed=seed,
                      optimizer=check_choice("optimizer", optimizer, OPTIMIZERS),
                      checkpoint_every=profile.eval_every,
                      gradient_checkpointing=bool(profile.gradient_checkpointing))
    run = Run.create("unlearn", f"{profile.name}-{domain}-{method}", {
        "profile": profile_config(profile), "domain": domain, "method": method,
        "hparams": hp, "original": original.path.name, "train": dataclasses.asdict(cfg)})
    if run.done:
        return run
    model, tokenizer, chunks, general = loaded or load()

    ref = None
    if spec.needs_reference or spec.prepare is not None:
        ref, _ = load_original(original)
        ref.eval().requires_grad_(False)
        from accelerate import PartialState
        ref.to(PartialState().device)  # where the trained model will be
    forget = chunks["forget"]
    if spec.prepare is not None:
        forget = spec.prepare(forget, ref, tokenizer, seed)
    streams = {"forget": forget}
    if spec.retain is not None:
        streams["retain"] = chunks["retain"] if spec.retain == "in" else general["retain"]
    evaluated = evaluation_sets(profile, chunks, general)
    load_s = time.perf_counter() - t_load

    def as_evaluated(m):
        return spec.evaluate_as(m, ref, hp) if spec.evaluate_as is not None else m

    def on_eval(m, step):
        if step == 0:  # every method starts from the original model: computed once
            return {k: v for k, v in reference.items()}
        m = as_evaluated(m)
        row = evaluation_row(m, evaluated)
        if not finite_row(row):
            raise Diverged(f"perplexity overflow at step {step}")
        if reaches_target({**row, "step": step}, target) and \
                not (run.path / "selected").exists():
            m.save_pretrained(run.path / "selected")  # the model the selection rule picks
            tokenizer.save_pretrained(run.path / "selected")
        return row

    result = train(model, lambda m, b: spec.loss(m, b, ref, hp), streams, cfg, run.path,
                   on_eval=on_eval, eval_every=profile.eval_every,
                   frozen=(ref,) if ref is not None else (),
                   desc=f"{method} on {domain}", progress=progress)
    if not result["is_main_process"]:
        return run  # under `accelerate launch`, the main process writes the results
    if result["status"] == "finished":
        as_evaluated(result["model"]).save_pretrained(run.path / "model")
        tokenizer.save_pretrained(run.path / "model")
        if not (run.path / "selected").exists():  # the rule falls back to the last step
            (run.path / "selected").symlink_to("model")
    n = n_params(result["model"])
    # a method whose labels come from the original model pays for that pass once
    labelled = int(sum(int(sum(r)) for r in chunks["forget"]["attention_mask"])) \
        if spec.labels_from_model else 0
    run.finish({
        "status": result["status"], "evals": result["evals"], "log": result["log"],
        "target": target, "selected": select_step(result["evals"], target),
        "tokens": result["tokens"], "batch": result["batch"],
        "hessian_tokens": result["hessian_tokens"],
        "flops": training_flops(n, result["tokens"],
                                reference_tokens=result["tokens"] if spec.needs_reference
                                else 0, hessian_tokens=result["hessian_tokens"],
                                labelling_tokens=labelled),
        "wall_s": result["wall_s"],
        "timing": {"load_s": load_s, "eval_s": result["eval_s"],
                   "train_s": result["wall_s"] - result["eval_s"]}})
    return run


def domain_models(profile: Profile, domain: str, zoo: dict | None = None, methods=None,
                  **unlearn_kwargs) -> dict[str, Path]:
    """The models compared on ``domain``: the original, the domain's exact retrained model
    (when the profile pre-trains one) and the selected model of every method that
    finished (runs are cached): name -> folder."""
    return {name: path for name, (path, _) in
            _measured_models(profile, domain, zoo, methods, **unlearn_kwargs).items()}


def _measured_models(profile: Profile, domain: str, zoo: dict | None, methods,
                     **unlearn_kwargs) -> dict[str, tuple[Path, dict]]:
    """:func:`domain_models` with, for each model, the :func:`evaluation_row` the runs
    already measured of it on the domain's evaluation sets (all cached)."""
    from .pretraining import pretrain_zoo

    zoo = zoo if zoo is not None else pretrain_zoo(profile, progress=False)
    runs = unlearn_all(profile, domain, methods, original=zoo["original"], **unlearn_kwargs)
    out = {name: (zoo[key].path / "model", evaluate_reference(profile, domain, zoo[key]))
           for name, key in (("original", "original"), ("retrained", f"retrained-{domain}"))
           if key in zoo}  # a base-model profile has no retrained model
    out.update({m: (r.path / "selected", r.summary["selected"]) for m, r in runs.items()
                if r.summary["status"] == "finished"})
    return out


def evaluate_domain(profile: Profile, domain: str, zoo: dict | None = None, methods=None,
                    **unlearn_kwargs) -> dict[str, Run]:
    """Evaluation runs of :func:`domain_models` (all cached): name -> :class:`Run`. What
    the runs already measured of a model on the same sets is not measured again."""
    from .pretraining import pretrain_zoo

    zoo = zoo if zoo is not None else pretrain_zoo(profile, progress=False)
    return {name: evaluate_run(profile, domain, path, zoo, known=row) for name, (path, row)
            in _measured_models(profile, domain, zoo, methods, **unlearn_kwargs).items()}
