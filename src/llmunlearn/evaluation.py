"""Everything measured of one model on one domain, in one JSON (``llmunlearn evaluate``):
this module assembles rows; each metric family is a module of :mod:`llmunlearn.measurement`,
defined once, with its direction, and cross-checked in the tests against an independent
computation.

- **perplexity** (:mod:`llmunlearn.measurement.metrics`): forget should rise to the target,
  the rest stay near the original model.
- **membership inference** (:mod:`llmunlearn.measurement.mia`): members = forget chunks,
  non-members = approximate chunks; AUC 0.5 is ideal.
- **verbatim memorisation** (:mod:`llmunlearn.measurement.memorisation`): exact-match length
  and ROUGE-L of greedy continuations of forget chunks (lower is better after unlearning).
- **utility** (:mod:`llmunlearn.measurement.utility`): four-way multiple choice on held-out
  general text (chance 25 %, higher is better).
- **distance to the exact retrained model** (:mod:`llmunlearn.measurement.distance`): mean
  next-token KL(retrained || model) on held-out text (lower is better) and the MIA AUC gap
  (model minus retrained; 0 is ideal, as MUSE's PrivLeak).
"""

from __future__ import annotations

import dataclasses
import math
from pathlib import Path

import numpy as np
import torch
from datasets import concatenate_datasets

from .config import (
    DOMAINS,
    DataConfig,
    ModelConfig,
    PretrainConfig,
    Profile,
    UnlearnConfig,
    check_choice,
    pretrain_config,
)
from .data.corpus import (
    HELDOUT,
    chunk_splits,
    chunk_texts,
    domain_chunks,
    fixed_sample,
    frozen_splits,
    load_splits,
    sample_indices,
    source_id,
    thawed_splits,
)
from .measurement.distance import kl_to
from .measurement.memorisation import verbatim_memorisation
from .measurement.metrics import perplexity
from .measurement.utility import multiple_choice_accuracy, utility_items
from .measurement.mia import (
    LOW_FPRS,
    attack_scores,
    auc,
    chunk_token_stats,
    cluster_auc_interval,
    cluster_ratio_interval,
    mia_report,
    min_k,
    roc_points,
    tpr_at_fpr,
)
from .models import check_checkpoint, check_context, load_model, weights_digest
from .runs import Run, once
from .training.pretraining import load_original, pretrain_zoo

ROC_ATTACK = "min_k@0.3"
"""The attack whose ROC curve is kept (the paper's Min-K% at its smallest k)."""


def mia_indices(n_forget: int, n_approximate: int, seed: int = 0):
    """Which forget chunks are members and which approximate chunks non-members: both
    cut to the same count, the larger set by a seeded sample (not its first chunks, which
    would be the first documents by id)."""
    n = min(n_forget, n_approximate)
    if n == 0:
        raise ValueError(
            f"membership inference needs forget and approximate chunks; got "
            f"{n_forget} and {n_approximate}"
        )
    return sample_indices(n_forget, n, seed), sample_indices(n_approximate, n, seed)


def mia_sets(sets: dict, seed: int = 0):
    """Members (forget) and non-members (approximate) chunks of :func:`mia_indices`."""
    m, n = mia_indices(len(sets["forget"]), len(sets["approximate"]), seed)
    return sets["forget"].select(m), sets["approximate"].select(n)


_REFERENCE_STATS: dict = {}


def reference_token_stats(ref, chunks) -> list[dict]:
    """:func:`~llmunlearn.measurement.mia.chunk_token_stats` of a reference model of the zoo,
    kept for the process: every model evaluated on a domain is compared with the same
    references on the same chunks, so each is computed once (keyed by the reference's checkpoint
    path and the chunks' fingerprint)."""
    key = (getattr(ref, "name_or_path", None) or id(ref), chunks._fingerprint)
    if key not in _REFERENCE_STATS:
        if len(_REFERENCE_STATS) > 64:
            _REFERENCE_STATS.clear()
        _REFERENCE_STATS[key] = chunk_token_stats(ref, chunks)
    return _REFERENCE_STATS[key]


