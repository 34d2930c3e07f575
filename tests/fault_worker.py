"""Run tools/relation_train_net.py with one fault from the environment variable SGG_FAULT.

    SGG_FAULT=kill_step:K   SIGKILL right after the K-th optimizer step
    SGG_FAULT=kill_save:K   SIGKILL in the middle of the K-th torch.save (half the bytes written)
    SGG_FAULT=term_step:K   SIGTERM (a scheduler's pre-emption notice) right after the K-th step
    SGG_FAULT=stop_step:K   SIGSTOP right after the K-th step (a rank that hangs)

An empty or unset SGG_FAULT runs the tool as it is. The remaining arguments are the tool's.
"""
import contextlib
import os
import runpy
import signal
import sys

from fault_injection import at_step, failing_save, kill_self
from relation_tool_args import REPO

SIGNALS = {"kill": signal.SIGKILL, "term": signal.SIGTERM, "stop": signal.SIGSTOP}


def fault(spec: str) -> contextlib.AbstractContextManager:
    if not spec:
        return contextlib.nullcontext()
    kind, count = spec.rsplit(":", 1)
    if kind == "kill_save":
        return failing_save(int(count), kill_self)
    return at_step(int(count), lambda: kill_self(SIGNALS[kind.split("_")[0]]))


if __name__ == "__main__":
    tool = os.path.join(REPO, "tools", "relation_train_net.py")
    sys.argv = [tool, *sys.argv[1:]]
    with fault(os.environ.get("SGG_FAULT", "")):
        runpy.run_path(tool, run_name="__main__")
