import pytest

import llmunlearn as ul


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
