"""Issue 35's decision rules: comparisons whose false-decision rate is at most 5 % under no
true difference, equivalence for membership, a forget tolerance from the measured gap,
controls that can fail, and a claim's verdict over at least two domains."""

import math

import numpy as np
import pandas as pd
import pytest

from llmunlearn.studies.decisions import (
    AUC_MARGIN,
    FORGET_GAP_FRACTION,
    MAX_FALSE_DECISION,
    MIN_EFFECT,
    aa_rate,
    all_of,
    check_doses,
    check_fraction,
    check_min_effect,
    check_replicates,
    decide,
    forget_reached,
    k_of,
    membership_equivalent,
    overall,
    paired_auc_difference,
    replicate_noise,
    simulated_false_decision_rate,
    threshold,
)
from llmunlearn.studies.robustness import controls, rule_columns


@pytest.mark.parametrize("replicates", [2, 3])
@pytest.mark.parametrize("noise", [0.01, 0.05, 0.2, 1.0])
def test_the_comparison_rule_decides_at_most_5_percent_of_null_comparisons(replicates, noise):
    """Null replicates (no true difference) at noise from far below to far above the minimum
    effect: the share of comparisons the rule decides is at most 5 %, up to the simulation's
    own error (3 standard errors of a binomial share at 5 % over 2,000 trials)."""
    trials = 2000
    rate = simulated_false_decision_rate(
        replicates, noise, MIN_EFFECT["good-cell share"], trials=trials, seed=replicates
    )
    assert rate <= MAX_FALSE_DECISION + 3 * math.sqrt(0.05 * 0.95 / trials)


def test_the_old_scale_free_rule_s_failures_are_undetermined_now():
    """Two replicates whose differences share a sign and size decided under the old rule
    whatever their size; a tie counted as zero noise. Now the noise comes from A/A pairs."""
    noise, df = replicate_noise([[0.37, 0.30], [0.5, 0.41], [0.2, 0.26], [0.6, 0.6]])
    assert noise > 0  # one unit ties; pooled over units the noise is not zero
    # Sophia 0.3725 against AdamW 0.3660 on one replicate: far inside the noise
    d = decide([0.3725], [0.3660], noise, df, MIN_EFFECT["good-cell share"])
    assert d.verdict == "undetermined" and d.reason == "within noise"
    assert d.detectable > 0.1
    # a large, consistent difference decides
    assert decide([0.9, 0.95], [0.1, 0.12], noise, df, 0.1).verdict == "supports"
    assert decide([0.1, 0.12], [0.9, 0.95], noise, df, 0.1).verdict == "contradicts"
    # below the minimum effect: undetermined however small the noise
    assert decide([0.55, 0.55], [0.5, 0.5], 1e-6, 100, 0.1).verdict == "undetermined"
    # no A/A pair: the noise is unknown, nothing decides
    assert replicate_noise([[0.3], [0.5]])[1] == 0
    assert decide([0.9], [0.1], math.nan, 0, 0.1).reason == "noise unknown"
    assert threshold(0.0, 5, 2, 0.1) == math.inf  # every unit tied: unknown, not zero


def test_the_measured_a_a_rate_counts_a_method_against_itself_across_replicates():
    rng = np.random.default_rng(0)
    pairs = rng.normal(0.5, 0.05, (40, 2))
    rate, n = aa_rate(pairs, 0.01)
    assert n == 40 and rate <= 0.15
    # a unit whose replicates differ far beyond the others' noise is decided: the A/A rate
    # catches a set-up whose replicates are not alike
    units = [[0.5, 0.51], [0.5, 0.49]] * 10 + [[0.1, 0.9]]
    rate, n = aa_rate(units, 0.01)
    assert n == 21 and rate == pytest.approx(1 / 21)
    # three replicates give three A/A comparisons per unit (every pair, one against one)
    rate, n = aa_rate(rng.normal(0.5, 0.05, (30, 3)), 0.01)
    assert n == 90 and rate <= 0.15
    # a missing replicate leaves the unit's other pair
    rate, n = aa_rate([[0.5, 0.51, np.nan], [0.5, 0.49, 0.5], [0.4, 0.41, 0.42]], 0.01)
    assert n == 1 + 3 + 3


def test_forget_reached_is_a_fraction_of_the_measured_gap_either_way():
    ret, orig = 10.0, 10.0 * 1.4  # the original's forget perplexity 40 % above the referee's
    tol = 1.4**FORGET_GAP_FRACTION
    assert forget_reached(ret, ret, orig)  # the referee itself
    assert not forget_reached(orig, ret, orig)  # the untouched original: the whole gap
    assert forget_reached(ret * tol * 0.999, ret, orig)
    assert forget_reached(ret / tol * 1.001, ret, orig)  # overshooting within the tolerance
    assert not forget_reached(ret * tol * 1.01, ret, orig)
    assert not forget_reached(ret / tol / 1.01, ret, orig)
    assert not forget_reached(ret, ret, ret)  # no gap: nothing to reach
    assert not forget_reached(math.nan, ret, orig)


