"""One exception type for bad user input; the CLI prints it as one line and exits 2."""


class UserError(ValueError):
    """Input the user can fix (missing file, wrong checkpoint, shapes that do not fit)."""
