"""Shell command lines: tables of lines split, lines rejected, and entries.

Each row is one spelling an attacker (or a careless agent) might use, with
the simple commands it reads as or the sentence that rejects it.
"""

from __future__ import annotations

import pytest

from enforcement import shell


@pytest.mark.parametrize(("line", "commands"), [
    ("git status", (("git", "status"),)),
    ("  git   status  ", (("git", "status"),)),
    ("git 'status'", (("git", "status"),)),
    ('git "status"', (("git", "status"),)),
    ("git\\ status", (("git status",),)),
    ("echo \\;", (("echo", ";"),)),
    ("echo ';'", (("echo", ";"),)),
    ('echo "a | b && c"', (("echo", "a | b && c"),)),
    ("echo 'it''s'", (("echo", "its"),)),
    ('echo "say \\"hi\\""', (("echo", 'say "hi"'),)),
    ("echo a#b", (("echo", "a#b"),)),
    ("git status; ls", (("git", "status"), ("ls",))),
    ("git status && ls", (("git", "status"), ("ls",))),
    ("git status || ls", (("git", "status"), ("ls",))),
    ("git log | head", (("git", "log"), ("head",))),
    ("sleep 1 & ls", (("sleep", "1"), ("ls",))),
    ("ls\ngit status", (("ls",), ("git", "status"))),
    ("echo 'a\nb'", (("echo", "a\nb"),)),
])
def test_command_line_split(line, commands):
    assert shell.parse_command_line(line) == commands


@pytest.mark.parametrize(("line", "message"), [
    ("echo $(id)", "contains '$' (expansion or command substitution)"),
    ("echo `id`", "contains '`'"),
    ("echo $HOME", "contains '$'"),
    ("echo ${HOME}", "contains '$'"),
    ('echo "$(id)"', "contains '$' inside double quotes"),
    ('echo "`id`"', "contains '`' inside double quotes"),
    ('echo "\\$x"', "escapes '$' inside double quotes"),
    ("echo $'\\x41'", "contains '$'"),
    ("ls > /tmp/x", "contains '>', a redirection"),
    ("ls 2>&1", "contains '>'"),
    ("ls &> /tmp/x", "contains '>'"),
    ("cat < /etc/passwd", "contains '<'"),
    ("cat <(ls)", "contains '<', a redirection or process substitution"),
    ("(ls)", "contains '(', a subshell"),
    ("{ ls; }", "contains '{'"),
    ("ls *", "contains '*', a glob pattern"),
    ("ls ?", "contains '?'"),
    ("ls [a]", "contains '['"),
    ("! ls", "contains '!'"),
    ("ls #comment", "a word starting with '#'"),
    ("cat ~/.ssh/id_rsa", "a word starting with '~'"),
    ("sh -c 'ls'", "runs 'sh', which runs its arguments as another command"),
    ("bash -c ls", "runs 'bash'"),
    ("/bin/sh x.sh", "runs '/bin/sh'"),
    ("eval ls", "runs 'eval'"),
    ("env rm -rf /", "runs 'env'"),
    ("xargs rm", "runs 'xargs'"),
    ("ls | sh", "runs 'sh'"),
    ("sudo ls", "runs 'sudo'"),
    (". ./script", "runs '.'"),
    ("PATH=/tmp ls", "starts with a variable assignment 'PATH=/tmp'"),
    ("if true; then ls; fi", "uses the shell keyword 'if'"),
    ("ls;", "empty command between or after its operators"),
    ("ls &", "empty command"),
    ("ls ;; ls", "empty command"),
    ("ls |& cat", "empty command"),
    ("", "the command is empty"),
    ("echo 'open", "unterminated ' quote"),
    ('echo "open', 'unterminated " quote'),
    ("echo a\\", "ends a line with '\\'"),
    ("ec\\\nho", "ends a line with '\\'"),
    ("ls\r", "contains a control character"),
    ("ls\x00", "contains a control character"),
])
def test_command_line_rejected(line, message):
    with pytest.raises(ValueError) as caught:
        shell.parse_command_line(line)
    assert message in str(caught.value)


@pytest.mark.parametrize(("entry", "words", "matches"), [
    ("git status", ("git", "status"), True),
    ("git status", ("git", "status", "--short"), True),
    ("git status", ("git", "push"), False),
    ("git status", ("git",), False),
    ("git status", ("/usr/bin/git", "status"), False),
    ("git", ("/tmp/git", "status"), False),
    ("*/git status", ("/usr/bin/git", "status"), True),
    ("*/git status", ("git", "status"), True),
    ("*/git status", ("./git", "status"), True),
    ("*/git status", ("/usr/bin/legit", "status"), False),
    ("/usr/bin/git", ("/usr/bin/git", "log"), True),
    ("/usr/bin/git", ("git", "log"), False),
])
def test_command_pattern_matches(entry, words, matches):
    assert shell.CommandPattern.parse(entry).matches(words) is matches


@pytest.mark.parametrize(("child", "parent", "within"), [
    ("git status", "git", True),
    ("git status --short", "git status", True),
    ("git", "git status", False),
    ("git push", "git status", False),
    ("git status", "*/git", True),
    ("/usr/bin/git status", "*/git", True),
    ("*/git status", "*/git", True),
    ("*/git", "git", False),
    ("/usr/bin/git", "git", False),
    ("/usr/bin/legit", "*/git", False),
])
def test_command_pattern_within(child, parent, within):
    own = shell.CommandPattern.parse(child)
    assert own.within(shell.CommandPattern.parse(parent)) is within


@pytest.mark.parametrize(("entry", "message"), [
    ("git status; rm -rf /", "must be one simple command"),
    ("ls ..", "contains '..'"),
    ("sh -c ls", "runs 'sh'"),
    ("*/bin/git", "after '*/' give a bare name"),
    ("bin/git", "the program must be a bare name, an absolute path or '*/name'"),
    ("ls > x", "contains '>'"),
])
def test_command_entry_rejected(entry, message):
    with pytest.raises(ValueError) as caught:
        shell.CommandPattern.parse(entry)
    assert message in str(caught.value)