def test_the_paired_auc_difference_cancels_what_the_texts_share():
    rng = np.random.default_rng(1)
    docs_m = np.repeat(np.arange(15), 4)
    docs_n = np.repeat(np.arange(15, 30), 4)
    difficulty_m = rng.normal(0, 1, 60) + np.repeat(rng.normal(0, 1, 15), 4)
    difficulty_n = rng.normal(0, 1, 60) + np.repeat(rng.normal(0, 1, 15), 4)
    ref = {"forget": difficulty_m, "approximate": difficulty_n}
    same = paired_auc_difference(ref, ref, docs_m, docs_n)
    assert same == (0.0, 0.0, 0.0)
    # a model that nudged the scores a little: its difference is small, and its paired
    # interval is much narrower than the two models' AUC intervals would say
    near = {k: v + rng.normal(0, 0.05, 60) for k, v in ref.items()}
    d, lo, hi = paired_auc_difference(near, ref, docs_m, docs_n)
    assert lo <= d <= hi and hi - lo < 0.05
    assert membership_equivalent(lo, hi)
    # members that a model knows (scored higher): the difference is positive and not
    # equivalent
    knows = {"forget": difficulty_m + 1.5, "approximate": difficulty_n}
    d, lo, hi = paired_auc_difference(knows, ref, docs_m, docs_n)
    assert lo > AUC_MARGIN and not membership_equivalent(lo, hi)
    with pytest.raises(ValueError, match="same chunks"):
        paired_auc_difference({"forget": [1.0], "approximate": [0.0]}, ref, docs_m, docs_n)


def test_a_claim_needs_two_determined_domains_and_none_opposed():
    assert overall({"a": "supports", "b": "supports", "c": "undetermined (no power)"}) == (
        "supports"
    )
    assert overall({"a": "supports", "b": "undetermined (within noise)", "c": "x"}) == (
        "undetermined"
    )
    assert overall({"a": "supports", "b": "contradicts", "c": "supports"}) == "mixed"
    assert overall({"a": "undetermined (no power)"}) == "not testable here"
    labels = {"arxiv": "supports", "github": "undetermined (no power)", "books": "contradicts"}
    assert k_of(labels) == "2 of 3 domains"
    assert k_of({"method": "supports", "learning rate": "undetermined"}) == "1 of 2 cases"
    # a conjunction needs every part
    assert all_of({"x": "supports", "y": "undetermined (within noise)"}) == (
        "undetermined (within noise)"
    )
    assert all_of({"x": "supports", "y": "contradicts"}) == "contradicts"
    assert all_of({"x": "supports", "y": "supports"}) == "supports"


@pytest.mark.parametrize(
    "check, value, message",
    [
        (check_doses, [], "doses"),
        (check_doses, [1, 4, 2], "doses"),
        (check_doses, [0, 1], "doses"),
        (check_doses, [1, 1.5], "doses"),
        (lambda v: check_min_effect("utility cost", v), 0, "minimum effect"),
        (lambda v: check_min_effect("utility cost", v), -0.1, "minimum effect"),
        (lambda v: check_fraction("forget gap fraction", v), 1.0, r"\(0, 1\)"),
        (lambda v: check_fraction("forget gap fraction", v), 0, r"\(0, 1\)"),
        (check_replicates, (42,), "at least 2 replicate"),
    ],
)
def test_bad_decision_settings_are_refused_naming_the_value(check, value, message):
    with pytest.raises(ValueError, match=message) as err:
        check(value)
    assert repr(value) in str(err.value) or str(value) in str(err.value)
    assert check_doses([1, 2, 4, 8]) == (1, 2, 4, 8)


def _control_grid(ret2_forget, ret2_diff):
    """A grid of one domain: the first replicate's original (step 0, forget perplexity 13
    against the referee's 10, AUC 0.2 above it) and retrained model, and the second
    replicate's retrained model with forget perplexity ``ret2_forget`` and scores that
    differ from the referee's by ``ret2_diff``."""
    rng = np.random.default_rng(0)
    m, n = rng.normal(0, 1, 40), rng.normal(0, 1, 40)
    docs = {
        "forget": [f"f{i // 2}" for i in range(40)],
        "approximate": [f"a{i // 2}" for i in range(40)],
    }
    ref_scores = {"forget": m, "approximate": n}
    base = dict(domain="books", optimizer="-", lr=0.0, status="finished", target=12.0)
    common = dict(ppl_retain=5.0, ppl_general=8.0, retain_rel=1.0, general_rel=1.0)
    rows = [
        dict(
            base,
            method="retrained",
            replicate=42,
            step=0,
            ppl_forget=10.0,
            forget_ref=1.0,
            forget_gap=1.3,
            forget_rel=10 / 12,
            auc_diff=0.0,
            auc_diff_low=0.0,
            auc_diff_high=0.0,
            scores=ref_scores,
            score_docs=docs,
            **common,
        ),
        dict(
            base,
            method="ga",
            optimizer="adamw",
            lr=1e-3,
            replicate=42,
            step=0,
            ppl_forget=13.0,
            forget_ref=1.3,
            forget_gap=1.3,
            forget_rel=13 / 12,
            auc_diff=0.2,
            auc_diff_low=0.12,
            auc_diff_high=0.28,
            **common,
        ),
        dict(
            base,
            method="retrained",
            replicate=43,
            step=0,
            ppl_forget=ret2_forget,
            forget_ref=1.0,
            forget_gap=1.3,
            forget_rel=ret2_forget / 12,
            auc_diff=0.0,
            auc_diff_low=0.0,
            auc_diff_high=0.0,
            scores={"forget": m + ret2_diff, "approximate": n},
            score_docs=docs,
            **common,
        ),
    ]
    return rule_columns(pd.DataFrame(rows))


