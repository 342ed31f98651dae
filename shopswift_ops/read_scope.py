"""One read per render: selectors that several panels of one page ask for the same thing.

The war room renders ten panels; several of them read the same facts (the served policy, the ramp
status, the window's KPI counts, the feature counts of the window and its reference). Inside
`read_scope()` a selector decorated with `@reads_once` answers a repeated call with the same
arguments from its first answer, so a page costs one query per distinct fact and every panel shows
the same snapshot. Outside a scope (API calls, Celery tasks, services that write) the decorator
does nothing: each call reads the database as before.

Only for read-only selectors whose callers do not mutate the answer: the answer is shared. The
scope lives in a context variable, so concurrent requests (threads) and renders never share one.
"""
from __future__ import annotations

import functools
import inspect
from contextlib import contextmanager
from contextvars import ContextVar

_answers: ContextVar[dict | None] = ContextVar("read_scope_answers", default=None)


@contextmanager
def read_scope():
    """Repeated `@reads_once` calls inside the block are answered once; a nested scope joins the outer."""
    if _answers.get() is not None:
        yield
        return
    token = _answers.set({})
    try:
        yield
    finally:
        _answers.reset(token)


def in_read_scope() -> bool:
    """True inside read_scope(): a selector may then read more at once, knowing the answer is shared."""
    return _answers.get() is not None


def reads_once(fn):
    """Within a read_scope(), call `fn` once per distinct (hashable) arguments."""
    signature = inspect.signature(fn)

    @functools.wraps(fn)
    def wrapper(*args, **kwargs):
        answers = _answers.get()
        if answers is None:
            return fn(*args, **kwargs)
        # f(start=a) and f(start=a, segment_feature=None) are one question: key on every argument
        bound = signature.bind(*args, **kwargs)
        bound.apply_defaults()
        key = (fn.__module__, fn.__qualname__, tuple(bound.arguments.items()))
        try:
            hash(key)
        except TypeError:  # unhashable arguments (a list, a dict): nothing to share
            return fn(*args, **kwargs)
        if key not in answers:
            answers[key] = fn(*args, **kwargs)
        return answers[key]

    return wrapper