def evaluate_model(
    model,
    tokenizer,
    sets: dict,
    references: dict,
    *,
    profile,
    intervals: bool = True,
    known_perplexity: dict | None = None,
) -> dict:
    """Every metric of ``model`` on a domain's evaluation ``sets`` (forget, approximate,
    retain, general); ``references`` maps names ("retrained", "original") to models used as MIA
    references, and "retrained" also as the target of the distance metrics. ``known_perplexity``:
    split -> :func:`~llmunlearn.measurement.metrics.perplexity` result (without ``chunk_nll``)
    already measured for this model on these sets; taken as it is for retain and general (forget and
    approximate are read again, for MIA's per-token statistics)."""
    model.eval()
    out, stats = {"perplexity": {}}, {}
    for s, c in sets.items():  # forget and approximate: the same pass gives MIA's stats
        if s not in ("forget", "approximate") and s in (known_perplexity or {}):
            out["perplexity"][s] = dict(known_perplexity[s])
            continue
        res = perplexity(model, c, token_stats=s in ("forget", "approximate"))
        stats[s] = res.pop("token_stats", None)
        out["perplexity"][s] = {k: v for k, v in res.items() if k != "chunk_nll"}
    idx = dict(zip("mn", mia_indices(len(sets["forget"]), len(sets["approximate"]), profile.seed)))
    members, non_members = sets["forget"].select(idx["m"]), sets["approximate"].select(idx["n"])
    texts = {n: chunk_texts(tokenizer, ds) for n, ds in (("m", members), ("n", non_members))}
    stats = {k: [stats[s][i] for i in idx[k]] for k, s in (("m", "forget"), ("n", "approximate"))}
    out["mia"] = {}
    for ref_name, ref in [(None, None), *references.items()]:
        ref_stats = (
            {k: reference_token_stats(ref, ds) for k, ds in (("m", members), ("n", non_members))}
            if ref is not None
            else {"m": None, "n": None}
        )
        sm = attack_scores(stats["m"], texts["m"], ref_stats["m"])
        sn = attack_scores(stats["n"], texts["n"], ref_stats["n"])
        if ref is None:
            out["mia"].update(mia_report(sm, sn, intervals))
            fpr, tpr = roc_points(sm[ROC_ATTACK], sn[ROC_ATTACK])
            out["mia"]["roc"] = {"attack": ROC_ATTACK, "fpr": fpr.tolist(), "tpr": tpr.tolist()}
        else:
            out["mia"][f"reference:{ref_name}"] = mia_report(
                {"r": sm["reference"]}, {"r": sn["reference"]}, intervals
            )["r"]
    out["mia"]["n_members"] = len(members)
    half = profile.chunk_len // 2
    out["verbatim"] = verbatim_memorisation(
        model, sets["forget"], prefix=half, suffix=min(32, half)
    )
    out["utility"] = multiple_choice_accuracy(model, utility_items(profile, sets["general"]))
    if "retrained" in references:
        held_out = concatenate_datasets([sets["approximate"], sets["general"]])
        out["to_retrained"] = {"kl": kl_to(model, references["retrained"], held_out)}
    return out


# --- evaluating models of the zoo and of the runs, cached ---------------------------


def evaluation_sets(unlearning: UnlearnConfig, seed: int, chunks: dict, general: dict) -> dict:
    """What every model is evaluated on along a run (the sizes are the profile's
    ``unlearning`` part, the samples drawn with ``seed``): every forget chunk (``forget``);
    every approximate chunk (``approximate``: the membership rule's non-members, issue 35;
    a fixed sample of ``membership_chunks`` where a profile caps it); and a fixed sample of
    ``eval_chunks`` chunks of the *held-out* retain chunks (``retain``: the retain
    documents no method trains on, where the profile holds some out; else the retain
    split) and of general/evaluation (``general``)."""

    sampled = {
        "retain": chunks.get(HELDOUT, chunks.get("retain")),
        "general": general.get("evaluation"),
    }
    return {
        **({"forget": chunks["forget"]} if "forget" in chunks else {}),
        **(
            {"approximate": fixed_sample(chunks["approximate"], unlearning.membership_chunks, seed)}
            if "approximate" in chunks
            else {}
        ),
        **{
            s: fixed_sample(c, unlearning.eval_chunks, seed)
            for s, c in sampled.items()
            if c is not None
        },
    }


