"""The project's two exception types: bad user input (the CLI prints it as one line and exits 2), and a
metric that cannot be computed here (the report shows n/a). Here, at the bottom, because the face models
(faces/) raise the second for the metrics above them."""


class UserError(ValueError):
    """Input the user can fix (missing file, wrong checkpoint, shapes that do not fit)."""


class MetricUnavailable(RuntimeError):
    """A metric cannot be computed here (missing weight file, optional package, no face).

    The report shows the column as n/a with `reason`; it is never replaced by a number.
    """

    def __init__(self, metric: str, reason: str):
        super().__init__(f"{metric}: {reason}")
        self.metric = metric
        self.reason = reason
