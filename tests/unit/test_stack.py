"""`make up` keeps the system up: a process that exits is started again, the rest stay up."""
import sys
import threading
import time

from pipeline.devtools.stack import Stack


def test_a_process_that_exits_is_restarted_and_the_others_keep_running():
    stack = Stack(["brief", "steady"], overrides={
        "brief": f"{sys.executable} -c pass",
        "steady": f"{sys.executable} -c 'import time; time.sleep(30)'"})
    exits = []
    stopping = threading.Event()
    with stack:
        steady = stack.procs["steady"].pid
        supervisor = threading.Thread(target=stack.supervise, args=(stopping,), kwargs={
            "say": lambda _: None, "on_exit": lambda name, code: exits.append(name),
            "poll_s": 0.1, "max_backoff_s": 0.4})
        supervisor.start()
        until = time.monotonic() + 10
        while stack.restarts.get("brief", 0) < 2 and time.monotonic() < until:
            time.sleep(0.1)
        stopping.set()
        supervisor.join()
        assert stack.restarts.get("brief", 0) >= 2
        assert "steady" not in exits and stack.procs["steady"].pid == steady
        assert stack.procs["steady"].poll() is None


def test_a_held_process_stays_down_until_released():
    stack = Stack(["brief"], overrides={"brief": f"{sys.executable} -c pass"})
    stack.held.add("brief")
    stopping = threading.Event()
    with stack:
        supervisor = threading.Thread(target=stack.supervise, args=(stopping,),
                                      kwargs={"say": lambda _: None, "poll_s": 0.1})
        supervisor.start()
        time.sleep(1.0)
        assert stack.restarts == {}
        stopping.set()
        supervisor.join()
