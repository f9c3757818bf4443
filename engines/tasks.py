"""Built-in tasks with checkable answers, and synthetic pretraining text made from them.

One place serves pretraining (synthetic text), SFT data, RL rewards, eval sets and the
prompting lab. A task draws examples from a seeded generator; each prompt belongs to the
train or the test split by a hash of the prompt, so the splits never overlap whatever seeds
are used. `check` pulls the final answer out of free text (the last number, a quoted word,
yes/no, a JSON object) and compares it with the reference. No torch here.

    from engines.tasks import get_task
    task = get_task("arithmetic")
    ex = task.examples(3, seed=0, split="test")[0]
    task.check(ex, "Let me add them up... the answer is 1,234.")
"""

from __future__ import annotations

import difflib
import hashlib
import json
import math
import random
import re
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from functools import cache
from importlib import resources

from engines.errors import UserError

SPLITS = ("train", "test")


def _words(text: str) -> list[str]:
    return text.split()


TEST_PERCENT = 20

WORDS = _words(
    "apple banana garden window river mountain planet pencil button candle dragon "
    "forest guitar harbor island jacket kitten ladder marble needle orange pepper "
    "rabbit saddle tunnel violin wagon yellow zipper bottle castle dinner engine "
    "flower honey insect jungle kettle lemon mirror number pocket rocket silver "
    "strawberry summer ticket turtle velvet winter blanket carpet cookie doctor "
    "feather hammer letter monkey parrot puzzle shadow spider thunder tomato basket"
)
PALINDROMES = _words(
    "racecar level radar civic kayak refer madam noon rotor stats tenet deed peep "
    "solos sagas reviver redder minim repaper rever wow pop eye gig did"
)
NUMBER_WORDS = {
    w: str(i)
    for i, w in enumerate(
        _words(
            "zero one two three four five six seven eight nine ten eleven twelve thirteen "
            "fourteen fifteen sixteen seventeen eighteen nineteen twenty"
        )
    )
}


@dataclass(frozen=True)
class Example:
    """One prompt with its reference answer; `meta` holds task-specific detail."""

    prompt: str
    answer: str
    meta: dict = field(default_factory=dict)


# ---------------------------------------------------------------- answer extraction

_MARKER = re.compile(r"answer\s*(?:is|:|=)\s*", re.IGNORECASE)
_NUMBER = re.compile(
    r"(?<![\w.])-?(?:\d{1,3}(?:,\d{3})+|\d+)(?:\.\d+)?\b|\b(?:" + "|".join(NUMBER_WORDS) + r")\b",
    re.IGNORECASE,
)
_YES_NO = re.compile(r"\b(yes|no)\b", re.IGNORECASE)
_QUOTED = re.compile(r"(?<!\w)[\"'`‘“]([^\"'`’”\n]+)[\"'`’”](?!\w)")
_WORD = re.compile(r"[^\W\d_]+(?:'[^\W\d_]+)?")


def _after_marker(text: str) -> str | None:
    """The text after the last 'answer is' / 'answer:', or None when there is no marker."""
    found = list(_MARKER.finditer(text))
    return text[found[-1].end() :] if found else None


def _pick(pattern: re.Pattern, text: str) -> str | None:
    """First match after an answer marker, else the last match anywhere."""
    tail = _after_marker(text)
    if tail is not None and (m := pattern.search(tail)):
        return m.group(1) if pattern.groups else m.group(0)
    found = pattern.findall(text)
    return found[-1] if found else None


def extract_number(text: str) -> str | None:
    """The final number in free text as a plain integer/decimal string ('1,234' → '1234')."""
    raw = _pick(_NUMBER, text)
    if raw is None:
        return None
    return NUMBER_WORDS.get(raw.lower(), raw.replace(",", ""))


def extract_yes_no(text: str) -> str | None:
    """The final yes/no in free text, lower-cased."""
    raw = _pick(_YES_NO, text)
    return raw.lower() if raw else None


def extract_word(text: str) -> str | None:
    """A quoted string if there is one, else the last word of the final answer segment."""
    tail = _after_marker(text)
    segment = tail if tail is not None else (text.strip().splitlines() or [""])[-1]
    quoted = _QUOTED.findall(segment) or ([] if tail is not None else _QUOTED.findall(text))
    if quoted:
        return (quoted[0] if tail is not None else quoted[-1]).strip()
    words = _WORD.findall(segment)
    return (words[0] if tail is not None else words[-1]) if words else None


def extract_json(text: str) -> dict | None:
    """The last JSON object in free text that parses, or None."""
    decoder = json.JSONDecoder()
    found = None
    for start in (i for i, ch in enumerate(text) if ch == "{"):
        try:
            obj, _ = decoder.raw_decode(text, start)
        except ValueError:
            continue
        if isinstance(obj, dict):
            found = obj
    return found


