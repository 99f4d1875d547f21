import pytest
from hypothesis import given, settings, strategies as st

from nncompress.course import chapters
from nncompress.course.params import ParameterError, Spec, check_value, common_specs, resolve


def test_preset_fills_none_and_explicit_values_win():
    specs = {**common_specs(), "epochs": Spec(int, presets={"cpu": 3, "gpu": 100}, low=1)}
    assert resolve(specs, {}).epochs == 3
    assert resolve(specs, {"preset": "gpu"}).epochs == 100
    assert resolve(specs, {"preset": "gpu", "epochs": 7}).epochs == 7


def test_unknown_name_is_named_with_a_hint():
    with pytest.raises(ParameterError, match=r"unknown parameter 'sed' \(did you mean 'seed'\?\)"):
        resolve(common_specs(), {"sed": 1})


def test_globals_style_namespace_ignores_modules_and_private_names():
    import math

    ns = {"math": math, "_x": 1, "In": [], "seed": 3}
    assert resolve(common_specs(), ns).seed == 3


def test_rerun_ignores_names_defined_after_the_first_call():
    ns = {"seed": 1}
    resolve(common_specs(), ns)
    ns["P"] = "later variable"
    ns["seed"] = 2
    assert resolve(common_specs(), ns).seed == 2


@pytest.mark.parametrize("name,value,match", [
    ("preset", "gpuu", "did you mean 'gpu'"),
    ("device", "tpu", "expected one of 'auto'"),
    ("seed", -1, "out of range"),
    ("seed", "zero", "expected int"),
    ("seed", True, "expected int"),
])
def test_bad_values_name_parameter_value_and_allowed(name, value, match):
    with pytest.raises(ParameterError, match=match) as err:
        resolve(common_specs(), {name: value})
    assert repr(name) in str(err.value)


def test_list_parameters():
    spec = Spec(list, [1.0], item=float, low=0.0)
    assert check_value("ts", [1, 2], spec) == [1.0, 2.0]
    with pytest.raises(ParameterError, match="ts"):
        check_value("ts", [], spec)
    with pytest.raises(ParameterError, match="out of range"):
        check_value("ts", [1.0, -2.0], spec)


@pytest.mark.parametrize("chapter", chapters.names())
def test_every_chapter_resolves_both_presets(chapter):
    for preset in ("cpu", "gpu"):
        p = chapters.resolve(chapter, {}, preset=preset)
        assert p.preset == preset
        assert all(v is not None for k, v in p.items() if k != "data_root")


_json = st.recursive(st.none() | st.booleans() | st.integers() | st.floats(allow_nan=True) | st.text(max_size=8),
                     lambda c: st.lists(c, max_size=3), max_leaves=5)


@settings(max_examples=150, deadline=None)
@given(chapter=st.sampled_from(chapters.names()), data=st.data())
def test_any_value_gives_params_or_a_clear_error(chapter, data):
    """Property: whatever value a user passes, the result is Params or a ParameterError naming it."""
    specs = chapters.specs(chapter)
    name = data.draw(st.sampled_from(sorted(specs)) | st.text(min_size=1, max_size=10).filter(str.isidentifier))
    value = data.draw(_json)
    try:
        resolve(specs, {name: value})
    except ParameterError as e:
        assert repr(name) in str(e)
