"""Approximate against exact retraining: is the paper's stand-in a fair one here?

The paper cannot retrain Yi-6B without the forget set, so it takes the original model's
perplexity on unseen same-domain text (the *approximate* set) as the forget perplexity a
retrained model would have. We pre-train our own zoo and can check that per domain and
split design:

- **R** = retrained model's forget perplexity / original model's approximate perplexity,
  with a bootstrap interval over documents. R = 1 means the stand-in is exact. It factors
  into (retrained model: forget / approximate), which is 1 when the two sets are alike,
  times (approximate set: retrained / original), which is above 1 when losing the forget
  set makes the model worse on the whole domain (the paper assumes this is negligible, as
  it is when the forget set is a tiny part of the pre-training data).
- **the retrained model's membership-inference AUC** (members: forget, non-members:
  approximate): a model that never saw either set should score 0.5 up to noise. Far from
  0.5, membership inference measures the difference between two texts, not membership.
- **seed-to-seed noise**: the same ratios for the original recipe with a second seed, so
  a gap can be read against what chance alone does.
- **token coverage**: the share of a set's tokens whose type never occurs in the
  retrained model's training text. Forget and approximate should be alike (the tokenizer
  never saw a forget set); a forget set with many tokens of its own would inflate R.
"""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
import torch

from ..config import DESIGNS, DOMAINS, Profile, check_choice
from ..data.corpus import (
    chunk_texts,
    chunked_splits,
    forget_documents,
    load_splits,
    pretraining_documents,
    sample_indices,
    source_id,
)
from ..evaluation import evaluation_config
from ..measurement.mia import attack_scores, blind_baseline, chunk_token_stats, mia_report
from ..runs import Run
from ..training.pretraining import load_original, pretrain, pretrain_zoo, pretraining_tokenizer
from .decisions import FORGET_BAND

ATTACKS = ("loss", "min_k@0.3")
"""Membership-inference attacks reported for the zoo: LOSS, and the paper's Min-K%."""

EQUIVALENCE_BAND = FORGET_BAND
"""R's equivalence band (:data:`llmunlearn.studies.decisions.FORGET_BAND`, written once
there): the stand-in *holds* when R's 95 % interval lies inside [1 / band, band] (an
equivalence rule: a wide interval is no evidence), *misses* when the interval lies wholly
outside, and is *undetermined* otherwise (:func:`~llmunlearn.studies.decisions.stands_in`)."""


def unseen_token_share(tokenizer, docs, training_docs) -> float:
    """Share of the tokens of ``docs`` whose type never occurs in ``training_docs``."""
    seen = set()
    for ids in tokenizer([d.text for d in training_docs], add_special_tokens=False)["input_ids"]:
        seen.update(ids)
    total = unseen = 0
    for ids in tokenizer([d.text for d in docs], add_special_tokens=False)["input_ids"]:
        total += len(ids)
        unseen += sum(1 for t in ids if t not in seen)
    return unseen / max(total, 1)


def token_coverage(profile: Profile, tokenizer=None):
    """Per domain and design: the share of forget and approximate tokens whose type never
    occurs in that (domain, design)'s retrained model's training text (a ``DataFrame``)."""

    tokenizer = tokenizer or pretraining_tokenizer(profile)
    everything = pretraining_documents(profile)
    rows = []
    for domain in DOMAINS:
        for design in DESIGNS:
            left_out = {d.id for d in forget_documents(profile, domain, design)}
            seen_by_retrained = [d for d in everything if d.id not in left_out]
            splits = load_splits(domain, profile, design)
            rows.append(
                {
                    "domain": domain,
                    "design": design,
                    **{
                        f"unseen share: {s}": unseen_token_share(
                            tokenizer, splits[s], seen_by_retrained
                        )
                        for s in ("forget", "approximate")
                    },
                }
            )
    return pd.DataFrame(rows).set_index(["domain", "design"])


