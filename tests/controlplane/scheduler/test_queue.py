"""The scheduling queue: priority order, back-off, and parked pods moved by events, not time."""
import asyncio

from controlplane.scheduler.queue import SchedulingQueue


class Clock:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


def pop(q: SchedulingQueue):
    return asyncio.run(asyncio.wait_for(q.pop(), 1))


def test_active_queue_is_ordered_by_priority_then_arrival():
    clock = Clock()
    q = SchedulingQueue(clock=clock)
    for name, priority in (("a", 0), ("b", 1000), ("c", 0), ("d", 1000)):
        q.add(("default", name), priority)
        clock.now += 1
    assert [pop(q)[1] for _ in range(4)] == ["b", "d", "a", "c"]


def test_unschedulable_pods_wait_for_an_event_and_back_off():
    clock = Clock()
    q = SchedulingQueue(clock=clock)
    key = ("default", "big")
    q.add(key)
    assert pop(q) == key
    q.unschedulable(key, q.scheduling_cycle)
    assert q.where(key) == "unschedulable"
    clock.now += 60
    q.flush_backoff_completed()
    assert q.where(key) == "unschedulable"        # time alone does not move it (before 5 minutes)
    assert q.move_all() == 1                      # a node was added
    assert q.where(key) == "active"               # its 1 s back-off is long over
    assert pop(q) == key
    q.unschedulable(key, q.scheduling_cycle)      # second failure: 2 s back-off
    q.move_all()
    assert q.where(key) == "backoff"
    clock.now += 2
    q.flush_backoff_completed()
    assert q.where(key) == "active"


def test_a_move_request_during_the_cycle_sends_the_pod_to_backoff_not_the_parked_set():
    clock = Clock()
    q = SchedulingQueue(clock=clock)
    key = ("default", "p")
    q.add(key)
    pop(q)
    cycle = q.scheduling_cycle
    q.move_all()                                  # a node appeared while the cycle ran
    q.unschedulable(key, cycle)
    assert q.where(key) == "backoff"


def test_parked_pods_are_flushed_after_five_minutes_and_backoff_is_capped():
    clock = Clock()
    q = SchedulingQueue(clock=clock)
    key = ("default", "p")
    q.add(key)
    for _ in range(6):
        pop(q)
        q.error(key)
        clock.now += 10                           # max back-off is 10 s
        q.flush_backoff_completed()
        assert q.where(key) == "active"
    pop(q)
    q.unschedulable(key, q.scheduling_cycle)
    clock.now += 299
    q.flush_unschedulable_leftover()
    assert q.where(key) == "unschedulable"
    clock.now += 1
    q.flush_unschedulable_leftover()
    assert q.where(key) == "active"
    q.delete(key)
    assert q.pending() == {"active": 0, "backoff": 0, "unschedulable": 0, "flight": 0}
