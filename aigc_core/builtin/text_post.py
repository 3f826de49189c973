"""Text post-processors: plain-Python string work, no torch.

Changers (``normalize``, ``redact-pii``) record what they did in ``meta["postprocess"]``; gates
(``dedupe``, ``length``, ``blocklist``, ``repetition``) drop items through ``content.drop`` so the
reason stays with the item and ends up in the manifest.
"""

from __future__ import annotations

import re
import unicodedata
import zlib
from pathlib import Path
from typing import Literal, Optional

from aigc_core.contract.base import PostProcessor
from aigc_core.contract.content import Content, Item
from aigc_core.contract.params import Field, ParamError, Params, model_validator
from aigc_core.contract.preflight import PathField


def _note(item: Item, name: str, detail) -> Item:
    meta = dict(item.meta)
    meta["postprocess"] = [*meta.get("postprocess", []), {name: detail}]
    return Item(item.data, meta)


class TextGate(PostProcessor):
    """A gate that judges each text alone: ``reason(text)`` says why it goes (None keeps it), and
    the item is dropped under ``drop_by``, the gate's name."""

    drop_by = ""

    def reason(self, text: str) -> str | None:
        raise NotImplementedError

    def __call__(self, content: Content) -> Content:
        kept, dropped = [], []
        for item in content.items:
            why = self.reason(str(item.data))
            if why:
                dropped.append(content.drop(item, self.drop_by, why))
            else:
                kept.append(item)
        return content.replace(kept, dropped)


# --------------------------------------------------------------------------------------------


class NormalizeParams(Params):
    form: Literal["NFC", "NFKC", "NFD", "NFKD", "none"] = Field("NFKC", description="Unicode normalisation form")
    collapse_whitespace: bool = Field(True, description="runs of spaces/tabs -> one space; 3+ newlines -> 2")
    strip: bool = Field(True, description="strip leading and trailing whitespace")


_SPACES = re.compile(r"[^\S\n]+")
_TRAILING = re.compile(r" +\n")
_BLANKS = re.compile(r"\n{3,}")


class Normalize(PostProcessor):
    """Unicode normal form and tidy whitespace, so later gates compare like with like."""

    Params = NormalizeParams

    def normalize(self, text: str) -> str:
        p = self.params
        if p.form != "none":
            text = unicodedata.normalize(p.form, text)
        if p.collapse_whitespace:
            text = text.replace("\r\n", "\n").replace("\r", "\n")
            text = _SPACES.sub(" ", text)
            text = _TRAILING.sub("\n", text)
            text = _BLANKS.sub("\n\n", text)
        if p.strip:
            text = text.strip()
        return text

    def __call__(self, content: Content) -> Content:
        out = []
        for item in content.items:
            new = self.normalize(str(item.data))
            item = _note(item, "normalize", {"changed": new != item.data, "form": self.params.form})
            out.append(Item(new, item.meta))
        return content.replace(out)


# --------------------------------------------------------------------------------------------


class DedupeParams(Params):
    near: bool = Field(True, description="also drop near-duplicates, not only exact ones")
    threshold: float = Field(0.9, gt=0, le=1, description="Jaccard similarity of character shingles that counts as \"near\"")
    shingle: int = Field(5, ge=1, description="characters per shingle for near-duplicate detection")


def _canonical(text: str) -> str:
    return " ".join(text.casefold().split())


def _shingles(text: str, k: int) -> frozenset:
    if len(text) <= k:
        return frozenset([text])
    return frozenset(text[i:i + k] for i in range(len(text) - k + 1))


class Dedupe(PostProcessor):
    """Keeps the first of every group of equal or nearly equal texts (case and spacing ignored)."""

    Params = DedupeParams

    def __call__(self, content: Content) -> Content:
        kept: list[Item] = []
        dropped: list[Item] = []
        seen: dict[str, int] = {}
        sets: list[tuple[int, frozenset]] = []
        for position, item in enumerate(content.items):
            canon = _canonical(str(item.data))
            index = item.meta.get("index", position)
            if canon in seen:
                dropped.append(content.drop(item, "dedupe", f"exact duplicate of item {seen[canon]}"))
                continue
            if self.params.near:
                sh = _shingles(canon, self.params.shingle)
                match = None
                for other, osh in sets:
                    union = len(sh | osh)
                    sim = len(sh & osh) / union if union else 1.0
                    if sim >= self.params.threshold:
                        match = (other, sim)
                        break
                if match:
                    dropped.append(content.drop(item, "dedupe",
                                                f"near duplicate of item {match[0]} (similarity {match[1]:.2f})"))
                    continue
                sets.append((index, sh))
            seen[canon] = index
            kept.append(item)
        return content.replace(kept, dropped)


