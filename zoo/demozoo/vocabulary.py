"""Plain English words with their forms: the inputs of the real profile's instruction tasks.

Hand-written rather than downloaded (everything here runs offline) and small enough to read: common
words that a 135M instruction model has seen often, with regular and irregular forms mixed so that a
word task is knowledge about English, not one suffix rule.
"""

from __future__ import annotations

PLURALS = {
    "cat": "cats", "dog": "dogs", "house": "houses", "tree": "trees", "car": "cars", "book": "books",
    "apple": "apples", "river": "rivers", "bird": "birds", "chair": "chairs", "table": "tables", "door": "doors",
    "flower": "flowers", "horse": "horses", "bottle": "bottles", "window": "windows", "garden": "gardens",
    "road": "roads", "cloud": "clouds", "train": "trains", "box": "boxes", "bus": "buses", "dish": "dishes",
    "church": "churches", "glass": "glasses", "fox": "foxes", "watch": "watches", "brush": "brushes",
    "city": "cities", "baby": "babies", "story": "stories", "party": "parties", "country": "countries",
    "lady": "ladies", "berry": "berries", "family": "families", "knife": "knives", "leaf": "leaves",
    "wolf": "wolves", "life": "lives", "wife": "wives", "shelf": "shelves", "child": "children", "man": "men",
    "woman": "women", "mouse": "mice", "tooth": "teeth", "foot": "feet", "goose": "geese", "person": "people",
    "potato": "potatoes", "hero": "heroes", "tomato": "tomatoes", "toy": "toys", "key": "keys", "day": "days",
    "boy": "boys", "girl": "girls", "ship": "ships", "cup": "cups", "bell": "bells", "lamp": "lamps",
}

PAST_TENSES = {
    "walk": "walked", "jump": "jumped", "play": "played", "talk": "talked", "open": "opened", "help": "helped",
    "clean": "cleaned", "cook": "cooked", "watch": "watched", "call": "called", "ask": "asked", "work": "worked",
    "start": "started", "paint": "painted", "laugh": "laughed", "listen": "listened", "like": "liked",
    "love": "loved", "dance": "danced", "smile": "smiled", "live": "lived", "move": "moved", "close": "closed",
    "stop": "stopped", "plan": "planned", "drop": "dropped", "cry": "cried", "try": "tried", "carry": "carried",
    "study": "studied", "go": "went", "see": "saw", "eat": "ate", "take": "took", "give": "gave", "come": "came",
    "run": "ran", "write": "wrote", "speak": "spoke", "drink": "drank", "sing": "sang", "swim": "swam",
    "buy": "bought", "think": "thought", "bring": "brought", "teach": "taught", "catch": "caught",
    "sleep": "slept", "keep": "kept", "feel": "felt", "leave": "left", "make": "made", "find": "found",
    "tell": "told", "sell": "sold", "sit": "sat", "stand": "stood", "fly": "flew", "grow": "grew", "know": "knew",
}

# adjective: (opposite, comparative)
ADJECTIVES = {
    "hot": ("cold", "hotter"), "cold": ("hot", "colder"), "big": ("small", "bigger"), "small": ("big", "smaller"),
    "fast": ("slow", "faster"), "slow": ("fast", "slower"), "tall": ("short", "taller"), "short": ("long", "shorter"),
    "long": ("short", "longer"), "happy": ("sad", "happier"), "sad": ("happy", "sadder"), "old": ("young", "older"),
    "young": ("old", "younger"), "rich": ("poor", "richer"), "poor": ("rich", "poorer"), "hard": ("soft", "harder"),
    "soft": ("hard", "softer"), "light": ("dark", "lighter"), "dark": ("light", "darker"), "wet": ("dry", "wetter"),
    "dry": ("wet", "drier"), "early": ("late", "earlier"), "late": ("early", "later"), "strong": ("weak", "stronger"),
    "weak": ("strong", "weaker"), "high": ("low", "higher"), "low": ("high", "lower"), "clean": ("dirty", "cleaner"),
    "dirty": ("clean", "dirtier"), "full": ("empty", "fuller"), "thick": ("thin", "thicker"),
    "thin": ("thick", "thinner"), "loud": ("quiet", "louder"), "quiet": ("loud", "quieter"),
    "good": ("bad", "better"), "bad": ("good", "worse"), "easy": ("hard", "easier"), "cheap": ("expensive", "cheaper"),
    "near": ("far", "nearer"), "wide": ("narrow", "wider"), "narrow": ("wide", "narrower"),
    "sweet": ("sour", "sweeter"), "heavy": ("light", "heavier"), "deep": ("shallow", "deeper"),
    "brave": ("afraid", "braver"),
}

# Everyday words for the letter and list tasks: the nouns, verbs and adjectives above, each once.
WORDS = tuple(dict.fromkeys([*PLURALS, *PAST_TENSES, *ADJECTIVES]))
