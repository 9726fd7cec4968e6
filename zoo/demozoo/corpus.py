"""Generic pre-training text for the base model: the suite's vocabulary without its mappings.

The base must know the *material* of the tasks (letters, numbers, bracketed lists, the world's
names, the words of the templates) and be able to copy text it has seen, so that a low-rank update
can turn that ability into a skill. It must not know any task's input->output mapping, or experts
would have nothing to add. So every line here is one of: a word list, random numbers, a random
list, random world names, a bag of template words, some quoted strings, or verbatim repeats of a
piece of such a line (copying is no task of the suite; reversing, doubling, selecting, computing
or recalling a fact never appear). Repeats are frequent because they make the model learn to copy
from its context early in training (measured: without them it had not learnt to copy after 1500
steps; with them it copies after about 500).
"""

from __future__ import annotations

import random
import re
from collections.abc import Callable, Iterator

from zoo.demozoo.skills import Skill, World, fmt_list, letter_list, pseudo_word, random_letters

COPY_SEPARATORS = (" | ", " / ", " ; ", " -> ")
COPY_FRACTION = 0.75


def template_words(skills: list[Skill]) -> list[str]:
    """The English words of every template (paraphrases included): vocabulary, not meaning."""
    templates = [t for s in skills for t in s.templates + s.paraphrases]
    words = {w for t in templates for w in re.findall(r"[a-z]+", re.sub(r"\{.\}", " ", t))}
    return sorted(words)


def world_names(world: World) -> list[str]:
    return sorted({*world.countries, *(v for facts in world.facts.values() for v in facts.values())})


def corpus_lines(world: World, skills: list[Skill], rng: random.Random, max_chars: int,
                 copy_fraction: float = COPY_FRACTION) -> Iterator[str]:
    """An endless stream of generic lines, each at most ``max_chars`` characters.

    Experts rehearse this text with ``copy_fraction=0``: the material of every family, without the
    repeats that would pull a string expert back to plain copying.
    """
    words, names = template_words(skills), world_names(world)
    atoms: list[Callable[[], str]] = [
        lambda: " ".join(random_letters(rng, 2, 7) if rng.random() < 0.5 else pseudo_word(rng, rng.randint(1, 3))
                         for _ in range(rng.randint(2, 6))),
        lambda: " ".join(f'"{random_letters(rng, 2, 7)}"' if rng.random() < 0.3 else pseudo_word(rng, 1)
                         for _ in range(rng.randint(2, 5))),
        lambda: " ".join(str(rng.randint(0, 199)) for _ in range(rng.randint(2, 8))),
        lambda: fmt_list(letter_list(rng, 2, 7)),
        lambda: rng.choice([", ", " "]).join(rng.sample(names, rng.randint(2, 5))),
        lambda: " ".join(rng.choice(words) for _ in range(rng.randint(3, 8))),
    ]
    # What gets repeated: mostly random letters, which can only be predicted by copying.
    units = atoms + [lambda: random_letters(rng, 2, 8)] * 3
    while True:
        if rng.random() < copy_fraction:
            unit = rng.choice(units)()[: rng.randint(2, 12)]
            sep = rng.choice(COPY_SEPARATORS)
            line = sep.join([unit] * rng.randint(2, 5))
        else:
            line = rng.choice(atoms)()
        yield line[:max_chars]
