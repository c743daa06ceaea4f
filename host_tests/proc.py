"""A child process whose output lines the tests read and wait for."""
import os
import queue
import re
import signal
import subprocess
import threading
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


class LoggedProcess:
    proc = None
    lines = ()

    def spawn(self, args, env=None):
        self.lines = []
        self._q = queue.Queue()
        self.proc = subprocess.Popen(args, cwd=ROOT, stdout=subprocess.PIPE,
                                     stderr=subprocess.STDOUT, text=True,
                                     env=dict(os.environ, **(env or {})))
        threading.Thread(target=self._pump, args=(self.proc,), daemon=True).start()

    def _pump(self, proc):
        for line in proc.stdout:
            self.lines.append(line.rstrip("\n"))
            self._q.put(line)

    def wait_log(self, pattern, timeout=10):
        """Waits for an output line matching the regex (one already printed
        counts); returns it."""
        for line in list(self.lines):
            if re.search(pattern, line):
                return line
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            try:
                line = self._q.get(timeout=0.1)
            except queue.Empty:
                if self.proc.poll() is not None and self._q.empty():
                    break
                continue
            if re.search(pattern, line):
                return line
        raise AssertionError("no line matching %r; output:\n%s" % (pattern, "\n".join(self.lines)))

    def kill(self):
        """Like a power cut: no chance to clean up."""
        self.proc.kill()
        self.proc.wait()

    def stop(self):
        if self.proc and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGINT)
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                self.kill()
        return self.proc.returncode if self.proc else None
