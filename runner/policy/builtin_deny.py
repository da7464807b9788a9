"""The built-in deny list: destructive classics no rule, level or approval can let through.

Each check looks at one simple command after unwrapping (`sudo`, `timeout 5 env X=1 nice ...`
are judged at every layer), with quoting already removed and argv[0]'s directory dropped.
Where a check cannot tell (an operand from `$VAR` or `$(...)`), it asks rather than guesses.
"""

from __future__ import annotations

import re
from collections.abc import Sequence

from runner.policy.shell_lexer import Word
from runner.policy.targets import Cwd, Target, classify, home_normal
from runner.policy.verdicts import Decision, ask, deny

# For the documentation and the final report; the checks below implement each line.
BUILTIN_DENY_LIST: tuple[str, ...] = (
    "rm -r/-R/--recursive (with or without -f) of /, a top-level directory, /*, ~, $HOME, "
    "., .., *, or anything above the workspace",
    "mkfs, mkfs.*, mke2fs",
    "dd of=/dev/... (except /dev/null)",
    "writes (>, >>, tee, ...) to disk devices: /dev/sd*, /dev/nvme*, /dev/hd*, /dev/vd*, "
    "/dev/xvd*, /dev/mmcblk*, /dev/disk/*, /dev/mapper/*, /dev/mem",
    "the fork bomb :(){ :|:& };: (any function name)",
    "shutdown, reboot, halt, poweroff; systemctl poweroff/reboot/halt/kexec; init 0/6",
    "chmod/chown/chgrp -R of /, a top-level directory, ~ or $HOME",
    "a download piped or substituted into a shell or interpreter: curl/wget ... | sh, "
    'bash <(curl ...), sh -c "$(wget -O- ...)"',
    "privilege escalation: sudo, doas, su, pkexec, runuser",
    "git push --force, -f, --force-with-lease, --mirror, +refspec (rewrites shared history)",
    "writes into .ssh (> ~/.ssh/authorized_keys, tee -a ~/.ssh/...)",
    "find / -delete, find / -exec rm ... (find on / or ~; on . without a name filter)",
)

PRIVILEGE = frozenset({"sudo", "doas", "su", "pkexec", "runuser"})
POWER = frozenset({"shutdown", "reboot", "halt", "poweroff"})
DOWNLOADERS = frozenset({"curl", "wget", "fetch", "aria2c"})
# Descriptors that are not files: writing to them is no write to the workspace.
HARMLESS_DEVICES = re.compile(r"^/dev/(null|stdout|stderr|tty|fd/\d+)$")
DISK_DEVICES = re.compile(r"^/dev/(sd|hd|vd|xvd|nvme|mmcblk|disk/|mapper/|dm-|md|mem$|kmem$)")
_FORK_BOMB = re.compile(r"(?P<f>[^\s(){};|&]+)\(\)\{(?P=f)\|(?P=f)&;?\};(?P=f)")
_FIND_FILTERS = frozenset(
    {"-name", "-iname", "-path", "-ipath", "-wholename", "-iwholename", "-regex", "-iregex"}
)
_FIND_EXEC = frozenset({"-exec", "-execdir", "-ok", "-okdir"})
_GIT_GLOBAL_WITH_VALUE = frozenset(
    {"-C", "-c", "--git-dir", "--work-tree", "--namespace", "--config-env", "--exec-path"}
)


def name_of(word: Word) -> str:
    """argv[0] without its directory: `/bin/rm` is `rm`."""
    return word.text.rsplit("/", 1)[-1]


def check_line(src: str) -> Decision | None:
    """Checks on the raw line, for what no word-level view shows (the fork bomb)."""
    if _FORK_BOMB.search(re.sub(r"\s+", "", src)):
        return deny("built-in deny: fork bomb")
    return None


def check_command(
    words: Sequence[Word], cwd: Cwd, *, unknown_args: bool = False, hidden: bool = False
) -> list[Decision]:
    """Deny (or ask) decisions for one simple command; words[0] is the command.

    hidden: the words were found inside another command's arguments (`strace rm -rf /`), where
    only operand-bearing classics count, so `grep reboot log` is not taken for a reboot.
    """
    if not words:
        return []
    name = name_of(words[0])
    args = list(words[1:])
    if name == "rm":
        return _rm(args, cwd, unknown_args)
    if name in ("chmod", "chown", "chgrp"):
        return _recursive_owner_mode(name, args, cwd)
    if name == "dd":
        return _dd(args)
    if name.startswith("mkfs") or name == "mke2fs":
        if hidden and not any(word.text.startswith("/dev/") for word in args):
            return []
        return [deny(f"built-in deny: {name} (makes a file system)")]
    if hidden:
        return []
    if name in PRIVILEGE:
        return [deny(f"built-in deny: {name} (privilege escalation)")]
    if name in POWER:
        return [deny(f"built-in deny: {name}")]
    texts = [word.text for word in args]
    if name == "systemctl" and {"poweroff", "reboot", "halt", "kexec"} & set(texts):
        return [deny(f"built-in deny: systemctl {' '.join(texts)}")]
    if name in ("init", "telinit") and texts[:1] in (["0"], ["6"]):
        return [deny(f"built-in deny: {name} {texts[0]}")]
    if name == "git":
        return _git_push_force(args)
    return []


