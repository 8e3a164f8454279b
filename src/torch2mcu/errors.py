"""The exceptions users see, with what went wrong, where, and what to do, and the exit codes
the command line returns for them."""

EXIT_OK = 0
EXIT_MISMATCH = 1     # the C disagrees with the Python integer reference, or crashed
EXIT_BAD_INPUT = 2    # a problem with the user's model, data, options or output folder
EXIT_ENVIRONMENT = 3  # a missing tool (gcc, arm-none-eabi-gcc), a full disk, no permission
EXIT_INTERRUPTED = 130

_cli = False  # set by the command line: hints name its options, not the Python arguments


def use_cli_spelling(on: bool = True) -> None:
    global _cli
    _cli = on


def spell(cli: str, python: str) -> str:
    """A hint in the caller's language: `cli` ("--force") from the command line, `python`
    ("overwrite=True") from the Python API."""
    return cli if _cli else python


class Torch2MCUError(Exception):
    """A problem with the user's model, data or options, explained for the user."""

    exit_code = EXIT_BAD_INPUT

    def __init__(self, what: str, where: str | None = None, fix: str | None = None):
        self.what, self.where, self.fix = what, where, fix
        parts = [what]
        if where:
            parts.append(f"  where: {where}")
        if fix:
            parts.append(f"  what to do: {fix}")
        super().__init__("\n".join(parts))


class EnvironmentProblem(Torch2MCUError):
    """Not the user's input: a tool is missing, the disk is full, a path is not writable."""

    exit_code = EXIT_ENVIRONMENT


class GeneratedCodeFailure(Torch2MCUError):
    """The folder's C crashed or returned an error status while running."""

    exit_code = EXIT_MISMATCH
