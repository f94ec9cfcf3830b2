"""Entries of the ``commands`` constraint, as ``specs/delegation.md`` defines them.

An entry is one simple POSIX shell command without ``..``; the gate rejects
every other entry, and so must the auditor, or it would pass a chain that no
honest gate could have used. The rules are those of the spec's "Shell
commands" section, written here apart from the gate's parser.
"""

import re
import shlex

from verifier._encoding import shorten
from verifier.errors import MalformedInput

MAX_COMMAND_LENGTH = 8192

# Programs that run their arguments as another command.
_WRAPPERS = frozenset(
    "eval exec source . sh bash dash zsh ksh mksh ash csh tcsh fish busybox env "
    "sudo doas su runuser xargs nohup nice ionice time timeout command builtin "
    "watch setsid stdbuf chroot flock script strace unbuffer parallel".split()
)
# Shell keywords, which start a compound command where a program would stand.
_RESERVED = frozenset(
    "! { } [[ ]] case coproc do done elif else esac fi for function if in "
    "select then until while".split()
)
_ASSIGNMENT = re.compile(r"[A-Za-z_][A-Za-z0-9_]*=")
# Control characters other than tab and newline.
_CONTROL = re.compile(r"[\x00-\x08\x0b-\x1f\x7f]")
# Outside quotes: redirections, subshells, groups and brace expansion, globs,
# history expansion; then list operators, which end the simple command.
_UNQUOTED = frozenset("<>(){}*?[!")
_OPERATORS = frozenset(";&|\n")


def parse_command_entry(text: str, label: str) -> tuple[str, ...]:
    """Return the words of one ``commands`` entry; ``*/name`` stays the first word.

    Raises ``MalformedInput`` for anything but one simple command with a
    bare name, an absolute path or ``*/name`` as its program.
    """
    if not text or len(text) > MAX_COMMAND_LENGTH:
        raise MalformedInput(
            f"{label}: expected a command entry of 1 to {MAX_COMMAND_LENGTH} "
            f"characters, got {len(text)}"
        )
    if ".." in text:
        raise MalformedInput(f"{label}: command entry {shorten(text)} contains '..'")
    by_basename = text.startswith("*/")
    line = text[2:] if by_basename else text
    problem = _construct_problem(line)
    if problem is not None:
        raise MalformedInput(f"{label}: command entry {shorten(text)}: {problem}")

    try:
        words = shlex.split(line, posix=True)
    except ValueError as err:
        raise MalformedInput(f"{label}: command entry {shorten(text)}: {err}") from err
    if not words:
        raise MalformedInput(f"{label}: expected one simple command, got nothing")
    program = words[0]
    problem = _program_problem(program, by_basename)
    if problem is not None:
        raise MalformedInput(f"{label}: command entry {shorten(text)}: {problem}")
    if by_basename:
        words[0] = "*/" + program
    return tuple(words)


def _construct_problem(line: str) -> str | None:
    """Return why ``line`` is not one simple command of plain words, or None."""
    if _CONTROL.search(line):
        return "it contains a control character"
    quote = ""
    word_start = True
    position = 0
    while position < len(line):
        char = line[position]
        following = line[position + 1 : position + 2]
        if quote == "'":
            quote = "" if char == "'" else quote
        elif quote == '"':
            if char in "$`":
                return f"{char!r} inside double quotes expands"
            if char == "\\":
                if following in ("\n", "$", "`"):
                    return f"'\\' before {following!r} inside double quotes"
                position += 1 if following in ('"', "\\") else 0
            elif char == '"':
                quote = ""
        elif char in " \t":
            word_start = True
        elif char == "\\":
            if following in ("", "\n"):
                return "it ends a line with '\\'"
            position += 1
            word_start = False
        elif char in "'\"":
            quote = char
            word_start = False
        elif char in "$`" or char in _UNQUOTED:
            return f"{char!r} outside quotes"
        elif char in _OPERATORS:
            return f"{char!r} joins commands; an entry is one simple command"
        elif char in "#~" and word_start:
            return f"a word starts with {char!r}"
        else:
            word_start = False
        position += 1
    if quote:
        return f"an unterminated {quote} quote"
    return None


def _program_problem(program: str, by_basename: bool) -> str | None:
    if _ASSIGNMENT.match(program):
        return f"it starts with the variable assignment {program!r}"
    if program in _RESERVED:
        return f"it starts with the shell keyword {program!r}"
    if program.rpartition("/")[2] in _WRAPPERS:
        return f"{program!r} runs its arguments as another command"
    if by_basename and "/" in program:
        return "after '*/' give a bare name"
    if "/" in program and not program.startswith("/"):
        return "the program must be a bare name, an absolute path or '*/name'"
    return None
