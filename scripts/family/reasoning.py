"""Procedurally generated reasoning problems for the famq-tiny family.

Every problem is a Problem(kind, difficulty, key, question, steps, answer).
`steps` is the step-by-step reasoning; its last line always contains the final
number (usually "..., so far N."), so the closing line "The answer is N." is a
copy of the last step (docs/DESIGN.md section 6). `key` is the canonical tuple of the
underlying computation: the train/valid/test split is decided by a hash of it,
so held-out operands never occur in training, across kinds too (a word problem
that adds 23 and 15 has the same key as the bare addition 23 + 15).
"""
import hashlib
from collections import namedtuple

Problem = namedtuple("Problem", "kind difficulty key question steps answer")

KINDS = ["add", "sub", "mul", "cmp", "count", "unit", "word"]
LEVELS = [1, 2, 3, 4, 5]

NAMES = ["Anna", "Ben", "Carla", "David", "Emma", "Felix", "Grace", "Hugo", "Ida", "Jack", "Kira", "Leo",
         "Maya", "Noah", "Olga", "Paul", "Rosa", "Sam", "Tina", "Victor"]
PRONOUN = {n: ("She" if n in {"Anna", "Carla", "Emma", "Grace", "Ida", "Kira", "Maya", "Olga", "Rosa", "Tina"}
               else "He") for n in NAMES}
ITEMS = ["apples", "books", "coins", "stamps", "marbles", "pencils", "cards", "shells", "eggs", "stickers",
         "nails", "beads", "cookies", "tickets", "flowers", "buttons"]
CONTAINERS = ["boxes", "bags", "crates", "jars", "baskets", "packs", "shelves", "trays"]
WORDS = [
    # short (<= 4 letters)
    "cat", "dog", "sun", "tree", "book", "moon", "star", "fish", "bird", "rain", "door", "ball", "cake", "milk",
    "road", "lamp", "rose", "wind", "fire", "salt", "seed", "boat", "bell", "hill", "frog", "leaf", "nest", "pool",
    "ship", "wall", "bee", "egg", "ear", "eye", "pea", "zoo", "add", "all", "see", "off",
    # 5-6 letters
    "apple", "river", "stone", "cloud", "bread", "grass", "table", "chair", "sheep", "green", "happy", "letter",
    "garden", "button", "summer", "winter", "pepper", "coffee", "banana", "cherry", "little", "bottle", "rabbit",
    "yellow", "street", "season", "puzzle", "kitten", "mirror", "tomato",
    # 7-8 letters
    "balloon", "chicken", "freedom", "giraffe", "mission", "morning", "pattern", "tonight", "village",
    "address", "bookkeep", "assessor", "baseball", "doorbell", "eggshell", "goodness", "hillside", "mattress",
    "sunshine", "tomorrow", "teaspoon", "shopping", "sleeping", "football",
    # 9-11 letters
    "strawberry", "blackberry", "chocolate", "committee", "excellent", "happiness", "mississippi",
    "parallel", "tennessee", "grasshopper", "successful", "possession", "assignment", "butterfly", "beekeeper",
    "millimeter", "accessories", "bookshelves", "programmer", "carpenter", "dictionary", "letterbox",
]
UNITS_POW10 = [("meters", "centimeters", 100), ("kilometers", "meters", 1000), ("kilograms", "grams", 1000),
               ("liters", "milliliters", 1000), ("meters", "millimeters", 1000), ("centimeters", "millimeters", 10),
               ("decades", "years", 10)]
UNITS_SMALL = [("weeks", "days", 7), ("yards", "feet", 3), ("gallons", "quarts", 4), ("quarts", "pints", 2)]
UNITS_MID = [("feet", "inches", 12), ("years", "months", 12), ("dozen", "eggs", 12), ("pounds", "ounces", 16),
             ("days", "hours", 24), ("hours", "minutes", 60), ("minutes", "seconds", 60)]
UNITS_TWO = [("hours", "minutes", 60, "seconds", 60), ("days", "hours", 24, "minutes", 60),
             ("weeks", "days", 7, "hours", 24), ("kilometers", "meters", 1000, "centimeters", 100)]