# --------------------------------------------------------------------------------------------


class LengthParams(Params):
    min_chars: int = Field(0, ge=0, description="drop texts shorter than this many characters")
    max_chars: Optional[int] = Field(None, description="drop texts longer than this many characters")
    min_words: int = Field(0, ge=0, description="drop texts with fewer words")
    max_words: Optional[int] = Field(None, description="drop texts with more words")

    @model_validator(mode="after")
    def _ordered(self) -> "LengthParams":
        for low, high in (("min_chars", "max_chars"), ("min_words", "max_words")):
            if getattr(self, high) is not None and getattr(self, high) < getattr(self, low):
                raise ParamError(high, f"must be at least {low} ({getattr(self, low)})")
        return self


class Length(TextGate):
    Params = LengthParams
    drop_by = "length"

    def reason(self, text: str) -> str | None:
        p = self.params
        chars, words = len(text), len(text.split())
        if chars < p.min_chars:
            return f"too short: {chars} characters < min_chars {p.min_chars}"
        if p.max_chars is not None and chars > p.max_chars:
            return f"too long: {chars} characters > max_chars {p.max_chars}"
        if words < p.min_words:
            return f"too short: {words} words < min_words {p.min_words}"
        if p.max_words is not None and words > p.max_words:
            return f"too long: {words} words > max_words {p.max_words}"
        return None



# --------------------------------------------------------------------------------------------


class BlocklistParams(Params):
    path: Optional[str] = PathField(None, exists="file", description="one entry a line; \"re:PATTERN\" lines are regexes, \"#\" starts a comment")
    words: list[str] = Field([], description="more entries given inline, in the same form")
    case_sensitive: bool = Field(False, description="match case exactly")

    @model_validator(mode="after")
    def _readable(self) -> "BlocklistParams":
        if not self.path and not self.words:
            raise ParamError("path", "give a blocklist file (or words)")
        self.patterns()  # reads the file and compiles every entry now, so a bad file or regex fails at check time
        return self

    def patterns(self) -> list[tuple[str, re.Pattern]]:
        flags = 0 if self.case_sensitive else re.IGNORECASE
        entries = [(word, "words") for word in self.words]
        if self.path:
            p = Path(self.path).expanduser()
            try:
                lines = p.read_text(encoding="utf-8").splitlines()
            except (UnicodeDecodeError, OSError) as exc:
                raise ParamError("path", f"unreadable blocklist {p} ({exc})" if p.is_file() else f"no such file: {p}") from None
            entries += [(line.strip(), f"{self.path}:{n}") for n, line in enumerate(lines, 1)]
        out = []
        for entry, where in entries:
            if entry and not entry.startswith("#"):
                regex = entry[3:] if entry.startswith("re:") else r"(?<!\w)" + re.escape(entry) + r"(?!\w)"
                try:  # only a "re:" entry can fail: a word is escaped
                    out.append((entry, re.compile(regex, flags)))
                except re.error as exc:
                    raise ParamError("path", f"bad regex at {where}: {exc}") from None
        return out


class Blocklist(PostProcessor):
    """Drops texts containing a listed word (whole words) or matching a listed regex."""

    Params = BlocklistParams

    def __call__(self, content: Content) -> Content:
        patterns = self.params.patterns()
        kept, dropped = [], []
        for item in content.items:
            hit = next((label for label, rx in patterns if rx.search(str(item.data))), None)
            if hit is None:
                kept.append(item)
            else:
                dropped.append(content.drop(item, "blocklist", f"matched blocklist entry {hit!r}"))
        return content.replace(kept, dropped)


# --------------------------------------------------------------------------------------------


class RedactParams(Params):
    email: bool = Field(True, description="replace e-mail addresses by [EMAIL]")
    phone: bool = Field(True, description="replace phone numbers by [PHONE]")
    ip: bool = Field(True, description="replace IPv4/IPv6 addresses by [IP]")
    card: bool = Field(True, description="replace card-like numbers by [CARD]")
    luhn: bool = Field(True, description="only numbers passing the card checksum count as cards")


