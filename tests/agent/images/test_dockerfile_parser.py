"""The Dockerfile parser: Docker's splitting of every instruction, directives,
continuations, flags, stages, and errors that name the line and instruction."""
from __future__ import annotations

import pytest

from agent.images.dockerfile import DockerfileError, parse, validate
from agent.images.shellwords import SubstitutionError, expand_word, expand_words, split_words


def one(text: str) -> dict:
    df = parse(text=text)
    assert len(df.instructions) == 1
    return df.instructions[0].as_json()


@pytest.mark.parametrize("text,instruction,flags,args", [
    ('RUN ["echo", "a b"]', "run", [], ["echo", "a b"]),
    ("RUN echo $HOME && ls", "run", [], ["echo $HOME && ls"]),
    ("run --network=none apt-get update", "run", ["--network=none"], ["apt-get update"]),
    ('CMD ["python3", "/app.py"]', "cmd", [], ["python3", "/app.py"]),
    ("CMD python3 /app.py", "cmd", [], ["python3 /app.py"]),
    ('CMD [not json', "cmd", [], ["[not json"]),
    ('ENTRYPOINT ["/init"]', "entrypoint", [], ["/init"]),
    ("ENV A=1 B=2", "env", [], ["A", "1", "B", "2"]),
    ('ENV A="x y" B=z\\ w', "env", [], ["A", '"x y"', "B", "z\\ w"]),
    ("ENV OLD some value", "env", [], ["OLD", "some value"]),
    ('LABEL "a.b"="c" d=e', "label", [], ['"a.b"', '"c"', "d", "e"]),
    ("LABEL version 1.0", "label", [], ["version", "1.0"]),
    ("ARG A B=2", "arg", [], ["A", "B=2"]),
    ("COPY --from=build --chown=1:1 a b /dst/", "copy", ["--from=build", "--chown=1:1"], ["a", "b", "/dst/"]),
    ('COPY ["a b", "/dst/"]', "copy", [], ["a b", "/dst/"]),
    ("ADD --chown=app app.tar.gz /srv", "add", ["--chown=app"], ["app.tar.gz", "/srv"]),
    ("FROM --platform=linux/amd64 busybox AS Build", "from", ["--platform=linux/amd64"],
     ["busybox", "AS", "Build"]),
    ("EXPOSE 5000 53/udp", "expose", [], ["5000", "53/udp"]),
    ('VOLUME ["/a", "/b"]', "volume", [], ["/a", "/b"]),
    ("VOLUME /a /b", "volume", [], ["/a", "/b"]),
    ("WORKDIR /app dir", "workdir", [], ["/app dir"]),
    ("USER app:app", "user", [], ["app:app"]),
    ("STOPSIGNAL SIGINT", "stopsignal", [], ["SIGINT"]),
    ('SHELL ["/bin/bash", "-c"]', "shell", [], ["/bin/bash", "-c"]),
    ("HEALTHCHECK NONE", "healthcheck", [], ["NONE"]),
    ("HEALTHCHECK --interval=5s --retries=3 CMD curl -f http://x/", "healthcheck",
     ["--interval=5s", "--retries=3"], ["CMD", "curl -f http://x/"]),
    ('HEALTHCHECK CMD ["curl", "-f"]', "healthcheck", [], ["CMD", "curl", "-f"]),
    ("ONBUILD RUN make", "onbuild", [], ["RUN make"]),
    ("MAINTAINER someone", "maintainer", [], ["someone"]),
])
def test_instruction_splitting(text, instruction, flags, args):
    assert one(text) == {"line": 1, "instruction": instruction, "flags": flags, "args": args}


def test_comments_continuations_and_line_numbers():
    df = parse(text="\n".join([
        "# comment",
        "FROM busybox",
        "",
        "RUN echo a \\",
        "  # a comment inside the continuation",
        "",
        "    && echo b",
        "   # indented comment",
        "COPY a \\",
        "     /b",
    ]))
    got = [(i.line, i.instruction, i.args) for i in df.instructions]
    assert got == [(2, "from", ("busybox",)), (4, "run", ("echo a     && echo b",)),
                   (9, "copy", ("a", "/b"))]


def test_escape_directive_backtick():
    df = parse(text="# escape=`\nFROM busybox\nRUN dir c:\\ `\n  && echo x\n")
    assert df.escape == "`" and df.directives == {"escape": "`"}
    assert df.instructions[1].args == ("dir c:\\   && echo x",)


def instructions(text: str) -> list[tuple[str, tuple[str, ...]]]:
    return [(i.instruction, i.args) for i in parse(text=text).instructions]


