"""Shell command lines, parsed strictly enough to judge what they run.

The ``commands`` constraint (``enforcement.constraints``) allows a command
line only when each of its simple commands matches an allowed entry. This
module splits a POSIX shell command line into simple commands and words, or
raises ``ValueError`` at any construct whose effect the words alone do not
show: redirections, substitutions, expansions, globs, subshells, variable
assignments, shell keywords and programs that run their arguments as
another command. The rules are specified in ``specs/delegation.md``.
"""

from __future__ import annotations

import re
import shlex
from dataclasses import dataclass
from functools import lru_cache

from enforcement.canonical import check_text, control_character

MAX_COMMAND_LENGTH = 8192
_CACHE_SIZE = 4096
_ASSIGNMENT = re.compile(r"[A-Za-z_][A-Za-z0-9_]*=")

# Programs whose job is to run their arguments as another command.
WRAPPERS = frozenset({
    "eval", "exec", "source", ".", "sh", "bash", "dash", "zsh", "ksh", "mksh",
    "ash", "csh", "tcsh", "fish", "busybox", "env", "sudo", "doas", "su",
    "runuser", "xargs", "nohup", "nice", "ionice", "time", "timeout", "command",
    "builtin", "watch", "setsid", "stdbuf", "chroot", "flock", "script",
    "strace", "unbuffer", "parallel",
})
# Words that start a compound command when they stand where a program would.
_RESERVED = frozenset({
    "!", "{", "}", "[[", "]]", "case", "coproc", "do", "done", "elif", "else",
    "esac", "fi", "for", "function", "if", "in", "select", "then", "until",
    "while",
})
_REJECTED_UNQUOTED = {
    "<": "a redirection or process substitution",
    ">": "a redirection",
    "(": "a subshell",
    ")": "a subshell",
    "{": "a group or brace expansion",
    "}": "a group or brace expansion",
    "*": "a glob pattern",
    "?": "a glob pattern",
    "[": "a glob pattern",
    "!": "history expansion or negation",
}


def _split_command_line(line: str) -> list[str]:
    """Return the text of each simple command, split at unquoted list operators.

    Raises ``ValueError`` at any construct that is neither a word nor one of
    ``;``, ``&&``, ``||``, ``|``, ``&`` and newline.
    """
    parts: list[str] = []
    start = position = 0
    quote = ""
    word_start = True
    while position < len(line):
        character = line[position]
        following = line[position + 1:position + 2]
        if quote == "'":
            quote = "" if character == "'" else quote
        elif quote == '"':
            if character == '"':
                quote = ""
            elif character in "$`":
                raise ValueError(f"command {line!r} contains {character!r} inside "
                                 "double quotes (expansion or command substitution)")
            elif character == "\\":
                if following in ("\n", "$", "`"):
                    raise ValueError(f"command {line!r} escapes {following!r} inside "
                                     "double quotes")
                position += 1 if following in ('"', "\\") else 0
        elif character in " \t":
            word_start = True
        elif character == "\\":
            if following in ("", "\n"):
                raise ValueError(f"command {line!r} ends a line with '\\'")
            position += 1
            word_start = False
        elif character in "'\"":
            quote = character
            word_start = False
        elif character in "$`":
            raise ValueError(f"command {line!r} contains {character!r} (expansion or "
                             "command substitution)")
        elif character in _REJECTED_UNQUOTED:
            raise ValueError(f"command {line!r} contains {character!r}, "
                             f"{_REJECTED_UNQUOTED[character]}")
        elif character in "#~" and word_start:
            raise ValueError(f"command {line!r} has a word starting with "
                             f"{character!r} (a comment or home-directory expansion)")
        elif character in ";&|\n":
            operator = line[position:position + 2]
            length = 2 if operator in ("&&", "||") else 1
            parts.append(line[start:position])
            position += length
            start = position
            word_start = True
            continue
        else:
            word_start = False
        position += 1
    if quote:
        raise ValueError(f"command {line!r} has an unterminated {quote} quote")
    parts.append(line[start:])
    return parts


@lru_cache(maxsize=_CACHE_SIZE)
def parse_command_line(text: str) -> tuple[tuple[str, ...], ...]:
    """Split a POSIX shell command line into its simple commands' words.

    A command line is one or more simple commands joined by ``;``, ``&&``,
    ``||``, ``|``, ``&`` or newlines. Each command is split into words with
    ``shlex`` in POSIX mode. Redirections, substitutions, expansions, globs,
    subshells, variable assignments, reserved words and programs that run
    their arguments as a command (``WRAPPERS``) raise ``ValueError``.
    """
    line = check_text(text, "command", MAX_COMMAND_LENGTH)
    if control_character(line, allowed="\t\n") is not None:
        raise ValueError(f"command {line!r} contains a control character")
    commands = []
    for part in _split_command_line(line):
        words = tuple(shlex.split(part, posix=True))
        if not words:
            raise ValueError(f"command {line!r} has an empty command between or "
                             "after its operators")
        program = words[0]
        if _ASSIGNMENT.match(program):
            raise ValueError(f"command {line!r} starts with a variable assignment "
                             f"{program!r}")
        if program in _RESERVED:
            raise ValueError(f"command {line!r} uses the shell keyword {program!r}")
        if program.rpartition("/")[2] in WRAPPERS:
            raise ValueError(f"command {line!r} runs {program!r}, which runs its "
                             "arguments as another command")
        commands.append(words)
    return tuple(commands)


@dataclass(frozen=True)
class CommandPattern:
    """An allowed command: a program and the first words of its arguments.

    ``by_basename`` is set by an entry written ``*/name``: the program then
    matches ``name`` and any path ending in ``/name``. Otherwise the program
    word must equal the entry's, so ``git`` does not match ``/tmp/git``.
    """

    program: str
    arguments: tuple[str, ...]
    by_basename: bool
    text: str

    @classmethod
    def parse(cls, text: object) -> CommandPattern:
        entry = check_text(text, "command entry", MAX_COMMAND_LENGTH)
        if ".." in entry:
            raise ValueError(f"command entry {entry!r} contains '..', never allowed "
                             "in a scope")
        by_basename = entry.startswith("*/")
        commands = parse_command_line(entry[2:] if by_basename else entry)
        if len(commands) != 1:
            raise ValueError(f"command entry {entry!r} must be one simple command")
        program, *arguments = commands[0]
        if by_basename and "/" in program:
            raise ValueError(f"command entry {entry!r}: after '*/' give a bare name")
        if "/" in program and not program.startswith("/"):
            raise ValueError(f"command entry {entry!r}: the program must be a bare "
                             "name, an absolute path or '*/name'")
        return cls(program, tuple(arguments), by_basename, entry)

    def matches_program(self, program: str) -> bool:
        if self.by_basename:
            return program == self.program or program.endswith("/" + self.program)
        return program == self.program

    def matches(self, words: tuple[str, ...]) -> bool:
        """Return True when the command's program and first arguments match."""
        count = len(self.arguments)
        return self.matches_program(words[0]) and words[1:count + 1] == self.arguments

    def within(self, parent: CommandPattern) -> bool:
        """Return True when every command this entry matches, ``parent`` matches."""
        if parent.by_basename:
            program_ok = self.program == parent.program or (
                not self.by_basename and self.program.endswith("/" + parent.program))
        else:
            program_ok = not self.by_basename and self.program == parent.program
        count = len(parent.arguments)
        return program_ok and self.arguments[:count] == parent.arguments
