"""The error of an operator's document (risk limits, trading calendar) that cannot be used."""

from __future__ import annotations


class DocumentError(ValueError):
    """A document cannot be used. ``problems`` holds one line per problem, each naming its field.

    Subclasses set ``kind`` (the word for the document in the message).
    """

    kind = "document"

    def __init__(self, origin: str, problems: list[str]) -> None:
        self.origin = origin
        self.problems = list(problems)
        if len(self.problems) == 1:
            message = f"invalid {self.kind} in {origin}: {self.problems[0]}"
        else:
            lines = "\n".join(f"  - {problem}" for problem in self.problems)
            message = f"{len(self.problems)} problems in {self.kind} {origin}:\n{lines}"
        super().__init__(message)