def evaluation_row(model, sets: dict, seed: int, intervals: bool = False) -> dict:
    """``ppl_<split>`` and ``acc_<split>`` of ``model`` on each evaluation set, the
    membership-inference AUC of forget (members) against approximate (non-members) chunks
    of :func:`mia_indices` (``seed``) for the paper's attack (``auc``: Min-K% with
    k = 0.3) and the loss attack (``auc_loss``), and under ``perplexity`` everything
    :func:`~llmunlearn.measurement.metrics.perplexity` gives per split but the per-chunk values (so
    that the full evaluation of the same model on the same sets can take it instead of
    computing it again). One forward pass per set gives all of it. With ``intervals``,
    ``auc_low`` / ``auc_high``: the 95 % interval of ``auc`` over documents
    (:func:`~llmunlearn.measurement.mia.cluster_auc_interval`). Under ``chunk_nll``, the per-chunk
    losses on the utility sets (retain, general), so that a ratio to another model's row has
    an interval over documents (:func:`utility_intervals`); with ``intervals``, on every set
    (claim 4's R reads forget and approximate), and the utility chunks' documents
    (``doc_id``)."""
    row, stats = {"perplexity": {}, "chunk_nll": {}}, {}
    for split, c in sets.items():
        res = perplexity(
            model, c, token_stats="logp" if split in ("forget", "approximate") else False
        )
        stats[split] = res.pop("token_stats", None)
        row[f"ppl_{split}"], row[f"acc_{split}"] = res["ppl"], res["acc"]
        row["perplexity"][split] = {k: v for k, v in res.items() if k != "chunk_nll"}
        if split in UTILITY_SETS or intervals:  # forget/approximate: for R (zoo models)
            row["chunk_nll"][split] = res["chunk_nll"]
        if split in UTILITY_SETS:
            if intervals:
                row.setdefault("doc_id", {})[split] = [source_id(d) for d in c["doc_id"]]
    if "forget" in sets and "approximate" in sets:
        # every evaluated chunk's Min-K% score, for the paired membership rule (the
        # difference from the retrained model's AUC on the same chunks: studies.decisions)
        row["scores"] = {s: [_score(x, ROC_ATTACK) for x in stats[s]] for s in SCORED}
        row["auc_all"] = auc(*(np.array(row["scores"][s]) for s in SCORED))
        if intervals:
            row["score_docs"] = {s: [source_id(d) for d in sets[s]["doc_id"]] for s in SCORED}
        m, n = mia_indices(len(sets["forget"]), len(sets["approximate"]), seed)
        for key, attack in (("auc", ROC_ATTACK), ("auc_loss", "loss")):
            score = {
                s: [_score(stats[s][i], attack) for i in idx]
                for s, idx in (("forget", m), ("approximate", n))
            }
            row[key] = auc(np.array(score["forget"]), np.array(score["approximate"]))
            if intervals and key == "auc":
                for f in LOW_FPRS:  # beside the AUC, as every attack is reported
                    row[f"tpr@{f:g}"] = tpr_at_fpr(score["forget"], score["approximate"], f)["tpr"]
                row["smallest_fpr"] = 1 / len(n)
                row["auc_low"], row["auc_high"] = cluster_auc_interval(
                    score["forget"],
                    [source_id(sets["forget"]["doc_id"][i]) for i in m],
                    score["approximate"],
                    [source_id(sets["approximate"]["doc_id"][i]) for i in n],
                    seed=seed,
                )
    return row


UTILITY_SETS = ("retain", "general")
"""The evaluation sets whose perplexity measures utility (held-out retain, general)."""

SCORED = ("forget", "approximate")
"""The evaluation sets whose chunks get a membership score in every row (members, non-members)."""


def utility_intervals(row: dict, reference: dict, seed: int = 0) -> dict:
    """``<split>_low`` / ``<split>_high``: the 95 % interval over documents of the
    perplexity ratio ``row`` / ``reference`` (two :func:`evaluation_row` of the same
    chunks; ``reference`` evaluated with ``intervals``) on each utility set both hold
    (:func:`~llmunlearn.measurement.mia.cluster_ratio_interval`)."""

    out = {}
    for split in UTILITY_SETS:
        a = row.get("chunk_nll", {}).get(split)
        b = reference.get("chunk_nll", {}).get(split)
        docs = reference.get("doc_id", {}).get(split)
        if a is not None and b is not None and docs is not None:
            out[f"{split}_low"], out[f"{split}_high"] = cluster_ratio_interval(
                a, b, docs, seed=seed
            )
    return out


