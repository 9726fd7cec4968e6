"""The skills of the synthetic task suite: what each one computes and how it is asked.

Every family draws its inputs from its own kind of text (quoted lowercase strings, numbers, bracketed
lists of capitals, fictional country names) and asks in its own *frames*: six or seven training
templates and one paraphrase with slots for the skill's words (``<verb> "{x}": ``, ``what is "{x}"
<adj>? ``, paraphrase ``how does "{x}" look <adj>? ``). Experts of one family therefore read similar
hidden states and learn weight updates with overlapping input spaces, which is what makes clustering
by weight update recover the families; the skill's words tell the skills apart (what a router
needs); and the paraphrase holds out a wording that no expert of the family saw.

Many frames, with tails of varied length after the input, make experts anchor on the input itself
rather than on positions: measured on the small zoo, string experts trained on four frames were
worse than the base on the paraphrase, trained on seven they were clearly better.
"""

from __future__ import annotations

import random
import string
from collections.abc import Callable
from dataclasses import dataclass, field

Fields = dict[str, str]

CONSONANTS = "bcdfghjklmnprstvz"
VOWELS = "aeiou"


@dataclass(frozen=True)
class World:
    """A fixed fictional world: countries and their capital, currency, language and animal."""

    countries: tuple[str, ...]
    facts: dict[str, dict[str, str]] = field(hash=False)


@dataclass(frozen=True)
class Skill:
    """One input->output mapping with its prompt templates.

    ``keys`` is set for table skills (lookups): their inputs are the world's countries, enumerated
    rather than sampled, because a fact cannot be held out of training and still be learnable.
    """

    name: str
    family: str
    sample: Callable[[random.Random], Fields]
    solve: Callable[[Fields], str]
    templates: tuple[str, ...]
    paraphrases: tuple[str, ...] = ()
    keys: tuple[str, ...] | None = None
    components: tuple[str, ...] = ()


def pseudo_word(rng: random.Random, syllables: int) -> str:
    """A pronounceable made-up word (``kelvor``), so that world names look like names."""
    return "".join(rng.choice(CONSONANTS) + rng.choice(VOWELS) + rng.choice(["", "", rng.choice("lnrs")])
                   for _ in range(syllables))


def make_world(rng: random.Random, n_countries: int) -> World:
    """Draw distinct made-up names for the countries and every attribute value."""
    used: set[str] = set()

    def fresh(syllables: int, capitalise: bool) -> str:
        while True:
            word = pseudo_word(rng, syllables)
            word = word.capitalize() if capitalise else word
            if word.lower() not in used and 4 <= len(word) <= 8:
                used.add(word.lower())
                return word

    countries = tuple(fresh(2, True) for _ in range(n_countries))
    facts = {
        country: {
            "capital": fresh(2, True),
            "currency": fresh(2, False),
            "language": fresh(2, True) + "ic",
            "animal": fresh(2, False),
        }
        for country in countries
    }
    return World(countries=countries, facts=facts)


def random_letters(rng: random.Random, low: int = 3, high: int = 6) -> str:
    return "".join(rng.choice(string.ascii_lowercase) for _ in range(rng.randint(low, high)))


def letter_list(rng: random.Random, low: int = 3, high: int = 6) -> list[str]:
    return rng.sample(string.ascii_uppercase, rng.randint(low, high))


def fmt_list(items: list[str]) -> str:
    return "[" + ",".join(items) + "]"


def _word(rng: random.Random) -> Fields:
    return {"x": random_letters(rng)}


def _items(rng: random.Random) -> Fields:
    return {"l": fmt_list(letter_list(rng))}


def _parse(fields: Fields) -> list[str]:
    return fields["l"].strip("[]").split(",")


def _reverse(s: str) -> str:
    return s[::-1]


def _double(s: str) -> str:
    return "".join(c + c for c in s)


def _fill(frames: tuple[str, ...], **words: str) -> tuple[str, ...]:
    """Put a skill's words into its family's frames (``<slot>`` markers; ``{x}`` stays for the input)."""
    out = []
    for frame in frames:
        for slot, word in words.items():
            frame = frame.replace(f"<{slot}>", word)
        out.append(frame)
    return tuple(out)


STRING_FRAMES = ('<verb> "{x}": ', '"{x}" <adj> is ', 'what is "{x}" <adj>? ', 'please <verb> "{x}" for me: ',
                 'the word "{x}" <adj> reads ', 'task: <verb> "{x}". answer: ', '"{x}", <adj>: ')
STRING_PARAPHRASE = ('how does "{x}" look <adj>? ',)


def string_skills() -> list[Skill]:
    """Character edits of a quoted random lowercase string: the base's copying ability, redirected.

    The quotes mark the input in every frame, so an expert learns to act on the quoted string and
    not on a position in the sentence.
    """
    def skill(name: str, solve: Callable[[str], str], verb: str, adj: str) -> Skill:
        return Skill(name, "strings", _word, lambda x: solve(x["x"]), _fill(STRING_FRAMES, verb=verb, adj=adj),
                     _fill(STRING_PARAPHRASE, verb=verb, adj=adj))

    return [
        skill("reverse", _reverse, "reverse", "reversed"),
        skill("double", _double, "double the letters of", "with doubled letters"),
        skill("rotate", lambda x: x[1:] + x[0], "rotate", "rotated left"),
        skill("swap_ends", lambda x: x[-1] + x[1:-1] + x[0], "swap the ends of", "with its ends swapped"),
        skill("drop_first", lambda x: x[1:], "drop the first letter of", "without its first letter"),
    ]