def ratio_interval(
    num_nll, num_docs, den_nll, den_docs, seed: int, n_resamples: int = 2000
) -> tuple[float, float]:
    """95 % percentile bootstrap interval of exp(mean chunk NLL of the numerator set -
    mean chunk NLL of the denominator set), a ratio of two chunk-averaged perplexities on
    independent sets, resampling whole *documents* of each set (a document's chunks are
    correlated, so resampling chunks would give too narrow an interval). Written with
    numpy because ``scipy.stats.bootstrap`` resamples single observations."""
    rng = np.random.default_rng(seed)

    def draws(nll, docs):
        index = {d: i for i, d in enumerate(dict.fromkeys(docs))}
        which = np.array([index[d] for d in docs])
        sums = np.bincount(which, weights=np.asarray(nll, float))
        counts = np.bincount(which).astype(float)
        pick = rng.integers(0, len(sums), (n_resamples, len(sums)))
        return sums[pick].sum(1) / counts[pick].sum(1)

    ratios = np.exp(draws(num_nll, num_docs) - draws(den_nll, den_docs))
    return float(np.quantile(ratios, 0.025)), float(np.quantile(ratios, 0.975))


def _measure_models(profile: Profile, domain: str, models: dict[str, Run]) -> dict:
    """Each model's chunk NLL, perplexity and membership AUCs on every forget (members)
    and approximate (non-members) chunk of ``domain`` under the profile's design; members
    and non-members equally many, the larger set cut by a seeded sample."""

    torch.set_num_threads(profile.threads)
    out = {"ppl": {}, "chunk_nll": {}, "auc": {}}
    for name, model_run in models.items():
        model, tokenizer = load_original(model_run)
        model.eval()
        chunks = chunked_splits(profile, domain, tokenizer)
        sets = {s: chunks[s] for s in ("forget", "approximate")}
        stats = {s: chunk_token_stats(model, c) for s, c in sets.items()}
        out["chunk_nll"][name] = {s: [x["nll"] for x in st] for s, st in stats.items()}
        # intervals resample source documents: a passage travels with the one it was cut from
        out["chunk_doc"] = {s: [source_id(d) for d in c["doc_id"]] for s, c in sets.items()}
        out["ppl"][name] = {
            s: math.exp(float(np.mean(v))) for s, v in out["chunk_nll"][name].items()
        }
        n = min(len(sets["forget"]), len(sets["approximate"]))
        scores = {}
        for split in sets:
            keep = sample_indices(len(sets[split]), n, profile.seed)
            texts = chunk_texts(tokenizer, sets[split].select(keep))
            scores[split] = attack_scores([stats[split][i] for i in keep], texts)
        out["auc"][name] = mia_report(
            {a: scores["forget"][a] for a in ATTACKS},
            {a: scores["approximate"][a] for a in ATTACKS},
        )
        out["n_members"] = n
    return out


def original_attack(profile: Profile, domain: str, design: str, attack: str = "min_k@0.3"):
    """The original model's ``attack`` AUC (with its interval) on ``domain``'s forget
    against approximate chunks under ``design``: :func:`retraining_check`'s where the
    profile retrains that design, else the original measured alone (cached)."""

    check_choice("domain", domain, DOMAINS)
    check_choice("design", design, DESIGNS)
    if design in profile.retrained_designs:
        return retraining_check(profile, domain, design)["auc"]["original"][attack]
    p = profile.replace(design=design)
    original = pretrain(p, progress=False)
    run = Run.create(
        "groundtruth",
        f"{p.name}-{domain}-{design}-original",
        {
            "profile": evaluation_config(p),
            "domain": domain,
            "models": {"original": original.path.name},
            "attacks": ATTACKS,
        },
    )
    if not run.done:
        measured = _measure_models(p, domain, {"original": original})
        run.finish({"auc": measured["auc"], "ppl": measured["ppl"]})
    return run.summary["auc"]["original"][attack]


