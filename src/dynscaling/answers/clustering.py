"""Vote classes: the answers of one question, grouped by canonical key (LaTeX by math-verify equivalence)."""

from __future__ import annotations

from .._mathverify import latex_equivalent
from .grammar import check_type
from .keys import canonical_key

__all__ = ["AnswerClusterer"]


class AnswerClusterer:
    """Assigns the answers of one question to vote classes ``0, 1, 2, ...`` in order of first appearance."""

    __slots__ = ("answer_type", "verbatim_unparsed", "_by_key", "_representatives", "_keys")

    def __init__(self, answer_type: str, *, verbatim_unparsed: bool = False) -> None:
        """``verbatim_unparsed=True`` lets an answer that is not a clean value vote as its literal text instead
        of abstaining: only to reproduce upstream evaluations that compared strings that way."""
        check_type(answer_type)
        self.answer_type = answer_type
        self.verbatim_unparsed = verbatim_unparsed
        self._by_key: dict[str, int] = {}
        self._representatives: list[str] = []
        self._keys: list[str] = []

    def assign(self, answer: str | None) -> int | None:
        """The class of ``answer``, creating one if it is new; None for an abstention."""
        if answer is None:
            return None
        key = canonical_key(answer, self.answer_type)
        if key is None:
            if not (self.verbatim_unparsed and answer.strip()):
                return None
            key = "\0verbatim:" + answer.strip()
        found = self._by_key.get(key)
        if found is not None:
            return found
        if self.answer_type == "latex" and not key.startswith("\0"):
            for index, other in enumerate(self._keys):
                if not other.startswith("\0") and latex_equivalent(other, key):
                    self._by_key[key] = index
                    return index
        index = len(self._representatives)
        self._by_key[key] = index
        self._representatives.append(answer.strip())
        self._keys.append(key)
        return index

    def representative(self, cls: int) -> str:
        """The first answer text that founded the class."""
        return self._representatives[cls]

    def key(self, cls: int) -> str:
        return self._keys[cls]

    @property
    def keys(self) -> list[str]:
        """Every class's canonical key, in class order: the live list, which grows as classes are made (read,
        never write)."""
        return self._keys

    def __len__(self) -> int:
        return len(self._representatives)