def test_escaped_escape_at_line_end_does_not_continue():
    # Issue 18's example: Docker parses two ENV instructions.
    assert instructions("FROM busybox\n"
                        "ENV C trailing\\\\backslash\\\\\n"
                        "ENV D This should not be appended to C\n") == [
        ("from", ("busybox",)),
        ("env", ("C", "trailing\\\\backslash\\\\")),
        ("env", ("D", "This should not be appended to C"))]


@pytest.mark.parametrize("text,expected", [
    # Windows paths with the default escape: `c:\\` ends its line, `c:\` continues it.
    ("FROM nanoserver\nCOPY testfile.txt c:\\\\\nRUN dir c:\\\n",
     [("from", ("nanoserver",)), ("copy", ("testfile.txt", "c:\\\\")), ("run", ("dir c:",))]),
    ("FROM nanoserver\nCOPY testfile.txt c:\\\nRUN dir c:\n",
     [("from", ("nanoserver",)), ("copy", ("testfile.txt", "c:RUN", "dir", "c:"))]),
    # With a backtick escape a backslash is an ordinary character.
    ("# escape=`\nFROM nanoserver\nCOPY testfile.txt c:\\\nRUN dir c:\\\n",
     [("from", ("nanoserver",)), ("copy", ("testfile.txt", "c:\\")), ("run", ("dir c:\\",))]),
    ("# escape=`\nFROM nanoserver\nRUN dir c:\\ ``\nRUN echo next\n",
     [("from", ("nanoserver",)), ("run", ("dir c:\\ ``",)), ("run", ("echo next",))]),
    ("# escape=`\nFROM nanoserver\nRUN dir c:\\ `  \n  && echo x\n",
     [("from", ("nanoserver",)), ("run", ("dir c:\\   && echo x",))]),
    # A line that is only the escape character continues too; blanks after it do not matter.
    ("FROM busybox\nRUN echo a \\\n\\\nb\n", [("from", ("busybox",)), ("run", ("echo a b",))]),
    ("# escape=`\nFROM busybox\nRUN echo a `\n`\t\nb\n", [("from", ("busybox",)), ("run", ("echo a b",))]),
    # Three escapes: the one before the last is an escape, so Docker does not continue (its regex).
    ("FROM busybox\nRUN echo a\\\\\\\nRUN echo b\n",
     [("from", ("busybox",)), ("run", ("echo a\\\\\\",)), ("run", ("echo b",))]),
])
def test_line_continuation_follows_docker(text, expected):
    assert instructions(text) == expected


def test_syntax_directive_and_directive_only_at_top():
    df = parse(text="# syntax=docker/dockerfile:1\nFROM busybox\n# escape=`\nRUN a \\\n b\n")
    assert df.directives == {"syntax": "docker/dockerfile:1"}
    assert df.instructions[1].args == ("a  b",)


def test_invalid_escape_directive():
    with pytest.raises(DockerfileError) as err:
        parse(text="# escape=x\nFROM busybox\n")
    assert "escape" in str(err.value)


def test_meta_args_and_stages():
    df = validate(dockerfile=parse(text=(
        "ARG BASE=busybox\nARG V\nFROM ${BASE}:${V:-latest} AS Build\nRUN x\n"
        "FROM scratch\nCOPY --from=build /a /a\n")))
    assert [i.args for i in df.meta_args] == [("BASE=busybox",), ("V",)]
    assert [(s.index, s.name, s.base, len(s.instructions)) for s in df.stages] == [
        (0, "build", "${BASE}:${V:-latest}", 1), (1, None, "scratch", 1)]


@pytest.mark.parametrize("text,message", [
    ("RUN echo\n", "Dockerfile:1: RUN: no build stage in current context"),
    ("FROM busybox\nFROB x\n", "Dockerfile:2: unknown instruction: FROB"),
    ("FROM busybox\nCOPY onlyone\n", "Dockerfile:2: COPY: requires at least two arguments"),
    ("FROM busybox\nCOPY --form=x a b\n", "Dockerfile:2: COPY: unknown flag: --form"),
    ("FROM busybox\nRUN --chown=1 x\n", "Dockerfile:2: RUN: unknown flag: --chown"),
    ("FROM busybox\nENV A\n", "Dockerfile:2: ENV: must have two arguments"),
    ("FROM busybox\nENV A=1 B\n", "Dockerfile:2: ENV: syntax error - can't find = in 'B'"),
    ("FROM busybox\nSHELL /bin/bash -c\n", "Dockerfile:2: SHELL: requires the arguments to be in JSON form"),
    ("FROM busybox\nWORKDIR\n", "Dockerfile:2: WORKDIR: requires exactly one argument"),
    ("FROM a b\n", "Dockerfile:1: FROM: requires either one or three arguments"),
    ("FROM a AS 1x\n", "Dockerfile:1: FROM: invalid name for build stage"),
    ("FROM a AS x\nFROM b AS x\n", "Dockerfile:2: FROM: duplicate stage name 'x'"),
    ("FROM a\nHEALTHCHECK --interval=abc CMD x\n", "Dockerfile:2: HEALTHCHECK: --interval: invalid duration"),
    ("FROM a\nHEALTHCHECK BOGUS\n", "Dockerfile:2: HEALTHCHECK: requires NONE or CMD"),
    ("FROM a\nONBUILD FROM b\n", "Dockerfile:2: ONBUILD: FROM isn't allowed as an ONBUILD trigger"),
    ("FROM a\nCOPY --from=0 /x /y\n", "Dockerfile:2: COPY: --from=0: refers to a stage that is not before"),
    ("", "Dockerfile: the Dockerfile is empty"),
    ("ARG X\n", "Dockerfile: no FROM instruction"),
    ("ARG B\nFROM ${B}\n", "Dockerfile:2: FROM: base name (${B}) should not be blank"),
])
def test_errors_name_line_and_instruction(text, message):
    with pytest.raises(DockerfileError) as err:
        validate(dockerfile=parse(text=text))
    assert str(err.value).startswith(message), str(err.value)