def _normalise(text: str) -> str:
    return " ".join(re.sub(r"[^\w\s']", " ", text.lower()).split())


def _check_phrase(answer: str, completion: str) -> bool:
    tail = _after_marker(completion)
    segment = tail if tail is not None else (completion.strip().splitlines() or [""])[-1]
    return (
        re.search(rf"(?<!\w){re.escape(_normalise(answer))}(?!\w)", _normalise(segment)) is not None
    )


CHECKS: dict[str, Callable[[str, str], bool]] = {
    "number": lambda answer, c: extract_number(c) == answer,
    "yesno": lambda answer, c: extract_yes_no(c) == answer,
    "word": lambda answer, c: (extract_word(c) or "").lower() == answer.lower(),
    "phrase": _check_phrase,
    "json": lambda answer, c: extract_json(c) == json.loads(answer),
}


def similarity(a: str, b: str) -> float:
    """How alike two texts are, 0..1 (difflib's ratio, case-insensitive; 1: the same text)."""
    return difflib.SequenceMatcher(None, a.lower(), b.lower(), autojunk=False).ratio()


def _number_credit(answer: str, completion: str) -> float:
    """1 / (1 + orders of magnitude off): 1 when right, 0.5 when off by 9, 0 with no number."""
    got = extract_number(completion)
    if got is None:
        return 0.0
    try:
        off = abs(float(got) - float(answer))
    except ValueError:
        return similarity(got, answer) / 2
    return 1.0 / (1.0 + math.log10(1.0 + off))


def _phrase_credit(answer: str, completion: str) -> float:
    if _check_phrase(answer, completion):
        return 1.0
    tail = _after_marker(completion)
    segment = tail if tail is not None else (completion.strip().splitlines() or [""])[-1]
    return similarity(_normalise(segment), _normalise(answer))


def _json_credit(answer: str, completion: str) -> float:
    """The share of the reference's keys whose values the last JSON object has right."""
    got, want = extract_json(completion), json.loads(answer)
    if got is None or not want:
        return 0.0
    return sum(got.get(k) == v for k, v in want.items()) / len(want)


# Partial credit, 0..1, for how close a completion's final answer is to the reference (1 when the
# checker would accept it): what a labeller would weigh after "right or wrong".
CREDITS: dict[str, Callable[[str, str], float]] = {
    "number": _number_credit,
    "yesno": lambda answer, c: float(extract_yes_no(c) == answer),
    "word": lambda answer, c: similarity(extract_word(c) or "", answer),
    "phrase": _phrase_credit,
    "json": _json_credit,
}


def _wrong_number(answer: str, rng: random.Random) -> str:
    value = int(answer)
    step = rng.choice((1, 2, 10))
    return str(value + step if value - step < 0 or rng.random() < 0.5 else value - step)


def _wrong_word(answer: str, rng: random.Random) -> str:
    if len(answer) < 2:
        return answer + rng.choice("aeiou")
    i = rng.randrange(len(answer) - 1)  # two neighbouring letters swapped (or one doubled)
    swapped = answer[:i] + answer[i + 1] + answer[i] + answer[i + 2 :]
    return swapped if swapped != answer else answer[: i + 1] + answer[i:]


def _wrong_json(answer: str, rng: random.Random) -> str | None:
    record = json.loads(answer)
    numbers = [k for k, v in record.items() if isinstance(v, int) and not isinstance(v, bool)]
    if not numbers:
        return None
    key = rng.choice(numbers)
    return json.dumps({**record, key: record[key] + rng.choice((-1, 1))})


# A plausible wrong final answer made from the reference: a number a little off, the other of
# yes/no, a word with two letters swapped, a JSON field off by one (None: no such answer).
WRONG: dict[str, Callable[[str, random.Random], str | None]] = {
    "number": _wrong_number,
    "yesno": lambda answer, rng: "no" if answer == "yes" else "yes",
    "word": _wrong_word,
    "phrase": lambda answer, rng: None,
    "json": _wrong_json,
}


# ---------------------------------------------------------------- the Task type


def split_of(task_name: str, prompt: str) -> str:
    """'train' or 'test', fixed by a hash of the prompt (so splits never overlap)."""
    digest = hashlib.sha256(f"{task_name}\n{prompt}".encode()).digest()
    return "test" if int.from_bytes(digest[:8], "big") % 100 < TEST_PERCENT else "train"


