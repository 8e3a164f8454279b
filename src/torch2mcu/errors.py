"""The one exception type users see, with what went wrong, where, and what to do."""


class Torch2MCUError(Exception):
    """A problem with the user's model, data or options, explained for the user."""

    def __init__(self, what: str, where: str | None = None, fix: str | None = None):
        self.what, self.where, self.fix = what, where, fix
        parts = [what]
        if where:
            parts.append(f"  where: {where}")
        if fix:
            parts.append(f"  what to do: {fix}")
        super().__init__("\n".join(parts))
