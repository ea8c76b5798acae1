"""skiff.progress as a person sees it: a live line on a terminal, plain lines
`interval` seconds apart on a pipe (nothing for work that ends sooner), and
the bytes a CountingFile reports."""
from __future__ import annotations

import io

from skiff.progress import CountingFile, ProgressLine, human_bytes, human_elapsed


class Clock:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


def test_rendering():
    clock = Clock()
    line = ProgressLine(io.StringIO(), live=False, clock=clock)
    clock.now += 23
    line.state = dict(stage="downloading packages", done=12, total=93, unit="packages", nbytes=41_234_567,
                      total_bytes=120_000_000)
    assert line.render() == "downloading packages 12/93, 41.2 MB of 120.0 MB, 23s"
    line.state = dict(stage="pulling abc", done=0, total=2, unit="layers done")
    assert line.render() == "pulling abc 0/2 layers done, 23s"
    line.state = dict(stage="loading bb.tar", nbytes=512)
    assert line.render() == "loading bb.tar, 512 B, 23s"
    assert (human_bytes(999), human_bytes(1000), human_bytes(5_300_000_000)) == ("999 B", "1.0 kB", "5.3 GB")
    assert (human_elapsed(59.9), human_elapsed(65)) == ("59s", "1m05s")


def test_pipe_gets_plain_lines_a_few_seconds_apart():
    clock, out = Clock(), io.StringIO()
    line = ProgressLine(out, live=False, interval=3.0, clock=clock)
    for second in range(10):
        clock.now = 100.0 + second
        line.update(stage="downloading", nbytes=second * 1000)
    line.message("abc: Pull complete")
    line.finish("done")
    assert out.getvalue() == ("downloading, 3.0 kB, 3s\n"
                              "downloading, 6.0 kB, 6s\n"
                              "downloading, 9.0 kB, 9s\n"
                              "abc: Pull complete\n"
                              "done\n")


def test_quick_work_on_a_pipe_prints_only_its_messages():
    out = io.StringIO()
    line = ProgressLine(out, live=False, interval=3.0, clock=Clock())
    line.update(stage="pulling abc", nbytes=10)
    print("abc: Pull complete", file=line)    # code that prints lines can be given a ProgressLine
    line.finish()
    assert out.getvalue() == "abc: Pull complete\n"


def test_terminal_gets_one_live_line():
    clock, out = Clock(), io.StringIO()
    line = ProgressLine(out, live=True, clock=clock)
    line.update(stage="extracting packages", done=1, total=3, unit="packages")
    clock.now += 0.05
    line.update(stage="extracting packages", done=2, total=3, unit="packages")   # too soon: not drawn
    clock.now += 0.1
    line.update(stage="extracting packages", done=3, total=3, unit="packages")
    line.message("warning: slow mirror")
    line.finish("bootstrapped debian:bookworm")
    assert out.getvalue() == (
        "\rextracting packages 1/3, 0s\x1b[K"
        "\rextracting packages 3/3, 0s\x1b[K"
        "\r\x1b[Kwarning: slow mirror\n"
        "\rextracting packages 3/3, 0s\x1b[K"
        "\r\x1b[K"
        "bootstrapped debian:bookworm\n")


def test_counting_file_reports_the_position():
    seen = []
    f = CountingFile(io.BytesIO(b"x" * 100), seen.append)
    f.read(30)
    f.read(30)
    f.seek(90)
    f.read()
    assert seen == [30, 60, 100]
    out = io.BytesIO()
    w = CountingFile(out, seen.append)
    w.write(b"abc")
    assert seen[-1] == 3 and out.getvalue() == b"abc"