@dataclass(frozen=True)
class Task:
    """A task: a generator of examples from an RNG plus how to check an answer."""

    name: str
    description: str
    sample: Callable[[random.Random], Example]
    answer_kind: str  # a key of CHECKS; an example may override it with meta["kind"]

    def stream(self, seed: int = 0, split: str = "train") -> Iterator[Example]:
        """Endless examples of one split (may repeat), deterministic from seed."""
        _check_split(split)
        rng = random.Random(f"{self.name}/{split}/{seed}")
        while True:
            ex = self.sample(rng)
            if split_of(self.name, ex.prompt) == split:
                yield ex

    def examples(self, n: int, seed: int = 0, split: str = "train") -> list[Example]:
        """n distinct examples of one split; repeats only when the task has fewer than n."""
        _check_split(split)
        rng = random.Random(f"{self.name}/{split}/{seed}")
        found: dict[str, Example] = {}
        for _ in range(50 * n + 2000):
            if len(found) >= n:
                break
            ex = self.sample(rng)
            if split_of(self.name, ex.prompt) == split:
                found.setdefault(ex.prompt, ex)
        pool = list(found.values())
        assert pool or n == 0, f"task {self.name} produced no {split} examples"
        return [pool[i % len(pool)] for i in range(n)]

    def check(self, example: Example, completion: str) -> bool:
        """True when the final answer in `completion` matches the example's answer."""
        return CHECKS[example.meta.get("kind", self.answer_kind)](example.answer, completion)

    def credit(self, example: Example, completion: str) -> float:
        """Partial credit, 0..1: how close the final answer is to the reference (1: right).

        Numbers score by how many orders of magnitude they are off, words and phrases by their
        similarity to the reference, JSON by the share of fields right, yes/no all or nothing.
        """
        return CREDITS[example.meta.get("kind", self.answer_kind)](example.answer, completion)

    def wrong(self, example: Example, rng: random.Random) -> str | None:
        """A plausible wrong answer (the reference altered; `WRONG`) that the checker refuses,
        or None when the answer kind has none."""
        made = WRONG[example.meta.get("kind", self.answer_kind)](example.answer, rng)
        return made if made and not self.check(example, made) else None


def _check_split(split: str) -> None:
    if split not in SPLITS:
        raise UserError(f"split {split!r} is not one of {', '.join(SPLITS)}; use 'train' or 'test'")


# ---------------------------------------------------------------- the tasks


def arithmetic_task(digits: int = 3, name: str = "arithmetic") -> Task:
    """Add, subtract or multiply two numbers of up to `digits` digits."""
    if digits < 1:
        raise UserError(f"arithmetic digits {digits} must be at least 1")

    def sample(rng: random.Random) -> Example:
        a, b = rng.randint(0, 10**digits - 1), rng.randint(0, 10**digits - 1)
        op = rng.choice("+-*")
        value = {"+": a + b, "-": a - b, "*": a * b}[op]
        return Example(f"What is {a} {op} {b}?", str(value), {"a": a, "b": b, "op": op})

    return Task(name, f"integer + - * with up to {digits} digit(s)", sample, "number")


def _reverse(rng: random.Random) -> Example:
    word = rng.choice(WORDS)
    return Example(f"Reverse the word '{word}'.", word[::-1], {"word": word})


def _count_letters(rng: random.Random) -> Example:
    word = rng.choice(WORDS)
    letter = rng.choice(sorted(set(word)) + ["e", "a", "r"])
    prompt = f"How many times does the letter '{letter}' appear in '{word}'?"
    return Example(prompt, str(word.count(letter)), {"word": word, "letter": letter})


def _palindrome(rng: random.Random) -> Example:
    word = rng.choice(PALINDROMES if rng.random() < 0.5 else WORDS)
    answer = "yes" if word == word[::-1] else "no"
    return Example(f"Is '{word}' a palindrome? Answer yes or no.", answer, {"word": word})


NAMES = _words("Mara Tobin Ines Odile Rafael Marcus Lena Yusuf Priya Hugo Aiko Bram")
CITIES = _words("Brindlewick Carrow Osmere Hightop Tanner Millpond")


def _json_extract(rng: random.Random) -> Example:
    name, city, age = rng.choice(NAMES), rng.choice(CITIES), rng.randint(18, 90)
    sentence = f"{name} is {age} years old and lives in {city}."
    prompt = (
        f"Extract the person's name, age and city from this sentence as a JSON object "
        f'with keys "name", "age" and "city": {sentence}'
    )
    answer = json.dumps({"name": name, "age": age, "city": city})
    return Example(prompt, answer, {"sentence": sentence})


@cache
def fact_documents() -> tuple[dict, ...]:
    """The bundled fictional documents (engines/data/facts.jsonl), each with its questions."""
    text = resources.files("engines").joinpath("data/facts.jsonl").read_text(encoding="utf-8")
    return tuple(json.loads(line) for line in text.splitlines() if line.strip())


def _facts(rng: random.Random) -> Example:
    doc = rng.choice(fact_documents())
    qa = rng.choice(doc["questions"])
    kind = "number" if qa["answer"].isdigit() else "phrase"
    meta = {"doc_id": doc["id"], "document": doc["text"], "kind": kind}
    return Example(qa["question"], qa["answer"], meta)