_EMAIL = re.compile(r"[\w.+-]+@[\w-]+(?:\.[\w-]+)*\.[A-Za-z]{2,}")
_CARD = re.compile(r"(?<![\d-])\d(?:[ -]?\d){12,18}(?![\d-])")
_IPV4 = re.compile(r"(?<![\d.])(?:(?:25[0-5]|2[0-4]\d|1\d\d|[1-9]?\d)\.){3}(?:25[0-5]|2[0-4]\d|1\d\d|[1-9]?\d)(?![\d.])")
_IPV6 = re.compile(r"(?<![\w:])(?:[0-9A-Fa-f]{1,4}:){7}[0-9A-Fa-f]{1,4}(?![\w:])")
_PHONE = re.compile(r"(?<![\w+])(?:\+\d{1,3}[ .-]?)?(?:\(\d{1,4}\)[ .-]?)?\d{2,4}(?:[ .-]\d{2,4}){1,4}(?!\w)")


def _luhn(digits: str) -> bool:
    total = 0
    for i, ch in enumerate(reversed(digits)):
        d = int(ch)
        if i % 2:
            d = d * 2 - 9 if d > 4 else d * 2
        total += d
    return total % 10 == 0


class RedactPII(PostProcessor):
    """Replaces personal data by tags ([EMAIL], [CARD], [IP], [PHONE]); counts go in the metadata."""

    Params = RedactParams

    def redact(self, text: str) -> tuple[str, dict]:
        p = self.params
        counts: dict[str, int] = {}

        def sub(rx: re.Pattern, tag: str, text: str, check=None) -> str:
            def repl(m: re.Match) -> str:
                if check is not None and not check(m.group(0)):
                    return m.group(0)
                counts[tag] = counts.get(tag, 0) + 1
                return f"[{tag}]"
            return rx.sub(repl, text)

        if p.email:
            text = sub(_EMAIL, "EMAIL", text)
        if p.card:  # before phones: a card number also looks like a long phone number
            text = sub(_CARD, "CARD", text, (lambda s: _luhn(re.sub(r"\D", "", s))) if p.luhn else None)
        if p.ip:
            text = sub(_IPV4, "IP", text)
            text = sub(_IPV6, "IP", text)
        if p.phone:
            text = sub(_PHONE, "PHONE", text, lambda s: 7 <= len(re.sub(r"\D", "", s)) <= 15)
        return text, counts

    def __call__(self, content: Content) -> Content:
        out = []
        for item in content.items:
            text, counts = self.redact(str(item.data))
            item = _note(item, "redact-pii", counts)
            out.append(Item(text, item.meta))
        return content.replace(out)


# --------------------------------------------------------------------------------------------


class RepetitionParams(Params):
    ngram: int = Field(3, ge=1, description="word n-grams (character n-grams of 10 for texts of few words)")
    max_repeated_ngrams: float = Field(0.5, gt=0, le=1, description="share of n-grams that repeat an earlier one")
    min_compression_ratio: float = Field(0.2, ge=0, lt=1, description="zlib size / raw size below this means a loop")
    min_chars: int = Field(40, description="shorter texts are too short to judge and pass")


def repeated_ngram_share(text: str, n: int) -> float:
    words = text.split()
    units = words if len(words) >= 4 * n else list(text)
    k = n if units is words else 10
    grams = [tuple(units[i:i + k]) for i in range(len(units) - k + 1)]
    if not grams:
        return 0.0
    return 1.0 - len(set(grams)) / len(grams)


def compression_ratio(text: str) -> float:
    raw = text.encode("utf-8")
    return len(zlib.compress(raw, 9)) / max(1, len(raw))


class Repetition(TextGate):
    """Quality gate against degenerate loops ("the the the...", one line over and over)."""

    Params = RepetitionParams
    drop_by = "repetition"

    def reason(self, text: str) -> str | None:
        p = self.params
        if len(text) < p.min_chars:
            return None
        share = repeated_ngram_share(text, p.ngram)
        if share > p.max_repeated_ngrams:
            return f"repetitive: {share:.0%} of {p.ngram}-grams repeat (max_repeated_ngrams {p.max_repeated_ngrams})"
        ratio = compression_ratio(text)
        if ratio < p.min_compression_ratio:
            return f"repetitive: compresses to {ratio:.2f} of its size (min_compression_ratio {p.min_compression_ratio})"
        return None