def test_unknown_target():
    with pytest.raises(DockerfileError) as err:
        validate(dockerfile=parse(text="FROM a AS one\n"), target="two")
    assert "target stage 'two' could not be found" in str(err.value)


def test_build_arg_overrides_meta_arg_in_from():
    from agent.images.dockerfile import meta_arg_env
    df = validate(dockerfile=parse(text="ARG TAG=1\nARG IMG=base:${TAG}\nFROM $IMG\n"),
                  build_args={"TAG": "2"})
    assert meta_arg_env(meta_args=df.meta_args, build_args={"TAG": "2"}) == {"TAG": "2", "IMG": "base:2"}


ENV = {"A": "1", "EMPTY": "", "NAME": "web"}


@pytest.mark.parametrize("word,expected", [
    ("$A", "1"), ("${A}", "1"), ("x${A}y", "x1y"), ("$A$A", "11"),
    ("${UNSET}", ""), ("$UNSET-x", "-x"),
    ("${UNSET:-dflt}", "dflt"), ("${EMPTY:-dflt}", "dflt"), ("${EMPTY-dflt}", ""),
    ("${A:-dflt}", "1"), ("${UNSET:-$A}", "1"),
    ("${A:+alt}", "alt"), ("${EMPTY:+alt}", ""), ("${EMPTY+alt}", "alt"), ("${UNSET:+alt}", ""),
    ("'$A'", "$A"), ('"$A b"', "1 b"), ("\\$A", "$A"), ('"\\$A"', "$A"), ("a\\ b", "a b"),
    ("$", "$"), ("${NAME}_$NAME.txt", "web_web.txt"), ('"a"\'b\'c', "abc"),
])
def test_substitution(word, expected):
    assert expand_word(word, env=ENV) == expected


def test_substitution_errors():
    with pytest.raises(SubstitutionError):
        expand_word("${UNSET:?must be set}", env=ENV)
    with pytest.raises(SubstitutionError):
        expand_word("${A", env=ENV)
    with pytest.raises(SubstitutionError):
        expand_word('"open', env=ENV)


def test_word_splitting():
    assert expand_words('80/tcp $A "x y"', env=ENV) == ["80/tcp", "1", "x y"]
    assert split_words('A="hello world" B=c\\ d') == ['A="hello world"', "B=c\\ d"]
    assert expand_word("`$A", env=ENV, escape="`") == "$A"


def test_run_heredocs():
    df = parse(text="FROM busybox\nRUN <<EOF\necho one\necho two\nEOF\n"
                    "RUN --network=none python3 <<-'PY'\n\tprint(1)\n\tPY\nCMD [\"sh\"]\n")
    got = [(i.line, i.instruction, i.flags, i.args) for i in df.instructions]
    assert got == [(1, "from", (), ("busybox",)),
                   (2, "run", (), ("echo one\necho two\n",)),
                   (6, "run", ("--network=none",), ("python3 <<-'PY'\nprint(1)\nPY",)),
                   (9, "cmd", (), ("sh",))]
    with pytest.raises(DockerfileError) as err:
        parse(text="FROM busybox\nRUN <<EOF\necho\n")
    assert str(err.value) == "Dockerfile:2: RUN: heredoc 'EOF' is not terminated"
    with pytest.raises(DockerfileError) as err:
        parse(text="FROM busybox\nCOPY <<EOF /x\nhi\nEOF\n")
    assert "heredocs are supported for RUN only" in str(err.value)

    assert parse(text='FROM a\nRUN echo "a<<b"\n').instructions[1].args == ('echo "a<<b"',)
