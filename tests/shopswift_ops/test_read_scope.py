"""read_scope / reads_once: one read per distinct question inside a scope, none shared outside."""
from shopswift_ops.read_scope import read_scope, reads_once

calls = []


@reads_once
def selector(*, start, segment=None):
    calls.append((start, segment))
    return {"start": start, "segment": segment}


@reads_once
def takes_a_list(values):
    calls.append(tuple(values))
    return len(values)


def setup_function():
    calls.clear()


def test_outside_a_scope_every_call_reads():
    selector(start=1)
    selector(start=1)
    assert calls == [(1, None), (1, None)]


def test_inside_a_scope_a_repeated_question_is_answered_once():
    with read_scope():
        first = selector(start=1)
        # the default spelled out is the same question
        assert selector(start=1, segment=None) is first
        selector(start=1, segment="signup_method")
        selector(start=2)
    assert calls == [(1, None), (1, "signup_method"), (2, None)]


def test_a_nested_scope_joins_the_outer_one_and_a_new_scope_reads_again():
    with read_scope():
        selector(start=1)
        with read_scope():
            selector(start=1)
        selector(start=1)
    with read_scope():
        selector(start=1)
    assert calls == [(1, None), (1, None)]


def test_unhashable_arguments_are_not_shared():
    with read_scope():
        assert takes_a_list([1, 2]) == 2
        assert takes_a_list([1, 2]) == 2
    assert calls == [(1, 2), (1, 2)]