def retraining_check(profile: Profile, domain: str, design: str | None = None) -> dict:
    """The numbers behind the approximate-vs-exact question for ``domain`` and ``design``
    (default: the profile's), on every forget and approximate chunk; cached.

    Returns ``ppl[model][split]`` for the original, retrained and second-seed models,
    ``R`` with ``R_low``/``R_high``, ``R_seed`` (second seed's approximate perplexity /
    the original's: what a seed alone moves), ``retrained_forget_over_approximate``, and
    ``auc[model][attack]`` with ``auc`` and ``ci_low``/``ci_high`` per attack.
    """

    check_choice("domain", domain, DOMAINS)
    design = check_choice("design", design or profile.design, DESIGNS)
    profile = profile.replace(design=design)
    if profile.base_model:
        raise ValueError(
            f"profile {profile.name!r} starts from {profile.base_model!r}: "
            "there is no exact retrained model to compare with"
        )
    zoo = pretrain_zoo(profile, progress=False)
    models = {
        "original": zoo["original"],
        "retrained": zoo[f"retrained-{domain}"],
        "original-seed2": zoo["original-seed2"],
    }
    run = Run.create(
        "groundtruth",
        f"{profile.name}-{domain}-{design}",
        {
            "profile": evaluation_config(profile),
            "domain": domain,
            "models": {k: r.path.name for k, r in models.items()},
            "attacks": ATTACKS,
            "interval": "documents",
            "control": 1,
        },
    )
    if run.done:
        return {**run.summary, "verdict": verdict(run.summary)}
    out = {"domain": domain, "design": design, **_measure_models(profile, domain, models)}
    nll = out["chunk_nll"]
    out["n_chunks"] = {s: len(v) for s, v in nll["original"].items()}
    out["R"] = out["ppl"]["retrained"]["forget"] / out["ppl"]["original"]["approximate"]
    out["R_low"], out["R_high"] = ratio_interval(
        nll["retrained"]["forget"],
        out["chunk_doc"]["forget"],
        nll["original"]["approximate"],
        out["chunk_doc"]["approximate"],
        profile.seed,
    )
    out["R_seed"] = (
        out["ppl"]["original-seed2"]["approximate"] / out["ppl"]["original"]["approximate"]
    )
    out.update(factors(out))
    # the control: how the retrained recipe (its forget chunks replaced, or omitted under
    # forget_insertion="omit") moves the *other* domains'
    # approximate perplexity, which losing this forget set should not
    key = f"{design}/approximate"
    ratios = [
        models["retrained"].summary["ppl"][d][key] / models["original"].summary["ppl"][d][key]
        for d in DOMAINS
        if d != domain
    ]
    out["control"] = float(np.exp(np.mean(np.log(ratios))))
    out["R_adjusted"] = out["R"] / out["control"]
    run.finish(out)
    return {**run.summary, "verdict": verdict(run.summary)}


def factors(check: dict) -> dict:
    """R = (retrained model: forget / approximate perplexity) x (approximate set:
    retrained / original perplexity), from the perplexities of :func:`retraining_check`."""
    ppl = check["ppl"]
    return {
        "retrained_forget_over_approximate": ppl["retrained"]["forget"]
        / ppl["retrained"]["approximate"],
        "retrained_over_original_approximate": ppl["retrained"]["approximate"]
        / ppl["original"]["approximate"],
    }


def verdict(check: dict, attack: str = "min_k@0.3") -> str:
    """One sentence from the numbers of :func:`retraining_check`, by the rule stated in
    :data:`EQUIVALENCE_BAND`: does the approximate set stand in for exact retraining, and does
    membership inference measure membership?"""
    r, lo, hi = check["R"], check["R_low"], check["R_high"]
    where = f"On {check['domain']} ({check['design']} design)"
    band = EQUIVALENCE_BAND
    held = 1 / band <= lo and hi <= band
    if held:
        first = f"{where} the stand-in holds: R = {r:.2f} (95 % interval {lo:.2f} to {hi:.2f})"
    elif lo <= band and hi >= 1 / band:
        first = (
            f"{where} the stand-in is undetermined: R = {r:.2f}, but its 95 % interval "
            f"({lo:.2f} to {hi:.2f}) is not inside {1 / band:.2f}-{band:.2f}"
        )
    else:
        direction = "above" if r > 1 else "below"
        first = (
            f"{where} the stand-in misses: the exact retrained model's forget "
            f"perplexity is {abs(r - 1):.0%} {direction} the approximate target "
            f"(R = {r:.2f}, 95 % interval {lo:.2f} to {hi:.2f})"
        )
    noise = abs(check["R_seed"] - 1)
    parts = [f"{first}."]
    if check.get("ppl"):
        sets, model = factors(check).values()
        parts.append(
            f"R = {sets:.2f} x {model:.2f}: forget against approximate under the "
            "retrained model, times retrained against original on the approximate "
            "set."
        )
    parts.append(
        f"A second seed alone moves the approximate perplexity by {noise:.0%}"
        + (
            "."
            if held
            else ", so the miss is within seed-to-seed noise."
            if abs(r - 1) <= noise
            else ", so the miss is larger than seed-to-seed noise."
        )
    )
    a = check["auc"]["retrained"][attack]
    if a["ci_low"] <= 0.5 <= a["ci_high"]:
        second = (
            f"The retrained model's Min-K% AUC is {a['auc']:.2f} ({a['ci_low']:.2f} "
            f"to {a['ci_high']:.2f}), consistent with 0.5, so membership inference "
            "measures membership here"
        )
    else:
        second = (
            f"The retrained model's Min-K% AUC is {a['auc']:.2f} ({a['ci_low']:.2f} "
            f"to {a['ci_high']:.2f}), away from 0.5 without ever seeing either set, "
            "so membership inference here partly measures how the two sets differ"
        )
    return " ".join([*parts, f"{second}."])