UNIT_SINGULAR = {"meters": "meter", "kilometers": "kilometer", "kilograms": "kilogram", "liters": "liter",
                 "centimeters": "centimeter", "decades": "decade", "weeks": "week", "yards": "yard",
                 "gallons": "gallon", "quarts": "quart", "feet": "foot", "years": "year", "dozen": "dozen",
                 "pounds": "pound", "days": "day", "hours": "hour", "minutes": "minute", "months": "month"}


def key_hash(seed, key):
    h = hashlib.sha256(f"{seed}|{key!r}".encode()).digest()
    return int.from_bytes(h[:8], "big") / 2.0 ** 64


# ---------------------------------------------------------------- digit procedures

def add_steps(a, b):
    """Column addition from the right; every line carries the partial result."""
    xs, ys = str(a)[::-1], str(b)[::-1]
    lines, digits, carry = [], "", 0
    for i in range(max(len(xs), len(ys))):
        da = int(xs[i]) if i < len(xs) else 0
        db = int(ys[i]) if i < len(ys) else 0
        s = da + db + carry
        digits = str(s % 10) + digits
        lines.append(f"{da}+{db}+{carry}={s}, write {s % 10} carry {s // 10}, so far {digits}.")
        carry = s // 10
    if carry:
        digits = str(carry) + digits
        lines.append(f"Bring down the carry {carry}, so far {digits}.")
    assert int(digits) == a + b
    return lines, a + b


def sub_steps(a, b):
    """Column subtraction a - b (a >= b) from the right with borrows."""
    assert a >= b
    xs, ys = str(a)[::-1], str(b)[::-1]
    lines, digits, borrow = [], "", 0
    for i in range(len(xs)):
        da = int(xs[i])
        db = int(ys[i]) if i < len(ys) else 0
        if da - borrow >= db:
            d = da - db - borrow
            lines.append(f"{da}-{db}-{borrow}={d}, write {d} borrow 0, so far {str(d) + digits}.")
            borrow = 0
        else:
            d = da + 10 - db - borrow
            lines.append(f"{da}+10-{db}-{borrow}={d}, write {d} borrow 1, so far {str(d) + digits}.")
            borrow = 1
        digits = str(d) + digits
    assert borrow == 0
    if len(digits) > 1 and digits[0] == "0":
        digits = str(int(digits))
        lines.append(f"Drop the leading zeros, so far {digits}.")
    assert int(digits) == a - b
    return lines, a - b


def mul1_steps(a, d):
    """a times a single digit d, from the right."""
    xs = str(a)[::-1]
    lines, digits, carry = [], "", 0
    for ch in xs:
        da = int(ch)
        s = da * d + carry
        digits = str(s % 10) + digits
        lines.append(f"{da}*{d}+{carry}={s}, write {s % 10} carry {s // 10}, so far {digits}.")
        carry = s // 10
    if carry:
        digits = str(carry) + digits
        lines.append(f"Bring down the carry {carry}, so far {digits}.")
    if len(digits) > 1 and digits[0] == "0":
        digits = str(int(digits))
        lines.append(f"Drop the leading zeros, so far {digits}.")
    assert int(digits) == a * d
    return lines, a * d


def mul_steps(a, b):
    """Long multiplication: a (the longer number) times each digit of b, then add the rows."""
    if len(str(b)) > len(str(a)):
        a, b = b, a
    if b < 10:
        lines, r = mul1_steps(a, b)
        return [f"Multiply {a} by {b} digit by digit from the right."] + lines, r
    lines, rows = [f"Multiply {a} by each digit of {b}, from the right, then add the rows."], []
    for k, ch in enumerate(str(b)[::-1]):
        d = int(ch)
        place = ["ones", "tens", "hundreds", "thousands"][k]
        lines.append(f"{place.capitalize()} digit {d}: multiply {a} by {d}.")
        if d == 0:
            lines.append(f"Anything times 0 is 0, so far 0.")
            row = 0
        else:
            ls, row = mul1_steps(a, d)
            lines.extend(ls)
        if k:
            shifted = row * 10 ** k
            lines.append(f"Shift by {k} place{'s' if k > 1 else ''}: {row} becomes {shifted}.")
            row = shifted
        rows.append(row)
    total = rows[0]
    for row in rows[1:]:
        lines.append(f"Add {total} and {row}.")
        ls, total = add_steps(total, row)
        lines.extend(ls)
    assert total == a * b
    return lines, total