ARITHMETIC_FRAMES = ("<expr>=", "<phrase> is ", "what is <phrase>? ", "<order>: ", "task: <order>. answer: ",
                     "compute <phrase>: ")
ARITHMETIC_PARAPHRASE = ("how much is <phrase>? ",)


def number_pair(high_a: int, high_b: int, ordered: bool = False, low: int = 0) -> Callable[[random.Random], Fields]:
    """A sampler of two numbers ``a``, ``b`` (``ordered``: ``a >= b``, so that a difference is never negative)."""
    def sample(rng: random.Random) -> Fields:
        a, b = rng.randint(low, high_a), rng.randint(low, high_b)
        if ordered and b > a:
            a, b = b, a
        return {"a": str(a), "b": str(b)}
    return sample


def arithmetic_skills() -> list[Skill]:
    """Small-number arithmetic: a table the MLP can hold, with answers in the family's own digit vocabulary."""
    def triple(rng: random.Random) -> Fields:
        return {"a": str(rng.randint(0, 9)), "b": str(rng.randint(0, 9)), "c": str(rng.randint(0, 9))}

    def skill(name: str, sample: Callable[[random.Random], Fields], solve: Callable[[list[int]], int], expr: str,
              phrase: str, order: str) -> Skill:
        words = {"expr": expr, "phrase": phrase, "order": order}
        return Skill(name, "arithmetic", sample, lambda x: str(solve([int(x[k]) for k in sorted(x)])),
                     _fill(ARITHMETIC_FRAMES, **words), _fill(ARITHMETIC_PARAPHRASE, **words))

    return [
        skill("add", number_pair(19, 9), sum, "{a}+{b}", "{a} plus {b}", "add {a} and {b}"),
        skill("subtract", number_pair(19, 9, ordered=True), lambda v: v[0] - v[1], "{a}-{b}", "{a} minus {b}",
              "subtract {b} from {a}"),
        skill("max", number_pair(99, 99), max, "max({a},{b})", "the max of {a} and {b}",
              "pick the larger of {a} and {b}"),
        skill("multiply", number_pair(9, 9), lambda v: v[0] * v[1], "{a}*{b}", "{a} times {b}", "multiply {a} by {b}"),
        skill("add3", triple, sum, "{a}+{b}+{c}", "{a} plus {b} plus {c}", "add {a}, {b} and {c}"),
    ]


LIST_FRAMES = ("<noun> of {l}: ", "the <noun> of {l} is ", "what is the <noun> of {l}? ", "in {l}, the <noun> is ",
               "task: the <noun> of {l}. answer: ", "{l} has as <noun> ")
LIST_PARAPHRASE = ("which is the <noun> in the list {l}? ",)


def list_skills() -> list[Skill]:
    """Selection and counting over a bracketed list of capital letters."""
    def skill(name: str, solve: Callable[[list[str]], str], noun: str) -> Skill:
        return Skill(name, "lists", _items, lambda x: solve(_parse(x)), _fill(LIST_FRAMES, noun=noun),
                     _fill(LIST_PARAPHRASE, noun=noun))

    return [
        skill("first", lambda v: v[0], "first item"),
        skill("last", lambda v: v[-1], "last item"),
        skill("length", lambda v: str(len(v)), "number of items"),
        skill("second", lambda v: v[1], "second item"),
        skill("penultimate", lambda v: v[-2], "item before the last"),
    ]


LOOKUP_FRAMES = ("<noun> of {c}: ", "the <noun> of {c} is ", "what is the <noun> of {c}? ", "in {c}, the <noun> is ",
                 "task: the <noun> of {c}. answer: ", "{c} has as <noun> ")
LOOKUP_PARAPHRASE = ("which <noun> belongs to {c}? ",)


def lookup_skills(world: World) -> list[Skill]:
    """Facts about the fictional world, keyed by country: memorisation, stored mostly by the MLPs."""
    def skill(attribute: str, noun: str) -> Skill:
        return Skill(attribute, "lookups", lambda rng: {"c": rng.choice(world.countries)},
                     lambda x: world.facts[x["c"]][attribute], _fill(LOOKUP_FRAMES, noun=noun),
                     _fill(LOOKUP_PARAPHRASE, noun=noun), keys=world.countries)

    return [skill("capital", "capital"), skill("currency", "currency"), skill("language", "language"),
            skill("animal", "national animal")]


def composition_skills(world: World) -> list[Skill]:
    """Two known skills applied one after the other: no expert is trained on these."""
    def country(rng: random.Random) -> Fields:
        return {"c": rng.choice(world.countries)}

    def capital(x: Fields) -> str:
        return world.facts[x["c"]]["capital"]

    return [
        Skill("reverse_double", "compose", _word, lambda x: _double(_reverse(x["x"])),
              _fill(STRING_FRAMES[:3], verb="reverse and double", adj="reversed with doubled letters"),
              components=("reverse", "double")),
        Skill("capital_reverse", "compose", country, lambda x: _reverse(capital(x)),
              ("reverse the capital of {c}: ", "the capital of {c} reversed is ",
               "what is the capital of {c} reversed? "),
              components=("capital", "reverse")),
        Skill("capital_initial", "compose", country, lambda x: capital(x)[0],
              ("first letter of the capital of {c}: ", "the capital of {c} starts with ",
               "what is the first letter of the capital of {c}? "),
              components=("capital", "first")),
    ]


def family_skills(world: World) -> dict[str, list[Skill]]:
    """The four families, each skill list in training order (a profile trains a prefix of it)."""
    return {
        "strings": string_skills(),
        "arithmetic": arithmetic_skills(),
        "lists": list_skills(),
        "lookups": lookup_skills(world),
    }
