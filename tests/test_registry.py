import pytest

from robustbench_w.errors import UnknownNameError
from robustbench_w.registry import Registry


class Thing:
    pass


@pytest.fixture
def reg():
    r = Registry("thing", Thing)
    r.register("Alpha", Thing(), aliases=("a", "first"))
    r.register("beta", Thing())
    return r


def test_names_are_lower_case_sorted_and_aliases_resolve(reg):
    assert reg.names() == ["alpha", "beta"]
    assert reg.get("A") is reg.get("alpha") is reg.get("FIRST")
    assert reg.aliases_of("alpha") == ["a", "first"]
    assert "Beta" in reg and "gamma" not in reg


def test_duplicate_name_or_alias_raises_value_error(reg):
    with pytest.raises(ValueError, match="already registered: alpha"):
        reg.register("alpha", Thing())
    with pytest.raises(ValueError, match="first"):
        reg.register("gamma", Thing(), aliases=("first",))


def test_wrong_type_raises_type_error(reg):
    with pytest.raises(TypeError, match="thing entry"):
        reg.register("gamma", object())


def test_unknown_name_is_a_key_error_with_close_matches(reg):
    with pytest.raises(KeyError) as info:
        reg.get("alpah")
    assert isinstance(info.value, UnknownNameError)
    assert "did you mean 'alpha'" in str(info.value)
    assert "available: alpha, beta" in str(info.value)


def test_include_exclude_wildcards(reg):
    reg.register("alpine", Thing())
    assert reg.names(include="al*") == ["alpha", "alpine"]
    assert reg.names(include="al*", exclude="*ne") == ["alpha"]


def test_isolated_removes_what_was_registered_inside(reg):
    with reg.isolated():
        reg.register("gamma", Thing())
        assert "gamma" in reg
    assert "gamma" not in reg