TASKS: dict[str, Task] = {
    t.name: t
    for t in (
        arithmetic_task(),
        # one digit: a 135M model answers some (SmolLM2 37.5% greedy), so GRPO groups of its
        # samples hold right and wrong answers to learn from; three digits it nearly never does
        arithmetic_task(1, "arithmetic_1digit"),
        Task("reverse", "reverse the letters of a word", _reverse, "word"),
        Task("count_letters", "count one letter in a word", _count_letters, "number"),
        Task("palindrome", "is a word a palindrome (yes/no)", _palindrome, "yesno"),
        Task("json_extract", "name, age and city from a sentence as JSON", _json_extract, "json"),
        Task("facts", "questions about the bundled fictional documents", _facts, "phrase"),
    )
}


def get_task(name: str) -> Task:
    """The built-in task called `name`."""
    if name not in TASKS:
        raise UserError(f"unknown task {name!r}; valid tasks: {', '.join(TASKS)}")
    return TASKS[name]


# ---------------------------------------------------------------- synthetic pretraining text

STORY_NAMES = _words("Lily Tom Mia Sam Ben Anna Max Zoe Leo Ella")
ANIMALS = _words("cat dog rabbit bird fox bear duck frog mouse turtle")
ADJECTIVES = _words("little happy brave quiet curious sleepy clever kind tiny friendly")
PLACES = _words("park garden forest yard house barn field meadow woods village")
OBJECTS = _words("ball kite book hat apple box boat drum shell cookie")
LOOKS = _words("shiny red soft round old big small blue")
FEELINGS = _words("happy sad surprised proud scared excited tired glad")


def _a(word: str) -> str:
    return f"an {word}" if word[0] in "aeiou" else f"a {word}"


def _story(rng: random.Random) -> str:
    """A short templated story: an opening, some events in order, an ending."""
    name, friend = rng.sample(STORY_NAMES, 2)
    animal, adj, place = rng.choice(ANIMALS), rng.choice(ADJECTIVES), rng.choice(PLACES)
    obj, obj2, look = rng.choice(OBJECTS), rng.choice(OBJECTS), rng.choice(LOOKS)
    events = [
        f"One day, {name} found {_a(look)} {obj} in the {place}.",
        f"{name} showed the {obj} to {friend}, who was {_a(rng.choice(ANIMALS))}.",
        f"{friend} had {_a(obj2)}, so they played with the {obj} and the {obj2} together.",
        f"Then it started to rain, and they ran home to the {rng.choice(PLACES)}.",
        f"{name} felt {rng.choice(FEELINGS)}, because the {obj} was so {look}.",
    ]
    keep = sorted(rng.sample(range(len(events)), rng.randint(2, len(events))))
    sentences = [f"Once upon a time, there was {_a(adj)} {animal} named {name}."]
    sentences.append(f"{name} liked to play in the {place} every day.")
    sentences += [events[i] for i in keep]
    sentences.append(f"At the end of the day, {name} and {friend} were {rng.choice(FEELINGS)}.")
    return " ".join(sentences)


def _task_document(streams: list[Iterator[Example]], rng: random.Random, per_doc: int) -> str:
    lines = []
    for _ in range(per_doc):
        ex = next(rng.choice(streams))
        lines.append(f"Question: {ex.prompt}\nAnswer: {ex.answer}\n")
    return "\n".join(lines)


def _fact_texts(count: int, rng: random.Random) -> Iterator[str]:
    """count fact documents, every one once per round, in a fresh shuffled order each round."""
    docs = fact_documents()
    order: list[int] = []
    for i in range(count):
        if i % len(docs) == 0:
            order = rng.sample(range(len(docs)), len(docs))
        doc = docs[order[i % len(docs)]]
        yield f"{doc['title']}\n\n{doc['text']}"


SYNTHETIC = ("tasks", "stories", "facts")
DEFAULT_SYNTHETIC_DOCS = 1000


def synthetic_documents(name: str, n: int | None = None, seed: int = 0) -> Iterator[str]:
    """n synthetic documents: 'tasks' (worked train-split examples), 'stories', 'facts'.

    n=None gives every fact document once, or DEFAULT_SYNTHETIC_DOCS for the others.
    """
    if name not in SYNTHETIC:
        raise UserError(f"unknown synthetic source {name!r}; valid names: {', '.join(SYNTHETIC)}")
    rng = random.Random(f"synthetic/{name}/{seed}")
    if name == "facts":
        return _fact_texts(len(fact_documents()) if n is None else n, rng)
    count = DEFAULT_SYNTHETIC_DOCS if n is None else n
    if name == "stories":
        return (_story(rng) for _ in range(count))
    streams = [t.stream(seed, "train") for t in TASKS.values()]
    return (_task_document(streams, rng, per_doc=8) for _ in range(count))