def _score(chunk_stats: dict, attack: str) -> float:
    """One chunk's score under ``attack`` ("loss" or "min_k@K"; see
    :mod:`llmunlearn.measurement.mia`)."""
    if attack == "loss":
        return -chunk_stats["nll"]
    return min_k(chunk_stats["logp"], float(attack.split("@")[1]))


def finite_row(row: dict) -> bool:
    """Whether every perplexity and accuracy of an :func:`evaluation_row` is finite."""
    return all(math.isfinite(v) for k, v in row.items() if k.startswith(("ppl_", "acc_")))


def evaluation_config(config) -> dict:
    """What an evaluation depends on: the zoo's data and model sizes, the split design
    and the evaluation sample (not the unlearning budget), of a profile or of the
    :class:`DomainSets` resolved from it (both hold the seed and the parts read here)."""
    return {
        **pretrain_config(config),
        "design": config.data.design,
        "eval_chunks": config.unlearning.eval_chunks,
        "membership_chunks": config.unlearning.membership_chunks,
        "row": EVALUATION_ROW,
    }


EVALUATION_ROW = 8
"""The version of what an :func:`evaluation_row` holds, in every evaluation's and unlearning
run's key. 2: rows hold the AUC; 4: every forget chunk, held-out retain, whole target; 5: the
full evaluation's attacks report TPR at low FPR; 6: utility chunk losses; 7: every chunk's
Min-K% score and its source document (the paired membership rule); 8: every approximate
chunk (membership_chunks), every set's chunk losses."""


@dataclasses.dataclass(frozen=True)
class DomainSets:
    """What evaluating a zoo model on one domain reads (``evaluate`` in
    :data:`~llmunlearn.stages.STAGES`), resolved from a profile by :func:`domain_sets`: the
    data stage's documents of the domain and of general, and the parts an evaluation is
    keyed by (:func:`evaluation_config`) and run with. :func:`zoo_evaluation` and
    :func:`membership_evaluation` read these, never the profile. Hashable (the documents
    are tuples), so that each evaluation is resolved once per process."""

    name: str  # the profile's name: the runs' folder names
    seed: int  # the profile's seed: the evaluation's samples
    domain: str
    data: DataConfig
    model: ModelConfig
    pretraining: PretrainConfig
    unlearning: UnlearnConfig  # the evaluation's sizes (eval_chunks, membership_chunks)
    threads: int
    documents: tuple  # (("domain", ((split, (Document, ...)), ...)), ("general", ...))

    def splits(self, which: str = "domain") -> dict:
        """``which`` ("domain" or "general") as split -> documents (``load_splits``)."""
        return thawed_splits(self.documents)[which]

    def chunks(self, tokenizer) -> tuple[dict, dict]:
        """The domain's and general's splits chunked with ``tokenizer`` (kept per process)."""
        length = self.model.chunk_len
        return tuple(chunk_splits(self.splits(w), tokenizer, length) for w in ("domain", "general"))


def domain_sets(profile: Profile, domain: str) -> DomainSets:
    """Resolve the evaluation's inputs on ``domain`` from ``profile`` (the data stage's
    splits of the domain, with its design, and of general)."""
    check_choice("domain", domain, DOMAINS)
    return DomainSets(
        name=profile.name,
        seed=profile.seed,
        domain=domain,
        data=profile.data,
        model=profile.model,
        pretraining=profile.pretraining,
        unlearning=profile.unlearning,
        threads=profile.threads,
        documents=frozen_splits(
            {"domain": load_splits(domain, profile), "general": load_splits("general", profile)}
        ),
    )


def evaluate_reference(profile: Profile, domain: str, model_run: Run) -> dict:
    """:func:`zoo_evaluation` of a zoo model on ``domain``, its inputs resolved from
    ``profile`` (:func:`domain_sets`)."""
    return zoo_evaluation(domain_sets(profile, domain), model_run)


