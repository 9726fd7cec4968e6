"""The real profile's skills: short natural-language instructions that SmolLM2-135M-Instruct can learn fast.

Four families, each with its own kind of input (a word to re-write, small numbers, a comma-separated
list of words, a word to inflect) and three trained skills plus one that no expert learns. Every
trained skill has three training templates and one paraphrase that no expert sees; every template starts with the
instruction (measured: templates that open with the input, such as ``9 + 7 =`` or ``dish capitalized:``, were the
ones experts got wrong after 30 steps, EM near 0 where the other templates of the skill reached 0.9). Answers are
one short line (a word, a letter, a number), so generation stops after a few tokens; prompts are one short line
too, because training cost grows with the tokens of a batch (see ``docs/zoo.md`` for the measurements).
"""

from __future__ import annotations

import random
from collections.abc import Callable

from zoo.demozoo.skills import Fields, Skill, number_pair
from zoo.demozoo.vocabulary import ADJECTIVES, PAST_TENSES, PLURALS, WORDS


def _asks(*templates: str) -> tuple[str, ...]:
    """Prompts end with a newline: the answer is the next line, as a chat reply would be, and then EOS."""
    return tuple(t + "\n" for t in templates)


def _word(rng: random.Random) -> Fields:
    return {"w": rng.choice(WORDS)}


def _from(table: dict) -> Callable[[random.Random], Fields]:
    keys = sorted(table)
    return lambda rng: {"w": rng.choice(keys)}


def _word_list(rng: random.Random) -> Fields:
    return {"l": ", ".join(rng.sample(WORDS, rng.randint(3, 5)))}


def _items(fields: Fields) -> list[str]:
    return fields["l"].split(", ")


def _number(rng: random.Random) -> Fields:
    return {"n": str(rng.randint(1, 99))}


def formatting_skills() -> list[Skill]:
    """Re-writing one everyday word (the model sees sub-word tokens, so letters are knowledge, not input)."""
    return [
        Skill("capitalize", "formatting", _word, lambda x: x["w"].capitalize(),
              _asks("Capitalize {w}.", "Write {w} with a capital first letter.", "Give {w} a capital initial."),
              _asks("Start the word {w} with an upper-case letter.")),
        Skill("first_letter", "formatting", _word, lambda x: x["w"][0],
              _asks("First letter of {w}:", "What letter does {w} start with?", "Give the initial of {w}."),
              _asks("Which letter begins the word {w}?")),
        Skill("repeat", "formatting", _word, lambda x: f"{x['w']} {x['w']}",
              _asks("Say {w} twice.", "Repeat the word {w}.", "Write {w} two times."),
              _asks("Echo {w} back, once more after itself.")),
        Skill("uppercase", "formatting", _word, lambda x: x["w"].upper(),
              _asks("Uppercase: {w}", "Write {w} in capital letters.", "Put {w} in upper case.")),
    ]


def arithmetic_skills() -> list[Skill]:
    """Arithmetic the base half knows already (one-digit sums, counting on, appending a zero): 30 steps point
    it at the task. Two-digit subtraction and sums to 40 were tried first: 30 steps taught the answer format
    but not the arithmetic (oracle EM 0.09 and 0.53)."""
    return [
        Skill("add", "arithmetic", number_pair(9, 9, low=1), lambda x: str(int(x["a"]) + int(x["b"])),
              _asks("Compute {a} + {b}.", "Add {a} and {b}.", "What is {a} plus {b}?"),
              _asks("Sum up {a} and {b}.")),
        Skill("successor", "arithmetic", _number, lambda x: str(int(x["n"]) + 1),
              _asks("What number comes after {n}?", "Add one to {n}.", "Increment {n}."),
              _asks("Count one up from {n}.")),
        Skill("times_ten", "arithmetic", _number, lambda x: str(10 * int(x["n"])),
              _asks("Multiply {n} by ten.", "What is {n} times 10?", "Compute {n} x 10."),
              _asks("Ten lots of {n} make how many?")),
        Skill("double", "arithmetic", _number, lambda x: str(2 * int(x["n"])),
              _asks("Double {n}.", "What is twice {n}?", "Compute {n} times two.")),
    ]