def times_steps(n, f):
    """n * f for unit conversions: appending zeros for powers of ten, long multiplication otherwise."""
    if f in (10, 100, 1000):
        z = len(str(f)) - 1
        r = n * f
        return [f"Multiplying by {f} appends {z} zero{'s' if z > 1 else ''}: {n} becomes {r}, so far {r}."], r
    return mul_steps(n, f)


# ---------------------------------------------------------------- operand ranges

def rand_digits(rng, n):
    return rng.randint(10 ** (n - 1) if n > 1 else 0, 10 ** n - 1)


def add_operands(rng, d):
    if d == 1:
        a, b = rng.randint(0, 99), rng.randint(0, 9)
    elif d == 2:
        a, b = rand_digits(rng, 2), rand_digits(rng, 2)
    elif d == 3:
        a, b = rand_digits(rng, 3), rand_digits(rng, rng.choice([2, 3, 3]))
    elif d == 4:
        a, b = rand_digits(rng, 4), rand_digits(rng, rng.choice([3, 4, 4]))
    else:
        a, b = rand_digits(rng, rng.choice([5, 6])), rand_digits(rng, rng.choice([4, 5, 6]))
    return (a, b) if rng.random() < 0.5 else (b, a)


def mul_operands(rng, d):
    if d == 1:
        a, b = rng.randint(0, 30), rng.randint(0, 9)
    elif d == 2:
        a, b = rand_digits(rng, 2), rng.randint(2, 9)
    elif d == 3:
        a, b = rand_digits(rng, 3), rng.randint(2, 9)
    elif d == 4:
        a, b = rand_digits(rng, rng.choice([2, 4])), rand_digits(rng, 2) if rng.random() < 0.5 else rng.randint(2, 9)
        if a < 100:
            b = rand_digits(rng, 2)
    else:
        a, b = rand_digits(rng, 3), rand_digits(rng, 2)
    return (a, b) if rng.random() < 0.5 else (b, a)


# ---------------------------------------------------------------- kinds

def gen_add(rng, d):
    a, b = add_operands(rng, d)
    q = rng.choice(["What is {a} + {b}?", "Compute {a} plus {b}.", "Add {a} and {b}.",
                    "Find the sum of {a} and {b}."]).format(a=a, b=b)
    lines, r = add_steps(a, b)
    return Problem("add", d, ("add",) + tuple(sorted((a, b))), q,
                   [f"Add {a} and {b} digit by digit from the right."] + lines, r)


def gen_sub(rng, d):
    a, b = add_operands(rng, d)
    neg = d >= 3 and rng.random() < 0.25 and a != b
    if neg:
        a, b = min(a, b), max(a, b)
    else:
        a, b = max(a, b), min(a, b)
    q = rng.choice(["What is {a} - {b}?", "Compute {a} minus {b}.", "Subtract {b} from {a}."]).format(a=a, b=b)
    if neg:
        lines, r = sub_steps(b, a)
        steps = ([f"{b} is larger than {a}, so compute {b} - {a} digit by digit from the right and make it negative."]
                 + lines + [f"Make it negative, so far {-r}."])
        r = -r
    else:
        lines, r = sub_steps(a, b)
        steps = [f"Subtract {b} from {a} digit by digit from the right."] + lines
    return Problem("sub", d, ("sub", a, b), q, steps, r)


def gen_mul(rng, d):
    a, b = mul_operands(rng, d)
    q = rng.choice(["What is {a} * {b}?", "Compute {a} times {b}.", "Multiply {a} by {b}.",
                    "Find the product of {a} and {b}."]).format(a=a, b=b)
    lines, r = mul_steps(a, b)
    return Problem("mul", d, ("mul",) + tuple(sorted((a, b))), q, lines, r)