@once
def zoo_evaluation(sets: DomainSets, model_run: Run) -> dict:
    """:func:`evaluation_row` of a model of the zoo (original, retrained) on the domain's
    evaluation sets, the same chunks the unlearning runs are evaluated on (cached). The
    original model's row is every unlearning run's step 0."""

    run = Run.create(
        "evaluate",
        f"{sets.name}-{sets.domain}-{model_run.path.name}",
        {"profile": evaluation_config(sets), "domain": sets.domain, "model": model_run.path.name},
    )
    if not run.done:
        torch.set_num_threads(sets.threads)
        model, tokenizer = load_original(model_run)
        chunks, general = sets.chunks(tokenizer)
        evaluated = evaluation_sets(sets.unlearning, sets.seed, chunks, general)
        row = evaluation_row(model.eval(), evaluated, sets.seed, intervals=True)
        # the target: the whole approximate set, measured once per model and domain (a
        # zoo model measured it when it was trained, on the same chunks)
        whole = model_run.summary.get("ppl", {}).get(sets.domain, {})
        key = f"{sets.data.design}/approximate"
        row["whole_approximate_ppl"] = (
            whole[key] if key in whole else perplexity(model, chunks["approximate"])["ppl"]
        )
        run.finish(row)
    return run.summary


def evaluate_membership(profile: Profile, domain: str, model_run: Run) -> dict:
    """:func:`membership_evaluation` of a zoo model on ``domain``, its inputs resolved
    from ``profile`` (:func:`domain_sets`)."""
    return membership_evaluation(domain_sets(profile, domain), model_run)


@once
def membership_evaluation(sets: DomainSets, model_run: Run) -> dict:
    """:func:`evaluation_row` with intervals of a pre-trained model on the domain's forget
    and approximate chunks only (every chunk of both), cached per model: what the
    membership rules read of a model no other table needs (its Min-K% scores, their source
    documents, ``auc_all``)."""

    run = Run.create(
        "evaluate",
        f"{sets.name}-{sets.domain}-{model_run.path.name}-membership",
        {
            "profile": evaluation_config(sets),
            "domain": sets.domain,
            "model": model_run.path.name,
            "sets": "forget+approximate",
        },
    )
    if not run.done:
        torch.set_num_threads(sets.threads)
        model, tokenizer = load_original(model_run)
        chunks, _ = sets.chunks(tokenizer)
        scored = {s: chunks[s] for s in SCORED}
        run.finish(evaluation_row(model.eval(), scored, sets.seed, intervals=True))
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


def load_folder(profile: Profile, domain: str, model_path):
    """The model and tokenizer in ``model_path`` (checked against the profile's context)
    and ``domain``'s splits and the general splits chunked with that tokenizer."""

    torch.set_num_threads(profile.threads)
    model, tokenizer = load_model(model_path)
    check_context(model, profile.chunk_len)
    return model, tokenizer, *domain_chunks(profile, domain, tokenizer)


@once
def evaluate_folder(
    profile: Profile,
    domain: str,
    model_path,
    zoo: dict | None = None,
    intervals: bool = True,
    known: dict | None = None,
) -> Run:
    """Every metric of :mod:`llmunlearn.evaluation` for the model in ``model_path`` (any
    Hugging Face folder) on ``domain``, cached next to the model's folder name. The zoo's
    retrained model for the domain and the original model serve as MIA references and
    as the target of the distance metrics when their tokenizer is the model's. ``known``:
    an :func:`evaluation_row` of this very model on these sets (an unlearning run's
    selected step, a zoo model's :func:`evaluate_reference`), whose perplexities are taken
    instead of computed again. Returns the evaluation :class:`Run`; its ``summary`` holds
    the metrics."""

    check_choice("domain", domain, DOMAINS)
    model_path = check_checkpoint(Path(model_path).resolve())  # before anything is written
    run = Run.create(
        "evaluate",
        f"{profile.name}-{domain}-{model_path.parent.name}-{model_path.name}",
        {
            "profile": evaluation_config(profile),
            "domain": domain,
            "model": str(model_path),
            "weights": weights_digest(model_path),  # new weights in the folder: a new run
            "intervals": intervals,
        },
    )
    if run.done:
        return run
    model, tokenizer, chunks, general = load_folder(profile, domain, model_path)
    zoo = zoo if zoo is not None else pretrain_zoo(profile, progress=False)
    references = {}
    for name, key in (("retrained", f"retrained-{domain}"), ("original", "original")):
        if key not in zoo:  # a base-model profile has no retrained model
            continue
        ref, ref_tok = _zoo_model(zoo[key])
        if ref_tok.get_vocab() == tokenizer.get_vocab():
            references[name] = ref
    result = evaluate_model(
        model,
        tokenizer,
        evaluation_sets(profile.unlearning, profile.seed, chunks, general),
        references,
        profile=profile,
        intervals=intervals,
        known_perplexity=(known or {}).get("perplexity"),
    )
    run.finish(result)
    return run