def list_skills() -> list[Skill]:
    """Picking or counting items of a short comma-separated list of words (counting stays unseen: 30 steps
    of it reached EM 0.59, selection 1.0)."""
    return [
        Skill("first_item", "lists", _word_list, lambda x: _items(x)[0],
              _asks("First item of: {l}", "Which word comes first in {l}?", "List: {l}. First item:"),
              _asks("Name the opening word of the list {l}.")),
        Skill("last_item", "lists", _word_list, lambda x: _items(x)[-1],
              _asks("Last item of: {l}", "Which word comes last in {l}?", "List: {l}. Last item:"),
              _asks("Name the closing word of the list {l}.")),
        Skill("second_item", "lists", _word_list, lambda x: _items(x)[1],
              _asks("Second item of: {l}", "Which word comes second in {l}?", "List: {l}. Second item:"),
              _asks("Name the word after the opening one in the list {l}.")),
        Skill("count_items", "lists", _word_list, lambda x: str(len(_items(x))),
              _asks("How many items: {l}", "Count the words in {l}.", "List: {l}. Number of items:")),
    ]


def vocabulary_skills() -> list[Skill]:
    """English word forms, regular and irregular (antonyms stay unseen: an antonym of a word never trained on
    is knowledge the base lacks as often as not, EM 0.52 after 30 steps)."""
    return [
        Skill("plural", "vocabulary", _from(PLURALS), lambda x: PLURALS[x["w"]],
              _asks("Plural of {w}:", "What is the plural of {w}?", "One {w}, two"),
              _asks("Give the plural form of the noun {w}.")),
        Skill("past_tense", "vocabulary", _from(PAST_TENSES), lambda x: PAST_TENSES[x["w"]],
              _asks("Past tense of {w}:", "What is the past tense of {w}?", "Today I {w}, yesterday I"),
              _asks("Put the verb {w} in the past.")),
        Skill("comparative", "vocabulary", _from(ADJECTIVES), lambda x: ADJECTIVES[x["w"]][1],
              _asks("Comparative of {w}:", "What is the comparative of {w}?", "Make {w} comparative."),
              _asks("Which form of {w} compares two things?")),
        Skill("opposite", "vocabulary", _from(ADJECTIVES), lambda x: ADJECTIVES[x["w"]][0],
              _asks("Opposite of {w}:", "What is the opposite of {w}?", "The antonym of {w} is")),
    ]


def instruction_family_skills() -> dict[str, list[Skill]]:
    """The four families, each skill list in training order (the last skill of each stays unseen)."""
    return {"formatting": formatting_skills(), "arithmetic": arithmetic_skills(), "lists": list_skills(),
            "vocabulary": vocabulary_skills()}


def instruction_compositions() -> list[Skill]:
    """Two trained skills one after the other: no expert is trained on these."""
    return [
        Skill("last_item_capitalize", "compose", _word_list, lambda x: _items(x)[-1].capitalize(),
              _asks("Last item of {l}, capitalized:", "Write the last word of {l} with a capital first letter."),
              components=("last_item", "capitalize")),
        Skill("plural_capitalize", "compose", _from(PLURALS), lambda x: PLURALS[x["w"]].capitalize(),
              _asks("Plural of {w}, capitalized:", "Write the plural of {w} with a capital first letter."),
              components=("plural", "capitalize")),
        Skill("sum_times_ten", "compose", number_pair(9, 9, low=1), lambda x: str(10 * (int(x["a"]) + int(x["b"]))),
              _asks("Ten times the sum of {a} and {b}:", "Add {a} and {b}, then multiply by ten."),
              components=("add", "times_ten")),
    ]
