"""``lqz.threads.single_threaded``: torch work whose floats do not depend on the thread count."""

from __future__ import annotations

import threading

import pytest
import torch

from lqz.threads import single_threaded


def probe(tag: int) -> tuple[int, int, int]:
    return tag, torch.get_num_threads(), threading.get_ident()


@pytest.mark.parametrize("caller", [1, 2])
def test_each_call_runs_on_one_thread_and_the_callers_count_is_kept(caller: int) -> None:
    threads = torch.get_num_threads()
    try:
        torch.set_num_threads(caller)
        results = single_threaded([lambda t=t: probe(t) for t in range(3)])
        assert torch.get_num_threads() == caller
    finally:
        torch.set_num_threads(threads)
    assert [tag for tag, _, _ in results] == [0, 1, 2]
    assert all(count == 1 for _, count, _ in results)
    here = threading.get_ident()
    elsewhere = [ident != here for _, _, ident in results]
    # one thread allowed: everything on the caller's; two: the calls after the first elsewhere
    assert elsewhere == ([False, False, False] if caller == 1 else [False, True, True])


def test_an_error_in_a_call_reaches_the_caller_and_the_count_is_kept() -> None:
    def fail() -> None:
        raise ValueError("band failed")

    threads = torch.get_num_threads()
    try:
        torch.set_num_threads(2)
        with pytest.raises(ValueError, match="band failed"):
            single_threaded([lambda: 1, fail])
        assert torch.get_num_threads() == 2
    finally:
        torch.set_num_threads(threads)


def test_a_convolution_gives_the_same_floats_for_any_callers_thread_count() -> None:
    conv = torch.nn.Conv2d(64, 64, 5, padding=2)
    x = torch.randn(1, 64, 96, 96, generator=torch.Generator().manual_seed(0))
    threads = torch.get_num_threads()
    try:
        found = []
        for count in (1, 2):
            torch.set_num_threads(count)
            with torch.no_grad():
                found.append(single_threaded([lambda: conv(x), lambda: conv(x[..., :48, :])]))
    finally:
        torch.set_num_threads(threads)
    assert torch.equal(found[0][0], found[1][0]) and torch.equal(found[0][1], found[1][1])
