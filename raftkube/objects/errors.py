"""Error values shared by decoding, validation and manifest loading."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class FieldError:
    """One problem with one field.

    `path` is the JSON field path in Kubernetes notation
    (`spec.template.spec.containers[0].ports[0].containerPort`, `metadata.labels[app]`),
    empty for the whole object; `reason` says what is wrong in plain words.
    """

    path: str
    reason: str

    def __str__(self) -> str:
        return f"{self.path}: {self.reason}" if self.path else self.reason

    def under(self, prefix: str) -> FieldError:
        """The same error with `prefix` prepended to the path."""
        if not prefix:
            return self
        if not self.path:
            return FieldError(prefix, self.reason)
        joiner = "" if self.path.startswith("[") else "."
        return FieldError(f"{prefix}{joiner}{self.path}", self.reason)


class ObjectInvalid(ValueError):
    """An object failed decoding or validation; `errors` lists every problem found."""

    def __init__(self, errors: list[FieldError]) -> None:
        self.errors = list(errors)
        super().__init__("; ".join(str(e) for e in self.errors))


@dataclass(frozen=True)
class ManifestProblem:
    """A problem in one document of one manifest source.

    `source` is the file path ("-" for stdin); `index` the 0-based document number in that
    source (None when the whole source is unreadable); `error` the field error.
    """

    source: str
    index: int | None
    error: FieldError

    def __str__(self) -> str:
        where = self.source if self.index is None else f"{self.source}[{self.index}]"
        return f"{where}: {self.error}"


class ManifestError(ValueError):
    """Loading manifests failed; nothing was loaded. `problems` lists every problem."""

    def __init__(self, problems: list[ManifestProblem]) -> None:
        self.problems = list(problems)
        super().__init__("\n".join(str(p) for p in self.problems))
