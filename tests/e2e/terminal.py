"""A command run on a pseudo-terminal that is resized while it runs, for the
e2e tests of `exec -it` (kubectl's and skiff's)."""
from __future__ import annotations

import fcntl
import os
import select
import signal
import struct
import subprocess
import termios
import time


def sizes_seen_in_a_terminal(argv: list[str], env: dict[str, str]) -> list[str]:
    """Run `argv` (an `exec -it POD -- sh -c "stty size; read x; stty size"`)
    on a pty of 33x101, resized to 40x120 while it runs (as a terminal window
    is): the sizes the command saw."""
    master, slave = os.openpty()
    fcntl.ioctl(slave, termios.TIOCSWINSZ, struct.pack("HHHH", 33, 101, 0, 0))
    proc = subprocess.Popen(argv, stdin=slave, stdout=slave, stderr=slave, env=env, start_new_session=True)
    os.close(slave)
    out = b""
    deadline = time.monotonic() + 60
    resized = False
    try:
        while time.monotonic() < deadline:
            if select.select([master], [], [], 1)[0]:
                try:
                    chunk = os.read(master, 4096)
                except OSError:   # EIO: every slave fd is closed
                    break
                if not chunk:
                    break
                out += chunk
            if b"33 101" in out and not resized:
                fcntl.ioctl(master, termios.TIOCSWINSZ, struct.pack("HHHH", 40, 120, 0, 0))
                os.kill(proc.pid, signal.SIGWINCH)   # what the kernel sends the terminal's foreground job
                time.sleep(0.5)
                os.write(master, b"go\r")
                resized = True
            if proc.poll() is not None and not select.select([master], [], [], 0.2)[0]:
                break
    finally:
        if proc.poll() is None:
            proc.kill()
        proc.wait()
        os.close(master)
    assert proc.returncode == 0, out
    return [line for line in out.decode(errors="replace").replace("\r", "").splitlines()
            if line.strip() and line.strip()[0].isdigit()]