def ground_truth_table(profile: Profile):
    """:func:`retraining_check` for every domain and design of the profile's
    ``retrained_designs``, one row each (a ``DataFrame`` indexed by domain and design)."""

    rows = []
    for domain in DOMAINS:
        for design in profile.retrained_designs:
            c = retraining_check(profile, domain, design)
            row = {
                "domain": domain,
                "design": design,
                "original forget ppl": c["ppl"]["original"]["forget"],
                "original approximate ppl": c["ppl"]["original"]["approximate"],
                "retrained forget ppl": c["ppl"]["retrained"]["forget"],
                "retrained approximate ppl": c["ppl"]["retrained"]["approximate"],
                "R": c["R"],
                "R low": c["R_low"],
                "R high": c["R_high"],
                **dict(
                    zip(
                        ("retrained forget / approximate", "approximate: retrained / original"),
                        factors(c).values(),
                    )
                ),
                "seed ratio": c["R_seed"],
                "control": c.get("control", float("nan")),
                "R adjusted": c.get("R_adjusted", float("nan")),
            }
            for model in ("retrained", "original", "original-seed2"):
                for attack in ATTACKS:
                    a = c["auc"][model][attack]
                    row[f"{model} AUC {attack}"] = a["auc"]
                    if model == "retrained":
                        row[f"{model} AUC {attack} low"] = a["ci_low"]
                        row[f"{model} AUC {attack} high"] = a["ci_high"]
            row["verdict"] = c["verdict"]
            rows.append(row)
    return pd.DataFrame(rows).set_index(["domain", "design"])


def blind_baseline_table(profile: Profile, folds: int = 5):
    """Per domain and design: the blind baseline (:func:`llmunlearn.measurement.mia.blind_baseline`,
    text alone, cross-validated by document) on every forget (members) and approximate
    (non-members) chunk, beside the original model's Min-K% AUC on the same sets
    (:func:`original_attack`), and whether the model-based attack beats the blind one
    (its interval above the blind baseline's). A ``DataFrame`` indexed by domain and
    design."""

    tokenizer = pretraining_tokenizer(profile)
    rows = []
    for domain in DOMAINS:
        for design in DESIGNS:
            p = profile.replace(design=design)
            chunks = chunked_splits(p, domain, tokenizer)
            sets = {}
            for split in ("forget", "approximate"):
                c = chunks[split]
                sets[split] = (chunk_texts(tokenizer, c), [source_id(d) for d in c["doc_id"]])
            n_docs = min(len(set(sets[s][1])) for s in sets)
            blind = blind_baseline(
                *sets["forget"], *sets["approximate"], folds=min(folds, n_docs), seed=p.seed
            )
            attack = original_attack(profile, domain, design)
            rows.append(
                {
                    "domain": domain,
                    "design": design,
                    "blind AUC": blind["auc"],
                    "blind low": blind["ci_low"],
                    "blind high": blind["ci_high"],
                    "blind TPR@1%": blind["tpr@0.01"],
                    "Min-K% AUC (original)": attack["auc"],
                    "Min-K% low": attack["ci_low"],
                    "Min-K% high": attack["ci_high"],
                    "attack beats blind": bool(attack["ci_low"] > blind["ci_high"]),
                    "folds": blind["folds"],
                }
            )
    return pd.DataFrame(rows).set_index(["domain", "design"])