def gen_cmp(rng, d):
    n = {1: rng.choice([1, 2]), 2: 2, 3: 3, 4: 4, 5: rng.choice([5, 6])}[d]
    a = rand_digits(rng, n)
    if d >= 3 and rng.random() < 0.7:
        # same length, shared prefix: the first difference is somewhere inside
        s = list(str(a))
        pos = rng.randint(1 if d >= 4 else 0, n - 1)
        choices = [c for c in "0123456789" if c != s[pos] and not (pos == 0 and c == "0")]
        s[pos] = rng.choice(choices)
        b = int("".join(s))
    else:
        m = n if rng.random() < 0.6 else max(1, n + rng.choice([-1, 1]))
        b = rand_digits(rng, m)
    if a == b:
        b = a + 1
    larger = rng.random() < 0.6
    word = "larger" if larger else "smaller"
    q = rng.choice(["Which is {w}, {a} or {b}?", "Which number is {w}: {a} or {b}?"]).format(
        w="larger" if larger else "smaller", a=a, b=b)
    if not larger:
        q = q.replace("larger", "smaller")
    sa, sb = str(a), str(b)
    ans = max(a, b) if larger else min(a, b)
    if len(sa) != len(sb):
        long_, short = (a, b) if len(sa) > len(sb) else (b, a)
        steps = [f"{a} has {len(sa)} digit{'s' if len(sa) > 1 else ''} and {b} has {len(sb)} "
                 f"digit{'s' if len(sb) > 1 else ''}.",
                 f"More digits means larger, so {long_} is larger and {short} is smaller."]
    else:
        steps = [f"Both numbers have {len(sa)} digit{'s' if len(sa) > 1 else ''}. Compare digits from the left."]
        for x, y in zip(sa, sb):
            if x == y:
                steps.append(f"{x} and {y} are equal.")
            else:
                big, small = (a, b) if x > y else (b, a)
                steps.append(f"{max(x, y)} is greater than {min(x, y)}, so {big} is larger and {small} is smaller.")
                break
    steps.append(f"The {word} number is {ans}.")
    return Problem("cmp", d, ("cmp", a, b, word), q, steps, ans)


def gen_count(rng, d):
    if rng.random() < 0.5:
        lo, hi = {1: (3, 4), 2: (5, 6), 3: (7, 8), 4: (9, 11), 5: (12, 20)}[d]
        if d < 5:
            pool = [w for w in WORDS if lo <= len(w) <= hi]
            text = rng.choice(pool)
        else:
            while True:
                text = rng.choice(WORDS) + " " + rng.choice(WORDS)
                if lo <= len(text) - 1 <= hi:
                    break
        letters = sorted(set(text.replace(" ", "")))
        if rng.random() < 0.8:
            letter = rng.choice(letters)
        else:
            letter = rng.choice([c for c in "abcdefghijklmnopqrstuvwxyz" if c not in letters])
        q = rng.choice(['How many times does the letter "{l}" appear in "{t}"?',
                        'Count the letter "{l}" in "{t}".']).format(l=letter, t=text)
        steps, n = [f'Go through "{text}" letter by letter and count "{letter}".'], 0
        for c in text:
            if c == " ":
                continue
            if c == letter:
                n += 1
                steps.append(f"{c} - yes, so far {n}.")
            else:
                steps.append(f"{c} - no, so far {n}.")
        return Problem("count", d, ("count-letter", text, letter), q, steps, n)
    lo, hi = {1: (3, 4), 2: (5, 6), 3: (7, 9), 4: (10, 12), 5: (13, 16)}[d]
    length = rng.randint(lo, hi)
    kinds = rng.sample(["apple", "pear", "plum", "fig", "lemon", "grape", "melon", "peach", "kiwi", "lime"],
                       rng.choice([2, 3, 3, 4]))
    target = kinds[0]
    items = [rng.choice(kinds) for _ in range(length)]
    q = rng.choice(["How many times does {t} appear in this list: {l}?",
                    "Count the word {t} in the list: {l}."]).format(t=target, l=", ".join(items))
    steps, n = [f"Go through the list one item at a time and count {target}."], 0
    for it in items:
        if it == target:
            n += 1
            steps.append(f"{it} - yes, so far {n}.")
        else:
            steps.append(f"{it} - no, so far {n}.")
    return Problem("count", d, ("count-list", target, tuple(items)), q, steps, n)


