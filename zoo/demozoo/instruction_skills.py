"""The real profile's skills: short natural-language instructions that SmolLM2-135M-Instruct can learn fast.

Four families, each with its own kind of input (a word to re-write, small numbers, a comma-separated
list of words, a word to inflect) and three trained skills plus one that no expert learns. Every
trained skill has three training templates and one paraphrase that no expert sees. Answers are one short line (a word,
a letter, a number), so generation stops after a few tokens; prompts are one short line too, because
training cost grows with the tokens of a batch (see ``docs/zoo.md`` for the measurements).
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
              _asks("Capitalize {w}.", "Write {w} with a capital first letter.", "{w} capitalized:"),
              _asks("Start the word {w} with an upper-case letter.")),
        Skill("first_letter", "formatting", _word, lambda x: x["w"][0],
              _asks("First letter of {w}:", "What letter does {w} start with?", "Give the initial of {w}."),
              _asks("Which letter begins the word {w}?")),
        Skill("repeat", "formatting", _word, lambda x: f"{x['w']} {x['w']}",
              _asks("Say {w} twice.", "Repeat the word {w}.", "{w} two times:"),
              _asks("Echo {w} back, once more after itself.")),
        Skill("uppercase", "formatting", _word, lambda x: x["w"].upper(),
              _asks("Uppercase: {w}", "Write {w} in capital letters.", "{w} in upper case:")),
    ]


def arithmetic_skills() -> list[Skill]:
    """Small-number arithmetic with the answer as digits."""
    return [
        Skill("add", "arithmetic", number_pair(20, 20, low=1), lambda x: str(int(x["a"]) + int(x["b"])),
              _asks("{a} + {b} =", "Add {a} and {b}.", "What is {a} plus {b}?"),
              _asks("Sum up {a} and {b}.")),
        Skill("subtract", "arithmetic", number_pair(30, 20, ordered=True, low=1),
              lambda x: str(int(x["a"]) - int(x["b"])),
              _asks("{a} - {b} =", "Subtract {b} from {a}.", "What is {a} minus {b}?"),
              _asks("Take {b} away from {a}.")),
        Skill("double", "arithmetic", _number, lambda x: str(2 * int(x["n"])),
              _asks("Double {n}.", "What is twice {n}?", "{n} times two ="),
              _asks("Multiply {n} by 2.")),
        Skill("successor", "arithmetic", _number, lambda x: str(int(x["n"]) + 1),
              _asks("What number comes after {n}?", "{n} plus one =", "Increment {n}.")),
    ]


def list_skills() -> list[Skill]:
    """Picking or counting items of a short comma-separated list of words."""
    return [
        Skill("first_item", "lists", _word_list, lambda x: _items(x)[0],
              _asks("First item of: {l}", "Which word comes first in {l}?", "List: {l}. First item:"),
              _asks("Name the opening word of the list {l}.")),
        Skill("last_item", "lists", _word_list, lambda x: _items(x)[-1],
              _asks("Last item of: {l}", "Which word comes last in {l}?", "List: {l}. Last item:"),
              _asks("Name the closing word of the list {l}.")),
        Skill("count_items", "lists", _word_list, lambda x: str(len(_items(x))),
              _asks("How many items: {l}", "Count the words in {l}.", "List: {l}. Number of items:"),
              _asks("What is the length of the list {l}?")),
        Skill("second_item", "lists", _word_list, lambda x: _items(x)[1],
              _asks("Second item of: {l}", "Which word comes second in {l}?", "List: {l}. Second item:")),
    ]


def vocabulary_skills() -> list[Skill]:
    """English word forms and meanings, regular and irregular."""
    return [
        Skill("plural", "vocabulary", _from(PLURALS), lambda x: PLURALS[x["w"]],
              _asks("Plural of {w}:", "What is the plural of {w}?", "One {w}, two"),
              _asks("Give the plural form of the noun {w}.")),
        Skill("past_tense", "vocabulary", _from(PAST_TENSES), lambda x: PAST_TENSES[x["w"]],
              _asks("Past tense of {w}:", "What is the past tense of {w}?", "Today I {w}, yesterday I"),
              _asks("Put the verb {w} in the past.")),
        Skill("opposite", "vocabulary", _from(ADJECTIVES), lambda x: ADJECTIVES[x["w"]][0],
              _asks("Opposite of {w}:", "What is the opposite of {w}?", "The antonym of {w} is"),
              _asks("Give a word meaning the reverse of {w}.")),
        Skill("comparative", "vocabulary", _from(ADJECTIVES), lambda x: ADJECTIVES[x["w"]][1],
              _asks("Comparative of {w}:", "What is the comparative of {w}?", "{w}, but more so:")),
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
        Skill("double_sum", "compose", number_pair(20, 20, low=1), lambda x: str(2 * (int(x["a"]) + int(x["b"]))),
              _asks("Double the sum of {a} and {b}.", "Add {a} and {b}, then double the result."),
              components=("add", "double")),
    ]