def check_write_target(word: Word) -> Decision | None:
    """A deny for a redirect or `tee` into a disk device or .ssh; None for other targets."""
    text = home_normal(word.text)
    if DISK_DEVICES.match(text):
        return deny(f"built-in deny: write to the disk device {text}")
    if ".ssh" in text.split("/"):
        return deny(f"built-in deny: write into .ssh ({word.text})")
    return None


def is_harmless_device(word: Word) -> bool:
    return bool(HARMLESS_DEVICES.match(word.text))


def _rm(args: list[Word], cwd: Cwd, unknown_args: bool) -> list[Decision]:
    recursive = maybe = False
    operands: list[Word] = []
    options_done = False
    for word in args:
        text = word.text
        if not options_done and text == "--":
            options_done = True
        elif not options_done and text.startswith("-") and len(text) > 1:
            if text == "--recursive" or (not text.startswith("--") and set(text) & {"r", "R"}):
                recursive = True
        elif word.opaque and not options_done:
            maybe = True  # `rm $FLAGS /`: the flags may well be -rf
            operands.append(word)
        else:
            operands.append(word)
    if not (recursive or maybe):
        return []
    found: list[Decision] = []
    for word in operands:
        target = classify(word, cwd)
        if target in (Target.SYSTEM, Target.WORKSPACE) and recursive:
            found.append(deny(f"built-in deny: rm -r of {word.text}"))
        elif target in (Target.SYSTEM, Target.WORKSPACE) or target is Target.UNKNOWN:
            found.append(ask(f"ask: rm -r of {word.text} cannot be judged"))
    if unknown_args and recursive:
        found.append(ask("ask: rm -r of arguments read by xargs cannot be judged"))
    return found


def _recursive_owner_mode(name: str, args: list[Word], cwd: Cwd) -> list[Decision]:
    options = [word.text for word in args if word.text.startswith("-")]
    if not any(
        text == "--recursive" or (not text.startswith("--") and "R" in text) for text in options
    ):
        return []
    found: list[Decision] = []
    for word in args:
        if word.text.startswith("-"):
            continue
        target = classify(word, cwd)
        if target is Target.SYSTEM:
            found.append(deny(f"built-in deny: {name} -R of {word.text}"))
    return found


def _dd(args: list[Word]) -> list[Decision]:
    for word in args:
        if word.text.startswith("of="):
            device = word.text[3:]
            if device.startswith("/dev/") and not HARMLESS_DEVICES.match(device):
                return [deny(f"built-in deny: dd to the device {device}")]
            if word.opaque:
                return [ask(f"ask: dd to {device} cannot be judged")]
    return []


def _git_push_force(args: list[Word]) -> list[Decision]:
    i = 0
    while i < len(args) and args[i].text.startswith("-"):
        # Global options before the subcommand: `git -C dir push -f` is still a force push.
        i += 2 if args[i].text in _GIT_GLOBAL_WITH_VALUE else 1
    if i >= len(args) or args[i].text != "push":
        return []
    for word in args[i + 1 :]:
        text = word.text
        forced = (
            text in ("--force", "--mirror", "--force-if-includes")
            or text.startswith("--force-with-lease")
            or (text.startswith("-") and not text.startswith("--") and "f" in text)
            or (text.startswith("+") and len(text) > 1)
        )
        if forced:
            return [deny(f"built-in deny: git push {text} (rewrites shared history)")]
    return []


def find_parts(args: list[Word]) -> tuple[list[Word], bool, bool, list[list[Word]]]:
    """A find's start paths, whether it deletes, whether it filters by name, its -exec commands."""
    i = 0
    while i < len(args) and args[i].text in ("-H", "-L", "-P", "-O", "-D"):
        i += 2 if args[i].text == "-D" else 1
    paths: list[Word] = []
    while i < len(args) and not args[i].text.startswith(("-", "(", "!")):
        paths.append(args[i])
        i += 1
    deletes = filtered = False
    commands: list[list[Word]] = []
    while i < len(args):
        text = args[i].text
        if text == "-delete":
            deletes = True
        elif text in _FIND_FILTERS:
            filtered = True
        elif text in _FIND_EXEC:
            end = i + 1
            while end < len(args) and args[end].text not in (";", "+"):
                end += 1
            commands.append(args[i + 1 : end])
            i = end
        i += 1
    return paths or [Word(".")], deletes, filtered, commands


def check_find(args: list[Word], cwd: Cwd) -> tuple[list[Decision], list[list[Word]]]:
    """Denials for a find that deletes a whole tree, and its -exec commands to judge in turn.

    `{}` in an -exec command stands for what find found: with no name filter, that is the whole
    tree, so `find / -exec rm -rf {} +` is judged as `rm -rf /`.
    """
    paths, deletes, filtered, commands = find_parts(args)
    found: list[Decision] = []
    targets = [(word, classify(word, cwd)) for word in paths]
    for word, target in targets:
        if deletes and (target is Target.SYSTEM or (target is Target.WORKSPACE and not filtered)):
            found.append(deny(f"built-in deny: find {word.text} -delete"))
        elif deletes and target is Target.UNKNOWN:
            found.append(ask(f"ask: find {word.text} -delete cannot be judged"))
    whole_tree = [
        word
        for word, target in targets
        if target is Target.SYSTEM or (target is Target.WORKSPACE and not filtered)
    ]
    nested: list[list[Word]] = []
    for command in commands:
        for root in whole_tree or [Word("{}")]:
            nested.append([root if word.text == "{}" else word for word in command])
    return found, nested