def gen_unit(rng, d):
    if d == 5:
        big, mid, f1, small, f2 = rng.choice(UNITS_TWO)
        n = rng.randint(2, 99)
        q = f"How many {small} are in {n} {big}?"
        steps = [f"1 {UNIT_SINGULAR[big]} is {f1} {mid} and 1 {UNIT_SINGULAR[mid]} is {f2} {small}.",
                 f"First {n} {big} in {mid}: {n} * {f1}."]
        ls, m = times_steps(n, f1)
        steps += ls
        steps.append(f"Then {m} {mid} in {small}: {m} * {f2}.")
        ls, r = times_steps(m, f2)
        steps += ls
        return Problem("unit", d, ("unit", big, small, n), q, steps, r)
    if d == 1:
        frm, to, f = rng.choice(UNITS_POW10)
        n = rng.randint(1, 50)
    elif d == 2:
        if rng.random() < 0.5:
            frm, to, f = rng.choice(UNITS_POW10)
            n = rng.randint(51, 999)
        else:
            frm, to, f = rng.choice(UNITS_SMALL)
            n = rng.randint(2, 9)
    elif d == 3:
        frm, to, f = rng.choice(UNITS_SMALL + UNITS_MID)
        n = rng.randint(10, 99) if f < 10 else rng.randint(2, 9)
    else:
        frm, to, f = rng.choice(UNITS_MID)
        n = rng.randint(10, 99) if rng.random() < 0.3 else rng.randint(100, 999)
    if frm == "dozen":
        q = f"How many eggs are in {n} dozen?"
        steps = [f"1 dozen is 12 eggs, so {n} dozen is {n} * 12 eggs."]
    else:
        q = rng.choice(["How many {to} are in {n} {frm}?", "Convert {n} {frm} to {to}."]).format(to=to, n=n, frm=frm)
        steps = [f"1 {UNIT_SINGULAR[frm]} is {f} {to}, so {n} {frm} is {n} * {f} {to}."]
    ls, r = times_steps(n, f)
    return Problem("unit", d, ("unit", frm, to, n), q, steps + ls, r)


def gen_word(rng, d):
    name = rng.choice(NAMES)
    he = PRONOUN[name]
    item = rng.choice(ITEMS)
    op = rng.choice(["add", "sub", "mul"])
    if op == "mul":
        a, b = mul_operands(rng, min(d + 1, 5) if d < 5 else 5)
        a, b = max(a, 2), max(b, 2)
        cont = rng.choice(CONTAINERS)
        q = (f"{name} has {a} {cont} with {b} {item} in each. How many {item} does {name} have in total?")
        lines, r = mul_steps(a, b)
        steps = [f"{a} {cont} with {b} {item} each is {a} * {b}."] + lines
        key = ("mul",) + tuple(sorted((a, b)))
    else:
        a, b = add_operands(rng, d)
        if op == "add":
            q = rng.choice([f"{name} has {a} {item}. {he} gets {b} more. How many {item} does {name} have now?",
                            f"A shop sells {a} {item} in the morning and {b} {item} in the afternoon. "
                            f"How many {item} does it sell that day?"])
            lines, r = add_steps(a, b)
            steps = [f"We put {a} and {b} together, so we add {a} + {b}."] + lines
            key = ("add",) + tuple(sorted((a, b)))
        else:
            a, b = max(a, b), min(a, b)
            q = rng.choice([f"{name} has {a} {item} and gives {b} of them away. How many {item} are left?",
                            f"A box holds {a} {item}. {name} takes out {b}. How many {item} are still in the box?"])
            lines, r = sub_steps(a, b)
            steps = [f"We take {b} away from {a}, so we subtract {a} - {b}."] + lines
            key = ("sub", a, b)
    return Problem("word", d, key, q, steps, r)


GENERATORS = {"add": gen_add, "sub": gen_sub, "mul": gen_mul, "cmp": gen_cmp, "count": gen_count,
              "unit": gen_unit, "word": gen_word}
# Share of each kind in the training stream.
TRAIN_WEIGHTS = {"add": 0.2, "sub": 0.15, "mul": 0.2, "cmp": 0.1, "count": 0.1, "unit": 0.1, "word": 0.15}


def render(p, fmt):
    """The JSON record of a problem in 'plain' or 'chat' format."""
    reasoning = "\n".join(p.steps)
    final = f"The answer is {p.answer}."
    prompt_plain = f"Question: {p.question}\nAnswer:"
    prompt_chat = f"<|im_start|>user\n{p.question}<|im_end|>\n<|im_start|>assistant\n"
    if fmt == "plain":
        text = f"{prompt_plain} {reasoning}\n{final}"
    else:
        text = f"{prompt_chat}<think>\n{reasoning}\n</think>\n\n{final}<|im_end|>"
    return {"text": text, "question": p.question, "prompt_plain": prompt_plain, "prompt_chat": prompt_chat,
            "answer": p.answer, "kind": p.kind, "difficulty": p.difficulty, "format": fmt}
