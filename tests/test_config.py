import pytest

import llmunlearn as ul
from llmunlearn.config import get_profile


def test_profiles_differ_only_in_sizes():
    names = set(ul.PROFILES)
    assert names == {"smoke", "cpu", "gpu", "paper"}


def test_unknown_profile_lists_valid_ones():
    with pytest.raises(ValueError, match="unknown profile 'laptop'.*smoke, cpu, gpu, paper"):
        ul.get_profile("laptop")


def test_unknown_override_is_named():
    with pytest.raises(ValueError, match="chunk_length"):
        ul.get_profile("cpu", chunk_length=12)


def test_none_overrides_keep_the_profile_value():
    assert ul.get_profile("cpu", unlearn_lr=None).unlearn_lr == ul.PROFILES["cpu"].unlearn_lr
    assert ul.get_profile("cpu", unlearn_lr=1.0).unlearn_lr == 1.0


def test_unknown_method_lists_valid_ones():
    with pytest.raises(ValueError, match="unknown method 'npx'.*ga"):
        ul.get_method("npx")


def test_every_field_sits_in_exactly_one_part():
    import dataclasses

    from llmunlearn.config import OWNER, PARTS

    names = [f.name for cls in PARTS.values() for f in dataclasses.fields(cls)]
    assert len(names) == len(set(names)) == len(OWNER)
    assert not {"name", "seed", *PARTS} & set(names)
    p = get_profile("cpu")
    for name, part in OWNER.items():  # read through the profile = read from the part
        assert getattr(p, name) == getattr(getattr(p, part), name)


def test_replace_changes_one_part_and_refuses_unknown_fields():
    p = get_profile("cpu")
    q = p.replace(unlearn_lr=1e-3, threads=1)
    assert (q.unlearning.unlearn_lr, q.execution.threads) == (1e-3, 1)
    assert (q.data, q.model, q.pretraining, q.grid) == (p.data, p.model, p.pretraining, p.grid)
    with pytest.raises(ValueError, match="'unlearn_rate'"):
        p.replace(unlearn_rate=1e-3)


def test_run_keys_hold_the_parts_that_decide_what_a_run_computes():
    from llmunlearn.config import pretrain_config, profile_config

    p = get_profile("cpu")
    same_zoo = [
        p.replace(unlearn_lr=1e-3),  # unlearning
        p.replace(grid_lrs=(1e-3,), pilot_doses=(1,)),  # which runs a chapter asks for
        p.replace(threads=1, jobs=2, executor="ray"),  # where they run
        p.replace(design="shifted"),  # one original has seen both designs' forget sets
    ]
    assert all(pretrain_config(q) == pretrain_config(p) for q in same_zoo)
    for changed in (p.replace(d_model=96), p.replace(retain_chars=90_000), p.replace(seed=7)):
        assert pretrain_config(changed) != pretrain_config(p)
    assert profile_config(p.replace(unlearn_lr=1e-3)) != profile_config(p)
    assert profile_config(p.replace(grid_lrs=(1e-3,), threads=1)) == profile_config(p)


def test_compile_must_be_a_bool():
    with pytest.raises(ValueError, match="compile must be True or False, got 'yes'"):
        get_profile("cpu", compile="yes")
    assert get_profile("gpu", compile=True).execution.compile is True