def test_the_original_fails_every_removal_rule_and_an_independent_retrained_model_passes():
    ctrl = controls(_control_grid(ret2_forget=10.2, ret2_diff=0.0)).set_index(["control", "rule"])
    for rule in ("forget reached", "membership equivalent", "good"):
        assert not ctrl.loc[("negative", rule), "passes"], rule
        assert ctrl.loc[("positive", rule), "passes"], rule
    removal = ctrl.drop(index="paper's view", level="rule")
    assert removal["as expected"].all()
    # the paper's view: the original's forget perplexity within x1.2 of its approximate
    # target, so it passes: that rule has no power here, and the controls say so
    assert ctrl.loc[("negative", "paper's view"), "passes"]
    assert not ctrl.loc[("negative", "paper's view"), "as expected"]


def test_a_positive_control_that_misses_the_referee_fails_the_rule():
    """An independent retrained model whose forget perplexity lies further from the
    referee's than the tolerance (or whose members score higher) fails: the rule is then
    too strict for the seed-to-seed noise, and the controls show it."""
    ctrl = controls(_control_grid(ret2_forget=11.5, ret2_diff=1.0)).set_index(["control", "rule"])
    assert not ctrl.loc[("positive", "forget reached"), "passes"]
    assert not ctrl.loc[("positive", "membership equivalent"), "passes"]


def test_a_rule_the_original_passes_makes_its_verdicts_undetermined_for_no_power():
    from llmunlearn.studies.claims import power

    why = power(controls(_control_grid(ret2_forget=10.2, ret2_diff=0.0)))
    assert why["books", "paper's view"] == "no power"  # the original passes it
    assert why["books", "good"] == "" and why["books", "forget reached"] == ""
    why = power(controls(_control_grid(ret2_forget=11.5, ret2_diff=1.0)))
    assert why["books", "forget reached"] == "positive control fails"


def _sibling(grid, forget, diff):
    """The referee's sibling as :func:`sibling_frame` gives it: a first-replicate row against
    the referee (forget perplexity ``forget``, AUC difference ``diff`` with a tight interval)."""
    r = grid[(grid["method"] == "retrained") & (grid["replicate"] == 42)].iloc[0].copy()
    r["ppl_forget"], r["forget_ref"], r["forget_rel"] = forget, forget / 10.0, forget / 12
    r["auc_diff"], r["auc_diff_low"], r["auc_diff_high"] = diff, diff - 0.02, diff + 0.02
    return rule_columns(pd.DataFrame([r]).drop(columns=["forget_ok", "member_ok", "good"]))


def test_the_sibling_decides_the_positive_control_and_other_bases_are_shown_beside_it():
    """With a sibling (same base, another final slice) the positive control is the sibling;
    another replicate's retrained model (another base) is judged and shown as "other
    bases", and its failing does not disqualify a rule; the sibling's failing does."""
    from llmunlearn.studies.claims import power

    grid = _control_grid(ret2_forget=11.5, ret2_diff=1.0)  # the other base misses the referee
    ctrl = controls(grid, _sibling(grid, forget=10.1, diff=0.0))
    assert set(ctrl["control"]) == {"negative", "positive", "other bases"}
    pos = ctrl[ctrl["control"] == "positive"].set_index("rule")
    assert (pos["base"] == "same").all() and (pos["replicate"] == 42).all()
    assert pos.loc["forget reached", "passes"] and pos.loc["membership equivalent", "passes"]
    other = ctrl[ctrl["control"] == "other bases"].set_index("rule")
    assert (other["base"] == "other").all() and not other.loc["forget reached", "passes"]
    assert power(ctrl)["books", "forget reached"] == ""  # the sibling decides
    failing = controls(grid, _sibling(grid, forget=11.5, diff=0.3))
    assert power(failing)["books", "forget reached"] == "positive control fails"
    assert power(failing)["books", "membership equivalent"] == "positive control fails"


def test_the_forget_tolerance_is_the_forget_rules_band_either_way():
    from llmunlearn.studies.decisions import forget_reached, forget_tolerance

    for original, referee in ((8.0, 10.0), (12.5, 10.0)):  # the original below or above
        t = forget_tolerance(original / referee)
        assert t > 1
        for side in (t, 1 / t):  # just inside the band on either side, just outside
            assert forget_reached(referee * side**0.999, referee, original)
            assert not forget_reached(referee * side**1.001, referee, original)
