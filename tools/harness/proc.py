"""A child process whose output lines the tests read and wait for."""
import os
import re
import signal
import subprocess
import sys
import threading
import time

from tools.harness.wait import WAIT

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


def run(args, timeout=60, env=None):
    """Runs ARGS from the repository root to its end, with ENV over this
    process's environment; the CompletedProcess, its output as text."""
    return subprocess.run([str(a) for a in args], cwd=ROOT, capture_output=True, text=True,
                          timeout=timeout, env=dict(os.environ, **(env or {})))


def run_module(module, *args, timeout=60, env=None):
    """`python -m MODULE ARGS` with this interpreter, as run() runs it."""
    return run([sys.executable, "-m", module, *args], timeout, env)


class _Output:
    """One run's output lines, filled by a thread that reads the pipe."""

    def __init__(self):
        self.lines = []
        self.changed = threading.Condition()
        self.ended = False  # the pipe is closed: every line is in

    def pump(self, stream):
        for line in stream:
            with self.changed:
                self.lines.append(line.rstrip("\n"))
                self.changed.notify_all()
        with self.changed:
            self.ended = True
            self.changed.notify_all()


class LoggedProcess:
    proc = None
    group = False
    lines = ()
    _out = None

    def spawn(self, args, env=None, group=False):
        # Each run has its own output: a late line of the last one never
        # lands in this one's. GROUP makes it lead a process group of its
        # own, so that stop() can Ctrl-C it and its children as a terminal
        # does.
        self._out = _Output()
        self.lines = self._out.lines
        self.group = group
        self.proc = subprocess.Popen(args, cwd=ROOT, stdout=subprocess.PIPE,
                                     stderr=subprocess.STDOUT, text=True, start_new_session=group,
                                     env=dict(os.environ, **(env or {})))
        self._pump = threading.Thread(target=self._out.pump, args=(self.proc.stdout,), daemon=True)
        self._pump.start()

    def mark(self):
        """The number of lines so far: as SINCE, it makes the waits and counts
        below look only at lines printed after this moment."""
        return len(self.lines)

    @property
    def output(self):
        """Every output line so far, as one text."""
        return "\n".join(self.lines)

    def matching(self, pattern, since=0):
        """The output lines from SINCE on that match the regex, in order."""
        return [line for line in self.lines[since:] if re.search(pattern, line)]

    def count(self, pattern, since=0):
        """How many output lines from SINCE on match the regex."""
        return len(self.matching(pattern, since))

    def wait_log(self, pattern, timeout=WAIT, since=0):
        """Waits for an output line matching the regex (one already printed
        counts, from line SINCE on); returns the first such line."""
        def first():
            for line in self.lines[since:]:
                if re.search(pattern, line):
                    return line
            return None
        return self._wait(first, timeout, "a line matching %r" % pattern)

    def wait_count(self, pattern, want, timeout=WAIT, since=0):
        """Waits until WANT output lines from SINCE on match the regex;
        returns how many do."""
        def enough():
            seen = self.count(pattern, since)
            return seen if seen >= want else None
        return self._wait(enough, timeout, "%d lines matching %r" % (want, pattern))

    def _wait(self, find, timeout, what):
        out = self._out
        deadline = time.monotonic() + timeout
        with out.changed:
            while True:
                got = find()
                if got is not None:
                    return got
                left = deadline - time.monotonic()
                if left <= 0 or out.ended:
                    break
                out.changed.wait(left)
        why = "the process ended (status %s)" % self.proc.poll() if out.ended else "%g s passed" % timeout
        raise AssertionError("no %s: %s; output:\n%s" % (what, why, self.output))

    def wait_exit(self, timeout=WAIT):
        """Waits for the process to end on its own; returns its exit status,
        with all its output read."""
        status = self.proc.wait(timeout)
        self._drain()
        return status

    def _drain(self):
        # The process is gone; its last lines may still be in the pipe.
        self._pump.join(10)

    def kill(self):
        """Like a power cut: no chance to clean up."""
        self.proc.kill()
        self.proc.wait()
        self._drain()

    def stop(self, timeout=10):
        """Ctrl-C (to the whole group, if it leads one), and a kill after
        TIMEOUT seconds; returns the exit status, with all the output read."""
        if self.proc and self.proc.poll() is None:
            if self.group:
                os.killpg(self.proc.pid, signal.SIGINT)
            else:
                self.proc.send_signal(signal.SIGINT)
            try:
                self.proc.wait(timeout)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        if self.proc:
            self._drain()
        return self.proc.returncode if self.proc else None
