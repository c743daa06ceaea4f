"""The harness that runs the real firmware and its counterparts on this
machine, shared by the tests (host_tests/) and the benchmarks (tools/bench*):

- proc: a child process whose output lines are read and waited for;
- wait: polling a condition until a deadline, or through a window;
- peer: the firmware under the host MicroPython, its data folders and clients;
- cloud: the real lab cloud as a child process, and fake clouds and
  controllers made here;
- soak: sessions that keep requests in flight and check every reply.

Nothing here imports the tests.
"""
